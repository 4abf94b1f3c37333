"""A silence request (from the JSON API or `cwatch alerts silence add`), checked field
by field: every mistake is one line naming the field."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from cwatch.config import parse_duration

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_SILENCE_S = 366 * 86400.0
FIELDS = ("site", "device", "rule", "starts", "ends", "duration", "reason", "created_by")


def parse_request(body: Any, now: float) -> dict[str, Any]:
    """The keyword arguments of AlertStore.add_silence; raises ValueError with a one-line
    message naming the field that is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    matchers = {}
    for name in ("site", "device", "rule"):
        value = body.get(name)
        if value in (None, ""):
            matchers[name] = None
        elif not isinstance(value, str) or not _ID.match(value):
            raise ValueError(f"{name} must be an id like \"an-phuoc\" (lower-case letters, "
                             f"digits, '.', '_', '-'), not {str(value)[:40]!r}")
        else:
            matchers[name] = value
    if not any(matchers.values()):
        raise ValueError("give at least one of site, device, rule (a silence that matches "
                         "everything would hide every alert)")
    starts = _time(body["starts"], "starts") if body.get("starts") is not None else now
    if body.get("ends") is not None and body.get("duration") is not None:
        raise ValueError("give ends or duration, not both")
    if body.get("ends") is not None:
        ends = _time(body["ends"], "ends")
    elif body.get("duration") is not None:
        ends = starts + parse_duration(body["duration"], "duration")
    else:
        raise ValueError("give ends (a time) or duration (like \"2h\")")
    if ends <= now:
        raise ValueError("ends is in the past: the silence would never hold")
    if ends <= starts:
        raise ValueError("ends must be after starts")
    if ends - starts > MAX_SILENCE_S:
        raise ValueError("a silence lasts at most a year; fix the rule file instead")
    texts = {}
    for name in ("reason", "created_by"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} is required (who silences, and why)")
        if len(value) > 500:
            raise ValueError(f"{name} is longer than 500 characters")
        texts[name] = value.strip()
    return {**matchers, "starts_ts": starts, "ends_ts": ends, **texts}


def _time(value: Any, name: str) -> float:
    """Unix seconds or an ISO 8601 time with its offset ("2026-12-01T08:00+07:00")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite, positive unix time")
        return float(value)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                raise ValueError(f"{name} {value!r} needs a UTC offset, like +07:00")
            return moment.timestamp()
    raise ValueError(f"{name} must be unix seconds or an ISO 8601 time with an offset, not "
                     f"{str(value)[:40]!r}")
