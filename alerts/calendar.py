"""Working time: when a non-critical e-mail may go out and when the digest is due.

Working days are Monday to Friday minus the country's public holidays (the `holidays`
library knows Vietnam's lunar Tết, Hùng Kings' day and the government's substituted
days off and make-up Saturdays), adjusted by the operator's own lists.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable

import holidays
from zoneinfo import ZoneInfo

from alerts.config import AlertsSection, clock_minutes


class WorkCalendar:
    def __init__(self, country: str = "VN", timezone: str = "Asia/Ho_Chi_Minh",
                 work_start: str = "07:30", work_end: str = "17:00",
                 extra_holidays: Iterable[str] = (), extra_workdays: Iterable[str] = ()) -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"timezone {timezone!r} is not a known time zone") from exc
        # Checked against the list first: the library looks the name up as an attribute
        # of its module, so "utils" or "__init__" would be called, not refused.
        if country not in holidays.list_supported_countries():
            raise ValueError(f"holidays_country {country!r} is not a country code the "
                             "holidays library knows (e.g. VN)")
        self.country = country
        self.start_min = clock_minutes(work_start, "work_start")
        self.end_min = clock_minutes(work_end, "work_end")
        self.extra_holidays = {_date(text, "extra_holidays") for text in extra_holidays}
        self.extra_workdays = {_date(text, "extra_workdays") for text in extra_workdays}

    @classmethod
    def from_config(cls, section: AlertsSection) -> WorkCalendar:
        return cls(section.holidays_country, section.timezone, section.work_start,
                   section.work_end, section.extra_holidays, section.extra_workdays)

    @functools.lru_cache(maxsize=8)  # noqa: B019 - a handful of years per calendar
    def _holidays(self, year: int) -> holidays.HolidayBase:
        return holidays.country_holidays(self.country, years=year)

    def holiday_name(self, day: dt.date) -> str | None:
        return self._holidays(day.year).get(day)

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        return self._holidays(day.year).is_working_day(day)

    def local(self, ts: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts, self.zone)

    def is_working_time(self, ts: float) -> bool:
        moment = self.local(ts)
        minute = moment.hour * 60 + moment.minute
        return self.is_working_day(moment.date()) and self.start_min <= minute < self.end_min

    def next_working_time(self, ts: float) -> float:
        """`ts` itself if it is working time, else the start of the next working day."""
        if self.is_working_time(ts):
            return ts
        moment = self.local(ts)
        day = moment.date()
        if moment.hour * 60 + moment.minute >= self.start_min:
            day += dt.timedelta(days=1)
        for _ in range(60):  # Tết is the longest break: about 9 days
            if self.is_working_day(day):
                break
            day += dt.timedelta(days=1)
        start = dt.datetime.combine(day, dt.time(self.start_min // 60, self.start_min % 60),
                                    self.zone)
        return start.timestamp()


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} must be a date like 2026-12-31") from None
