"""Agent footprint on this machine: steady-state RSS and CPU-seconds per minute.

Runs the real agent (`cwatch agent`) against a private mosquitto, with probes
on (loopback targets: the collector host and a local HTTP "portal") and SMART
on, next to a bare psutil + paho loop as a baseline, for a few minutes each,
and prints a Markdown table. Also reports the largest metrics message and the
compression of a backlog batch. Nothing leaves this machine.

    .venv/bin/python bench/agent_footprint.py --minutes 5 --interval 60 --interval 15
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil

from cwatch.procs import Mosquitto

BARE_LOOP = textwrap.dedent("""
    import json, sys, time, psutil, paho.mqtt.client as mqtt
    port, interval = int(sys.argv[1]), float(sys.argv[2])
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bare")
    c.connect("127.0.0.1", port); c.loop_start()
    while True:
        m = psutil.virtual_memory()
        d = {"cpu": psutil.cpu_percent(), "mem": m.percent, "avail": m.available,
             "disk": psutil.disk_usage("/").percent}
        c.publish("bench/bare", json.dumps(d), qos=1)
        time.sleep(interval)
""")


def portal_server() -> tuple[http.server.HTTPServer, int]:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def agent_config(path: Path, broker: Mosquitto, interval: float, portal_port: int) -> Path:
    path.write_text(textwrap.dedent(f"""
        [agent]
        site = "bench"
        device = "pc-{int(interval)}s"
        interval_s = {interval}
        probe_interval_s = {interval}
        data_dir = "{path.parent / f'data-{int(interval)}'}"
        log_level = "warning"
        [broker]
        url = "{broker.url}"
        [probes]
        gateway = ""
        public_dns = ""
        collector_host = "127.0.0.1"
        portal_url = "http://127.0.0.1:{portal_port}/"
        [smart]
        enabled = true
    """))
    return path


class SizeWatcher:
    """Subscribes to the bench topics and keeps the largest payload per channel."""

    def __init__(self, broker: Mosquitto) -> None:
        self.largest: dict[str, int] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-watch")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("cwatch/v1/bench/+/+", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        channel = message.topic.rsplit("/", 1)[1]
        self.largest[channel] = max(self.largest.get(channel, 0), len(message.payload))


def measure(procs: dict[str, subprocess.Popen], warmup_s: float, minutes: float
            ) -> dict[str, dict[str, float]]:
    time.sleep(warmup_s)
    handles = {name: psutil.Process(p.pid) for name, p in procs.items()}
    cpu0 = {name: sum(h.cpu_times()[:2]) for name, h in handles.items()}
    rss: dict[str, list[int]] = {name: [] for name in handles}
    end = time.monotonic() + minutes * 60
    while time.monotonic() < end:
        for name, h in handles.items():
            rss[name].append(h.memory_info().rss)
        remaining = end - time.monotonic()
        print(f"\r  measuring... {max(0, remaining):5.0f} s left", end="", file=sys.stderr,
              flush=True)
        time.sleep(5)
    print(file=sys.stderr)
    return {name: {
        "rss_mb": statistics.median(rss[name]) / 1e6,
        "rss_max_mb": max(rss[name]) / 1e6,
        "cpu_s_per_min": (sum(h.cpu_times()[:2]) - cpu0[name]) / minutes,
    } for name, h in handles.items()}


def batch_ratio(workdir: Path) -> tuple[int, int, int]:
    """(items, raw bytes, compressed bytes) of a backlog batch of real metrics."""
    from agent import config as agent_config_mod
    from agent.forwarder import Forwarder
    from agent.service import Agent

    path = workdir / "ratio.toml"
    path.write_text(f'[agent]\nsite = "bench"\ndevice = "ratio"\ndata_dir = "{workdir}/r"\n'
                    '[probes]\nenabled = false\n[smart]\nenabled = false\n')
    agent = Agent(agent_config_mod.load(path, {}))
    agent.metrics()
    for _ in range(500):
        agent._enqueue(agent.metrics())
    items = agent.queue.oldest(500, 10**9)
    raw = sum(len(i.payload) for i in items)
    compressed = len(Forwarder(agent.queue, None, "bench", "ratio").encode_batch(items))
    return len(items), raw, compressed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="measuring time per run")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before measuring")
    parser.add_argument("--interval", type=float, action="append",
                        help="agent interval(s) in seconds (default: 60 and 15)")
    args = parser.parse_args()
    intervals = args.interval or [60.0, 15.0]
    with tempfile.TemporaryDirectory(prefix="cwatch-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "broker").start()
        portal, portal_port = portal_server()
        watcher = SizeWatcher(broker)
        procs: dict[str, subprocess.Popen] = {}
        try:
            for interval in intervals:
                config = agent_config(workdir / f"agent-{int(interval)}.toml", broker, interval,
                                      portal_port)
                procs[f"cwatch agent, {interval:g} s"] = subprocess.Popen(
                    [sys.executable, "-m", "cwatch", "agent", "--config", str(config)])
                procs[f"bare psutil+paho loop, {interval:g} s"] = subprocess.Popen(
                    [sys.executable, "-c", BARE_LOOP, str(broker.port), str(interval)])
            print(f"running {len(procs)} processes: {args.warmup:g} s warm-up, "
                  f"{args.minutes:g} min measured", file=sys.stderr)
            results = measure(procs, args.warmup, args.minutes)
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(30)
            watcher.client.loop_stop()
            portal.shutdown()
            broker.stop()
        items, raw, compressed = batch_ratio(workdir)
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} on this machine "
          f"({psutil.cpu_count()} cores, Python {sys.version.split()[0]}), "
          f"{args.minutes:g} min after {args.warmup:g} s warm-up:\n")
    print("| process | RSS median (MB) | RSS max (MB) | CPU-s per minute |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rss_mb']:.1f} | {r['rss_max_mb']:.1f} | "
              f"{r['cpu_s_per_min']:.3f} |")
    print("\nLargest message per channel (bytes of JSON): " + ", ".join(
        f"{ch} {size}" for ch, size in sorted(watcher.largest.items())))
    print(f"Backlog batch of {items} metrics envelopes: {raw} bytes raw, {compressed} "
          f"compressed ({100 * compressed / raw:.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
