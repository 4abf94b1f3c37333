"""Store-and-forward against a real mosquitto: outages, crashes and the queue bound."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

from agent_helpers import Received, agent_toml
from collector_helpers import start_collector

from agent import config as agent_config
from agent.forwarder import Forwarder
from agent.queue import DiskQueue
from agent.seq import SeqCounter
from agent.service import Agent
from cwatch import protocol
from cwatch.procs import Mosquitto


class RecordingAgent(Agent):
    """The real agent, noting every envelope it hands to its queue."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.produced: list[tuple[str, int, float]] = []

    def _enqueue(self, message) -> None:
        topic, env = message
        self.produced.append((protocol.parse_topic(topic).channel, env["seq"], env["ts"]))
        super()._enqueue(message)


def test_broker_outage_loses_nothing_and_backfills_in_order(mosquitto: Mosquitto,
                                                            tmp_path: Path) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "fwd-collector", sinks=[received])
    config = agent_config.load(agent_toml(tmp_path / "agent.toml", mosquitto.url,
                                          tmp_path / "data"), {})
    agent = RecordingAgent(config)
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        received.wait_for(lambda: len(received.seqs("metrics")) >= 2, 20, "first metrics")
        mosquitto.stop(kill=True)  # the link drops: no clean goodbye from anyone
        outage_started = len(agent.produced)
        time.sleep(8)
        assert len(agent.produced) >= outage_started + 5, "agent stopped collecting offline"
        assert agent.queue.count >= 5
        before_restart = len(received.samples)
        mosquitto.start()  # same port, and the collector's session restored from disk
        # Everything produced up to now must arrive.
        produced_now = list(agent.produced)
        received.wait_for(lambda: {s for _, s, _ in produced_now} <= set(
            received.seqs("metrics")), 30, "the backlog")
        # A message in flight when the broker died may be re-sent by paho before anything
        # else; leave it out of the order check (it is still counted below).
        in_flight_seq = max(seq for _, seq, _ in agent.produced[:outage_started])
        after = [s for s in received.samples[before_restart:]
                 if not (s.channel == "metrics" and s.seq <= in_flight_seq)]
        channels = [s.channel for s in after]
        # Status and inventory first, then the newest metrics on its own, then the backlog.
        assert channels[:2] == ["status", "inventory"], channels[:6]
        assert after[0].data["state"] == "online"
        assert not after[2].from_batch and after[2].channel == "metrics"
        backlog = [s for s in after[3:] if s.from_batch]
        assert backlog and all(s.seq < after[2].seq for s in backlog)
        assert [s.seq for s in backlog] == sorted(s.seq for s in backlog)  # oldest first
    finally:
        agent.stop()
        runner.join(timeout=30)
        collector.stop()
    # Exactly once after de-duplication, with the original timestamps.
    got = {seq: s.ts for (_, _, seq), s in received.by_key.items() if s.channel == "metrics"}
    assert {seq: ts for ch, seq, ts in agent.produced if ch == "metrics"} == got
    # Only what was in flight at the cut may come twice. (Retained status and inventory
    # come again whenever the collector resubscribes; their seq marks them as repeats.)
    assert received.duplicates.get("metrics", 0) <= 1


def prefill(data_dir: Path, count: int) -> dict[int, float]:
    """Envelopes an agent buffered during a long outage, as they sit on its disk."""
    seq = SeqCounter(data_dir / "seq")
    queue = DiskQueue(data_dir / "queue.db")
    start = time.time() - count * 60
    produced = {}
    for i in range(count):
        env = protocol.envelope("an-phuoc", "pc-01", start + i * 60, seq.next(),
                                {"interval_s": 60, "cpu_percent": float(i % 100),
                                 "mem_used_percent": 50.0, "uptime_s": 1000 + i * 60})
        queue.put("metrics", protocol.encode(env))
        produced[env["seq"]] = env["ts"]
    queue.close()
    return produced


def test_agent_killed_mid_flush_loses_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "kill-collector", sinks=[received])
    data_dir = tmp_path / "data"
    produced = prefill(data_dir, 3000)
    config = agent_toml(tmp_path / "agent.toml", mosquitto.url, data_dir, interval_s=60,
                        extra="[queue]\nbatch_max_items = 100\nflush_rate_bytes_per_s = 4000\n")
    command = [sys.executable, "-m", "cwatch", "agent", "--config", str(config)]
    agent = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        received.wait_for(lambda: len(received.seqs("metrics")) >= 300, 30, "some batches")
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        got_before_restart = len(received.seqs("metrics") & set(produced))
        assert got_before_restart < len(produced), "the flush finished before the kill"
        agent = subprocess.Popen(command[:-2] + ["--config", str(config)],
                                 stderr=subprocess.DEVNULL)
        received.wait_for(lambda: set(produced) <= received.seqs("metrics"), 60,
                          "the rest of the backlog")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
        collector.stop()
    got = {seq: s.ts for (_, _, seq), s in received.by_key.items()
           if s.channel == "metrics" and seq in produced}
    assert got == produced
    # At most the batch that was in flight when the agent died arrives twice.
    assert received.duplicates.get("metrics", 0) <= 100


def test_queue_bound_drops_oldest_first_and_reports_it(tmp_path: Path) -> None:
    clock = [1_800_000_000.0]
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10_000, max_age_s=3600,
                      clock=lambda: clock[0])
    for i in range(50):
        queue.put("metrics", json.dumps({"i": i, "pad": "x" * 480}).encode())
    kept = [json.loads(item.payload)["i"] for item in queue.oldest(1000, 10**9)]
    assert kept == list(range(50 - len(kept), 50))  # the newest survive, oldest dropped
    assert queue.size_bytes <= 10_000
    assert queue.dropped_total == 50 - len(kept)
    clock[0] += 3601  # everything is now past the age bound
    queue.put("metrics", b"{}")
    assert queue.count == 1
    assert queue.dropped_total == 50
    queue.close()
    # The count survives a restart and goes out in the next metrics message.
    config = agent_config.load(agent_toml(tmp_path / "agent.toml", "mqtt://127.0.0.1:1",
                                          tmp_path / "data"), {})
    (tmp_path / "data").mkdir()
    (tmp_path / "q.db").rename(tmp_path / "data" / "queue.db")
    agent = Agent(config)
    _, env = agent.metrics()
    assert env["data"]["agent"]["queue_dropped_total"] == 50
    assert env["data"]["agent"]["queue_size"] == 1


def test_compressed_batch_is_under_30_percent_of_raw(tmp_path: Path) -> None:
    config = agent_config.load(agent_toml(tmp_path / "agent.toml", "mqtt://127.0.0.1:1",
                                          tmp_path / "data"), {})
    agent = Agent(config)
    for _ in range(200):
        agent._enqueue(agent.metrics())
    items = agent.queue.oldest(200, 10**9)
    raw = sum(len(item.payload) for item in items)
    forwarder = Forwarder(agent.queue, transport=None, site="an-phuoc", device="pc-01")
    payload = forwarder.encode_batch(items)
    assert len(payload) <= 0.30 * raw, f"{len(payload)} of {raw}"
    batch = json.loads(zlib.decompress(payload))
    assert [(i["seq"], i["ts"]) for i in batch["data"]["items"]] == [
        (json.loads(item.payload)["seq"], json.loads(item.payload)["ts"]) for item in items]
