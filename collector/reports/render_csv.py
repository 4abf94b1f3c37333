"""The procurement report as CSV, for other programs: one row per device (or per link or
router line), the same columns as the workbook's sheets.

UTF-8 with a byte order mark, so that Excel on Windows reads the Vietnamese as such;
commas between fields. Numbers are written plainly (15000000, 14.6: a dot, no grouping)
and dates as ISO 8601 (2012-05-03); only texts are translated.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from collector.reports import labels
from collector.reports.i18n import Lang
from collector.reports.model import Report
from collector.reports.render_xlsx import (
    DEVICE_COLUMNS,
    SITE_COLUMNS,
    TEXT,
    Column,
    column_values,
)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(value: Any) -> Any:
    """A text that Excel would run as a formula (an asset tag "=HYPERLINK(...)" from the
    register) gets a leading apostrophe, as OWASP advises for CSV; numbers stay."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _write(path: Path, headers: Sequence[str], rows: Iterable[Sequence[Any]],
           texts: Sequence[int] | None = None) -> Path:
    """`texts`: the indexes of the only columns that may hold text (None: any)."""
    # The csv module writes None as an empty field, numbers with str() (15000000, 14.6)
    # and dates with str() too, which is ISO 8601.
    path = Path(path)
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(headers)
        if texts is None:
            writer.writerows([_safe(value) for value in row] for row in rows)
        else:  # 130,000 rows x 33 columns: only the text ones looked at
            writer.writerows(_safe_texts(row, texts) for row in rows)
    return path


def _safe_texts(row: list[Any], texts: Sequence[int]) -> list[Any]:
    for index in texts:
        value = row[index]
        if isinstance(value, str) and value.startswith(FORMULA_START):
            row[index] = "'" + value
    return row


def _headers(columns: Sequence[Column], lang: Lang) -> list[str]:
    return [lang.gettext(c.header) for c in columns]


def write_csv(report: Report, lang: Lang, path: Path) -> Path:
    """Every device line of every commune, by rank, its commune's name and site first."""
    names = {c.site: c.name for c in report.communes}
    headers = [lang.gettext(labels.COMMUNE), lang.gettext(labels.SITE),
               *_headers(DEVICE_COLUMNS, lang)]
    rows = ([names.get(d.site, d.site), d.site, *column_values(DEVICE_COLUMNS, d, lang)]
            for d in report.devices())
    texts = [0, 1] + [i for i, c in enumerate(DEVICE_COLUMNS, 2) if c.kind == TEXT]
    return _write(path, headers, rows, texts)


def write_sites_csv(report: Report, lang: Lang, path: Path) -> Path:
    """The links and routers to upgrade, by priority."""
    rows = (column_values(SITE_COLUMNS, s, lang) for s in report.sites)
    return _write(path, _headers(SITE_COLUMNS, lang), rows)
