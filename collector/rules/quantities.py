"""What a rule can measure in one sample: name -> (channel, function returning a list of
(item, value) pairs; item names the disk or sensor, "" for the device as a whole).

A quantity the sample does not carry gives no pairs: no data is not a healthy value
and not a failing one, so it neither fires nor clears a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Pairs = list[tuple[str, float]]


def _smart(data: dict[str, Any], value: Callable[[dict[str, Any]], float | None]) -> Pairs:
    out = []
    for item in data.get("smart") or ():
        v = value(item)
        if v is not None:
            out.append((str(item.get("device", "")), float(v)))
    return out


def _sum_present(item: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    values = [item[k] for k in keys if item.get(k) is not None]
    return float(sum(values)) if values else None


def smart_failed(data: dict[str, Any]) -> Pairs:
    return _smart(data, lambda i: None if i.get("passed") is None else float(not i["passed"]))


def smart_bad_sectors(data: dict[str, Any]) -> Pairs:
    return _smart(data, lambda i: _sum_present(
        i, ("reallocated_sectors", "pending_sectors", "offline_uncorrectable")))


def smart_reported_uncorrectable(data: dict[str, Any]) -> Pairs:
    return _smart(data, lambda i: i.get("reported_uncorrectable"))


def nvme_critical_warning(data: dict[str, Any]) -> Pairs:
    return _smart(data, lambda i: i.get("nvme_critical_warning"))


def nvme_percentage_used(data: dict[str, Any]) -> Pairs:
    return _smart(data, lambda i: i.get("nvme_percentage_used"))


def nvme_available_spare_percent(data: dict[str, Any]) -> Pairs:
    return _smart(data, lambda i: i.get("nvme_available_spare_percent"))


def cpu_temperature_c(data: dict[str, Any]) -> Pairs:
    temps = [t["temp_c"] for t in data.get("temperatures") or () if t.get("temp_c") is not None]
    return [("", float(max(temps)))] if temps else []


def memory_pressure_percent(data: dict[str, Any]) -> Pairs:
    """Memory use while the machine is swapping in; 0 when it is not swapping."""
    used = data.get("mem_used_percent")
    if used is None:
        return []
    swapping = (data.get("swap_in_bytes_per_s") or 0) > 0
    return [("", float(used) if swapping else 0.0)]


def disk_used_percent(data: dict[str, Any]) -> Pairs:
    return [(str(d.get("mount", "")), float(d["used_percent"]))
            for d in data.get("disks") or () if d.get("used_percent") is not None]


def cpu_percent(data: dict[str, Any]) -> Pairs:
    value = data.get("cpu_percent")
    return [] if value is None else [("", float(value))]


def battery_wear_percent(data: dict[str, Any]) -> Pairs:
    value = (data.get("battery") or {}).get("wear_percent")
    return [] if value is None else [("", float(value))]


QUANTITIES: dict[str, tuple[str, Callable[[dict[str, Any]], Pairs]]] = {
    "smart_failed": ("metrics", smart_failed),
    "smart_bad_sectors": ("metrics", smart_bad_sectors),
    "smart_reported_uncorrectable": ("metrics", smart_reported_uncorrectable),
    "nvme_critical_warning": ("metrics", nvme_critical_warning),
    "nvme_percentage_used": ("metrics", nvme_percentage_used),
    "nvme_available_spare_percent": ("metrics", nvme_available_spare_percent),
    "cpu_temperature_c": ("metrics", cpu_temperature_c),
    "memory_pressure_percent": ("metrics", memory_pressure_percent),
    "disk_used_percent": ("metrics", disk_used_percent),
    "cpu_percent": ("metrics", cpu_percent),
    "battery_wear_percent": ("metrics", battery_wear_percent),
}
