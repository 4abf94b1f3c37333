"""`cwatch demo`: a broker, the collector and an agent for this PC, on this machine.

Everything runs on free loopback ports; Ctrl-C (or --duration) stops it all.
The simulated fleet joins here when the simulator lands (issue 5).
"""

from __future__ import annotations

import re
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from agent.config import AgentConfig, AgentSection, ProbesSection
from agent.service import Agent
from collector.config import CollectorConfig, CollectorSection, TsdbSection
from collector.ingest import Sample
from collector.service import Collector
from cwatch.mqtt import BrokerConfig
from cwatch.procs import Mosquitto, ServerNotFound, free_port

SITE = "demo"
AGENT_INTERVAL_S = 5.0


def _device_id() -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", socket.gethostname().lower()).strip("-._")
    return (name or "this-pc")[:64]


def run_demo(duration_s: float | None, output: Path) -> int:
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cwatch-demo-broker-") as broker_dir:
        try:
            broker = Mosquitto(Path(broker_dir))
        except ServerNotFound as exc:
            print(f"cwatch demo: error: {exc}", file=sys.stderr)
            return 2
        broker.start()
        try:
            return _run(broker, duration_s, output)
        finally:
            broker.stop()


def _run(broker: Mosquitto, duration_s: float | None, output: Path) -> int:
    listen = f"127.0.0.1:{free_port()}"
    broker_config = BrokerConfig(url=broker.url)
    collector_config = CollectorConfig(
        collector=CollectorSection(client_id="cwatch-demo-collector", listen=listen,
                                   state_path=str(output / "state.db")),
        broker=broker_config,
        # The time-series store joins the demo with the simulator (issue 5).
        tsdb=TsdbSection(enabled=False))
    devices: dict[tuple[str, str], Sample] = {}
    collector = Collector(collector_config,
                          sinks=[lambda s: devices.__setitem__((s.site, s.device), s)])
    collector.start()
    agent = Agent(AgentConfig(
        agent=AgentSection(site=SITE, device=_device_id(), interval_s=AGENT_INTERVAL_S,
                           data_dir=str(output / "agent")),
        broker=broker_config,
        # Only the collector on this machine: the demo sends nothing to other hosts.
        probes=ProbesSection(collector_host="127.0.0.1", gateway="", public_dns="",
                             timeout_s=3)))
    agent_thread = threading.Thread(target=agent.run, name="demo-agent", daemon=True)
    agent_thread.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    print(f"commune-watch demo: broker {broker.url}, agent {SITE}/{_device_id()} every "
          f"{AGENT_INTERVAL_S:g} s\n  devices: http://{listen}/api/devices\n"
          f"  sites:   http://{listen}/api/sites\n  metrics: http://{listen}/metrics")
    print("Press Ctrl-C to stop." if duration_s is None else f"Running for {duration_s:g} s.")
    interactive = sys.stdout.isatty()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(min(2.0, max(0.0, (deadline or float("inf")) - time.monotonic())))
            totals = collector.metrics.totals()
            line = (f"received {totals['received']:6.0f}  accepted {totals['accepted']:6.0f}  "
                    f"rejected {totals['rejected']:4.0f}  devices seen {len(devices):4d}")
            # A terminal gets one line updated in place; a log file gets whole lines.
            print("\r" + line if interactive else line, end="" if interactive else "\n",
                  flush=True)
    except KeyboardInterrupt:
        pass
    print("\nstopping...")
    agent.stop()
    agent_thread.join(timeout=10)
    collector.stop()
    print("stopped; nothing left running.")
    return 0
