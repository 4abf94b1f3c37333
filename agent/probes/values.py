"""Small helpers shared by the probes: schema range checks, clean strings, file reads.

A value outside the schema's range is dropped (None), never clamped: a clamped value would
look like a real reading, and one bad field must not get the whole message rejected.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Tuple

MAX_SAFE_INT = 9007199254740991  # 2**53 - 1: the schema's maximum for bytes and counters
MAX_RATE = 1e15  # the schema's `rate` maximum

# Interface names psutil gives the loopback on Linux/macOS and on Windows.
LOOPBACK_NAMES = frozenset(("lo", "lo0", "Loopback Pseudo-Interface 1"))


def number(value: Any, low: float, high: float, digits: Optional[int] = None) -> Optional[float]:
    """A finite float inside [low, high] (after rounding to `digits`), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    if digits is not None:
        value = round(value, digits)
    value += 0.0  # turns -0.0 into 0.0, which reads better in JSON
    if not math.isfinite(value) or not low <= value <= high:
        return None
    return value


def integer(value: Any, low: int = 0, high: int = MAX_SAFE_INT) -> Optional[int]:
    """An int inside [low, high], else None (bool is not a count)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def text(value: Any, limit: int) -> Optional[str]:
    """A stripped string cut to the schema's maxLength, or None when empty or not a string.

    Strings are cut rather than dropped: a long model name is still the model name.
    """
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] or None


def read_text(path: Path) -> Optional[str]:
    """A small sysfs/procfs file's stripped text; None when missing, unreadable or empty."""
    try:
        value = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:  # missing file, root-only file (EACCES), device gone (ENODEV)
        return None
    return value or None


def read_int(path: Path) -> Optional[int]:
    raw = read_text(path)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def ps_errors(ps: Any) -> Tuple[type, ...]:
    """What a psutil call may raise: a function missing on this platform (AttributeError),
    OS errors, NotImplementedError, and psutil's own Error (AccessDenied, NoSuchProcess)."""
    errors = (AttributeError, OSError, NotImplementedError)  # type: Tuple[type, ...]
    err = getattr(ps, "Error", None)  # absent on the small fakes tests pass in
    if isinstance(err, type) and issubclass(err, Exception):
        errors += (err,)
    return errors


def is_loopback(name: str, stats: Any = None) -> bool:
    """True for the loopback interface, by name or by psutil's `flags` (psutil >= 5.9.3)."""
    if name in LOOPBACK_NAMES:
        return True
    flags = getattr(stats, "flags", None)
    return isinstance(flags, str) and "loopback" in flags.split(",")
