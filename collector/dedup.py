"""De-duplication by (site, device, seq).

Agents publish at least once (QoS 1), re-send what was in flight when a link or
process died, and retained status/inventory come again on every resubscribe, so
duplicates are normal. Each device's seen sequence numbers are kept as sorted,
merged ranges: an agent counts up, so a device needs a handful of ranges, even
with backfill arriving out of order. Memory is bounded per device; past the
bound the oldest ranges are forgotten (a very old duplicate could then pass
again), never merged over gaps (which would drop real data as "duplicates").
"""

from __future__ import annotations

import bisect
import threading

Key = tuple[str, str]


class SeqRanges:
    """Disjoint, sorted, inclusive [lo, hi] ranges of seen sequence numbers."""

    __slots__ = ("los", "his")

    def __init__(self, ranges: list[tuple[int, int]] | None = None) -> None:
        self.los: list[int] = []
        self.his: list[int] = []
        for lo, hi in sorted(ranges or []):
            if self.his and lo <= self.his[-1] + 1:
                self.his[-1] = max(self.his[-1], hi)
            else:
                self.los.append(lo)
                self.his.append(hi)

    def add(self, seq: int) -> bool:
        """Record `seq`; False if it was already seen."""
        i = bisect.bisect_right(self.los, seq) - 1  # the range starting at or before seq
        if i >= 0 and seq <= self.his[i]:
            return False
        joins_left = i >= 0 and self.his[i] == seq - 1
        joins_right = i + 1 < len(self.los) and self.los[i + 1] == seq + 1
        if joins_left and joins_right:
            self.his[i] = self.his[i + 1]
            del self.los[i + 1], self.his[i + 1]
        elif joins_left:
            self.his[i] = seq
        elif joins_right:
            self.los[i + 1] = seq
        else:
            self.los.insert(i + 1, seq)
            self.his.insert(i + 1, seq)
        return True

    def forget_oldest(self, keep: int) -> None:
        excess = len(self.los) - keep
        if excess > 0:
            del self.los[:excess], self.his[:excess]

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self.los, self.his))

    def __len__(self) -> int:
        return len(self.los)


class Deduplicator:
    def __init__(self, max_ranges_per_device: int = 2000) -> None:
        self._devices: dict[Key, SeqRanges] = {}
        self._dirty: set[Key] = set()
        self._max = max_ranges_per_device
        self._lock = threading.Lock()

    def load(self, site: str, device: str, ranges: list[tuple[int, int]]) -> None:
        with self._lock:
            self._devices[(site, device)] = SeqRanges(ranges)

    def is_new(self, site: str, device: str, seq: int) -> bool:
        key = (site, device)
        with self._lock:
            seen = self._devices.get(key)
            if seen is None:
                seen = self._devices[key] = SeqRanges()
            if not seen.add(seq):
                return False
            if len(seen) > self._max:
                seen.forget_oldest(self._max)
            self._dirty.add(key)
            return True

    def take_dirty(self) -> dict[Key, list[tuple[int, int]]]:
        """Ranges of the devices changed since the last call, for persisting."""
        with self._lock:
            out = {key: self._devices[key].ranges() for key in self._dirty}
            self._dirty.clear()
        return out
