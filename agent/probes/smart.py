"""Disk health (S.M.A.R.T.) via smartctl's JSON output (smartmontools >= 7).

The parsers are pure functions over one `smartctl --all --json` report, so they work the
same on Windows and Linux and can be tested on recorded outputs; `SmartProbe` runs
smartctl through an injectable runner and caches the result, since SMART data changes slowly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

log = logging.getLogger(__name__)

MAX_DISKS = 32  # the schema's maxItems for both `smart` and inventory `disks`
MAX_SAFE_INT = 9007199254740991  # 2**53 - 1: the schema's counter maximum
MAX_POWER_ON_HOURS = 10000000

NOT_FOUND_NOTE = "smartctl not found; install smartmontools >= 7"
NO_RIGHTS_NOTE = "smartctl needs administrator/root rights to read disk health"
TOO_OLD_NOTE = "smartctl has no JSON output; install smartmontools >= 7"

# smartctl's exit status is a bit mask. Bits 0-1 mean smartctl itself failed (bad command
# line; device could not be opened). Bit 2 means some command failed but a (partial) report
# was still printed. Bits 3-7 are findings about the disk, not failures of the tool.
EXIT_CMDLINE = 0x01
EXIT_DEVICE_OPEN = 0x02
EXIT_TOOL_FAILED = EXIT_CMDLINE | EXIT_DEVICE_OPEN
EXIT_DISK_FAILING = 0x08

# Where installers put smartctl when it is not on the service's PATH: the Windows installer
# does not touch PATH, and Debian's /usr/sbin is missing from non-root PATHs.
FALLBACK_PATHS = (
    r"C:\Program Files\smartmontools\bin\smartctl.exe",
    r"C:\Program Files (x86)\smartmontools\bin\smartctl.exe",
) if os.name == "nt" else ("/usr/sbin/smartctl", "/usr/local/sbin/smartctl")

# Words smartctl (through the OS) uses when the caller lacks rights: Linux says "Permission
# denied" / "Operation not permitted", Windows "Access denied" / "Access is denied".
_NO_RIGHTS_WORDS = ("permission denied", "operation not permitted", "access denied",
                    "access is denied", "requires root", "administrator")

_PROTOCOLS = {"ata": "ata", "sata": "ata", "nvme": "nvme", "scsi": "scsi"}
_LEADING_INT = re.compile(r"\s*(\d+)\b")

Runner = Callable[[List[str]], Tuple[int, str]]


# ---------------------------------------------------------------------------- parsing

def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any, low: int = 0, high: int = MAX_SAFE_INT) -> Optional[int]:
    """An integer inside [low, high], else None.

    Out-of-range values are dropped, not clamped: a drive reporting 70000 % spare or
    -1 hours is reporting garbage, and a clamped value would look like a real reading.
    """
    if isinstance(value, bool):  # bool is an int subclass; true is not a count
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # smartctl prints >64-bit NVMe counters as lossy floats
    if not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _str(value: Any, limit: int) -> Optional[str]:
    # Strings are cut to the schema's maxLength (as the other probes do): a long model
    # name is still the model name, unlike a number outside its range.
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] or None


def _ata_attributes(report: Dict[str, Any]) -> Dict[int, Dict[str, Any]]:
    table = _dict(report.get("ata_smart_attributes")).get("table")
    attrs = {}  # type: Dict[int, Dict[str, Any]]
    if isinstance(table, list):
        for row in table:
            if isinstance(row, dict) and isinstance(row.get("id"), int):
                attrs.setdefault(row["id"], row)
    return attrs


def _raw_value(attr: Optional[Dict[str, Any]], high: int = MAX_SAFE_INT) -> Optional[int]:
    # ATA raw values are 48 bits, so the default limit only drops garbage.
    if attr is None:
        return None
    return _int(_dict(attr.get("raw")).get("value"), 0, high)


def _protocol(report: Dict[str, Any]) -> str:
    name = _dict(report.get("device")).get("protocol")
    if isinstance(name, str):
        # "ATA+SCSI" is a SAT device seen both ways; its SMART data is the ATA kind.
        proto = _PROTOCOLS.get(name.lower().split("+")[0])
        if proto:
            return proto
    # No or unknown protocol name (partial outputs): go by which sections smartctl printed.
    if isinstance(report.get("nvme_smart_health_information_log"), dict):
        return "nvme"
    if isinstance(report.get("ata_smart_attributes"), dict):
        return "ata"
    if "scsi_grown_defect_list" in report or "scsi_error_counter_log" in report:
        return "scsi"
    return "unknown"


def _device_name(report: Dict[str, Any], fallback: Optional[str]) -> str:
    name = _dict(report.get("device")).get("name")
    if not isinstance(name, str) or not name:
        name = fallback
    if not isinstance(name, str) or not name:
        # smartctl records its own command line; its last word is the device asked for.
        argv = _dict(report.get("smartctl")).get("argv")
        last = argv[-1] if isinstance(argv, list) and argv else None
        name = last if isinstance(last, str) and not last.startswith("-") else ""
    return name[:128]


def _model(report: Dict[str, Any]) -> Optional[str]:
    model = _str(report.get("model_name"), 128)
    if model is None:
        # Older smartctl versions print SCSI disks as vendor + product only.
        parts = [_str(report.get(k), 128) for k in ("vendor", "product")]
        model = _str(" ".join(p for p in parts if p), 128)
    return model


def _passed(report: Dict[str, Any]) -> Optional[bool]:
    passed = _dict(report.get("smart_status")).get("passed")
    if isinstance(passed, bool):
        return passed
    # No smart_status section (partial output) but smartctl's exit status says the
    # health check returned "DISK FAILING": that is smartctl's verdict, not a guess.
    status = _dict(report.get("smartctl")).get("exit_status")
    if isinstance(status, int) and not isinstance(status, bool) and status & EXIT_DISK_FAILING:
        return False
    return None


def _power_on_hours(report: Dict[str, Any], attrs: Dict[int, Dict[str, Any]]) -> Optional[int]:
    hours = _int(_dict(report.get("power_on_time")).get("hours"), 0, MAX_POWER_ON_HOURS)
    if hours is not None or 9 not in attrs:
        return hours
    # Reports made with -A only have attribute 9 but no power_on_time. Its raw value often
    # packs more above the hours (the fixture smart-sat.json: 0x97ea00000aa5 for 2725 h), so take
    # the leading number of smartctl's own decoding ("2725 (151 234 0)", "1234h+05m..."),
    # which for attribute 9's formats is the hour count.
    text = _dict(attrs[9].get("raw")).get("string")
    match = _LEADING_INT.match(text) if isinstance(text, str) else None
    if match:
        return _int(int(match.group(1)), 0, MAX_POWER_ON_HOURS)
    return _int(_raw_value(attrs[9]), 0, MAX_POWER_ON_HOURS)


def _temperature(report: Dict[str, Any]) -> Optional[float]:
    temp = _dict(report.get("temperature")).get("current")
    if temp is None:
        temp = _dict(report.get("nvme_smart_health_information_log")).get("temperature")
    if isinstance(temp, bool) or not isinstance(temp, (int, float)):
        return None
    # Outside the schema's -60..200 °C is a broken sensor (255 and -1 are common), not a reading.
    return temp if -60 <= temp <= 200 else None


def parse_smartctl(report: Any, device: Optional[str] = None) -> Dict[str, Any]:
    """One `smartctl --all --json` report as one item of the metrics `smart` list.

    Every field the report does not give is None; odd or partial reports never raise.
    `device` names the disk when the report itself does not (it failed before saying).
    """
    report = _dict(report)
    attrs = _ata_attributes(report)
    nvme = _dict(report.get("nvme_smart_health_information_log"))
    item = {
        "device": _device_name(report, device),
        "model": _model(report),
        "serial": _str(report.get("serial_number"), 64),
        "protocol": _protocol(report),
        "passed": _passed(report),
        "reallocated_sectors": _raw_value(attrs.get(5)),
        "pending_sectors": _raw_value(attrs.get(197)),
        "offline_uncorrectable": _raw_value(attrs.get(198)),
        "reported_uncorrectable": _raw_value(attrs.get(187)),
        "command_timeouts": None,
        "power_on_hours": _power_on_hours(report, attrs),
        "temperature_c": _temperature(report),
        "nvme_percentage_used": _int(nvme.get("percentage_used"), 0, 255),
        # The spec defines available spare as a normalised 0..100 %; more is garbage.
        "nvme_available_spare_percent": _int(nvme.get("available_spare"), 0, 100),
        "nvme_media_errors": _int(nvme.get("media_errors")),
        "nvme_critical_warning": _int(nvme.get("critical_warning"), 0, 255),
    }  # type: Dict[str, Any]
    timeouts = _raw_value(attrs.get(188), (1 << 64) - 1)
    if timeouts is not None:
        # Attribute 188's raw value packs up to three 16-bit counters on some drives (Seagate
        # is said to keep the total there, then >5 s and >7.5 s counts); the low word is
        # the total, and the one count every drive that reports 188 fills.
        item["command_timeouts"] = timeouts & 0xFFFF
    if item["protocol"] == "scsi":
        _add_scsi(report, item)
    return item


def _add_scsi(report: Dict[str, Any], item: Dict[str, Any]) -> None:
    # SCSI has no attribute table: the grown defect list is the reallocated-block count,
    # pending defects (newer smartctl, with -x) the pending ones, and the error counter log's
    # uncorrected errors are the drive-reported uncorrectable errors.
    if item["reallocated_sectors"] is None:
        item["reallocated_sectors"] = _int(report.get("scsi_grown_defect_list"))
    if item["pending_sectors"] is None:
        item["pending_sectors"] = _int(_dict(report.get("scsi_pending_defects")).get("count"))
    if item["reported_uncorrectable"] is None:
        counters = _dict(report.get("scsi_error_counter_log"))
        values = [_int(_dict(counters.get(op)).get("total_uncorrected_errors"))
                  for op in ("read", "write", "verify")]
        known = [v for v in values if v is not None]
        if known:
            item["reported_uncorrectable"] = _int(sum(known))


def parse_inventory_disk(report: Any) -> Dict[str, Any]:
    """One `smartctl --all --json` report as one item of the inventory `disks` list."""
    report = _dict(report)
    size = _int(_dict(report.get("user_capacity")).get("bytes"))
    if not size:
        size = _int(report.get("nvme_total_capacity"))
    rotation = report.get("rotation_rate")
    if _protocol(report) == "nvme":
        kind = "nvme"
    elif isinstance(rotation, str):
        kind = "ssd" if "solid state" in rotation.lower() else "unknown"
    elif _int(rotation) == 0:
        kind = "ssd"  # smartctl prints "Solid State Device" as rotation_rate 0 in JSON
    elif _int(rotation):
        kind = "hdd"
    else:
        kind = "unknown"  # many drives do not report their rotation rate
    return {
        "model": _model(report),
        "serial": _str(report.get("serial_number"), 64),
        # 0 bytes is a card reader without a medium, not a disk size.
        "size_bytes": size or None,
        "kind": kind,
    }


def parse_scan(report: Any) -> List[Dict[str, Any]]:
    """Devices from `smartctl --scan-open --json`: dicts with name, type, open_error."""
    devices = []
    seen = set()
    for dev in _dict(report).get("devices") or []:
        if not isinstance(dev, dict):
            continue
        name, dev_type = dev.get("name"), dev.get("type")
        # Names and types go back to smartctl as arguments: refuse anything option-like.
        if not isinstance(name, str) or not name or name.startswith("-"):
            continue
        if not isinstance(dev_type, str) or not dev_type or dev_type.startswith("-"):
            dev_type = None
        if (name, dev_type) in seen:
            continue
        seen.add((name, dev_type))
        error = dev.get("open_error")
        devices.append({"name": name, "type": dev_type,
                        "open_error": error if isinstance(error, str) else None})
    return devices


def _load_json(text: str) -> Optional[Dict[str, Any]]:
    # raw_decode tolerates text after the JSON (smartctl prints internal-error lines there).
    try:
        doc, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _messages(report: Optional[Dict[str, Any]]) -> List[str]:
    msgs = _dict(_dict(report).get("smartctl")).get("messages")
    if not isinstance(msgs, list):
        return []
    return [m["string"] for m in msgs if isinstance(m, dict) and isinstance(m.get("string"), str)]


def _lacks_rights(text: str) -> bool:
    text = text.lower()
    return any(word in text for word in _NO_RIGHTS_WORDS)


# ---------------------------------------------------------------------------- running

def run_command(argv: List[str], timeout_s: float = 60.0) -> Tuple[int, str]:
    """Run argv without a shell or console window; return (exit code, stdout text)."""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows only; 0 elsewhere
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          stdin=subprocess.DEVNULL, timeout=timeout_s, creationflags=flags)
    return proc.returncode, proc.stdout.decode("utf-8", errors="replace")


class SmartProbe:
    """Runs smartctl on every disk it finds, at most once per `min_interval_s`."""

    def __init__(
        self,
        runner: Optional[Runner] = None,
        which: Callable[[str], Optional[str]] = shutil.which,
        clock: Callable[[], float] = time.monotonic,
        min_interval_s: float = 3600.0,
        max_disks: int = MAX_DISKS,
    ) -> None:
        self._run = runner if runner is not None else run_command
        self._which = which
        self._clock = clock
        self._min_interval_s = min_interval_s
        self._max_disks = max(0, min(max_disks, MAX_DISKS))
        self._last_run = None  # type: Optional[float]
        self._items = []  # type: List[Dict[str, Any]]
        self._reports = []  # type: List[Dict[str, Any]]
        self._note = None  # type: Optional[str]

    def collect(self) -> Tuple[List[Dict[str, Any]], Optional[str]]:
        """(items for the metrics `smart` list, a note saying why data is missing or None)."""
        now = self._clock()
        if self._last_run is not None and 0 <= now - self._last_run < self._min_interval_s:
            return [dict(item) for item in self._items], self._note
        smartctl = self._find_smartctl()
        if smartctl is None:
            # Not cached: looking is cheap, and a fresh install is then seen at once.
            self._last_run = None
            return [], NOT_FOUND_NOTE
        self._items, self._reports, self._note = self._collect(smartctl)
        self._last_run = now
        return [dict(item) for item in self._items], self._note

    def inventory_disks(self) -> List[Dict[str, Any]]:
        """Inventory `disks` items from the reports of the last smartctl run (no new run)."""
        return [parse_inventory_disk(report) for report in self._reports]

    def _find_smartctl(self) -> Optional[str]:
        for candidate in ("smartctl",) + FALLBACK_PATHS:
            found = self._which(candidate)
            if found:
                return found
        return None

    def _call(self, argv: List[str]) -> Tuple[Optional[int], Optional[Dict[str, Any]], str]:
        """(exit status or None if it did not run, parsed JSON or None, error text)."""
        try:
            code, out = self._run(argv)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            return None, None, f"{type(exc).__name__}: {exc}"
        return code, _load_json(out), ""

    def _collect(
        self, smartctl: str,
    ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], Optional[str]]:
        code, scan, error = self._call([smartctl, "--scan-open", "--json"])
        if code is None:
            return [], [], "smartctl could not be run: " + error[:200]
        if scan is None:
            # smartctl 6 rejects --json as a bad command line and prints plain text.
            return [], [], TOO_OLD_NOTE if code & EXIT_CMDLINE else "smartctl --scan-open failed"
        if code & EXIT_TOOL_FAILED:
            msgs = _messages(scan)
            if any(_lacks_rights(m) for m in msgs):
                return [], [], NO_RIGHTS_NOTE
            return [], [], "smartctl --scan-open failed: " + ("; ".join(msgs) or str(code))[:200]
        devices = parse_scan(scan)
        if not devices:
            return [], [], "smartctl found no disks"

        items = []  # type: List[Dict[str, Any]]
        reports = []  # type: List[Dict[str, Any]]
        problems = []  # type: List[str]
        no_rights = False
        openable = []  # type: List[Dict[str, Any]]
        for dev in devices:
            if dev["open_error"] is None:
                openable.append(dev)
                continue
            # Empty card readers and unknown USB bridges land here too: only a missing
            # right is worth a note, the rest is normal on office PCs.
            no_rights = no_rights or _lacks_rights(dev["open_error"])
            log.debug("smartctl cannot open %s: %s", dev["name"], dev["open_error"])
        if len(openable) > self._max_disks:
            log.info("%d disks; only the first %d are read", len(openable), self._max_disks)
        for dev in openable[:self._max_disks]:
            argv = [smartctl, "--all", "--json"]
            if dev["type"]:
                argv += ["-d", dev["type"]]
            argv.append(dev["name"])  # last: smartctl reads the device from its last argument
            code, report, error = self._call(argv)
            if code is None or report is None or code & EXIT_TOOL_FAILED:
                detail = error or "; ".join(_messages(report)) or f"exit status {code}"
                no_rights = no_rights or _lacks_rights(detail)
                problems.append(f"{dev['name']}: {detail}")
                continue
            items.append(parse_smartctl(report, device=dev["name"]))
            reports.append(report)

        note = None
        if no_rights:
            note = NO_RIGHTS_NOTE
        elif problems:
            note = ("smartctl failed on " + "; ".join(problems))[:500]
        return items, reports, note
