"""End to end through a real mosquitto: a publisher sends every kind of valid and
invalid message, the collector sorts them and keeps running."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import pytest
import samples
from agent_helpers import agent_toml
from bad_messages import cases
from collector_helpers import start_collector
from mqtt_helpers import Publisher
from paho.mqtt.client import topic_matches_sub
from prometheus_client.parser import text_string_to_metric_families
from schema_mutations import mutations

from collector.ingest import Rejection, Sample
from cwatch import protocol
from cwatch.procs import Mosquitto, free_port, wait_for_port


def next_result(results: queue.Queue) -> Sample | Rejection:
    return results.get(timeout=10)


def test_every_valid_and_invalid_message_through_the_broker(shared_mosquitto: Mosquitto,
                                                            tmp_path: Path) -> None:
    results: queue.Queue = queue.Queue()
    # Hundreds of messages from one device in a second or two: over the flood limit,
    # which this test is not about (tests/test_ratelimit.py is).
    collector = start_collector(shared_mosquitto, tmp_path, "e2e-collector",
                                sinks=[results.put], on_reject=results.put,
                                device_rate_per_s=0)
    publisher = Publisher(shared_mosquitto.host, shared_mosquitto.port)
    schema = protocol.load_schema()
    try:
        # One message at a time, so each result belongs to the message just sent.
        for seq, channel in enumerate(("metrics", "probe", "inventory", "status")):
            publisher.publish(samples.topic(channel),
                              protocol.encode(samples.envelope(channel, seq=seq)))
            result = next_result(results)
            assert isinstance(result, Sample) and result.channel == channel
            assert result.seq == seq
        batch = samples.envelope("batch", seq=100)
        publisher.publish(samples.topic("batch"), zlib.compress(protocol.encode(batch)))
        backfilled = [next_result(results) for _ in batch["data"]["items"]]
        assert [(s.seq, s.ts, s.from_batch) for s in backfilled] == [
            (item["seq"], item["ts"], True) for item in batch["data"]["items"]]

        checked = 0
        for channel in protocol.CHANNELS:
            for mutation in mutations(schema, channel, samples.envelope(channel)):
                raw = json.dumps(mutation.doc).encode()
                if len(raw) > protocol.MAX_PAYLOAD_BYTES:
                    raw = zlib.compress(raw)
                publisher.publish(samples.topic(channel), raw)
                result = next_result(results)
                assert isinstance(result, Rejection), mutation.id
                assert result.field == mutation.expected_field, mutation.id
                checked += 1
        for case_id, topic, payload, reason, field in cases():
            if not topic_matches_sub(protocol.SUBSCRIPTION, topic):
                continue  # the broker never hands these to the collector
            publisher.publish(topic, payload)
            result = next_result(results)
            assert isinstance(result, Rejection), case_id
            assert (result.reason, result.field) == (reason, field), case_id
            checked += 1

        # Still running and still accepting after all of that.
        publisher.publish(samples.topic("metrics"),
                          protocol.encode(samples.envelope("metrics", seq=999)))
        final = next_result(results)
        assert isinstance(final, Sample) and final.seq == 999
        assert results.empty()
        totals = collector.metrics.totals()
        assert totals["rejected"] == checked
        assert totals["accepted"] == 4 + len(batch["data"]["items"]) + 1
        assert totals["received"] == 4 + 1 + checked + 1
    finally:
        publisher.close()
        collector.stop()


def test_messages_sent_while_collector_is_down_arrive_after_restart(mosquitto: Mosquitto,
                                                                    tmp_path: Path) -> None:
    results: queue.Queue = queue.Queue()
    collector = start_collector(mosquitto, tmp_path, "restart-collector", sinks=[results.put],
                                on_reject=results.put)
    collector.stop()
    publisher = Publisher(mosquitto.host, mosquitto.port)
    try:
        for seq in range(20):
            publisher.publish(samples.topic("metrics"),
                              protocol.encode(samples.envelope("metrics", seq=seq)))
    finally:
        publisher.close()
    collector = start_collector(mosquitto, tmp_path, "restart-collector", sinks=[results.put],
                                on_reject=results.put)
    try:
        got = sorted(next_result(results).seq for _ in range(20))
        assert got == list(range(20))
    finally:
        collector.stop()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_collector_command_serves_metrics_and_stops_on_sigterm(mosquitto: Mosquitto,
                                                               tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cwatch", "collector", "--broker", mosquitto.url,
         "--listen", f"127.0.0.1:{port}", "--state", str(tmp_path / "state.db")],
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "CWATCH_TSDB_ENABLED": "false"})
    try:
        wait_for_port("127.0.0.1", port, 15, proc)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        publisher = Publisher(mosquitto.host, mosquitto.port)
        # The subscription may lag the HTTP port by a moment: retry until one arrives.
        deadline = time.monotonic() + 15
        while scrape(metrics_url).get(("cwatch_messages_received_total", ()), 0) < 1:
            assert time.monotonic() < deadline, "collector never received a message"
            publisher.publish(samples.topic("status"),
                              protocol.encode(samples.envelope("status")))
            time.sleep(0.2)
        before = scrape(metrics_url)
        publisher.publish(samples.topic("metrics"),
                          protocol.encode(samples.envelope("metrics", seq=50)))
        publisher.publish(samples.topic("metrics"), b"{not json")
        publisher.publish(samples.topic("metrics", device="pc-x"),
                          protocol.encode(samples.envelope("metrics")))
        publisher.close()
        key_ok = ("cwatch_messages_accepted_total", (("channel", "metrics"),))
        key_json = ("cwatch_messages_rejected_total", (("reason", "bad_json"),))
        key_spoof = ("cwatch_messages_rejected_total", (("reason", "identity_mismatch"),))
        deadline = time.monotonic() + 10
        while True:
            after = scrape(metrics_url)
            if after[("cwatch_messages_received_total", ())] >= before[
                    ("cwatch_messages_received_total", ())] + 3:
                break
            assert time.monotonic() < deadline, "messages did not arrive"
            time.sleep(0.1)
        assert after[key_ok] == before[key_ok] + 1
        assert after[key_json] == before[key_json] + 1
        assert after[key_spoof] == before[key_spoof] + 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert "rejected bad_json" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("signal_to_send", [signal.SIGTERM, signal.SIGKILL])
def test_agent_publishes_status_inventory_metrics_and_offline(
        mosquitto: Mosquitto, tmp_path: Path, signal_to_send: signal.Signals) -> None:
    results: queue.Queue = queue.Queue()
    collector = start_collector(mosquitto, tmp_path, "agent-test-collector", sinks=[results.put],
                                on_reject=results.put)
    agent = subprocess.Popen(
        [sys.executable, "-m", "cwatch", "agent", "--config",
         str(agent_toml(tmp_path / "agent.toml", "mqtt://127.0.0.1:1", tmp_path / "x")),
         "--broker", mosquitto.url, "--site", "an-phuoc", "--device", "pc-01",
         "--interval", "1", "--data-dir", str(tmp_path / "agent")],
        stderr=subprocess.PIPE, text=True)
    try:
        seen: dict[str, list[Sample]] = {}
        deadline = time.monotonic() + 20
        while len(seen.get("metrics", [])) < 2:
            assert time.monotonic() < deadline, f"agent sent only {seen.keys()}"
            result = results.get(timeout=max(0.1, deadline - time.monotonic()))
            assert isinstance(result, Sample), result
            seen.setdefault(result.channel, []).append(result)
        assert seen["status"][0].data["state"] == "online"
        assert seen["inventory"][0].data["os"]["name"]
        assert seen["metrics"][-1].data["mem_total_bytes"] > 0
        agent.send_signal(signal_to_send)
        agent.wait(10)
        # SIGTERM: the agent says offline itself; SIGKILL: the broker sends its Last Will.
        deadline = time.monotonic() + 20
        while True:
            result = results.get(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(result, Sample) and result.channel == "status":
                break
        assert result.data["state"] == "offline"
        seqs = [s.seq for channel in seen.values() for s in channel]
        assert len(set(seqs)) == len(seqs), "an agent reused a sequence number"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        collector.stop()
