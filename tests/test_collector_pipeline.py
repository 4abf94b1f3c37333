"""The whole collector on real servers: mosquitto in, VictoriaMetrics and SQLite out,
HTTP API on a real socket."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import samples
from bad_messages import cases
from collector_helpers import start_collector, wait_until
from mqtt_helpers import Publisher
from paho.mqtt.client import topic_matches_sub
from prometheus_client.parser import text_string_to_metric_families

from collector.service import Collector
from cwatch import protocol
from cwatch.procs import Mosquitto
from cwatch.tsdb_proc import VictoriaMetrics

DAY = 86400.0


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def scrape(collector: Collector) -> dict[tuple[str, tuple], float]:
    assert collector.api is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{collector.api.port}/metrics",
                                timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def api_url(collector: Collector, path: str) -> str:
    assert collector.api is not None
    return f"http://127.0.0.1:{collector.api.port}{path}"


def test_live_and_backfilled_samples_are_stored_at_their_own_time(
        mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, tmp_path: Path) -> None:
    collector = start_collector(mosquitto, tmp_path, "tsdb-collector",
                                tsdb_url=victoria_metrics.url, serve_http=True)
    publisher = Publisher(mosquitto.host, mosquitto.port)
    now = time.time()
    # Three days of an agent's offline queue, then the live sample.
    backfill_ts = [round(now - 3 * DAY + i * 3600, 3) for i in range(5)]
    items = []
    for seq, ts in enumerate(backfill_ts, start=1):
        env = samples.envelope("metrics", seq=seq, ts=ts)
        env["data"]["cpu_percent"] = float(seq * 10)
        items.append(dict(env, channel="metrics"))
    batch = {"v": 1, "site": samples.SITE, "device": samples.DEVICE, "ts": now,
             "channel": "batch", "data": {"items": items}}
    live = samples.envelope("metrics", seq=100, ts=round(now - 1, 3))
    live["data"]["cpu_percent"] = 99.0
    try:
        publisher.publish(samples.topic("status"),
                          protocol.encode(samples.envelope("status", seq=0)), retain=True)
        publisher.publish(samples.topic("batch"), zlib.compress(protocol.encode(batch)))
        publisher.publish(samples.topic("metrics"), protocol.encode(live))
        deadline = time.monotonic() + 20
        while collector.metrics.totals()["accepted"] < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert collector.wait_idle(20)

        series = victoria_metrics.export(
            f'cwatch_host_cpu_percent{{site="{samples.SITE}",device="{samples.DEVICE}"}}')
        assert len(series) == 1
        stored = dict(zip(series[0]["timestamps"], series[0]["values"]))
        expected = {round(ts * 1000): float(seq * 10)
                    for seq, ts in enumerate(backfill_ts, start=1)}
        expected[round(live["ts"] * 1000)] = 99.0
        assert stored == expected

        # The device state: newest sample wins, whatever order the backfill came in.
        code, device = get_json(api_url(collector, f"/api/devices/{samples.SITE}/"
                                                   f"{samples.DEVICE}"))
        assert code == 200
        assert device["status"] == "online"
        assert device["cpu_percent"] == 99.0
        assert device["metrics"]["ts"] == live["ts"]
        code, listing = get_json(api_url(collector, f"/api/devices?site={samples.SITE}"))
        assert code == 200 and [d["device"] for d in listing["devices"]] == [samples.DEVICE]
        code, sites = get_json(api_url(collector, "/api/sites"))
        assert code == 200
        assert sites["sites"][0]["site"] == samples.SITE
        assert sites["sites"][0]["online"] == 1

        scraped = scrape(collector)
        assert scraped[("cwatch_messages_received_total", ())] == 3
        assert scraped[("cwatch_messages_accepted_total", (("channel", "metrics"),))] == 6
        assert scraped[("cwatch_messages_accepted_total", (("channel", "status"),))] == 1
        assert scraped[("cwatch_devices", (("site", samples.SITE), ("status", "online")))] == 1
        assert scraped[("cwatch_tsdb_queue_lines", ())] == 0
        assert scraped[("cwatch_tsdb_lines_written_total", ())] > 0
        assert scraped[("cwatch_tsdb_write_seconds_count", ())] >= 1
        # Only the live samples (status, metrics) count towards the ingest delay.
        assert scraped[("cwatch_ingest_delay_seconds_count", ())] == 2
    finally:
        publisher.close()
        collector.stop()


def test_duplicates_are_dropped_also_across_a_restart(mosquitto: Mosquitto,
                                                      tmp_path: Path) -> None:
    collector = start_collector(mosquitto, tmp_path, "dedup-collector")
    publisher = Publisher(mosquitto.host, mosquitto.port)
    first = protocol.encode(samples.envelope("metrics", seq=7))
    try:
        publisher.publish(samples.topic("metrics"), first)
        publisher.publish(samples.topic("metrics"), first)  # a QoS 1 re-send
        wait_until(lambda: collector.metrics.totals()["received"] == 2)
        assert collector.wait_idle(10)
        assert collector.metrics.totals()["accepted"] == 1
        assert collector.metrics.totals()["duplicate"] == 1
        collector.stop()

        collector = start_collector(mosquitto, tmp_path, "dedup-collector")
        publisher.publish(samples.topic("metrics"), first)  # seen before the restart
        publisher.publish(samples.topic("metrics"),
                          protocol.encode(samples.envelope("metrics", seq=8)))
        # (>= 2: under load the broker may also re-deliver seq 7 if the first collector
        # stopped before acknowledging it; that is one more duplicate, not an error.)
        wait_until(lambda: collector.metrics.totals()["accepted"] >= 1
                   and collector.metrics.totals()["received"] >= 2)
        assert collector.wait_idle(10)
        assert collector.metrics.totals()["duplicate"] >= 1
        assert collector.metrics.totals()["accepted"] == 1
    finally:
        publisher.close()
        collector.stop()


def garbage(rng: random.Random) -> list[tuple[str, bytes]]:
    """What a broken agent, a wrong client or an attacker might publish."""
    out = [(topic, payload) for _, topic, payload, _, _ in cases()
           if topic_matches_sub(protocol.SUBSCRIPTION, topic)]
    for _ in range(200):
        out.append((samples.topic("metrics"), rng.randbytes(rng.randint(0, 2000))))
    for _ in range(20):
        out.append((samples.topic("batch"), b"\x78\x9c" + rng.randbytes(500)))
    out.append((samples.topic("metrics"), b"[" * 200_000))  # deep, and never closed
    out.append((samples.topic("metrics"), b'{"v":1,"x":"' + b"a" * (8 << 20) + b'"}'))
    wrong = samples.envelope("metrics", seq=5)
    for field, value in (("cpu_percent", "high"), ("disks", {"a": 1}), ("mem_total_bytes", -1),
                         ("uptime_s", True), ("load_1m", [1, 2])):
        doc = json.loads(json.dumps(wrong))
        doc["data"][field] = value
        out.append((samples.topic("metrics"), json.dumps(doc).encode()))
    spoof = samples.envelope("metrics", seq=5, device="pc-victim")
    out.append((samples.topic("metrics"), json.dumps(spoof).encode()))
    rng.shuffle(out)
    return out


def test_a_garbage_burst_leaves_the_collector_up_and_the_good_stream_intact(
        mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, tmp_path: Path) -> None:
    collector = start_collector(mosquitto, tmp_path, "burst-collector",
                                tsdb_url=victoria_metrics.url, serve_http=True)
    good_device = "pc-good-01"
    bad = garbage(random.Random(4))
    good_count = 300
    errors: list[BaseException] = []

    def good_stream() -> None:
        publisher = Publisher(mosquitto.host, mosquitto.port)
        try:
            for seq in range(good_count):
                env = samples.envelope("metrics", seq=seq, device=good_device,
                                       ts=round(time.time() - 600 + seq, 3))
                publisher.publish(samples.topic("metrics", device=good_device),
                                  protocol.encode(env))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            publisher.close()

    thread = threading.Thread(target=good_stream)
    attacker = Publisher(mosquitto.host, mosquitto.port)
    rss_before = rss_bytes()
    try:
        thread.start()
        for topic, payload in bad:
            attacker.publish(topic, payload)
        thread.join(60)
        assert not errors and not thread.is_alive()
        wait_until(lambda: collector.metrics.totals()["received"] == good_count + len(bad), 60)
        assert collector.wait_idle(30)

        totals = collector.metrics.totals()
        assert totals["accepted"] == good_count
        assert totals["rejected"] == len(bad)
        code, health = get_json(api_url(collector, "/healthz"))
        assert code == 200 and health["status"] == "ok"
        code, device = get_json(api_url(collector, f"/api/devices/{samples.SITE}/{good_device}"))
        assert code == 200 and device["metrics"] is not None
        code, _ = get_json(api_url(collector, f"/api/devices/{samples.SITE}/pc-victim"))
        assert code == 404
        stored = victoria_metrics.export(f'cwatch_host_cpu_percent{{device="{good_device}"}}')
        assert len(stored) == 1 and len(stored[0]["timestamps"]) == good_count
        assert victoria_metrics.export('{device="pc-victim"}') == []
        # An 8 MiB payload and a zlib bomb must not have been held on to.
        assert rss_bytes() - rss_before < 200 << 20
    finally:
        attacker.close()
        collector.stop()


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_what_the_broker_drops_while_the_collector_is_away_is_counted(tmp_path: Path) -> None:
    """Mosquitto drops messages for an absent collector once its queue is full; only the
    broker can count them, so the collector reads the count from $SYS into /metrics."""
    broker = Mosquitto(tmp_path / "small-queue",
                       extra_conf="max_queued_messages 5\nsys_interval 1\n").start()
    try:
        start_collector(broker, tmp_path, "away-collector").stop()  # its session stays
        publisher = Publisher(broker.host, broker.port)
        for seq in range(1, 13):
            env = samples.envelope("metrics", seq=seq)
            publisher.publish(samples.topic("metrics"), json.dumps(env).encode())
        publisher.close()
        collector = start_collector(broker, tmp_path, "away-collector")
        try:
            wait_until(lambda: collector.metrics.registry.get_sample_value(
                "cwatch_broker_messages_dropped") == 7, 15, "the broker's drop count")
            assert collector.wait_idle(10)
            assert collector.metrics.totals()["accepted"] == 5  # what the broker kept
            assert collector.metrics.totals()["received"] == 5  # $SYS is not data
        finally:
            collector.stop()
    finally:
        broker.stop()
