"""Parsing shared by the Linux and Windows inventory: firmware strings, dates, TPM versions."""

from __future__ import annotations

import datetime
import re
from typing import Any, Optional

from agent.probes.values import text

# What board makers leave in SMBIOS when the PC assembler fills nothing in (AMI, ASUS,
# Gigabyte, ASRock defaults). They say "unknown": reported as null so that a hundred
# white-box PCs do not all share the serial "To be filled by O.E.M.".
PLACEHOLDERS = frozenset((
    "to be filled by o.e.m.", "to be filled by oem", "default string", "system manufacturer",
    "system product name", "system serial number", "system version", "not specified",
    "not applicable", "not available", "none", "n/a", "na", "oem", "o.e.m.", "unknown",
    "0123456789", "123456789", "1234567890", "base board serial number",
))

_FILLERS = frozenset("0.fx*#-_ ")
_MDY = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$")
_TPM_VERSION = re.compile(r"\b([12])\.(\d)\b")


def firmware_string(value: Any, limit: int) -> Optional[str]:
    """A SMBIOS/DMI string, or None for empty strings and the makers' placeholders."""
    value = text(value, limit)
    if value is None or value.lower() in PLACEHOLDERS:
        return None
    # "0", "00000000", "..........", "FFFFFFFF", "xxxxxx": one filler character repeated.
    if set(value.lower()) <= _FILLERS:
        return None
    return value


def iso_date(year: int, month: int, day: int) -> Optional[str]:
    """YYYY-MM-DD for a real calendar date from 1980 to 2100, else None."""
    if not 1980 <= year <= 2100:
        return None  # "00/00/0000", "01/01/1900": never a real BIOS release
    try:
        return datetime.date(year, month, day).isoformat()
    except ValueError:
        return None


def bios_date(value: Any) -> Optional[str]:
    """SMBIOS's MM/DD/YYYY release date (sysfs bios_date, Windows BIOSReleaseDate) as
    YYYY-MM-DD; None for anything else (two-digit years, garbage)."""
    if not isinstance(value, str):
        return None
    match = _MDY.match(value)
    if not match:
        return None
    month, day, year = (int(g) for g in match.groups())
    return iso_date(year, month, day)


def tpm_version(value: Any) -> Optional[str]:
    """"2.0" or "1.2" from text that mentions a TPM spec version, else None.

    Takes the first version in the text: Win32_Tpm's SpecVersion "2.0, 0, 1.38" begins with
    the TPM family; a Linux caps file says "TCG version: 1.2"; an ACPI description says
    "TPM 2.0 Device".
    """
    if not isinstance(value, str):
        return None
    match = _TPM_VERSION.search(value)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def cpu_model(value: Any) -> Optional[str]:
    """A CPU name with its padding squeezed: old Intel parts say
    "Intel(R) Core(TM)2 Duo CPU     E8400  @ 3.00GHz"."""
    if not isinstance(value, str):
        return None
    return text(" ".join(value.split()), 128)


_MAC_HEX = re.compile(r"^[0-9a-f]{12}$")


def mac_address(value: Any) -> Optional[str]:
    """A MAC in lower-case colon form ("00:1a:2b:3c:4d:5e") from psutil's Linux (colons) or
    Windows (dashes) spelling; None for all-zero and anything that is not 6 bytes."""
    if not isinstance(value, str):
        return None
    hexdigits = value.strip().lower().replace(":", "").replace("-", "")
    if not _MAC_HEX.match(hexdigits) or hexdigits == "0" * 12:
        return None
    return ":".join(hexdigits[i:i + 2] for i in range(0, 12, 2))
