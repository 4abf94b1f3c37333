"""Windows 11 readiness of a PC from its inventory: already there, can be upgraded where
it stands, must be replaced, or cannot be told (check by hand).

Requirements (Microsoft): TPM 2.0, UEFI with Secure Boot, 4 GB RAM, Intel Core 8th
generation / AMD Ryzen 2000 or newer. UEFI, Secure Boot and a firmware TPM (Intel PTT,
AMD fTPM) are settings on a supported CPU's board, and RAM can be added; an older CPU
cannot be fixed."""

from __future__ import annotations

from typing import Any

from collector.reports.model import IN_PLACE, NOT_WINDOWS, READY, REPLACE, UNKNOWN
from collector.rules.quantities import cpu_too_old, windows11_missing

CPU_BLOCKER = "CPU older than Windows 11 supports"
RAM_BLOCKER = "under 4 GB RAM"


def windows11_readiness(inventory: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(state, what blocks it) for one device's inventory."""
    os = inventory.get("os") or {}
    if os.get("name") != "Windows":
        return NOT_WINDOWS, ()
    if str(os.get("version", "")).startswith("11"):
        return READY, ()
    missing = tuple(windows11_missing(inventory))
    if CPU_BLOCKER in missing:
        return REPLACE, missing
    cpu_old = cpu_too_old(str((inventory.get("cpu") or {}).get("model", "")))
    if cpu_old is None:
        # A Celeron or an unknown model: only the machine itself can tell.
        return UNKNOWN, missing
    return (IN_PLACE if missing else READY), missing
