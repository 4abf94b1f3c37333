"""`cwatch demo`: a broker, the collector and an agent for this PC, on this machine.

Everything runs on free loopback ports; Ctrl-C (or --duration) stops it all.
A simulated fleet (the simulator's default scenario: ten communes, 300 devices,
one of each fault) replays its last two hours in the first minute, then runs live.
On the way out it writes the procurement report of what it stored (output/report/).
"""

from __future__ import annotations

import datetime as dt
import json
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
from cwatch.sim import fleet as sim_fleet
from cwatch.sim import scenario as sim_scenario
from cwatch.sim.publisher import ConnectionPool
from cwatch.sim.runner import FleetRunner, SimClock

SITE = "demo"
AGENT_INTERVAL_S = 5.0
LINK_FINDINGS = ("slow_link", "local_network", "portal_slow", "site_unreachable", "dns_slow",
                 "wan_saturated")
# Facts for upgrade planning, not failures: left out of "flagged equipment".
PLANNING_FINDINGS = ("os_end_of_support", "windows11_incapable")
FLEET_REPLAY_S, FLEET_SPEED = 2 * 3600.0, 120.0  # two hours of history in one minute


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
    start_ts = time.time() - FLEET_REPLAY_S
    fleet = sim_fleet.build(sim_scenario.load(), seed=1, start_ts=start_ts)
    (output / "truth.json").write_text(json.dumps(fleet.truth_document(), ensure_ascii=False,
                                                  indent=1), encoding="utf-8")
    pool = ConnectionPool(broker_config, 10, client_id_prefix="cwatch-demo-sim")
    pool.start()
    runner = FleetRunner(fleet, pool.publish, SimClock(start_ts, FLEET_SPEED))
    fleet_thread = threading.Thread(target=runner.run, args=(stop,), name="demo-fleet",
                                    daemon=True)
    fleet_thread.start()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    print(f"commune-watch demo: broker {broker.url}, agent {SITE}/{_device_id()} every "
          f"{AGENT_INTERVAL_S:g} s, simulated fleet of {len(fleet.devices)} devices in "
          f"{len(fleet.sites)} communes with {len(fleet.truth)} injected faults "
          f"(replaying the last two hours in the first minute; truth: {output / 'truth.json'})"
          f"\n  findings: http://{listen}/api/findings\n  devices: http://{listen}/api/devices\n"
          f"  sites:   http://{listen}/api/sites\n  metrics: http://{listen}/metrics")
    print("Press Ctrl-C to stop." if duration_s is None else f"Running for {duration_s:g} s.")
    interactive = sys.stdout.isatty()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(min(2.0, max(0.0, (deadline or float("inf")) - time.monotonic())))
            line = _status_line(collector, runner)
            # A terminal gets one line updated in place; a log file gets whole lines.
            print("\r" + line if interactive else line, end="" if interactive else "\n",
                  flush=True)
    except KeyboardInterrupt:
        pass
    print("\nstopping...")
    stop.set()
    fleet_thread.join(timeout=10)
    runner.finish()
    pool.flush(30)
    pool.stop()
    agent.stop()
    agent_thread.join(timeout=10)
    collector.stop()
    # Counted again once every queued message is stored: the last word on this run.
    print(_status_line(collector, runner, final=True))
    print("stopped; nothing left running.")
    _sample_report(output)
    return 0



def _status_line(collector: Collector, runner: FleetRunner, final: bool = False) -> str:
    totals = collector.metrics.totals()
    counts = collector.state.counts_by_site()
    online = sum(c.get("online", 0) for c in counts.values())
    offline = sum(c.get("offline", 0) for c in counts.values())
    phase = "final" if final else (
        "replaying" if runner.clock.now() < time.time() - 1 else "live")
    found = collector.findings.active_counts() if collector.findings else {}
    equipment = sum(n for (kind, _), n in found.items()
                    if kind not in LINK_FINDINGS and kind not in PLANNING_FINDINGS)
    links = sum(n for (kind, _), n in found.items() if kind in LINK_FINDINGS)
    return (f"[{phase}] sites {len(counts):3d}  devices online {online:4d}  offline "
            f"{offline:3d}  accepted {totals['accepted']:7.0f}  rejected "
            f"{totals['rejected']:3.0f}  flagged equipment {equipment:3d}  "
            f"slow links {links:2d}")

def _sample_report(output: Path) -> None:
    """The procurement report of what the demo stored (cwatch report procurement)."""
    from collector.reports.build import Selection
    from collector.reports.cli import CliError, write_report
    from collector.reports.config import ReportSection
    from collector.rules import spec

    today = dt.datetime.now(dt.timezone.utc).date()
    try:
        written = write_report(output / "state.db", ReportSection(province="demo"),
                               spec.load().priority, Selection(
                                   start=today - dt.timedelta(days=29), end=today),
                               output / "report")
    except (CliError, OSError, RuntimeError) as exc:
        print(f"cwatch demo: the sample report could not be written: {exc}", file=sys.stderr)
        return
    print("sample procurement report (cwatch report procurement):")
    for path in written:
        print(f"  {path}")
