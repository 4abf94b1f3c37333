"""Fault 6: VictoriaMetrics down, agents publishing, the collector killed with SIGKILL
and restarted while the database is still down, then the database back: every point
the collector acknowledged reaches VictoriaMetrics (the writer's disk spool)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from collector_helpers import wait_until

from cwatch.procs import Mosquitto
from cwatch.tsdb_proc import VictoriaMetrics

from .conftest import Loss
from .helpers import (
    CollectorProcess,
    Fleet,
    finish_all,
    ms,
    produced_keys,
    settle,
    stored_keys,
    total,
    vm_points,
)

KEYS = [("fault-s", "pc-01"), ("fault-s", "pc-02"), ("fault-t", "pc-01")]


def tsdb_value(collector: CollectorProcess, name: str, **labels: str) -> float:
    return collector.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


def test_tsdb_down_and_collector_killed_loses_no_point(
        mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, tmp_path: Path,
        loss_report) -> None:
    collector = CollectorProcess(tmp_path / "collector", mosquitto.url, "faults-spool",
                                 tsdb_url=victoria_metrics.url, journal=True)
    journal = collector.journal_path
    assert journal is not None
    fleet = Fleet.make(tmp_path / "agents", mosquitto.url, KEYS, backlog=200,
                       batch_max_items=50, flush_rate_bytes_per_s=1000)
    try:
        collector.start()
        fleet.start()
        wait_until(lambda: sum(stored_keys(journal).values()) >= 50, 20,
                   "the fleet's first samples stored", poll_s=0.2)
        victoria_metrics.stop()
        down_at = time.monotonic()
        # Acknowledged to the broker, stored in the state store, waiting for the database.
        wait_until(lambda: tsdb_value(collector, "cwatch_tsdb_write_errors_total",
                                      reason="unreachable") >= 2, 20, "failed writes")
        time.sleep(4.0)
        before_kill = tsdb_value(collector, "cwatch_tsdb_queue_lines")
        spool_bytes = tsdb_value(collector, "cwatch_tsdb_spool_bytes")
        stored_before_kill = sum(stored_keys(journal).values())
        assert before_kill > 0 and spool_bytes > 0
        collector.kill()  # the whole waiting queue used to die here
        time.sleep(2.0)  # the agents go on publishing; the broker keeps it
        collector.start()
        resumed = tsdb_value(collector, "cwatch_tsdb_queue_lines")
        assert resumed >= before_kill  # the killed instance's lines, from its spool
        time.sleep(3.0)
        victoria_metrics.start()  # same port, same data
        outage_s = time.monotonic() - down_at
        fleet.hold_and_drain(60)
        produced = fleet.produced()
        dropped_by_agents = fleet.dropped()
        wanted = produced_keys(produced)
        settle(lambda: wanted <= set(stored_keys(journal)), 20)
        # Nobody calls flush(): the writer's own retry finds the database again.
        caught_up = wait_until(
            lambda: tsdb_value(collector, "cwatch_tsdb_queue_lines") == 0
            and tsdb_value(collector, "cwatch_state_queue_samples") == 0, 60,
            "the restarted collector writes its spool out", poll_s=0.2)
        scraped = collector.metrics()
        collector.stop()
        in_vm = vm_points(victoria_metrics, "cwatch_host_interval_s", "fault-[st]")
    finally:
        finish_all(fleet.finish, collector.kill)

    stored = stored_keys(journal)
    lost_state = wanted - set(stored)
    vm_stamps = {key: Counter(stamps) for key, stamps in in_vm.items()}
    found = {k for k in wanted if vm_stamps.get(k[:2], Counter())[ms(k[3])]}
    lost_vm = wanted - found
    vm_dups = sum(n - 1 for stamps in vm_stamps.values() for n in stamps.values() if n > 1)
    dropped = {labels: v for (name, labels), v in scraped.items()
               if name == "cwatch_tsdb_lines_dropped_total"}
    loss_report(Loss(
        "TSDB down + collector SIGKILL", total(produced), len(found), vm_dups, len(lost_vm),
        bound="none: the writer's spool (on disk before a message is acknowledged) is "
              "sent by the next instance", unit="metrics samples",
        notes=f"database down {outage_s:.0f} s; {before_kill:.0f} lines ({spool_bytes:.0f} "
              f"bytes) spooled at the kill, after {stored_before_kill} samples stored; "
              f"{resumed:.0f} lines waiting in the restarted collector; its spool written "
              f"{caught_up:.1f} s after the agents were drained; duplicates: points stored "
              "twice (a message re-delivered after the kill and stored again)"))
    assert dropped_by_agents == 0
    assert not lost_state, sorted(lost_state)[:5]
    assert not lost_vm, sorted(lost_vm)[:5]
    assert sum(dropped.values()) == 0, dropped
    assert len(collector.log_tail(10_000).split("Traceback")) == 1, collector.log_tail()
