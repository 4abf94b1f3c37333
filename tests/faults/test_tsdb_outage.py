"""Fault 5: VictoriaMetrics stopped for a while with data flowing, then started again."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import Received
from collector_helpers import start_collector, wait_until

import collector.service as service
from collector.store.timeseries import TimeSeriesWriter, to_lines
from cwatch.procs import Mosquitto
from cwatch.tsdb_proc import VictoriaMetrics

from .conftest import Loss
from .helpers import (
    Fleet,
    covered,
    daily_samples,
    finish_all,
    ms,
    received_metrics,
    registry_value,
    total,
    vm_all_points,
    vm_points,
)

OUTAGE_S = 15.0
# The writer's spool bound (the collector's default is 6 GiB): small here, so that the
# outage overflows it and the drop accounting is exercised. Line protocol takes about
# 15 bytes a line in the spool (compressed), so this holds some 1,000-1,500 lines.
SPOOL_MAX_BYTES = 20_000
_UNESCAPED_SPACE = re.compile(r"(?<!\\) ")


def points(line: str) -> int:
    """Values one line-protocol line becomes in VictoriaMetrics: one per field."""
    _, fields, _ = _UNESCAPED_SPACE.split(line)
    return fields.count(",") + 1


def test_tsdb_outage_buffers_retries_and_counts_what_it_drops(
        mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, loss_report) -> None:
    def small_spool(*args: Any, **kwargs: Any) -> TimeSeriesWriter:
        # (below the 1 MiB that [tsdb] spool_max_bytes accepts)
        return TimeSeriesWriter(*args, **{**kwargs, "spool_max_bytes": SPOOL_MAX_BYTES})

    monkeypatch.setattr(service, "TimeSeriesWriter", small_spool)
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "faults-tsdb", sinks=[received],
                                tsdb_url=victoria_metrics.url)
    registry = collector.metrics.registry

    def value(name: str, **labels: str) -> float:
        return registry_value(registry, name, **labels)

    keys = [("fault-f", "pc-01"), ("fault-f", "pc-02"), ("fault-f", "pc-03")]
    fleet = Fleet.make(tmp_path / "agents", mosquitto.url, keys, backlog=300,
                       batch_max_items=50, flush_rate_bytes_per_s=1000)
    try:
        fleet.start()
        wait_until(lambda: len(received.samples) >= 50, 20, "the fleet's first samples")
        assert collector.wait_idle(10)  # status and inventory are written before the fault
        victoria_metrics.stop()
        time.sleep(OUTAGE_S)
        waiting = value("cwatch_tsdb_queue_lines")
        spooled = value("cwatch_tsdb_spool_bytes")
        assert 0 < spooled <= SPOOL_MAX_BYTES
        failures = value("cwatch_tsdb_write_errors_total", reason="unreachable")
        assert failures >= 2 and waiting > 0
        written_before = value("cwatch_tsdb_lines_written_total")
        dropped_before = value("cwatch_tsdb_lines_dropped_total", reason="queue_full")
        victoria_metrics.start()  # same port, same data
        # Nobody kicks the writer (no flush()): its own retry must find the database.
        # Caught up: every line waiting at the end of the outage is written, or was
        # dropped since (the agents' backlog keeps the spool full until the retry).
        recovered = wait_until(
            lambda: value("cwatch_tsdb_lines_written_total") - written_before
            + value("cwatch_tsdb_lines_dropped_total", reason="queue_full") - dropped_before
            >= waiting, 40, "the writer catches up by itself", poll_s=0.1)
        fleet.hold_and_drain(60)
        produced = fleet.produced()
        wait_until(lambda: covered(produced, received_metrics(received)), 20,
                   "every envelope reaches the collector")
        assert collector.wait_idle(20)
    finally:
        finish_all(fleet.finish, collector.stop)
    in_vm = vm_points(victoria_metrics, "cwatch_host_interval_s", "fault-f")
    stored_points = vm_all_points(victoria_metrics, "fault-f")

    # Every sample the collector accepted, with its lines (and so its points).
    samples = list(received.by_key.values())
    assert sum(received.duplicates.values()) == 0
    lines = {(s.site, s.device, s.seq): to_lines(s) for s in samples}
    submitted = sum(len(x) for x in lines.values())
    written = value("cwatch_tsdb_lines_written_total")
    dropped = {reason: value("cwatch_tsdb_lines_dropped_total", reason=reason)
               for reason in ("queue_full", "rejected", "shutdown")}
    assert submitted == written + sum(dropped.values())
    assert dropped["rejected"] == dropped["shutdown"] == 0
    # Which samples are missing from the database: exactly those the queue dropped.
    stamps = {key: set(found) for key, found in in_vm.items()}
    missing = [s for s in samples if s.channel == "metrics"
               and ms(s.ts) not in stamps.get((s.site, s.device), set())]
    lost_lines = sum(len(lines[(s.site, s.device, s.seq)]) for s in missing)
    assert lost_lines == dropped["queue_full"] > 0
    expected_points = sum(points(line) for key, x in lines.items() for line in x) - sum(
        points(line) for s in missing for line in lines[(s.site, s.device, s.seq)])
    assert stored_points == expected_points
    # The state store never depended on the time-series database: everything is there.
    assert total(produced) == sum(len(v) for v in received_metrics(received).values())
    assert daily_samples(tmp_path / "faults-tsdb.db") == {
        key: len(seqs) for key, seqs in produced.items()}
    loss_report(Loss(
        f"TSDB down {OUTAGE_S:.0f} s", submitted, int(written), 0,
        int(dropped["queue_full"]), bound=f"writer spool {SPOOL_MAX_BYTES} bytes "
        "(collector: 6 GiB), oldest segments dropped, "
        "cwatch_tsdb_lines_dropped_total{queue_full}",
        unit="lines",
        notes=f"{len(samples)} samples ({total(produced)} metrics envelopes, all in the state "
              f"store), {len(missing)} of them dropped from the time series; VM values "
              f"{stored_points} == submitted minus dropped; {waiting:.0f} lines waiting "
              f"({spooled:.0f} bytes in the spool) and "
              f"{failures:.0f} failed writes at the end of the outage; caught up {recovered:.1f}"
              " s after the database was back (retry backoff 0.5 s doubling to 30 s)"))
