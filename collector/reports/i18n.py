"""The report's language: its words (labels.py through the gettext catalog in locale/)
and how numbers, money and dates are written (Babel's CLDR data: "12.500.000 ₫" and
"27/11/2026" in Vietnamese, "₫12,500,000" and "Nov 27, 2026" in English)."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, get_group_symbol
from babel.support import NullTranslations

from collector.reports import labels
from cwatch.i18n import load_translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("vi", "en")


@functools.lru_cache(maxsize=4)
def _catalog(language: str) -> NullTranslations:
    return load_translations(LOCALE_DIR, language)


def _babel_number(value: float | int, decimals: int, code: str) -> str:
    pattern = "#,##0" + ("." + "#" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=code)


def _grouped(value: int, group: str) -> str:
    """A whole number with its thousands grouped, e.g. 12.345 (vi) or -12,345 (en)."""
    return f"{value:,}".replace(",", group) if group != "," else f"{value:,}"


# Whole numbers that Babel writes differently for some locales (no grouping of 4 digits,
# another minus sign): _grouped is used for a language only if it matches Babel on these.
GROUPING_SAMPLES = (0, 7, -7, 999, 1000, -1000, 9999, 12_345, 123_456, 1_234_567,
                    -98_765_432, 10**12 + 3)


@functools.lru_cache(maxsize=4)
def _group_symbol(code: str) -> str | None:
    group = get_group_symbol(locale=code)
    ok = all(_grouped(n, group) == _babel_number(n, decimals, code)
             for n in GROUPING_SAMPLES for decimals in (0, 1))
    return group if ok else None


class Lang:
    """Words and formats for one language ("vi" or "en").

    Numbers, sums of money and dates are remembered once written: Babel takes tens of µs
    a call, and a country's report writes 130,000 devices' worth of the same few prices,
    scores and dates (a report is made and thrown away, so the memo does not grow for
    long). Whole numbers, different in every row (the rank), are grouped here directly,
    where that writes what Babel writes (checked once per language)."""

    def __init__(self, code: str) -> None:
        if code not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {code!r}")
        self.code = code
        self._translations = _catalog(code)
        self._memo: dict[tuple[Any, ...], str] = {}
        self._words: dict[str, str] = {}
        self._group = _group_symbol(code)

    def gettext(self, text: str) -> str:
        words = self._words.get(text)
        if words is None:
            words = self._words[text] = self._translations.gettext(text)
        return words

    def money(self, vnd: int | float) -> str:
        key = ("money", type(vnd), vnd)
        text = self._memo.get(key)
        if text is None:
            text = self._memo[key] = format_currency(vnd, "VND", locale=self.code)
        return text

    def number(self, value: float | int | None, decimals: int = 1) -> str:
        if value is None:
            return "–"
        if type(value) is int and self._group is not None:
            return _grouped(value, self._group)
        key = (type(value), value, decimals)
        text = self._memo.get(key)
        if text is None:
            text = self._memo[key] = _babel_number(value, decimals, self.code)
        return text

    def date(self, day: dt.date | None) -> str:
        # Vietnamese offices write 27/11/2026; CLDR's short form has a 2-digit year.
        if day is None:
            return "–"
        key = ("date", day)
        text = self._memo.get(key)
        if text is None:
            text = self._memo[key] = format_date(
                day, format="dd/MM/yyyy" if self.code == "vi" else "medium", locale=self.code)
        return text

    def datetime(self, moment: dt.datetime) -> str:
        # To the minute, with a 4-digit year, in both languages.
        return format_datetime(moment, format="HH:mm dd/MM/yyyy" if self.code == "vi"
                               else "MMM d, yyyy, HH:mm", tzinfo=moment.tzinfo,
                               locale=self.code)

    def yes_no(self, value: bool | None) -> str:
        return self.gettext(labels.UNKNOWN if value is None else
                            labels.YES if value else labels.NO)

    # The keys of the report model, in words.
    def action(self, key: str) -> str:
        return self.gettext(labels.ACTIONS.get(key, key))

    def role(self, key: str | None) -> str:
        return "–" if not key else self.gettext(labels.ROLES.get(key, key))

    def windows11(self, key: str) -> str:
        return self.gettext(labels.WINDOWS11_STATES.get(key, key))

    def finding(self, key: str) -> str:
        return self.gettext(labels.FINDING_KINDS.get(key, key))

    def blocker(self, key: str) -> str:
        return self.gettext(labels.BLOCKERS.get(key, key))

    def reason_part(self, key: str) -> str:
        return self.gettext(labels.REASON_PARTS.get(key, key))
