"""The report's language: its words (labels.py through the gettext catalog in locale/)
and how numbers, money and dates are written (Babel's CLDR data: "12.500.000 ₫" and
"27/11/2026" in Vietnamese, "₫12,500,000" and "Nov 27, 2026" in English)."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations

from collector.reports import labels
from cwatch.i18n import load_translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("vi", "en")


@functools.lru_cache(maxsize=4)
def _catalog(language: str) -> NullTranslations:
    return load_translations(LOCALE_DIR, language)


class Lang:
    """Words and formats for one language ("vi" or "en")."""

    def __init__(self, code: str) -> None:
        if code not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {code!r}")
        self.code = code
        self._translations = _catalog(code)

    def gettext(self, text: str) -> str:
        return self._translations.gettext(text)

    def money(self, vnd: int | float) -> str:
        return format_currency(vnd, "VND", locale=self.code)

    def number(self, value: float | int | None, decimals: int = 1) -> str:
        if value is None:
            return "–"
        pattern = "#,##0" + ("." + "#" * decimals if decimals else "")
        return format_decimal(value, format=pattern, locale=self.code)

    def date(self, day: dt.date | None) -> str:
        # Vietnamese offices write 27/11/2026; CLDR's short form has a 2-digit year.
        return "–" if day is None else format_date(
            day, format="dd/MM/yyyy" if self.code == "vi" else "medium", locale=self.code)

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
