"""Counters to per-second rates, shared by every probe that reads OS counters.

The idea is Glances' `_manage_rate`: keep each counter's previous value and time, and report
delta / elapsed. The first sample of a counter has nothing to compare with, so it gives no
rate; a counter that went backwards (reboot, 32-bit wrap, driver or interface reset) gives no
rate for that round rather than a negative or absurdly large one.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Hashable, Optional, Set, Tuple

from agent.probes.values import MAX_RATE


class RateTracker:
    """Per-key previous samples; call `rate()` for each counter and `sweep()` once a round."""

    def __init__(self) -> None:
        self._prev: Dict[Hashable, Tuple[float, float]] = {}
        self._seen: Set[Hashable] = set()

    def rate(self, key: Hashable, value: Any, now: float) -> Optional[float]:
        """Per-second rate of counter `key` since its previous sample, or None.

        `now` must come from a clock that does not jump (time.monotonic): a wall clock set
        back by NTP would give no rate, one set forward a too-small one.
        """
        self._seen.add(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            # An unreadable counter breaks the series: start again from the next value.
            self._prev.pop(key, None)
            return None
        prev = self._prev.get(key)
        self._prev[key] = (value, now)
        if prev is None:
            return None
        delta = value - prev[0]
        elapsed = now - prev[1]
        if delta < 0 or elapsed <= 0:
            return None
        rate = delta / elapsed
        # Beyond the schema's maximum is a broken counter, not traffic: drop it.
        return rate if rate <= MAX_RATE else None

    def sweep(self) -> None:
        """Forget counters not read since the last sweep (a USB disk or VPN adapter removed),
        so the table does not grow for ever and a device that returns starts afresh."""
        for key in set(self._prev) - self._seen:
            del self._prev[key]
        self._seen = set()

    def __len__(self) -> int:
        return len(self._prev)
