"""Where the collector's time goes per message, step by step, without MQTT: realistic
metrics envelopes handed straight to the collector (state store, rules and the
time-series spool on, VictoriaMetrics started here), then the store worker's three
steps one at a time on a single thread. As in collector_throughput.py, every device
has been seen once before the clock starts.

    .venv/bin/python bench/collector_stages.py --messages 20000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from collector.config import CollectorConfig, CollectorSection, TsdbSection
from collector.ingest import Decoder
from collector.rules import spec as rule_spec
from collector.rules.engine import RuleEngine
from collector.service import Collector
from collector.store.findings import FindingsStore
from collector.store.state import StateStore
from collector.store.timeseries import TimeSeriesWriter
from cwatch.mqtt import BrokerConfig
from cwatch.procs import Mosquitto
from cwatch.tsdb_proc import VictoriaMetrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector_throughput import (  # noqa: E402  (the same envelopes and fleet)
    DEVICES_PER_SITE,
    SITES,
    envelope,
)


def threads_cpu_s() -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def in_the_collector(folder: Path, count: int) -> None:
    broker = Mosquitto(folder / "broker").start()
    vm = VictoriaMetrics(folder / "vm").start()
    try:
        config = CollectorConfig(
            collector=CollectorSection(state_path=str(folder / "state.db"), receiver="thread",
                                       device_rate_per_s=0),
            broker=BrokerConfig(url=broker.url), tsdb=TsdbSection(enabled=True, url=vm.url))
        collector = Collector(config)
        collector.start(serve_http=False)
        collector.wait_connected(10)
        now = time.time()
        # Every device seen once before the clock starts, as by a running collector.
        known = [envelope(count + i, now - 60) for i in range(SITES * DEVICES_PER_SITE)]
        for n, (topic, payload) in enumerate(known):
            collector._handle_message(topic, payload, (0, n + 1), 0)
        collector.wait_idle(300)
        messages = [envelope(i, now) for i in range(count)]
        before = threads_cpu_s()
        started = time.thread_time()
        for n, (topic, payload) in enumerate(messages):
            collector._handle_message(topic, payload, (1, n + 1), 0)  # qos 0: no PUBACK
        checking = time.thread_time() - started
        collector.wait_idle(300)
        after = threads_cpu_s()
        print(f"in the collector ({count} envelopes, CPU µs a message):")
        print(f"  checking (validation, de-duplication, counters): {1e6 * checking / count:.0f}")
        for thread in threading.enumerate():
            if thread.name in ("cwatch-store", "cwatch-tsdb"):
                used = after.get(thread.native_id, 0.0) - before.get(thread.native_id, 0.0)
                print(f"  thread {thread.name}: {1e6 * used / count:.0f}")
        collector.stop()
    finally:
        vm.stop()
        broker.stop()


def store_steps_alone(folder: Path, count: int) -> None:
    decoder, now = Decoder(), time.time()
    known = [s for i in range(SITES * DEVICES_PER_SITE)
             for s in decoder.decode(*envelope(count + i, now - 60)).samples]
    messages = [envelope(i, now) for i in range(count)]
    started = time.process_time()
    decoded = [decoder.decode(topic, payload) for topic, payload in messages]
    print("decoding alone (parse, validation, identity; CPU µs a message): "
          f"{1e6 * (time.process_time() - started) / count:.0f}")
    samples = [s for result in decoded for s in result.samples]
    state = StateStore(folder / "alone.db")
    engine = RuleEngine(rule_spec.load(None), FindingsStore(state), state)
    writer = TimeSeriesWriter("http://127.0.0.1:1", "o", "b", spool_dir=folder / "spool")
    state.apply_many(known)  # every device seen once, as by a running collector
    for sample in known:
        engine.observe(sample)
    steps = {"time series (to_lines + spool)": writer.submit_many,
             "state store": state.apply_many,
             "rules engine": lambda batch: [engine.observe(s) for s in batch]}
    print("the store worker's steps alone, one thread (CPU µs a sample):")
    for name, step in steps.items():
        started = time.process_time()
        for at in range(0, len(samples), 500):
            step(samples[at:at + 500])
        print(f"  {name}: {1e6 * (time.process_time() - started) / len(samples):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cwatch-stages-") as tmp:
        in_the_collector(Path(tmp), args.messages)
        store_steps_alone(Path(tmp), args.messages)


if __name__ == "__main__":
    main()
