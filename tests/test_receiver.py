"""The collector's MQTT receiver: in a child process (the default) or in a thread, the
same stream is stored exactly once; a dead receiver process is started again and loses
nothing; a dead collector leaves no receiver behind."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import samples
from collector_helpers import start_collector, wait_until
from faults.helpers import CollectorProcess
from mqtt_helpers import Publisher

from collector.ingest import Sample
from cwatch.procs import Mosquitto

DEVICES = ("pc-01", "pc-02", "pc-03", "pc-04")


def publish_metrics(publisher: Publisher, seqs: range) -> None:
    for seq in seqs:
        for device in DEVICES:
            envelope = samples.envelope("metrics", seq=seq, ts=time.time(), device=device)
            publisher.publish(samples.topic("metrics", device=device),
                              json.dumps(envelope).encode())


def receiver_processes(parent: psutil.Process) -> list[psutil.Process]:
    return [child for child in parent.children()
            if "collector.receiver" in " ".join(child.cmdline())]


@pytest.mark.parametrize("receiver", ["process", "thread"])
def test_each_receiver_stores_the_stream_exactly_once(mosquitto: Mosquitto, tmp_path: Path,
                                                      receiver: str) -> None:
    stored: list[Sample] = []
    collector = start_collector(mosquitto, tmp_path, f"receiver-{receiver}",
                                sinks=[stored.append], receiver=receiver)
    publisher = Publisher(mosquitto.host, mosquitto.port)
    try:
        assert len(receiver_processes(psutil.Process())) == (receiver == "process")
        publish_metrics(publisher, range(1, 51))
        wait_until(lambda: len(stored) >= 200, 20, "200 samples stored")
        assert collector.wait_idle(10)
        assert sorted((s.device, s.seq) for s in stored) == sorted(
            (device, seq) for device in DEVICES for seq in range(1, 51))
        assert {d["device"] for d in collector.state.devices()} == set(DEVICES)
    finally:
        publisher.close()
        collector.stop()
    assert receiver_processes(psutil.Process()) == []


def test_a_killed_receiver_process_is_started_again_and_nothing_is_lost(
        mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stored: list[Sample] = []
    collector = start_collector(mosquitto, tmp_path, "receiver-restart",
                                sinks=[stored.append], reconnect_max_s=1)
    publisher = Publisher(mosquitto.host, mosquitto.port)
    try:
        publish_metrics(publisher, range(1, 26))
        wait_until(lambda: len(stored) >= 100, 20, "the first 100 samples stored")
        [child] = receiver_processes(psutil.Process())
        os.kill(child.pid, signal.SIGKILL)
        # Published while the receiver is dead: the broker keeps them in the session.
        publish_metrics(publisher, range(26, 51))
        wait_until(lambda: len(stored) >= 200, 30, "all 200 samples stored")
        assert collector.wait_connected(10)
        [again] = receiver_processes(psutil.Process())
        assert again.pid != child.pid
        assert collector.wait_idle(10)
        assert sorted((s.device, s.seq) for s in stored) == sorted(
            (device, seq) for device in DEVICES for seq in range(1, 51))
        assert "MQTT receiver process ended" in caplog.text
    finally:
        publisher.close()
        collector.stop()


def test_a_killed_collector_leaves_no_receiver_behind(mosquitto: Mosquitto,
                                                      tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path, mosquitto.url, "receiver-orphan")
    collector.start()
    try:
        assert collector.proc is not None
        [child] = receiver_processes(psutil.Process(collector.proc.pid))
        collector.kill()
        # The socket to the collector closes with it; the receiver sees that and ends.
        _, alive = psutil.wait_procs([child], timeout=10)
        assert alive == [], f"receiver {child.pid} outlived its collector"
    finally:
        collector.kill()
