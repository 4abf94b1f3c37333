"""Temperatures, fans and battery from psutil's sensors_* (plus Linux sysfs for battery wear).

Pure functions over what psutil returned, so tests feed them fixed readings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from agent.probes.values import integer, number, read_int, text

MAX_TEMPERATURES = 64
MAX_FANS = 32
TEMP_LOW, TEMP_HIGH = -60.0, 200.0  # the schema's range for every *_c field
MAX_RPM = 100000.0
MAX_CYCLES = 1000000


def _threshold(value: Any) -> Optional[float]:
    # Drivers without a threshold give None or 0 (and some 127 or -273 placeholders);
    # 0 °C is never a real high/critical limit, and outside the range is not a limit either.
    if not value:
        return None
    return number(value, TEMP_LOW, TEMP_HIGH, 1)


def temperatures(raw: Any) -> List[Dict[str, Any]]:
    """`temperatures` items from psutil.sensors_temperatures() ({chip: [shwtemp, ...]})."""
    items = []  # type: List[Dict[str, Any]]
    if not isinstance(raw, dict):
        return items
    for sensor in sorted(raw):
        for reading in raw[sensor] or []:
            # -273 (no sensor), 255 or 1000+ (unset register) are not temperatures: a
            # reading outside -60..200 °C is dropped, not clamped.
            temp = number(getattr(reading, "current", None), TEMP_LOW, TEMP_HIGH, 1)
            name = text(sensor, 64)
            if temp is None or name is None:
                continue
            item = {"sensor": name, "temp_c": temp}  # type: Dict[str, Any]
            label = text(getattr(reading, "label", None), 64)
            if label:
                item["label"] = label
            item["high_c"] = _threshold(getattr(reading, "high", None))
            item["critical_c"] = _threshold(getattr(reading, "critical", None))
            items.append(item)
            if len(items) == MAX_TEMPERATURES:
                return items
    return items


def fans(raw: Any) -> List[Dict[str, Any]]:
    """`fans` items from psutil.sensors_fans() ({chip: [sfan(label, current), ...]})."""
    items = []  # type: List[Dict[str, Any]]
    if not isinstance(raw, dict):
        return items
    for sensor in sorted(raw):
        for reading in raw[sensor] or []:
            # Beyond the schema's 100000 rpm is a misread register, dropped; 0 is a stopped
            # fan, kept: that is exactly what to alert on.
            rpm = number(getattr(reading, "current", None), 0, MAX_RPM, 0)
            name = text(sensor, 64)
            if rpm is None or name is None:
                continue
            item = {"sensor": name, "rpm": rpm}  # type: Dict[str, Any]
            label = text(getattr(reading, "label", None), 64)
            if label:
                item["label"] = label
            items.append(item)
            if len(items) == MAX_FANS:
                return items
    return items


def battery(raw: Any, sys_root: Optional[Path]) -> Optional[Dict[str, Any]]:
    """The `battery` object from psutil.sensors_battery(), or None when there is no battery.

    `sys_root` (Linux only) is where /sys is, for wear and cycle count; None elsewhere.
    """
    if raw is None:
        return None
    plugged = getattr(raw, "power_plugged", None)
    item = {
        "charge_percent": number(getattr(raw, "percent", None), 0, 100, 1),
        "plugged": plugged if isinstance(plugged, bool) else None,
        "wear_percent": None,
        "cycle_count": None,
    }  # type: Dict[str, Any]
    if sys_root is not None:
        item["wear_percent"], item["cycle_count"] = linux_battery_health(sys_root)
    return item


def _capacity(bat: Path) -> Tuple[Optional[str], Optional[int], Optional[int]]:
    """(unit family, full, design) of one battery: energy (µWh) or charge (µAh)."""
    for family in ("energy", "charge"):
        full = read_int(bat / (family + "_full"))
        design = read_int(bat / (family + "_full_design"))
        if full is not None and design:
            return family, full, design
    return None, None, None


def linux_battery_health(sys_root: Path) -> Tuple[Optional[float], Optional[int]]:
    """(wear_percent, cycle_count) from <sys_root>/class/power_supply/BAT*/.

    Several batteries (some ThinkPads) are added up; wear is only computed when all of them
    report in the same unit, since µWh and µAh cannot be added.
    """
    try:
        bats = sorted(p for p in (sys_root / "class" / "power_supply").iterdir()
                      if p.name.startswith("BAT"))
    except OSError:
        return None, None
    families = set()
    full_sum = design_sum = 0
    cycles = []  # type: List[int]
    for bat in bats:
        family, full, design = _capacity(bat)
        families.add(family)
        if family is not None:
            full_sum += full or 0
            design_sum += design or 0
        count = integer(read_int(bat / "cycle_count"), 0, MAX_CYCLES)
        if count is not None:
            cycles.append(count)
    wear = None
    if len(families) == 1 and None not in families and design_sum:
        # A battery holding more than its design capacity (fresh cells, optimistic gauge)
        # gives a negative wear: outside the schema's 0..100, so dropped, not shown as 0.
        wear = number((1.0 - full_sum / design_sum) * 100.0, 0, 100, 1)
    # The most-cycled battery is the one to replace first. Many firmwares report 0 when they
    # do not count cycles; that is what the kernel says, so it is passed on.
    return wear, (max(cycles) if cycles else None)
