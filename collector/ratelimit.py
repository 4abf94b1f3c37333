"""Per-device rate limit: one device flooding the broker (a bug, a loop, an attacker
with a stolen password) is throttled without slowing anyone else.

A token bucket per (site, device) on the wall clock, checked before the message is
even parsed: `rate_per_s` messages a second on average, `burst` at once. A real
agent sends about one message a minute per channel, and a backlog after an outage
goes out as paced batches, so the defaults (5 a second, 300 at once) are a hundred
times what a healthy device needs. A replay by `cwatch sim` faster than real time
is a flood by this measure: set `device_rate_per_s = 0` for such a collector.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Buckets of devices idle long enough to be full again are dropped past this many.
MAX_TRACKED = 200_000


class DeviceRateLimiter:
    def __init__(self, rate_per_s: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        # (site, device) -> [tokens, last refill time]
        self._buckets: dict[tuple[str, str], list[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, site: str, device: str) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        key = (site, device)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_TRACKED:
                    self._forget_full(now)
                bucket = self._buckets[key] = [self.burst, now]
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens < 1.0:
                bucket[0] = tokens
                return False
            bucket[0] = tokens - 1.0
            return True

    def _forget_full(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key in [k for k, (_, last) in self._buckets.items() if now - last >= full_after]:
            del self._buckets[key]


def device_of(topic: str) -> tuple[str, str] | None:
    """(site, device) of a data topic, without validating it (the decoder does that)."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "cwatch" or parts[1] != "v1":
        return None
    return parts[2], parts[3]
