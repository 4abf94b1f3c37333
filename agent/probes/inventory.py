"""Hardware and software inventory: what the machine is (sent on start, retained).

The common part (hostname, OS, CPU counts, RAM, MACs, asset) comes from the standard
library and psutil; inventory_linux and inventory_windows add what only the platform knows
(DMI/SMBIOS, firmware, Secure Boot, TPM, disks).
"""

from __future__ import annotations

import platform
import socket
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import cwatch
from agent.probes import inventory_linux, inventory_windows
from agent.probes.inventory_common import mac_address
from agent.probes.values import integer, is_loopback, number, ps_errors, text

MAX_DISKS = 32
MAX_MACS = 64
_DISK_KEYS = ("model", "serial", "size_bytes", "kind")


def collect_inventory(
    asset: Dict[str, Any],
    psutil_module: Any = None,
    smart_disks: Optional[List[Dict[str, Any]]] = None,
    platform_name: str = sys.platform,
    sys_root: Path = Path("/sys"),
    proc_root: Path = Path("/proc"),
    etc_root: Path = Path("/etc"),
    registry_reader: Optional[inventory_windows.RegistryReader] = None,
    command_runner: Optional[inventory_windows.CommandRunner] = None,
) -> Dict[str, Any]:
    """The inventory `data` object.

    `smart_disks` are SmartProbe.inventory_disks() items; when given (non-empty) they are
    the disk list, since smartctl knows serials and SSD/HDD better than the OS. Otherwise
    Linux reads /sys/block and Windows reports no disks. The roots (Linux) and the
    registry reader / command runner (Windows) are for tests.
    """
    if psutil_module is None:
        import psutil as psutil_module
    ps = psutil_module
    errors = ps_errors(ps)

    inv = {
        "hostname": socket.gethostname()[:253],
        "os": {"name": platform.system()[:64] or "unknown", "version": platform.release()[:64],
               "build": platform.version()[:64], "arch": platform.machine()[:32]},
    }  # type: Dict[str, Any]
    cpu = _cpu_counts(ps, errors)
    try:
        ram = integer(ps.virtual_memory().total)
    except errors:
        ram = None
    if ram is not None:
        inv["ram_bytes"] = ram

    found = {}  # type: Dict[str, Any]
    if platform_name.startswith("linux"):
        found = inventory_linux.collect_linux(sys_root, proc_root, etc_root)
        inv["os"]["name"] = found.pop("os_name") or "Linux"
    elif platform_name.startswith("win"):
        found = inventory_windows.collect_windows(registry_reader, command_runner)
        for key, value in found.pop("os").items():
            if value:  # registry values win; platform's stay where the registry has none
                inv["os"][key] = value
    model = found.pop("cpu_model", None) or text(platform.processor() or platform.machine(), 128)
    if model:
        cpu["model"] = model
    inv["cpu"] = cpu
    inv["os"] = {k: v for k, v in inv["os"].items() if v}  # empty strings are no value

    platform_disks = found.pop("disks", [])
    disks = _smart_disks(smart_disks) or platform_disks
    if disks:
        inv["disks"] = disks[:MAX_DISKS]
    for key in ("system", "bios"):
        section = found.pop(key, None)
        if section and any(v is not None for v in section.values()):
            inv[key] = section
    for key in ("firmware", "secure_boot", "tpm"):
        if found.get(key) is not None:
            inv[key] = found[key]
    macs = mac_addresses(ps)
    if macs:
        inv["macs"] = macs
    inv["asset"] = {k: v for k, v in asset.items() if v is not None}
    inv["agent_version"] = cwatch.__version__
    inv["python_version"] = platform.python_version()
    return inv


def _cpu_counts(ps: Any, errors: Any) -> Dict[str, Any]:
    cpu = {}  # type: Dict[str, Any]
    try:
        cpu["cores"] = integer(ps.cpu_count(logical=False), 1, 4096)
        cpu["threads"] = integer(ps.cpu_count(), 1, 8192)
    except errors:
        pass
    try:
        freq = ps.cpu_freq()
    except errors:
        freq = None
    # VMs and some ARM boards report max 0: no value, not a 0 MHz CPU.
    max_mhz = number(getattr(freq, "max", None), 1, 100000, 0)
    if max_mhz is not None:
        cpu["max_mhz"] = max_mhz
    return cpu


def _smart_disks(disks: Optional[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    # Only the schema's keys are passed on: SMART items are built for it, but a stray key
    # would get the whole retained inventory rejected.
    out = []  # type: List[Dict[str, Any]]
    for disk in disks or []:
        if isinstance(disk, dict) and disk.get("kind"):
            out.append({k: disk[k] for k in _DISK_KEYS if k in disk})
    return out


def mac_addresses(ps: Any) -> List[str]:
    """MAC addresses of the non-loopback interfaces (psutil AF_LINK), lower-case colon form,
    without duplicates (bridges and teams share their member's address)."""
    errors = ps_errors(ps) + (ValueError,)  # ValueError: old psutil on localized Windows
    try:
        addrs = ps.net_if_addrs()
    except errors:
        return []
    try:
        stats = ps.net_if_stats()
    except errors:
        stats = {}
    link = getattr(ps, "AF_LINK", None)
    macs = []  # type: List[str]
    for name in sorted(addrs):
        if is_loopback(name, stats.get(name)):
            continue
        for addr in addrs[name]:
            mac = mac_address(addr.address) if addr.family == link else None
            if mac and mac not in macs:
                macs.append(mac)
                if len(macs) == MAX_MACS:
                    return macs
    return macs
