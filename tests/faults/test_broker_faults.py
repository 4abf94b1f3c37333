"""Faults of the broker: mosquitto killed with SIGKILL (twice) while agents stream and
flush backlogs; and the collector away for longer than the broker keeps messages."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from agent_helpers import Received
from collector_helpers import start_collector, wait_until

import agent.service
from collector.service import Collector
from cwatch.procs import Mosquitto
from cwatch.tsdb_proc import VictoriaMetrics

from .conftest import Loss
from .helpers import (
    DedupSpy,
    Fleet,
    RecordingTransport,
    compare_vm,
    covered,
    daily_samples,
    envelope_seqs,
    finish_all,
    received_metrics,
    total,
    vm_points,
)

KEYS = [("fault-a", "pc-01"), ("fault-a", "pc-02"), ("fault-b", "pc-01"), ("fault-b", "pc-02")]


def test_broker_sigkill_during_stream_loses_nothing(
        mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, tmp_path: Path,
        loss_report) -> None:
    received = Received()
    # The collector's default reconnect backoff, as deployed.
    collector = start_collector(mosquitto, tmp_path, "faults-broker", sinks=[received],
                                tsdb_url=victoria_metrics.url)
    spy = DedupSpy(collector._dedup)
    collector._dedup = spy  # counts what the collector drops as already seen
    # Each agent starts with 5 hours of backlog (300 envelopes) and flushes it slowly in
    # batches of 50 while it also sends live metrics every second: batches and single
    # messages are in flight when the broker dies.
    fleet = Fleet.make(tmp_path / "agents", mosquitto.url, KEYS, backlog=300,
                       batch_max_items=50, flush_rate_bytes_per_s=1000)
    recoveries = []
    try:
        fleet.start()
        wait_until(lambda: len(received.samples) >= 100, 20, "the fleet's first messages")
        for down_s in (3.0, 2.0):
            time.sleep(3.0)
            mosquitto.stop(kill=True)
            time.sleep(down_s)
            mosquitto.start()  # same port, same persistence folder
            recoveries.append(wait_until(
                lambda: collector.health()["broker_connected"]
                and all(agent.connected for agent in fleet.agents), 20,
                "collector and agents reconnect by themselves"))
        time.sleep(2.0)
        drain_s = fleet.hold_and_drain(60)
        produced = fleet.produced()
        wait_until(lambda: covered(produced, received_metrics(received)), 20,
                   "every produced envelope reaches the collector")
        assert collector.wait_idle(20)
        in_vm = vm_points(victoria_metrics, "cwatch_host_interval_s", "fault-[ab]")
        dropped = fleet.dropped()
    finally:
        finish_all(fleet.finish, collector.stop)

    got = received_metrics(received)
    stored = sum(1 for key, seqs in produced.items() for seq in seqs if seq in got[key])
    for key, seqs in produced.items():  # exactly what was produced, at its own time
        assert {seq: got[key][seq] for seq in seqs} == seqs, key
    extra = {key: set(seqs) - set(produced[key]) for key, seqs in got.items()}
    assert not any(extra.values()), f"envelopes nobody produced: {extra}"
    vm_found, vm_missing, vm_dups = compare_vm(produced, in_vm)
    rollups = daily_samples(tmp_path / "faults-broker.db")
    passed_twice = sum(received.duplicates.values())
    loss_report(Loss(
        "broker SIGKILL x2", total(produced), stored,
        spy.count(produced) + passed_twice, dropped,
        notes=f"VM points {vm_found} (missing {vm_missing}, duplicate {vm_dups}); daily "
              f"roll-ups {sum(rollups.values())}; reconnect {recoveries[0]:.1f}/"
              f"{recoveries[1]:.1f} s; queues empty {drain_s:.1f} s after the live stream stopped"))
    assert dropped == 0
    assert stored == total(produced)
    assert passed_twice == 0
    assert (vm_found, vm_missing) == (total(produced), 0)
    assert rollups == {key: len(seqs) for key, seqs in produced.items()}


BROKER_QUEUE = 20


def sys_value(broker: Mosquitto, topic: str) -> int:
    """A broker statistic from its retained $SYS tree."""
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="faults-sys",
                         protocol=mqtt.MQTTv5)
    client.on_message = lambda c, userdata, message: got.append(message.payload)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=0)
        wait_until(lambda: got, 5, f"{topic} from the broker")
    finally:
        client.disconnect()
        client.loop_stop()
    return int(got[-1])


def test_collector_away_past_the_broker_queue_bound_and_a_broker_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loss_report) -> None:
    monkeypatch.setattr(agent.service, "Transport", RecordingTransport)
    monkeypatch.setattr(RecordingTransport, "acked", [])
    # The shipped broker config keeps 2,000,000 messages for the absent collector
    # (deploy/mosquitto/cwatch.conf); mosquitto's default is 1000. Here: 20.
    broker = Mosquitto(tmp_path / "mosquitto",
                       extra_conf=f"max_queued_messages {BROKER_QUEUE}\nsys_interval 1\n")
    received = Received()
    key = ("fault-h", "pc-01")
    fleet = Fleet.make(tmp_path / "agents", broker.url, [key], backlog=200,
                       backlog_step_s=60, batch_max_items=10)
    collectors: list[Collector] = []
    try:
        broker.start()
        # The collector subscribes once (its persistent session), then is away.
        start_collector(broker, tmp_path, "faults-away").stop()
        fleet.start()
        wait_until(lambda: fleet.queued() <= 1, 30, "the agent sends its backlog")
        time.sleep(2.0)
        fleet.hold_and_drain(20)
        produced = fleet.produced()
        time.sleep(1.5)  # the broker's $SYS tree is refreshed every second
        broker_dropped = sys_value(broker, "$SYS/broker/publish/messages/dropped")
        # Then the broker dies too, once it has saved what it keeps for the collector
        # (autosave_interval 1 here; 60 in deploy/mosquitto/cwatch.conf).
        sent_at = time.time()
        saved = broker.workdir / "mosquitto.db"
        wait_until(lambda: saved.stat().st_mtime > sent_at + 0.1, 10, "the broker saves")
        broker.stop(kill=True)
        broker.start()
        collectors.append(start_collector(broker, tmp_path, "faults-away",
                                          sinks=[received]))
        time.sleep(2.0)  # the queued messages come at once on reconnect
        assert collectors[0].wait_idle(10)
        dropped_by_agent = fleet.dropped()
    finally:
        finish_all(fleet.finish, *(c.stop for c in collectors), broker.stop)

    got = received_metrics(received).get(key, {})
    lost = set(produced[key]) - set(got)
    # What the agent handed over, message by message (the broker acknowledged each).
    data = [(topic, envelope_seqs(topic, payload)) for topic, payload in RecordingTransport.acked
            if topic.endswith(("/metrics", "/batch"))]
    assert dropped_by_agent == 0
    assert set().union(*(seqs for _, seqs in data)) == set(produced[key])
    missing = [seqs for _, seqs in data if not set(seqs) & set(got)]
    partial = [seqs for _, seqs in data if set(seqs) & set(got) and not set(seqs) <= set(got)]
    assert not partial  # a message arrives whole or not at all
    # Exactly what the broker says it dropped: the messages past its bound.
    assert broker_dropped == len(missing) > 0
    assert missing == [seqs for _, seqs in data[-len(missing):]]  # the newest
    assert lost == set().union(*missing)
    assert len(data) - len(missing) <= BROKER_QUEUE
    loss_report(Loss(
        "collector away, broker crash", total(produced), len(got),
        sum(received.duplicates.values()), len(lost),
        bound=f"mosquitto max_queued_messages = {BROKER_QUEUE} (messages; a batch is one)",
        notes=f"the agent sent {len(data)} messages, all acknowledged (so deleted from its "
              f"queue); the broker kept {len(data) - len(missing)} for the absent collector "
              f"(through its own SIGKILL) and dropped the {broker_dropped} newest, counted "
              "in its $SYS/broker/publish/messages/dropped (cwatch_broker_messages_dropped "
              "on the collector's /metrics; reset by this broker restart)"))
