"""Linux inventory from sysfs and procfs: CPU name, DMI (system, BIOS), firmware type,
Secure Boot, TPM and disks.

Every function takes the root it reads under (/sys, /proc, /etc), so tests point them at
fixture trees. Unreadable files give None, never an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from agent.probes.inventory_common import bios_date, cpu_model, firmware_string, tpm_version
from agent.probes.values import integer, read_int, read_text, text

SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
MAX_DISKS = 32  # the schema's maxItems for inventory `disks`

# /sys/block entries that are not disks of the machine: loop (snaps, images), ram/zram
# (memory), dm-*/md* (LVM, LUKS, RAID built on the real disks), sr (optical), fd, nbd.
SKIP_BLOCK_PREFIXES = ("loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd")


def os_pretty_name(etc_root: Path = Path("/etc")) -> Optional[str]:
    """PRETTY_NAME from <etc_root>/os-release, e.g. "Debian GNU/Linux 12 (bookworm)"."""
    raw = read_text(etc_root / "os-release")
    for line in (raw or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return text(line.split("=", 1)[1].strip().strip("\"'"), 64)
    return None


def cpu_model_name(proc_root: Path = Path("/proc")) -> Optional[str]:
    """The first "model name" in <proc_root>/cpuinfo (x86; ARM boards have none)."""
    raw = read_text(proc_root / "cpuinfo")
    for line in (raw or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return cpu_model(value)
    return None


def _dmi(dmi: Path, name: str, limit: int) -> Optional[str]:
    return firmware_string(read_text(dmi / name), limit)


def system_info(sys_root: Path) -> Dict[str, Optional[str]]:
    """Manufacturer, model, serial from <sys_root>/class/dmi/id.

    product_serial is root-only (mode 0400): None when the agent runs unprivileged.
    Assembled PCs leave the system fields as placeholders but the board maker fills its own
    (e.g. ASUSTeK / P5G41T-M LX): the board's values stand in for missing system ones.
    """
    dmi = sys_root / "class" / "dmi" / "id"
    out = {}  # type: Dict[str, Optional[str]]
    for field, own, board, limit in (("manufacturer", "sys_vendor", "board_vendor", 128),
                                     ("model", "product_name", "board_name", 128),
                                     ("serial", "product_serial", "board_serial", 64)):
        out[field] = _dmi(dmi, own, limit) or _dmi(dmi, board, limit)
    return out


def bios_info(sys_root: Path) -> Dict[str, Optional[str]]:
    """BIOS vendor, version and date (YYYY-MM-DD) from <sys_root>/class/dmi/id."""
    dmi = sys_root / "class" / "dmi" / "id"
    return {
        "vendor": _dmi(dmi, "bios_vendor", 128),
        "version": _dmi(dmi, "bios_version", 128),
        "date": bios_date(read_text(dmi / "bios_date")),
    }


def firmware_type(sys_root: Path) -> Optional[str]:
    """"uefi" when the kernel was booted by UEFI (it then creates /sys/firmware/efi),
    "bios" otherwise; None when /sys/firmware is not visible at all (some containers)."""
    firmware = sys_root / "firmware"
    if (firmware / "efi").is_dir():
        return "uefi"
    return "bios" if firmware.is_dir() else None


def secure_boot(sys_root: Path, firmware: Optional[str]) -> Optional[bool]:
    """Secure Boot state from the SecureBoot EFI variable; None when it cannot be read.

    An efivarfs file is 4 bytes of attributes, then the data: one byte, 1 = enabled.
    """
    if firmware == "bios":
        return False  # Secure Boot is a UEFI feature: off by construction in legacy mode
    try:
        raw = (sys_root / "firmware" / "efi" / "efivars" / SECURE_BOOT_VAR).read_bytes()
    except OSError:
        return None
    if len(raw) < 5:
        return None
    return raw[4] == 1


def tpm_info(sys_root: Path) -> Optional[Dict[str, Any]]:
    """{"present", "version"} from <sys_root>/class/tpm/tpm0; None when sysfs is not there.

    tpm_version_major appeared in Linux 5.6; before that TPM 1.2 chips have a caps file
    ("TCG version: 1.2") and ACPI TPM 2.0 devices a description ("TPM 2.0 Device").
    """
    if not (sys_root / "class").is_dir():
        return None
    tpm = sys_root / "class" / "tpm" / "tpm0"
    if not tpm.is_dir():
        # No TPM, or one disabled in the BIOS setup: either way the OS cannot use one.
        return {"present": False, "version": None}
    major = read_int(tpm / "tpm_version_major")
    version = {2: "2.0", 1: "1.2"}.get(major) if major is not None else None
    if version is None:
        for name in ("caps", "device/caps", "device/description"):
            version = tpm_version(read_text(tpm / name))
            if version:
                break
    return {"present": True, "version": version}


def disk_kind(name: str, rotational: Optional[int]) -> str:
    """nvme by name; else queue/rotational: 1 = spinning disk, 0 = SSD (VMs may say 1)."""
    if name.startswith("nvme"):
        return "nvme"
    if rotational == 1:
        return "hdd"
    return "ssd" if rotational == 0 else "unknown"


def disks(sys_root: Path) -> List[Dict[str, Any]]:
    """Inventory `disks` from <sys_root>/block: model, serial, size, kind.

    Skipped: virtual devices (SKIP_BLOCK_PREFIXES), removable media (USB sticks, card
    readers: not part of the machine) and devices of size 0 (a reader without a card).
    SATA disks have no serial in sysfs (only smartctl gives it), so theirs is None.
    """
    try:
        names = sorted(p.name for p in (sys_root / "block").iterdir())
    except OSError:
        return []
    items = []  # type: List[Dict[str, Any]]
    for name in names:
        if name.startswith(SKIP_BLOCK_PREFIXES):
            continue
        dev = sys_root / "block" / name
        if read_int(dev / "removable") == 1:
            continue
        sectors = read_int(dev / "size")
        if not sectors:
            continue
        items.append({
            "model": text(" ".join((read_text(dev / "device" / "model") or "").split()), 128),
            "serial": firmware_string(read_text(dev / "device" / "serial"), 64),
            # sysfs counts 512-byte sectors whatever the disk's real sector size.
            "size_bytes": integer(sectors * 512),
            "kind": disk_kind(name, read_int(dev / "queue" / "rotational")),
        })
        if len(items) == MAX_DISKS:
            break
    return items


def collect_linux(
    sys_root: Path = Path("/sys"), proc_root: Path = Path("/proc"), etc_root: Path = Path("/etc"),
) -> Dict[str, Any]:
    """The Linux-specific inventory parts, keyed as in inventory `data` (plus os_name and
    cpu_model for collect_inventory to place)."""
    firmware = firmware_type(sys_root)
    return {
        "os_name": os_pretty_name(etc_root),
        "cpu_model": cpu_model_name(proc_root),
        "system": system_info(sys_root),
        "bios": bios_info(sys_root),
        "firmware": firmware,
        "secure_boot": secure_boot(sys_root, firmware),
        "tpm": tpm_info(sys_root),
        "disks": disks(sys_root),
    }
