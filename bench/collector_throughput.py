"""Collector ingest speed through a real mosquitto, next to the ceiling of a bare
paho subscriber on the same stream.

Phase 1 (flood): publishers send N realistic metrics envelopes (about 1 KB each,
many devices, QoS 1) as fast as they can; we time how fast the collector accepts
them, with storage on (SQLite state + VictoriaMetrics, when installed) and off.
Phase 2 (paced): a steady load below capacity; we report publish-to-stored
latency percentiles (stored = applied to the state store; the time-series write
latency is the collector's own cwatch_tsdb_write_seconds histogram).
The ceiling: a bare paho subscriber that only receives and json.loads.

    .venv/bin/python bench/collector_throughput.py --messages 100000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil

from cwatch import protocol
from cwatch.procs import Mosquitto

SITES, DEVICES_PER_SITE = 100, 50


def envelope(i: int, ts: float) -> tuple[str, bytes]:
    site, device = f"site-{i % SITES:03d}", f"pc-{(i // SITES) % DEVICES_PER_SITE:02d}"
    data = {"interval_s": 60, "cpu_percent": float(i % 100), "cpu_max_core_percent": 90.0,
            "cpu_count": 4, "load_1m": 1.5, "mem_total_bytes": 4 << 30,
            "mem_available_bytes": 1 << 30, "mem_used_percent": 75.0,
            "swap_total_bytes": 2 << 30, "swap_used_bytes": 1 << 28, "swap_used_percent": 12.5,
            "uptime_s": 3600 + i, "boot_ts": 1_790_000_000.0, "process_count": 150,
            "disks": [{"mount": "C:\\", "fstype": "NTFS", "total_bytes": 500 << 30,
                       "used_bytes": 300 << 30, "free_bytes": 200 << 30, "used_percent": 60.0}],
            "net": [{"name": "Ethernet", "rx_bytes_per_s": 10240.0, "tx_bytes_per_s": 2048.0,
                     "rx_errors_per_s": 0.0, "tx_errors_per_s": 0.0}],
            "agent": {"queue_size": 0, "rss_bytes": 29_000_000, "cpu_s": 12.5}}
    env = protocol.envelope(site, device, ts, i, data)
    return protocol.topic_for(site, device, "metrics"), protocol.encode(env)


def publisher(port: int, start: int, count: int, rate: float, ready: mp.Event) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{start}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.wait()
    began = time.monotonic()
    last = None
    for n in range(count):
        if rate:
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        topic, payload = envelope(start + n, time.time())
        last = client.publish(topic, payload, qos=1)
    if last is not None:
        last.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def bare_subscriber(port: int, expected: int, out: mp.Queue, subscribed: mp.Event) -> None:
    got = [0]
    first = [0.0]
    done = mp.Event()

    def on_message(client, userdata, message) -> None:
        json.loads(message.payload)
        if got[0] == 0:
            first[0] = time.monotonic()
        got[0] += 1
        if got[0] >= expected:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(protocol.SUBSCRIPTION, qos=1)
    client.loop_start()
    time.sleep(0.5)
    subscribed.set()
    done.wait(600)
    out.put({"messages": got[0], "seconds": time.monotonic() - first[0]})
    client.loop_stop()


def collector_runner(port: int, workdir: str, tsdb_url: str | None, expected: int,
                     out: mp.Queue, subscribed: mp.Event) -> None:
    from collector.config import CollectorConfig, CollectorSection, TsdbSection
    from collector.service import Collector
    from cwatch.mqtt import BrokerConfig

    latencies: list[float] = []
    times: list[float] = []

    def sink(sample) -> None:
        now = time.time()
        latencies.append(now - sample.ts)
        times.append(now)

    config = CollectorConfig(
        collector=CollectorSection(client_id=f"bench-{Path(workdir).name}",
                                   state_path=str(Path(workdir) / "state.db")),
        broker=BrokerConfig(url=f"mqtt://127.0.0.1:{port}"),
        tsdb=TsdbSection(enabled=tsdb_url is not None, url=tsdb_url or "http://127.0.0.1:1"))
    collector = Collector(config, sinks=[sink])
    collector.start(serve_http=False)
    collector.wait_connected(10)
    time.sleep(0.5)
    subscribed.set()
    proc = psutil.Process()
    deadline = time.monotonic() + 600
    rss = []
    while len(times) < expected and time.monotonic() < deadline:
        rss.append(proc.memory_info().rss)
        time.sleep(0.2)
    collector.wait_idle(120)
    cpu = sum(proc.cpu_times()[:2])
    collector.stop()
    latencies.sort()
    out.put({"messages": len(times), "seconds": times[-1] - times[0] if times else 0,
             "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
             "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)] if latencies else None,
             "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
             "rss_mb": max(rss) / 1e6 if rss else None, "cpu_s": cpu})


def run(kind: str, broker: Mosquitto, workdir: Path, count: int, rate: float,
        tsdb_url: str | None, publishers: int) -> dict:
    out: mp.Queue = mp.Queue()
    subscribed = mp.Event()
    if kind == "bare":
        consumer = mp.Process(target=bare_subscriber, args=(broker.port, count, out, subscribed))
    else:
        consumer = mp.Process(target=collector_runner,
                              args=(broker.port, str(workdir / kind), tsdb_url, count, out,
                                    subscribed))
    consumer.start()
    subscribed.wait(30)
    ready = mp.Event()
    share = count // publishers
    pubs = [mp.Process(target=publisher, args=(broker.port, i * share + kind_offset(kind),
                                               share, rate / publishers, ready))
            for i in range(publishers)]
    for p in pubs:
        p.start()
    time.sleep(1)
    ready.set()
    for p in pubs:
        p.join()
    result = out.get(timeout=900)
    consumer.join(30)
    return result


def kind_offset(kind: str) -> int:
    # Each run uses its own seq range so de-duplication never hides a message.
    return {"bare": 0, "collector": 10**8, "collector+tsdb": 2 * 10**8}.get(kind, 3 * 10**8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--paced-rate", type=float, default=2000.0)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--publishers", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cwatch-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "broker").start()
        vm = None
        try:
            from cwatch.tsdb_proc import VictoriaMetrics
            vm = VictoriaMetrics(workdir / "vm").start()
        except Exception as exc:  # noqa: BLE001 - the bench runs without it, and says so
            print(f"VictoriaMetrics not started ({exc}); storage runs without it",
                  file=sys.stderr)
        try:
            flood = [("bare", None), ("collector", None)]
            if vm is not None:
                flood.append(("collector+tsdb", vm.url))
            for kind, url in flood:
                print(f"flood: {kind}, {args.messages} messages", file=sys.stderr)
                rows.append((f"flood, {kind}", run(kind, broker, workdir, args.messages, 0, url,
                                                   args.publishers)))
            paced = int(args.paced_rate * args.paced_seconds)
            kind = "collector+tsdb" if vm is not None else "collector"
            print(f"paced: {kind}, {args.paced_rate:g}/s", file=sys.stderr)
            rows.append((f"paced {args.paced_rate:g}/s, {kind}",
                         run(kind + "-paced", broker, workdir, paced, args.paced_rate,
                             vm.url if vm else None, args.publishers)))
        finally:
            if vm is not None:
                vm.stop()
            broker.stop()
    print(f"\nMeasured {time.strftime('%Y-%m-%d')}, {psutil.cpu_count()} cores, "
          f"{args.publishers} publisher processes, ~1 KB metrics envelopes, QoS 1:\n")
    print("| run | messages | msg/s | p50 ms | p95 ms | p99 ms | RSS MB | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        rate = r["messages"] / r["seconds"] if r["seconds"] else float("nan")
        cells = [r.get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "rss_mb", "cpu_s")]
        text = " | ".join("" if c is None else f"{c:.1f}" for c in cells)
        print(f"| {name} | {r['messages']} | {rate:,.0f} | {text} |")
    bare = rows[0][1]["messages"] / rows[0][1]["seconds"]
    for name, r in rows[1:]:
        if name.startswith("flood"):
            print(f"\n{name}: {100 * r['messages'] / r['seconds'] / bare:.0f} % of the bare "
                  "subscriber's rate", end="")
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
