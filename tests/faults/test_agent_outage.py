"""Faults 3 and 4: agents cut off from the broker for hours, then backfilling; and an
outage longer than the agent's queue bound."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from agent_helpers import Received
from collector_helpers import start_collector, wait_until

from cwatch.procs import Mosquitto
from cwatch.tsdb_proc import VictoriaMetrics

from .conftest import Loss
from .helpers import (
    DedupSpy,
    Fleet,
    compare_vm,
    covered,
    daily_samples,
    finish_all,
    received_metrics,
    total,
    vm_points,
)

BACKLOG_HOURS = 6
OUTAGE_S = 15.0


def test_long_outage_backfills_everything_at_its_own_time(
        mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, loss_report) -> None:
    caplog.set_level(logging.INFO, logger="agent.forwarder")
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "faults-backfill", sinks=[received],
                                tsdb_url=victoria_metrics.url, reconnect_max_s=2)
    connected_at = time.time()
    spy = DedupSpy(collector._dedup)
    collector._dedup = spy
    keys = [("fault-e", "pc-01"), ("fault-e", "pc-02")]
    # Hours of an outage in a second: the real agent's envelopes made with a clock that
    # runs 60 s per message (a PC at the default interval), ending now.
    fleet = Fleet.make(tmp_path / "agents", mosquitto.url, keys,
                       backlog=BACKLOG_HOURS * 60, backlog_step_s=60, batch_max_items=100)
    try:
        # The broker saves its sessions every second (autosave_interval 1); killed before
        # that, it would forget the collector's brand-new session, and what the agents
        # send before the collector is back would have no one to be kept for.
        saved = mosquitto.workdir / "mosquitto.db"
        wait_until(lambda: saved.exists() and saved.stat().st_mtime > connected_at + 0.1, 10,
                   "the broker saves the collector's session")
        mosquitto.stop(kill=True)  # and then the line is down for real, agents running
        fleet.start()
        time.sleep(OUTAGE_S)
        assert not any(agent.connected for agent in fleet.agents)
        offline = {agent.key: agent.queue.count for agent in fleet.agents}
        assert all(n >= BACKLOG_HOURS * 60 + OUTAGE_S - 3 for n in offline.values()), offline
        before = len(received.samples)
        mosquitto.start()
        recovered = wait_until(lambda: collector.health()["broker_connected"]
                               and all(agent.connected for agent in fleet.agents), 20,
                               "collector and agents reconnect by themselves")
        backlog = fleet.produced()
        backfill_s = recovered + wait_until(
            lambda: covered(backlog, received_metrics(received)), 60, "the backlog arrives")
        time.sleep(1.0)
        fleet.hold_and_drain(30)
        produced = fleet.produced()
        wait_until(lambda: covered(produced, received_metrics(received)), 20,
                   "every envelope reaches the collector")
        assert collector.wait_idle(20)
        in_vm = vm_points(victoria_metrics, "cwatch_host_interval_s", "fault-e")
        dropped = fleet.dropped()
        # Queryable where it belongs: each device's oldest sample, asked at its own time.
        oldest = {key: min(seqs.values()) for key, seqs in produced.items()}
        at_oldest = [victoria_metrics.query(
            f'cwatch_host_interval_s{{site="{site}",device="{device}"}}', time=ts,
            flush=False) for (site, device), ts in oldest.items()]
    finally:
        finish_all(fleet.finish, collector.stop)

    got = received_metrics(received)
    for key, seqs in produced.items():  # every envelope, with its original time stamp
        assert {seq: got[key][seq] for seq in seqs} == seqs, key
    assert [len(result) for result in at_oldest] == [1] * len(keys)
    vm_found, vm_missing, vm_dups = compare_vm(produced, in_vm)
    assert (vm_found, vm_missing) == (total(produced), 0)
    rollups = daily_samples(tmp_path / "faults-backfill.db")
    assert rollups == {key: len(seqs) for key, seqs in produced.items()}
    # In batches of at most 100, oldest first, after the newest metrics on its own.
    flushed = [int(m.group(1)) for r in caplog.records
               if (m := re.match(r"flushed (\d+) buffered", r.getMessage()))]
    backfilled = [s for s in received.samples[before:] if s.from_batch]
    assert flushed and max(flushed) <= 100 and sum(flushed) >= len(backfilled)
    assert len(flushed) >= total(produced) // 100
    for key in keys:
        after = [s for s in received.samples[before:]
                 if (s.site, s.device) == key and s.channel == "metrics"]
        # (live metrics made during the flush join the end of the backlog)
        older = [s.seq for s in after if s.from_batch and s.ts < after[0].ts]
        assert not after[0].from_batch and older and max(older) < after[0].seq
        seqs = [s.seq for s in after if s.from_batch]
        assert seqs == sorted(seqs)
    passed_twice = sum(received.duplicates.values())
    assert passed_twice == 0
    loss_report(Loss(
        f"agent outage {BACKLOG_HOURS} h+{OUTAGE_S:.0f} s", total(produced),
        sum(len(seqs) for seqs in got.values()), spy.count(produced), dropped,
        notes=f"{len(flushed)} batches (max {max(flushed)} items), oldest point "
              f"{(time.time() - min(oldest.values())) / 3600:.1f} h old found in VM at its own "
              "time; "
              f"VM points {vm_found} (duplicate {vm_dups}); all reconnected {recovered:.1f} s "
              f"and the backlog stored {backfill_s:.1f} s after the broker was back"))
    assert dropped == 0


def test_queue_bound_drops_the_oldest_and_counts_them(
        mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, tmp_path: Path,
        loss_report) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "faults-bound", sinks=[received],
                                tsdb_url=victoria_metrics.url)
    key = ("fault-g", "pc-01")
    # About 1.5 MB of envelopes (a day at 60 s) into a queue bounded at 1 MB.
    fleet = Fleet.make(tmp_path / "agents", mosquitto.url, [key], backlog=1440,
                       backlog_step_s=60, max_mb=1)
    agent = fleet.agents[0]
    queued_before, dropped_before = agent.queue.count, agent.queue.dropped_total
    assert dropped_before > 0 and agent.queue.size_bytes <= 1024 * 1024
    try:
        fleet.start()
        wait_until(lambda: covered({key: dict(list(fleet.backlog[key].items())[-10:])},
                                   received_metrics(received)), 30, "the newest backlog")
        time.sleep(2.0)
        fleet.hold_and_drain(30)
        produced = fleet.produced()
        dropped = fleet.dropped()
        wait_until(lambda: len(received_metrics(received).get(key, {})) >= total(produced)
                   - dropped, 20, "everything kept arrives")
        assert collector.wait_idle(20)
        reported = victoria_metrics.query(
            'last_over_time(cwatch_agent_queue_dropped_total{site="fault-g"}[1h])')
    finally:
        finish_all(fleet.finish, collector.stop)

    got = received_metrics(received).get(key, {})
    lost = set(produced[key]) - set(got)
    assert set(got) <= set(produced[key])
    assert {seq: got[seq] for seq in got} == {seq: produced[key][seq] for seq in got}
    # published == stored + dropped, and the dropped are the oldest.
    assert len(lost) == dropped == dropped_before
    assert max(lost) < min(got)
    assert total(produced) == len(got) + dropped
    # The agent says so itself: in every metrics message, and so in the time series.
    newest = max((s for s in received.samples if s.channel == "metrics"), key=lambda s: s.ts)
    assert newest.data["agent"]["queue_dropped_total"] == dropped
    assert [float(r["value"][1]) for r in reported] == [dropped]
    loss_report(Loss(
        "agent queue bound", total(produced), len(got),
        sum(received.duplicates.values()), dropped, bound="[queue] max_mb = 1",
        notes=f"{queued_before} envelopes ({agent.config.queue.max_mb:g} MB) kept of "
              f"{len(fleet.backlog[key])} buffered; the {dropped} oldest dropped, reported as "
              "queue_dropped_total in the agent's metrics and cwatch_agent_queue_dropped_total"))
