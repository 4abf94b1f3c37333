"""Working hours of Vietnamese commune offices (used by the rules and the simulator)."""

from __future__ import annotations

VIETNAM_UTC_OFFSET_H = 7


def local_day(ts: float) -> int:
    """Days since 1970-01-01 in Vietnam's time zone."""
    return int((ts / 3600 + VIETNAM_UTC_OFFSET_H) // 24)


def office_hours(ts: float) -> bool:
    """Monday-Friday 07:30-17:00, Vietnam time (UTC+7). Public holidays are not known
    here; the alerts' calendar handles them."""
    local_h = ts / 3600 + VIETNAM_UTC_OFFSET_H
    weekday = int((local_h // 24 + 3) % 7)  # 1970-01-01 was a Thursday (3)
    return weekday < 5 and 7.5 <= local_h % 24 < 17
