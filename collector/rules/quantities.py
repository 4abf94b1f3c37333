"""What a rule can measure in one sample: name -> (channel, function returning a list of
(item, value) pairs; item names the disk or sensor, "" for the device as a whole).

A quantity the sample does not carry gives no pairs: no data is not a healthy value
and not a failing one, so it neither fires nor clears a rule.
"""

from __future__ import annotations

import re
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


def _per_interface(data: dict[str, Any], keys: tuple[str, str]) -> Pairs:
    out = []
    for nic in data.get("net") or ():
        value = _sum_present(nic, keys)
        if value is not None:
            out.append((str(nic.get("name", "")), value))
    return out


def net_errors_per_s(data: dict[str, Any]) -> Pairs:
    """Receive plus transmit errors per second, per interface (a bad cable or port)."""
    return _per_interface(data, ("rx_errors_per_s", "tx_errors_per_s"))


def net_drops_per_s(data: dict[str, Any]) -> Pairs:
    """Packets dropped or discarded per second, per interface (queues overflowing)."""
    return _per_interface(data, ("rx_drops_per_s", "tx_drops_per_s"))


def wan_used_percent(data: dict[str, Any]) -> Pairs:
    """How full the WAN link is: the busier direction against the link's speed (the ISP
    plan when the agent was told it), per WAN interface."""
    out = []
    for nic in data.get("net") or ():
        speed = nic.get("speed_bps")
        rates = [nic[k] for k in ("rx_bytes_per_s", "tx_bytes_per_s") if nic.get(k) is not None]
        if nic.get("wan") and speed and rates:
            out.append((str(nic.get("name", "")), min(100.0, max(rates) * 8 * 100 / speed)))
    return out


def lan_loss_percent(data: dict[str, Any]) -> Pairs:
    """Packet loss pinging a polled router or switch from the office network. Total loss
    gives no value: a device that answers nothing goes offline and silent instead."""
    out = []
    for target in data.get("targets") or ():
        loss = target.get("loss_percent")
        if target.get("kind") == "device" and loss is not None and target.get("received"):
            out.append((str(target.get("host") or target.get("name", "")), float(loss)))
    return out


_INTEL_CORE = re.compile(r"\bi[3579]-(\d{4,5})")
_INTEL_GEN = re.compile(r"\b(\d{1,2})th Gen Intel")
_RYZEN = re.compile(r"\bRyzen \d (\d)\d{3}")


def cpu_too_old(model: str) -> bool | None:
    """Windows 11 supports Intel Core 8th generation and AMD Ryzen 2000 and later;
    None when the model says nothing we can judge."""
    if match := _INTEL_GEN.search(model):
        return int(match.group(1)) < 8
    if match := _INTEL_CORE.search(model):
        number = match.group(1)
        generation = int(number[:2]) if len(number) == 5 else int(number[0])
        return generation < 8
    if match := _RYZEN.search(model):
        return int(match.group(1)) < 2
    if re.search(r"\b(Pentium|Celeron|Athlon|Core 2|Phenom)\b", model):
        return None  # some recent Pentium/Celeron models qualify: not judged
    return None


def windows11_blockers(data: dict[str, Any]) -> Pairs:
    """How many of Windows 11's hardware requirements a Windows PC misses (item: which)."""
    os = data.get("os") or {}
    if os.get("name") != "Windows" or str(os.get("version", "")).startswith("11"):
        return []
    missing = windows11_missing(data)
    return [(", ".join(missing), float(len(missing)))] if missing else []


def windows11_missing(data: dict[str, Any]) -> list[str]:
    """Windows 11's hardware requirements this inventory shows missing, in words (also
    the keys of the report's translations); what the agent could not read is not
    counted as missing."""
    missing = []
    tpm = data.get("tpm")
    if tpm is not None and (not tpm.get("present") or not str(
            tpm.get("version") or "").startswith("2")):
        missing.append("no TPM 2.0")
    if data.get("firmware") == "bios":
        missing.append("legacy BIOS, no UEFI")
    if data.get("secure_boot") is False:
        missing.append("Secure Boot off or absent")
    ram = data.get("ram_bytes")
    if ram is not None and ram < 4 * (1 << 30) * 0.95:
        missing.append("under 4 GB RAM")
    if cpu_too_old(str((data.get("cpu") or {}).get("model", ""))):
        missing.append("CPU older than Windows 11 supports")
    return missing


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
    "windows11_blockers": ("inventory", windows11_blockers),
    "net_errors_per_s": ("metrics", net_errors_per_s),
    "net_drops_per_s": ("metrics", net_drops_per_s),
    "wan_used_percent": ("metrics", wan_used_percent),
    "lan_loss_percent": ("probe", lan_loss_percent),
}
