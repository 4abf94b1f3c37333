"""SNMP answers to protocol data: a polled device's `metrics` and `inventory`.

Counters become per-second rates between two polls (agent.probes.rates.RateTracker), so the
first poll has none. 64-bit counters (ifHC*) are used when the device has them; a 32-bit
counter that wrapped (went backwards by less than half its range) is unwrapped, one that went
backwards otherwise was reset and gives no rate that round, and a device whose uptime went
backwards rebooted: no rates at all that round. Everything here is plain data in, plain data
out: no I/O, no pysnmp.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Hashable, List, Optional, Set, Tuple

from agent.config import PolledDeviceSection
from agent.probes.rates import RateTracker
from agent.probes.values import MAX_SAFE_INT, integer, number
from agent.snmp import oids
from agent.snmp.session import Answer

WRAP_32 = 2 ** 32
MAX_INTERFACES = 64  # schema: metrics net maxItems
MAX_MACS = 64  # schema: inventory macs maxItems
IFSPEED_SATURATED = 4294967295  # ifSpeed of a port faster than 4.3 Gbit/s: see ifHighSpeed

# (field, 64-bit column or None, 32-bit column, digits)
_COUNTERS = (
    ("rx_bytes_per_s", "ifHCInOctets", "ifInOctets", 1),
    ("tx_bytes_per_s", "ifHCOutOctets", "ifOutOctets", 1),
    ("rx_errors_per_s", None, "ifInErrors", 3),
    ("tx_errors_per_s", None, "ifOutErrors", 3),
    ("rx_drops_per_s", None, "ifInDiscards", 3),
    ("tx_drops_per_s", None, "ifOutDiscards", 3),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class Counters:
    """The previous counter values of one device, for rates."""

    def __init__(self) -> None:
        self._rates = RateTracker()
        self._wraps = {}  # type: Dict[Hashable, Tuple[int, int]]  # key -> (raw, offset)
        self._seen: Set[Hashable] = set()
        self._uptime = None  # type: Optional[Tuple[str, float]]

    def new_round(self, uptime: Optional[Tuple[str, float]]) -> bool:
        """Start a poll; `uptime` is (source, seconds). False (and every rate forgotten)
        when the device rebooted since the previous poll."""
        previous, self._uptime = self._uptime, uptime
        if previous is not None and uptime is not None and previous[0] == uptime[0] \
                and uptime[1] < previous[1]:
            self._rates = RateTracker()
            self._wraps = {}
            return False
        return True

    def rate(self, key: Hashable, raw: Any, bits: int, now: float) -> Optional[float]:
        """Per-second rate of a counter since the previous poll, or None."""
        value = integer(raw)
        self._seen.add(key)
        if value is not None and bits == 32:
            value = self._unwrap(key, value)
        return self._rates.rate((key, bits), value, now)

    def _unwrap(self, key: Hashable, raw: int) -> int:
        last = self._wraps.get(key)
        offset = 0 if last is None else last[1]
        if last is not None and raw < last[0] and raw + WRAP_32 - last[0] < WRAP_32 // 2:
            offset += WRAP_32  # wrapped past 2^32 - 1; a bigger step back is a reset
        self._wraps[key] = (raw, offset)
        return raw + offset

    def end_round(self) -> None:
        """Forget counters not read this round (an interface that went away)."""
        self._rates.sweep()
        self._wraps = {k: v for k, v in self._wraps.items() if k in self._seen}
        self._seen = set()


# --- decoding ----------------------------------------------------------------------------


def text(raw: Any, limit: int) -> Optional[str]:
    """An SNMP string (bytes) as one clean line cut to `limit`, or None when empty."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        return None
    value = " ".join(_CONTROL.sub(" ", raw).split())
    return value[:limit] or None


def mac(raw: Any) -> Optional[str]:
    """ifPhysAddress as aa:bb:cc:dd:ee:ff; None unless a real 6-byte address."""
    if not isinstance(raw, bytes) or len(raw) != 6 or raw in (b"\0" * 6, b"\xff" * 6):
        return None
    return ":".join(f"{b:02x}" for b in raw)


def uptime(scalars: Dict[str, Any]) -> Optional[Tuple[str, float]]:
    """(source, seconds): hrSystemUptime (the OS) if there, else sysUpTime (the SNMP
    daemon, which restarts with its configuration)."""
    for name in ("hrSystemUptime", "sysUpTime"):
        ticks = integer(scalars.get(name))
        if ticks is not None:
            return name, ticks / 100.0
    return None


def os_guess(description: Optional[str]) -> Dict[str, str]:
    """inventory `os` from sysDescr: its first word ("Linux", "RouterOS", "Cisco", ...)."""
    words = (description or "").split()
    name = words[0].strip(",;:()[]") if words else ""
    out = {"name": name[:64] or "unknown"}
    # net-snmp on Linux (OpenWrt, most ISP boxes): "Linux <host> <kernel release> ..."
    if name == "Linux" and len(words) >= 3:
        out["version"] = words[2][:64]
    return out


def manufacturer(object_id: Any) -> Optional[str]:
    """The maker from sysObjectID's enterprise number, when it is a known one."""
    if not isinstance(object_id, str) or not object_id.startswith(oids.ENTERPRISES_PREFIX):
        return None
    number_text = object_id[len(oids.ENTERPRISES_PREFIX):].split(".")[0]
    return oids.ENTERPRISES.get(int(number_text)) if number_text.isdigit() else None


def _index_key(index: str) -> Tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in index.split("."))


def _unsigned32(value: Any) -> Optional[int]:
    """Integer32 columns that some agents overflow into negatives (hrStorageSize of a big
    disk or RAM): read them back as unsigned."""
    value = integer(value, -2 ** 31, 2 ** 32 - 1)
    if value is None:
        return None
    return value + WRAP_32 if value < 0 else value


# --- metrics ------------------------------------------------------------------------------


def cpu(tables: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    loads = [v for v in (integer(x, 0, 100) for x in tables.get("hrProcessorLoad", {}).values())
             if v is not None]
    if not loads or len(loads) > 4096:
        return {}
    return {"cpu_percent": round(sum(loads) / len(loads), 1),
            "cpu_max_core_percent": float(max(loads)), "cpu_count": len(loads)}


def memory(tables: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """RAM from the first hrStorageRam row of hrStorageTable."""
    types = tables.get("hrStorageType", {})
    for index in sorted(types, key=_index_key):
        if types[index] != oids.HR_STORAGE_RAM:
            continue
        units = integer(tables.get("hrStorageAllocationUnits", {}).get(index), 1, 2 ** 31)
        size = _unsigned32(tables.get("hrStorageSize", {}).get(index))
        used = _unsigned32(tables.get("hrStorageUsed", {}).get(index))
        if units is None or not size or used is None:
            continue
        total, used_bytes = size * units, min(used, size) * units
        if total > MAX_SAFE_INT:
            continue
        return {"mem_total_bytes": total, "mem_available_bytes": total - used_bytes,
                "mem_used_percent": number(100.0 * used_bytes / total, 0, 100, 1)}
    return {}


def _speed(row: Dict[str, Any], wan: bool, wan_mbit: float) -> Optional[int]:
    if wan and wan_mbit:
        return int(wan_mbit * 1_000_000)
    high = integer(row.get("ifHighSpeed"))
    if high:
        return high * 1_000_000
    speed = integer(row.get("ifSpeed"))
    if speed and speed != IFSPEED_SATURATED:
        return speed
    return None  # 0: the device does not know (virtual interfaces, PPP)


def rows(tables: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The interface columns regrouped as {ifIndex: {column: value}}."""
    out = {}  # type: Dict[str, Dict[str, Any]]
    for column in oids.INTERFACE_COLUMNS:
        for index, value in tables.get(column, {}).items():
            out.setdefault(index, {})[column] = value
    return out


def interfaces(tables: Dict[str, Dict[str, Any]], counters: Counters, now: float,
               wan_interface: str = "", wan_mbit: float = 0.0) -> List[Dict[str, Any]]:
    """metrics `net`: every interface but software loopbacks, at most 64 (the WAN and the
    ones that are up first when a big switch has more)."""
    items = []  # type: List[Tuple[Tuple[int, ...], Dict[str, Any]]]
    names: Set[str] = set()
    wanted_wan = wan_interface.lower()
    for index, row in sorted(rows(tables).items(), key=lambda kv: _index_key(kv[0])):
        if row.get("ifType") == oids.IF_TYPE_SOFTWARE_LOOPBACK:
            continue
        if_name, if_descr = text(row.get("ifName"), 64), text(row.get("ifDescr"), 64)
        name = if_name or if_descr or f"if{index}"[:64]
        if name in names:  # some switches give every port the same description
            name = f"{name[:50]}-{index}"[:64]
        names.add(name)
        item = {"name": name}  # type: Dict[str, Any]
        for field, column64, column32, digits in _COUNTERS:
            if column64 is not None and integer(row.get(column64)) is not None:
                column, bits = column64, 64
            else:
                column, bits = column32, 32
            rate = counters.rate((index, name, field), row.get(column), bits, now)
            if rate is not None:
                item[field] = round(rate, digits)
        status = integer(row.get("ifOperStatus"))
        if status is not None:
            item["up"] = oids.OPER_STATUS_UP.get(status)
        wan = bool(wanted_wan) and wanted_wan in (
            (if_name or "").lower(), (if_descr or "").lower())
        speed = _speed(row, wan, wan_mbit)
        if speed is not None and speed <= 10 ** 15:
            item["speed_bps"] = speed
        if wan:
            item["wan"] = True
        items.append((_index_key(index), item))
    if len(items) > MAX_INTERFACES:
        items.sort(key=lambda ki: (not ki[1].get("wan"), ki[1].get("up") is not True, ki[0]))
        items = sorted(items[:MAX_INTERFACES], key=lambda ki: ki[0])
    return [item for _key, item in items]


def metrics(answer: Answer, counters: Counters, interval_s: float, now_wall: float,
            now_mono: float, device: PolledDeviceSection) -> Dict[str, Any]:
    """The `metrics` data of one poll (rates only from the second poll on)."""
    data = {"interval_s": interval_s}  # type: Dict[str, Any]
    up = uptime(answer.scalars)
    counters.new_round(up)
    if up is not None and 0 <= up[1] <= 3.2e9:
        data["uptime_s"] = round(up[1], 2)
        boot = round(now_wall - up[1])
        if 1262304000 <= boot <= 4102444800:
            data["boot_ts"] = boot
    data.update(cpu(answer.tables))
    data.update(memory(answer.tables))
    net = interfaces(answer.tables, counters, now_mono, device.wan_interface, device.wan_mbit)
    if net:
        data["net"] = net
    counters.end_round()
    return {k: v for k, v in data.items() if v is not None and not _nan(v)}


def _nan(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def wan_found(answer: Answer, wan_interface: str) -> bool:
    """Whether the configured WAN interface is among the device's interfaces."""
    wanted = wan_interface.lower()
    return any(wanted in ((text(r.get("ifName"), 64) or "").lower(),
                          (text(r.get("ifDescr"), 64) or "").lower())
               for r in rows(answer.tables).values())


# --- inventory ----------------------------------------------------------------------------


def asset(device: PolledDeviceSection) -> Dict[str, Any]:
    return {"tag": device.tag, "role": device.role, "purchase_date": device.purchase_date,
            "location": device.location}


def inventory(answer: Answer, device: PolledDeviceSection, polled_by: str,
              agent_version: str) -> Dict[str, Any]:
    """The `inventory` data of a device that answers SNMP."""
    scalars = answer.scalars
    description = text(scalars.get("sysDescr"), 256)
    data = {
        "hostname": text(scalars.get("sysName"), 253) or device.device,
        "os": os_guess(description),
    }  # type: Dict[str, Any]
    if description:
        data["description"] = description
    data["polled_by"] = polled_by
    maker = manufacturer(scalars.get("sysObjectID"))
    if maker:
        data["system"] = {"manufacturer": maker}
    ram = memory(answer.tables).get("mem_total_bytes")
    if ram:
        data["ram_bytes"] = ram
    macs = []  # type: List[str]
    for _index, row in sorted(rows(answer.tables).items(), key=lambda kv: _index_key(kv[0])):
        address = mac(row.get("ifPhysAddress"))
        if address and address not in macs and \
                row.get("ifType") != oids.IF_TYPE_SOFTWARE_LOOPBACK:
            macs.append(address)
    if macs:
        data["macs"] = macs[:MAX_MACS]
    data["asset"] = asset(device)
    data["agent_version"] = agent_version[:32]
    return data


def ping_inventory(device: PolledDeviceSection, polled_by: str,
                   agent_version: str) -> Dict[str, Any]:
    """The `inventory` of a device known only by ping: who it is, not what it is."""
    return {"hostname": device.device, "os": {"name": "unknown"}, "polled_by": polled_by,
            "asset": asset(device), "agent_version": agent_version[:32]}
