"""Per-disk and per-interface I/O rates from psutil's counters.

Pure functions over what psutil returned (dicts of named tuples), so tests can feed them
fixed counters; `HostProbe` does the psutil calls.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from agent.probes.rates import RateTracker
from agent.probes.values import is_loopback

MAX_ITEMS = 64  # the schema's maxItems for `disk_io` and `net`
NAME_LEN = 64

# Block devices that are not physical disks, or whose I/O is already counted on the disk
# below them: loop (snaps, images), ram/zram (memory), dm-* (LVM, LUKS) and md* (software
# RAID) sit on top of sdX, sr (optical), fd (floppy), nbd (network).
SKIP_DISK_PREFIXES = ("loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd")

# Linux partitions: nvme0n1p2 / mmcblk0p1 (parent ends in a digit, then "p"), sda1 / vda3.
_PART_P = re.compile(r"^(.+\d)p\d+$")
_PART_DIGITS = re.compile(r"^([a-z]+)\d+$")

# (output field, psutil attribute, digits). Bytes need no decimals; one error in a
# 60 s interval is 0.017/s, so the rare-event counters keep three.
_DISK_FIELDS = (
    ("read_bytes_per_s", "read_bytes", 1),
    ("write_bytes_per_s", "write_bytes", 1),
    ("read_ops_per_s", "read_count", 2),
    ("write_ops_per_s", "write_count", 2),
)
_NET_FIELDS = (
    ("rx_bytes_per_s", "bytes_recv", 1),
    ("tx_bytes_per_s", "bytes_sent", 1),
    ("rx_errors_per_s", "errin", 3),
    ("tx_errors_per_s", "errout", 3),
    ("rx_drops_per_s", "dropin", 3),
    ("tx_drops_per_s", "dropout", 3),
)


def is_linux_partition(name: str, names: Any) -> bool:
    """True for a partition (sda1, nvme0n1p2) whose whole disk is also in `names`."""
    for pattern in (_PART_P, _PART_DIGITS):
        match = pattern.match(name)
        if match and match.group(1) in names:
            return True
    return False


def _all_zero(counters: Any, attrs: List[str]) -> bool:
    return not any(getattr(counters, attr, 0) for attr in attrs)


def disk_io(
    counters: Dict[str, Any], rates: RateTracker, now: float, linux: bool,
) -> List[Dict[str, Any]]:
    """`disk_io` items from psutil.disk_io_counters(perdisk=True).

    A disk appears once it has a rate (from its second sample on).
    """
    items = []  # type: List[Dict[str, Any]]
    names = set(counters)
    for name in sorted(names):
        if name.startswith(SKIP_DISK_PREFIXES):
            continue
        if linux and is_linux_partition(name, names):
            continue  # its I/O is already in the whole disk's counters
        c = counters[name]
        # Never used since boot (an empty card reader): nothing to say, bytes saved.
        if _all_zero(c, ["read_count", "write_count", "read_bytes", "write_bytes"]):
            continue
        item = {"name": name[:NAME_LEN]}  # type: Dict[str, Any]
        for field, attr, digits in _DISK_FIELDS:
            rate = rates.rate(("disk", name, attr), getattr(c, attr, None), now)
            if rate is not None:
                item[field] = round(rate, digits)
        busy = _busy_percent(name, c, rates, now)
        if busy is not None:
            item["busy_percent"] = busy
        if len(item) > 1:
            items.append(item)
            if len(items) == MAX_ITEMS:
                break
    return items


def _busy_percent(name: str, c: Any, rates: RateTracker, now: float) -> Optional[float]:
    busy_ms = getattr(c, "busy_time", None)  # Linux and FreeBSD: time with I/O in flight
    if busy_ms is None:
        # Elsewhere (Windows, macOS) only read_time + write_time exist: the sum of every
        # request's service time. With several requests in flight they overlap, so this is an
        # approximation that overstates a busy disk.
        read_ms, write_ms = getattr(c, "read_time", None), getattr(c, "write_time", None)
        if read_ms is None or write_ms is None:
            return None
        busy_ms = read_ms + write_ms
    rate = rates.rate(("disk", name, "busy_ms"), busy_ms, now)
    if rate is None:
        return None
    # ms busy per s / 10 = percent of wall time. Capped at 100 (asked for in the design):
    # the overlapping read+write times above, and busy_time read a moment after our clock,
    # can pass 100, and either way it means "the disk was busy all the time".
    return round(min(rate / 10.0, 100.0), 1)


def net_io(
    counters: Dict[str, Any], stats: Dict[str, Any], rates: RateTracker, now: float,
) -> List[Dict[str, Any]]:
    """`net` items from psutil.net_io_counters(pernic=True) and net_if_stats().

    Loopback and interfaces that are down are skipped; one missing from `stats` (psutil could
    not tell) is kept.
    """
    items = []  # type: List[Dict[str, Any]]
    for name in sorted(counters):
        st = stats.get(name)
        if is_loopback(name, st) or getattr(st, "isup", True) is False:
            continue
        c = counters[name]
        # Windows lists many adapters that never carry a byte (Teredo, ISATAP, Wi-Fi Direct).
        if _all_zero(c, ["bytes_recv", "bytes_sent"]):
            continue
        item = {"name": name[:NAME_LEN]}  # type: Dict[str, Any]
        for field, attr, digits in _NET_FIELDS:
            rate = rates.rate(("net", name, attr), getattr(c, attr, None), now)
            if rate is not None:
                item[field] = round(rate, digits)
        if len(item) > 1:
            items.append(item)
            if len(items) == MAX_ITEMS:
                break
    return items
