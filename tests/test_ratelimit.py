"""The per-device rate limit: a flooding device is throttled and counted; the others
are not touched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import samples
from collector_helpers import start_collector, wait_until
from mqtt_helpers import Publisher

from collector import ratelimit
from collector.config import CollectorSection
from collector.ratelimit import DeviceRateLimiter, device_of
from cwatch.procs import Mosquitto


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_per_device() -> None:
    clock = Clock()
    limiter = DeviceRateLimiter(2.0, 5, clock=clock)
    assert [limiter.allow("a", "pc-1") for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("a", "pc-2")  # another device has its own bucket
    clock.now += 1.0  # two more tokens a second
    assert [limiter.allow("a", "pc-1") for _ in range(3)] == [True, True, False]
    clock.now += 100.0  # refilled to the burst, not beyond
    assert sum(limiter.allow("a", "pc-1") for _ in range(10)) == 5


def test_zero_rate_is_off() -> None:
    limiter = DeviceRateLimiter(0, 1)
    assert not limiter.enabled
    assert all(limiter.allow("a", "pc-1") for _ in range(10_000))


def test_idle_devices_are_forgotten_when_many(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 3)
    clock = Clock()
    limiter = DeviceRateLimiter(1.0, 2, clock=clock)
    for n in range(3):
        limiter.allow("a", f"pc-{n}")
    clock.now += 10  # all full again: safe to forget
    limiter.allow("a", "pc-new")
    assert len(limiter._buckets) == 1


def test_device_of_reads_only_well_formed_topics() -> None:
    assert device_of("cwatch/v1/an-phuoc/pc-01/metrics") == ("an-phuoc", "pc-01")
    assert device_of("cwatch/v1/an-phuoc/pc-01") is None
    assert device_of("other/v1/a/b/c") is None


@pytest.mark.parametrize("fields, fragment", [
    ({"device_rate_per_s": -1}, "device_rate_per_s must be between 0 (off)"),
    ({"device_burst": 0}, "device_burst must be between 1"),
])
def test_bad_limits_are_refused(fields: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        CollectorSection(**fields)


def test_a_flooding_device_is_throttled_and_the_others_are_not(mosquitto: Mosquitto,
                                                                tmp_path: Path) -> None:
    collector = start_collector(mosquitto, tmp_path, "ratelimit-collector",
                                device_rate_per_s=1.0, device_burst=20)
    flooder, neighbour = Publisher(mosquitto.host, mosquitto.port), \
        Publisher(mosquitto.host, mosquitto.port)
    try:
        started = time.monotonic()
        now = time.time() - 60
        for seq in range(1, 201):
            env = samples.envelope("metrics", seq=seq, ts=now, device="pc-flood")
            flooder.publish(samples.topic("metrics", device="pc-flood"), json.dumps(env).encode())
        for seq in range(1, 6):
            env = samples.envelope("metrics", seq=seq, ts=now, device="pc-quiet")
            neighbour.publish(samples.topic("metrics", device="pc-quiet"),
                              json.dumps(env).encode())
        elapsed = time.monotonic() - started
        wait_until(lambda: collector.metrics.totals()["received"] >= 205, 20, "all received")
        assert collector.wait_idle(20)
        registry = collector.metrics.registry
        throttled = registry.get_sample_value(
            "cwatch_device_throttled_messages_total",
            {"site": samples.SITE, "device": "pc-flood"})
        rejected = registry.get_sample_value("cwatch_messages_rejected_total",
                                             {"reason": "rate_limited"})
        accepted = collector.metrics.totals()["accepted"]
        # The burst, plus what refilled while the flood lasted, got through; nothing else.
        assert 20 <= 200 - throttled <= 20 + elapsed + 2, (throttled, elapsed)
        assert rejected == throttled
        assert accepted == 200 - throttled + 5  # all of the quiet neighbour's
        assert registry.get_sample_value("cwatch_device_throttled_messages_total",
                                          {"site": samples.SITE, "device": "pc-quiet"}) is None
    finally:
        flooder.close()
        neighbour.close()
        collector.stop()
