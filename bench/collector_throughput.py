"""Collector ingest speed through a real mosquitto, next to the ceiling of a bare
paho subscriber on the same stream.

Drain: N realistic metrics envelopes (about 720 bytes, 5,000 devices, QoS 1) are
queued in the broker for the consumer's persistent session while it is away, then
the consumer connects and we time how fast it takes them in (this is also what a
collector faces after a restart). Consumers: the bare subscriber (paho + json.loads,
the ceiling), the collector with its state store, and the collector with state and
VictoriaMetrics. "Stored" means applied to the state store (and, with the TSDB, the
collector waits until every line is written before the clock stops). Before the clock
starts, each collector has seen every device once, as a running collector has: a
restart's backlog comes from devices it knows (`--first-sight` leaves that out, so
every device is new to the collector during the run).

Paced: publishers send at a steady rate (default 500/s, about eight times a
province's load) while the collector runs; we report publish-to-stored latency
percentiles. Each consumer runs in its own process; RSS is sampled every 0.2 s.

    .venv/bin/python bench/collector_throughput.py --messages 40000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    # seq counts each device's own messages, as an agent does (i = 5,000 q + r is the
    # q-th message of device r): the de-duplicator keeps one range per device.
    env = protocol.envelope(site, device, ts, i // (SITES * DEVICES_PER_SITE), data)
    return protocol.topic_for(site, device, "metrics"), protocol.encode(env)


def publisher(port: int, start: int, count: int, rate: float, go: Any) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{start}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    go.wait()
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
        last.wait_for_publish(300)
    client.disconnect()
    client.loop_stop()


def bare_subscriber(port: int, expected: int, out: Any, away: Any, back: Any) -> None:
    got = [0]
    done = mp.Event()
    first: list[float] = []  # when the first message came, and the CPU used until then

    def on_message(client, userdata, message) -> None:
        json.loads(message.payload)
        if not got[0]:
            first.extend((time.monotonic(), sum(os.times()[:2])))
        got[0] += 1
        if got[0] >= expected:
            done.set()

    def connect() -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare",
                             clean_session=False)
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        return client

    client = connect()
    client.subscribe(protocol.SUBSCRIPTION, qos=1)
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    away.set()
    back.wait()
    cpu0, began = sum(os.times()[:2]), time.monotonic()
    client = connect()
    done.wait(600)
    end, cpu_end = time.monotonic(), sum(os.times()[:2])
    out.put({"messages": got[0], "seconds": end - began, "cpu_s": cpu_end - cpu0,
             "start_s": first[0] - began, "steady": (got[0] - 1, end - first[0],
                                                     cpu_end - first[1])})
    client.disconnect()
    client.loop_stop()


def warm_up(port: int, first: int, expected: int, stored: list[float]) -> None:
    """One message from every device, stored before the measured run."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-warm-{first}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for i in range(SITES * DEVICES_PER_SITE):
        last = client.publish(*envelope(first + i, time.time() - 60), qos=1)
    last.wait_for_publish(300)
    client.disconnect()
    client.loop_stop()
    deadline = time.monotonic() + 300
    while len(stored) < expected and time.monotonic() < deadline:
        time.sleep(0.1)


def collector_runner(port: int, workdir: str, tsdb_url: str | None, expected: int,
                     out: Any, away: Any, back: Any, drain: bool, receiver: str,
                     warm_seq: int | None) -> None:
    from collector.config import CollectorConfig, CollectorSection, TsdbSection
    from collector.service import Collector
    from cwatch.mqtt import BrokerConfig

    latencies: list[float] = []

    def sink(sample) -> None:
        latencies.append(time.time() - sample.ts)

    Path(workdir).mkdir(parents=True, exist_ok=True)
    config = CollectorConfig(
        collector=CollectorSection(client_id=f"bench-{Path(workdir).name}",
                                   state_path=str(Path(workdir) / "state.db"),
                                   receiver=receiver),
        broker=BrokerConfig(url=f"mqtt://127.0.0.1:{port}"),
        tsdb=TsdbSection(enabled=tsdb_url is not None, url=tsdb_url or "http://127.0.0.1:1"))

    def start() -> Collector:
        collector = Collector(config, sinks=[sink])
        collector.start(serve_http=False)
        collector.wait_connected(10)
        return collector

    collector = start()
    time.sleep(0.5)
    if warm_seq is not None:
        warm_up(port, warm_seq, SITES * DEVICES_PER_SITE, latencies)
        collector.wait_idle(300)
        latencies.clear()
    if drain:
        collector.stop()
    away.set()
    back.wait()
    proc = psutil.Process()
    cpu0, began = sum(proc.cpu_times()[:2]), time.monotonic()
    if drain:
        collector = start()
    # The collector and its MQTT receiver process (scanning /proc for children costs
    # milliseconds: once, not at every sample).
    family = [proc, *proc.children(recursive=True)]
    if not drain:  # the receiver ran before the clock started: count from now
        cpu0 = sum(sum(p.cpu_times()[:2]) for p in family)
    rss, receiver_rss = [], []
    first = None  # (time, CPU, messages) when the first message was stored
    deadline = began + 900
    while len(latencies) < expected and time.monotonic() < deadline:
        if first is None and latencies:
            first = (time.monotonic(), sum(sum(p.cpu_times()[:2]) for p in family),
                     len(latencies))
        rss.append(sum(p.memory_info().rss for p in family))
        receiver_rss.append(sum(p.memory_info().rss for p in family[1:]))
        time.sleep(0.2)
    collector.wait_idle(300)
    end = time.monotonic()
    cpu_end = sum(sum(p.cpu_times()[:2]) for p in family)
    collector.stop()
    if first is None:
        first = (began, cpu0, 0)
    latencies.sort()

    def pct(p: float) -> float | None:
        return 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * p))] \
            if latencies else None

    # A drained message waited in the broker on purpose: its latency says nothing.
    out.put({"messages": len(latencies), "seconds": end - began, "cpu_s": cpu_end - cpu0,
             "start_s": first[0] - began,
             "steady": (len(latencies) - first[2], end - first[0], cpu_end - first[1]),
             **({} if drain else {"p50_ms": pct(0.5), "p95_ms": pct(0.95),
                                  "p99_ms": pct(0.99)}),
             "rss_mb": max(rss) / 1e6 if rss else None,
             "receiver_rss_mb": max(receiver_rss) / 1e6 if receiver_rss else 0.0})


def drop_session(port: int, client_id: str) -> None:
    """End a finished consumer's persistent session. Left behind, the broker would queue
    every later run's messages for it and save them all to disk every second (the test
    broker's autosave_interval), slowing the runs after it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def run(name: str, broker: Mosquitto, workdir: Path, count: int, rate: float,
        tsdb_url: str | None, publishers: int, offset: int, receiver: str,
        first_sight: bool) -> dict:
    out: Any = mp.Queue()
    away, back, go = mp.Event(), mp.Event(), mp.Event()
    drain = not rate
    if name == "bare":
        consumer = mp.Process(target=bare_subscriber, args=(broker.port, count, out, away, back))
    else:
        consumer = mp.Process(target=collector_runner,
                              args=(broker.port, str(workdir / f"c{offset}"), tsdb_url, count,
                                    out, away, back, drain, receiver,
                                    None if first_sight else offset + 9 * 10**7))
    consumer.start()
    away.wait(60)
    share = count // publishers
    pubs = [mp.Process(target=publisher, args=(broker.port, offset + i * share, share, rate /
                                               publishers, go)) for i in range(publishers)]
    for p in pubs:
        p.start()
    time.sleep(1)
    go.set()
    if drain:  # everything queued in the broker first, then the consumer comes back
        for p in pubs:
            p.join()
    back.set()
    for p in pubs:
        p.join()
    deadline = time.monotonic() + 1200
    while True:
        try:
            result = out.get(timeout=1)
            break
        except queue.Empty:
            if not consumer.is_alive() or time.monotonic() > deadline:
                raise SystemExit(f"{name}: the consumer died or hung; see above") from None
    consumer.join(60)
    drop_session(broker.port, "bench-bare" if name == "bare" else f"bench-c{offset}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=40_000,
                        help="messages per drain run (default 40000)")
    parser.add_argument("--paced-rate", type=float, default=500.0,
                        help="messages/s of the latency run (default 500)")
    parser.add_argument("--paced-seconds", type=float, default=30.0)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--receivers", type=lambda text: text.split(","),
                        default=["process", "thread"],
                        help="collector receiver kinds to measure, comma-separated "
                             "(default process,thread)")
    parser.add_argument("--first-sight", action="store_true",
                        help="no warm-up: every device is new to the collector in the run")
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
            runs = [("bare", None, 0.0, "")]
            for receiver in args.receivers:
                runs.append((f"collector ({receiver} receiver), state", None, 0.0, receiver))
                if vm is not None:
                    runs.append((f"collector ({receiver} receiver), state + VictoriaMetrics",
                                 vm.url, 0.0, receiver))
            paced = args.receivers[0]
            runs.append((f"collector ({paced} receiver) paced {args.paced_rate:g}/s, state"
                         + (" + VictoriaMetrics" if vm else ""),
                         vm.url if vm else None, args.paced_rate, paced))
            for offset, (name, url, rate, receiver) in enumerate(runs):
                count = int(args.paced_rate * args.paced_seconds) if rate else args.messages
                print(f"{name}: {count} messages", file=sys.stderr)
                # Own seq range per run, so de-duplication never hides a message.
                rows.append((name, run(name, broker, workdir, count, rate, url,
                                       args.publishers, offset * 10**8, receiver,
                                       args.first_sight)))
        finally:
            if vm is not None:
                vm.stop()
            broker.stop()
    print(f"\nMeasured {time.strftime('%Y-%m-%d')}, {psutil.cpu_count()} cores, "
          f"{args.publishers} publisher processes, {len(envelope(0, 0)[1])}-byte metrics "
          f"envelopes, QoS 1, {SITES * DEVICES_PER_SITE:,} devices "
          f"{'new to' if args.first_sight else 'known by'} the collector:\n")
    # msg/s and CPU from the first message stored (received, for bare) to the last; the
    # start (a new collector process: imports, schema compile, receiver child) apart.
    print("| consumer | messages | msg/s | CPU µs/msg | start s | p50 ms | p95 ms | p99 ms "
          "| RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    rates = {}
    for name, r in rows:
        messages, seconds, cpu_s = r["steady"]
        rates[name] = messages / seconds if seconds > 0 else float("nan")
        cpu_us = 1e6 * cpu_s / messages if messages else float("nan")
        cells = [r.get(k) for k in ("start_s", "p50_ms", "p95_ms", "p99_ms", "rss_mb")]
        text = " | ".join("" if c is None else f"{c:.1f}" for c in cells)
        print(f"| {name} | {r['messages']} | {rates[name]:,.0f} | {cpu_us:.0f} | {text} |")
    for name, r in rows[1:]:
        if r.get("receiver_rss_mb"):
            print(f"{name}: of its RSS, the receiver process {r['receiver_rss_mb']:.1f} MB")
    bare = rates[rows[0][0]]
    for name, _ in rows[1:]:
        if "paced" not in name:
            print(f"\n{name}: {100 * rates[name] / bare:.0f} % of the bare subscriber's rate",
                  end="")
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
