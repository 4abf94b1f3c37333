"""De-duplication by (site, device, seq) with merged ranges."""

from __future__ import annotations

import random

from collector.dedup import Deduplicator, SeqRanges


def test_ranges_merge_and_detect_repeats_in_any_order() -> None:
    rng = random.Random(7)
    seqs = list(range(1000)) + list(range(5000, 5100))
    order = seqs + seqs[:300]  # every one once, then some again
    rng.shuffle(order)
    ranges = SeqRanges()
    accepted = [s for s in order if ranges.add(s)]
    assert sorted(accepted) == seqs
    assert ranges.ranges() == [(0, 999), (5000, 5099)]


def test_ranges_survive_a_round_trip_and_overlap_on_load() -> None:
    ranges = SeqRanges([(10, 20), (15, 30), (32, 40), (31, 31)])
    assert ranges.ranges() == [(10, 40)]
    assert not ranges.add(25)
    assert ranges.add(9) and ranges.add(41)
    assert ranges.ranges() == [(9, 41)]


def test_memory_bound_forgets_oldest_never_fills_gaps() -> None:
    dedup = Deduplicator(max_ranges_per_device=3)
    for seq in (0, 10, 20, 30, 40):  # five separate ranges
        assert dedup.is_new("s", "d", seq)
    # The oldest are forgotten: 0 passes again, and 15 (a real gap) was never "seen".
    assert dedup.is_new("s", "d", 15)
    assert dedup.is_new("s", "d", 0)
    assert not dedup.is_new("s", "d", 40)


def test_devices_are_independent_and_dirty_ones_are_reported() -> None:
    dedup = Deduplicator()
    assert dedup.is_new("a", "pc-1", 5)
    assert dedup.is_new("a", "pc-2", 5)
    assert not dedup.is_new("a", "pc-1", 5)
    assert dedup.take_dirty() == {("a", "pc-1"): [(5, 5)], ("a", "pc-2"): [(5, 5)]}
    assert dedup.take_dirty() == {}
    dedup.load("a", "pc-3", [(0, 100)])
    assert not dedup.is_new("a", "pc-3", 50)
