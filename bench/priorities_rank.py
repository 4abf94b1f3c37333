"""How long the upgrade ranking takes for a province: the collector computes it for
/api/priorities and, at most once a minute, for /metrics (cwatch_upgrade_priority_*);
and how long a scrape of its series takes once it is computed (what Prometheus waits
for: the ranking itself runs in a thread, off the scrape).

    .venv/bin/python bench/priorities_rank.py --devices 3000 --sites 100
    .venv/bin/python bench/priorities_rank.py --devices 65000 --sites 1650 --runs 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from collector.ingest import Sample
from collector.metrics import PrioritiesCollector
from collector.rules import priority
from collector.store.findings import FindingsStore
from collector.store.state import StateStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import samples  # noqa: E402  (the protocol's example messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=3000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        state = StateStore(str(Path(folder) / "state.db"))
        findings = FindingsStore(state)
        now = time.time()
        batch = []
        for n in range(args.devices):
            site, device = f"xa-{n % args.sites:03d}", f"pc-{n:05d}"
            batch.append(Sample(site, device, "inventory", now - 60, 1,
                                samples.envelope("inventory")["data"]))
            batch.append(Sample(site, device, "metrics", now - 30, 2,
                                samples.envelope("metrics")["data"]))
        state.apply_many(batch)
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            ranked = priority.rank(state, findings, now, priority.Weights(), None, 1_000_000)
            times.append(time.perf_counter() - started)
        print(f"{len(ranked['devices'])} devices in {args.sites} sites: ranking "
              f"median {1000 * statistics.median(times):.0f} ms, max {1000 * max(times):.0f} ms "
              f"over {args.runs} runs")
        registry = CollectorRegistry()
        registry.register(PrioritiesCollector(lambda: ranked))
        generate_latest(registry)  # the first scrape ranks; the ones measured reuse it
        started = time.perf_counter()
        text = generate_latest(registry)
        print(f"a scrape of its series: {time.perf_counter() - started:.2f} s, "
              f"{len(text) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
