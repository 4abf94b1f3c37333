"""The procurement report as an Excel workbook: a province summary, one sheet per commune,
the links and routers, what the budget does not fund, the unmatched asset rows and the
method.

Cells hold numbers and dates (an officer sums, sorts and filters them); only texts are
translated.

openpyxl writes the summary (with its charts) and the method. The table sheets (a commune
each, the links, the not funded, the unmatched: up to 130,000 device rows) are written
here as sheet XML, straight into the package, and added to openpyxl's workbook.xml, its
relationships and content types. openpyxl (without lxml) spends some 50 µs a cell and
several ms a sheet: 3,300 communes and 130,000 devices x 31 columns took two minutes in
its write-only mode; this way about 15 s.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import itertools
import math
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink

from collector.reports import labels
from collector.reports.i18n import Lang
from collector.reports.model import (
    IN_PLACE,
    REPLACE,
    WINDOWS11_STATES,
    Commune,
    DeviceLine,
    Evidence,
    Report,
    Settings,
    SiteLine,
)

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

# Cell kinds: how a column's values are styled (XLSX) and written (CSV).
TEXT, INT, FLOAT, DATE, MONEY = "text", "int", "float", "date", "money"

MONEY_FORMAT = '#,##0 "₫"'
DATE_FORMATS = {"vi": "dd/mm/yyyy", "en": "d mmm yyyy"}
DATETIME_FORMATS = {"vi": "dd/mm/yyyy hh:mm", "en": "d mmm yyyy hh:mm"}
SHEET_TITLE_MAX = 31  # Excel's limit
FORBIDDEN_IN_TITLE = re.compile(r"[\[\]:*?/\\]")
RESERVED_TITLES = ("history",)  # Excel keeps "History" for its change tracking
COST_CHART_COMMUNES = 30  # the costliest communes charted; 3,300 bars would be a smear
MAX_WIDTH = 50
KIND_WIDTHS = {INT: 8, FLOAT: 9, DATE: 12, MONEY: 15}
DISK_KINDS = {"hdd": "HDD", "ssd": "SSD", "nvme": "NVMe"}
EXCEL_EPOCH = dt.date(1899, 12, 30).toordinal()  # day 0 of Excel's 1900 date system
CELL_TEXT_MAX = 32_767  # Excel's limit



@dataclass(frozen=True)
class Column:
    """One column of a table: its heading (an English label), its kind, its value."""

    header: str
    kind: str
    value: Callable[[Any, Lang], Any]


# ---- the values of the table columns (shared with render_csv) ----


@functools.lru_cache(maxsize=1024)
def _points(code: str, points: float) -> str:
    # Babel takes tens of µs a call, and 130,000 devices repeat the same few points.
    return Lang(code).number(points, 1)


def _joined(keys: Iterable[str], word: Callable[[str], str]) -> str | None:
    return ", ".join(word(k) for k in keys) or None


def _smart(evidence: Evidence, lang: Lang) -> str | None:
    if evidence.smart_passed is None:
        return None
    return lang.gettext(labels.PASSED if evidence.smart_passed else labels.FAILED)


def _born_from(line: DeviceLine, lang: Lang) -> str | None:
    words = {"purchase": labels.FROM_PURCHASE, "bios": labels.FROM_BIOS}
    return lang.gettext(words[line.born_from]) if line.born_from in words else line.born_from


def why_text(line: DeviceLine, lang: Lang) -> str | None:
    """"failure risk: Disk /dev/sda: 24 reallocated (+20); age: ..." in the report's
    language (the rules write each reason in English and Vietnamese)."""
    return "; ".join(f"{lang.reason_part(r.part)}: {r.text(lang.code)} "
                     f"(+{_points(lang.code, r.points)})"
                     for r in line.why) or None


DEVICE_COLUMNS: tuple[Column, ...] = (
    Column(labels.RANK, INT, lambda d, lang: d.rank),
    Column(labels.DEVICE, TEXT, lambda d, lang: d.device),
    Column(labels.HOSTNAME, TEXT, lambda d, lang: d.hostname),
    Column(labels.ROLE, TEXT, lambda d, lang: lang.role(d.role) if d.role else None),
    Column(labels.AGE, FLOAT, lambda d, lang: d.age_years),
    Column(labels.BORN, DATE, lambda d, lang: d.born),
    Column(labels.BORN_FROM, TEXT, _born_from),
    Column(labels.OS, TEXT, lambda d, lang: d.os),
    Column(labels.OS_EOS, TEXT, lambda d, lang: lang.yes_no(d.os_end_of_support)),
    Column(labels.WINDOWS11, TEXT, lambda d, lang: lang.windows11(d.windows11)),
    Column(labels.WINDOWS11_BLOCKERS, TEXT,
           lambda d, lang: _joined(d.windows11_blockers, lang.blocker)),
    Column(labels.CPU, TEXT, lambda d, lang: d.cpu_model),
    Column(labels.RAM, FLOAT, lambda d, lang: d.ram_gb),
    Column(labels.DISK, TEXT, lambda d, lang: DISK_KINDS.get(d.disk_kind or "", d.disk_kind)),
    Column(labels.SCORE, FLOAT, lambda d, lang: d.score),
    Column(labels.ACTION, TEXT, lambda d, lang: lang.action(d.action)),
    Column(labels.COST, MONEY, lambda d, lang: d.cost_vnd),
    Column(labels.FUNDED, TEXT, lambda d, lang: lang.yes_no(d.funded)),
    Column(labels.CPU_P95, FLOAT, lambda d, lang: d.evidence.cpu_p95),
    Column(labels.MEM_P95, FLOAT, lambda d, lang: d.evidence.mem_p95),
    Column(labels.MEM_HOURS, FLOAT, lambda d, lang: d.evidence.mem_pressure_hours),
    Column(labels.SWAP, FLOAT, lambda d, lang: d.evidence.swap_share),
    Column(labels.DISK_FULL, FLOAT, lambda d, lang: d.evidence.disk_used_max),
    Column(labels.REBOOTS, INT, lambda d, lang: d.evidence.unexpected_reboots),
    Column(labels.REALLOCATED, INT, lambda d, lang: d.evidence.smart_reallocated),
    Column(labels.PENDING, INT, lambda d, lang: d.evidence.smart_pending),
    Column(labels.SMART, TEXT, lambda d, lang: _smart(d.evidence, lang)),
    Column(labels.FINDINGS, TEXT, lambda d, lang: _joined(d.evidence.findings, lang.finding)),
    Column(labels.WHY, TEXT, why_text),
    Column(labels.ASSET_TAG, TEXT, lambda d, lang: d.asset_tag),
    Column(labels.LOCATION, TEXT, lambda d, lang: d.location),
)

SITE_COLUMNS: tuple[Column, ...] = (
    Column(labels.COMMUNE, TEXT, lambda s, lang: s.site_name),
    Column(labels.SITE, TEXT, lambda s, lang: s.site),
    Column(labels.ACTION, TEXT, lambda s, lang: lang.action(s.action)),
    Column(labels.COST, MONEY, lambda s, lang: s.cost_vnd),
    Column(labels.FUNDED, TEXT, lambda s, lang: lang.yes_no(s.funded)),
    Column(labels.SCORE, FLOAT, lambda s, lang: s.score),
    Column(labels.FINDINGS, TEXT, lambda s, lang: _joined(s.findings, lang.finding)),
    Column(labels.RTT, FLOAT, lambda s, lang: s.rtt_p95_ms),
    Column(labels.LOSS, FLOAT, lambda s, lang: s.loss_percent),
    Column(labels.THROUGHPUT, FLOAT, lambda s, lang: s.throughput_mbit),
    Column(labels.ROUTER, TEXT, lambda s, lang: s.router),
)


@dataclass(frozen=True)
class _Unfunded:
    """A device or site line the budget does not fund, with its commune's name."""

    line: DeviceLine | SiteLine
    site_name: str

    @property
    def rank(self) -> int | None:
        return self.line.rank if isinstance(self.line, DeviceLine) else None

    @property
    def device(self) -> str | None:
        if isinstance(self.line, DeviceLine):
            return self.line.device
        return self.line.router if self.line.action == "replace the router" else None

    @property
    def hostname(self) -> str | None:
        return self.line.hostname if isinstance(self.line, DeviceLine) else None


UNFUNDED_COLUMNS: tuple[Column, ...] = (
    Column(labels.RANK, INT, lambda x, lang: x.rank),
    Column(labels.COMMUNE, TEXT, lambda x, lang: x.site_name),
    Column(labels.SITE, TEXT, lambda x, lang: x.line.site),
    Column(labels.DEVICE, TEXT, lambda x, lang: x.device),
    Column(labels.HOSTNAME, TEXT, lambda x, lang: x.hostname),
    Column(labels.ACTION, TEXT, lambda x, lang: lang.action(x.line.action)),
    Column(labels.COST, MONEY, lambda x, lang: x.line.cost_vnd),
    Column(labels.SCORE, FLOAT, lambda x, lang: x.line.score),
)

UNMATCHED_COLUMNS: tuple[Column, ...] = (
    Column(labels.LINE, INT, lambda a, lang: a.line),
    Column(labels.ROW, TEXT, lambda a, lang: a.text),
    Column(labels.REASON, TEXT, lambda a, lang: lang.gettext(a.why)),
)


def column_values(columns: Sequence[Column], line: Any, lang: Lang) -> list[Any]:
    return [c.value(line, lang) for c in columns]


def unfunded_lines(report: Report) -> list[_Unfunded]:
    names = {c.site: c.name for c in report.communes}
    return [_Unfunded(x, x.site_name if isinstance(x, SiteLine) else names.get(x.site, x.site))
            for x in report.unfunded]


# ---- sheet titles ----


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2  # Excel counts UTF-16 units


def _fit(text: str, limit: int) -> str:
    """text cut to limit, at a space if one is near (a word cut in half reads badly)."""
    if _utf16_len(text) <= limit:
        return text
    cut = text
    while _utf16_len(cut) > limit:
        cut = cut[:-1]
    space = cut.rfind(" ")
    if not text[len(cut)].isspace() and space >= limit * 2 // 3:
        cut = cut[:space]
    return cut.rstrip()


def sheet_title(name: str, taken: set[str]) -> str:
    """A valid sheet title for name, not in taken (compared case-blind, as Excel does),
    then added to taken: forbidden characters become "-", at most 31 characters, a
    " (2)" suffix when two names collide."""
    base = FORBIDDEN_IN_TITLE.sub("-", unicodedata.normalize("NFC", name))
    base = ILLEGAL_CHARACTERS_RE.sub("", base).strip().strip("'").strip() or "-"
    title, n = _fit(base, SHEET_TITLE_MAX), 2
    while title.casefold() in taken:
        suffix = f" ({n})"
        title, n = _fit(base, SHEET_TITLE_MAX - len(suffix)) + suffix, n + 1
    taken.add(title.casefold())
    return title


@dataclass
class _Titles:
    summary: str
    sites: str
    unfunded: str
    unmatched: str
    method: str
    communes: dict[str, str]  # site -> title


def _titles(report: Report, lang: Lang) -> _Titles:
    # The fixed sheets first, so that a commune named like one gets the suffix.
    taken: set[str] = set(RESERVED_TITLES)
    fixed = [sheet_title(lang.gettext(t), taken) for t in
             (labels.SUMMARY, labels.SITES_SHEET, labels.UNFUNDED, labels.UNMATCHED_SHEET,
              labels.METHOD)]
    communes = {c.site: sheet_title(c.name or c.site, taken) for c in report.communes}
    return _Titles(*fixed, communes=communes)


# ---- widths ----


def widths(headers: Sequence[str], kinds: Sequence[str],
           rows: Iterable[Sequence[Any]]) -> list[float]:
    """Column widths (in characters) that fit the values; long headings wrap."""
    result = [float(max(KIND_WIDTHS.get(k, 6), min(len(h), 16)))
              for h, k in zip(headers, kinds)]
    texts = [i for i, k in enumerate(kinds) if k == TEXT]
    for values in rows:
        for i in texts:
            value = values[i]
            if value is not None and len(str(value)) > result[i]:
                result[i] = len(str(value))
    return [min(w + 2, MAX_WIDTH) for w in result]


def _merge_widths(*lists: Sequence[float]) -> list[float]:
    size = max(len(w) for w in lists)
    return [max((w[i] for w in lists if i < len(w)), default=8) for i in range(size)]


def _header_height(headers: Sequence[str], column_widths: Sequence[float]) -> float | None:
    """The height of a heading row whose texts wrap to the widths (None: one line)."""
    lines = max((math.ceil(len(h) / max(w - 2, 1)) for h, w in zip(headers, column_widths)),
                default=1)
    return 15.0 * lines if lines > 1 else None


# ---- openpyxl sheets: the summary and the method ----


class _Sheet:
    """A write-only worksheet and the last row written (it cannot go back)."""

    def __init__(self, wb: Workbook, title: str, lang: Lang) -> None:
        self.ws: WriteOnlyWorksheet = wb.create_sheet(title)
        self.row = 0
        self.formats = {DATE: DATE_FORMATS[lang.code], MONEY: MONEY_FORMAT}
        self.bold = Font(bold=True)
        self.wrap = Alignment(wrap_text=True, vertical="top")

    def set_widths(self, column_widths: Sequence[float]) -> None:
        for index, width in enumerate(column_widths, 1):
            self.ws.column_dimensions[get_column_letter(index)].width = width

    def cell(self, value: Any, kind: str = TEXT, *, bold: bool = False,
             number_format: str | None = None) -> Any:
        number_format = number_format or self.formats.get(kind)
        if value is None or not (number_format or bold):
            return _rounded(value, kind)  # a plain value: no cell object
        cell = WriteOnlyCell(self.ws, value)
        if number_format:
            cell.number_format = number_format
        if bold:
            cell.font = self.bold
        return cell

    def append(self, values: Iterable[Any], height: float | None = None) -> None:
        if height:
            self.ws.row_dimensions[self.row + 1].height = height
        self.ws.append(list(values))
        self.row += 1

    def header(self, texts: Sequence[str], column_widths: Sequence[float]) -> int:
        """A bold heading row, wrapped to the column widths; returns its row."""
        cells = []
        for text in texts:
            cell = WriteOnlyCell(self.ws, text)
            cell.font, cell.alignment = self.bold, self.wrap
            cells.append(cell)
        self.append(cells, height=_header_height(texts, column_widths))
        return self.row

    def rows(self, kinds: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        for values in rows:
            self.append(self.cell(v, k) for v, k in zip(values, kinds))

    def table(self, headers: Sequence[str], kinds: Sequence[str],
              rows: Sequence[Sequence[Any]], column_widths: Sequence[float]) -> tuple[int, int]:
        """Heading, rows and an auto-filter over them; returns (heading row, last row)."""
        first = self.header(headers, column_widths)
        self.rows(kinds, rows)
        self.ws.auto_filter.ref = f"A{first}:{get_column_letter(len(headers))}{self.row}"
        return first, self.row


def _rounded(value: Any, kind: str) -> Any:
    # Measurements to one decimal in the General format, as in the table sheets: 97.0
    # reads fine as 97, and a "0.0" format would style a million cells.
    return round(value, 1) if kind == FLOAT and value is not None else value


def _counts_rows(report: Report, lang: Lang) -> tuple[list[list[Any]], list[str], range]:
    """The province counts as (label, value) rows, their kinds, and the age band rows."""
    c, gt = report.summary, lang.gettext
    rows: list[list[Any]] = [[gt(labels.DEVICES), c.devices]]
    bands = range(len(rows), len(rows) + len(c.by_age_band))
    rows += [[gt(name), n] for name, n in zip(labels.AGE_BAND_NAMES, c.by_age_band)]
    rows += [[gt(labels.BEYOND_REFRESH), c.beyond_refresh_age],
             [gt(labels.BEYOND_LIFE), c.beyond_useful_life],
             [gt(labels.OS_EOS), c.os_end_of_support],
             [gt(labels.FAILING), c.failing], [gt(labels.AT_RISK), c.at_risk]]
    windows11 = dict(c.windows11)
    rows += [[f"{gt(labels.WINDOWS11)}: {lang.windows11(s)}", windows11.get(s, 0)]
             for s in WINDOWS11_STATES]
    rows += [[f"{gt(labels.ACTION)}: {lang.action(a)}", n] for a, n in c.actions]
    kinds = [INT] * len(rows)
    rows += [[gt(labels.TOTAL_COST), c.cost_vnd], [gt(labels.FUNDED_COST), c.funded_vnd],
             [gt(labels.NOT_FUNDED), c.cost_vnd - c.funded_vnd]]
    return rows, kinds + [MONEY] * 3, bands


def _commune_rows(report: Report, lang: Lang) -> tuple[list[str], list[str], list[list[Any]]]:
    gt = lang.gettext
    headers = [gt(labels.COMMUNE), gt(labels.SITE), gt(labels.DEVICES), gt(labels.FAILING),
               gt(labels.AT_RISK), f"{gt(labels.WINDOWS11)}: {lang.windows11(IN_PLACE)}",
               f"{gt(labels.WINDOWS11)}: {lang.windows11(REPLACE)}", gt(labels.COST),
               gt(labels.FUNDED_COST)]
    kinds = [TEXT, TEXT, INT, INT, INT, INT, INT, MONEY, MONEY]

    def row(commune: Commune) -> list[Any]:
        c, windows11 = commune.counts, dict(commune.counts.windows11)
        return [commune.name or commune.site, commune.site, c.devices, c.failing, c.at_risk,
                windows11.get(IN_PLACE, 0), windows11.get(REPLACE, 0), c.cost_vnd,
                c.funded_vnd]

    # Costliest first: what the province must fund first, and what the chart shows.
    communes = sorted(report.communes, key=lambda c: (-c.counts.cost_vnd, c.name))
    return headers, kinds, [row(c) for c in communes]


COMMUNE_COST_COLUMN = 8  # of the per-commune table, for the chart


def _info_rows(report: Report, lang: Lang, sheet: _Sheet) -> None:
    gt, budget = lang.gettext, report.settings.budget_vnd
    title = WriteOnlyCell(sheet.ws, gt(labels.TITLE))
    title.font = Font(bold=True, size=14)
    sheet.append([title])
    sheet.append([sheet.cell(gt(labels.PROVINCE), bold=True), report.province or None])
    sheet.append([sheet.cell(gt(labels.PERIOD), bold=True),
                  sheet.cell(report.period_start, DATE), sheet.cell(report.period_end, DATE)])
    # Excel has no time zones: the local (Vietnam) time the report carries.
    sheet.append([sheet.cell(gt(labels.GENERATED), bold=True),
                  sheet.cell(report.generated.replace(tzinfo=None),
                             number_format=DATETIME_FORMATS[lang.code])])
    sheet.append([sheet.cell(gt(labels.BUDGET), bold=True),
                  gt(labels.NO_BUDGET) if budget is None else sheet.cell(budget, MONEY)])
    sheet.append([])


def _linked(sheet: _Sheet, rows: list[list[Any]], titles: _Titles) -> list[list[Any]]:
    """The commune names as links to their sheets (3,300 sheets are hard to find)."""
    font = Font(color="0563C1", underline="single")
    for row in rows:
        target = titles.communes[row[1]].replace("'", "''")
        cell = WriteOnlyCell(sheet.ws, row[0])
        cell.hyperlink = Hyperlink(ref="", location=f"'{target}'!A1", display=row[0])
        cell.font = font
        row[0] = cell
    return rows


def _bar_chart(title: str, horizontal: bool, width: float, height: float) -> BarChart:
    chart = BarChart()
    chart.type = "bar" if horizontal else "col"
    chart.title, chart.legend = title, None
    chart.width, chart.height = width, height
    # openpyxl 3.1 leaves the axes' delete unset, which Excel takes as hidden axes.
    chart.x_axis.delete = chart.y_axis.delete = False
    return chart


def _write_summary(wb: Workbook, report: Report, lang: Lang, titles: _Titles) -> None:
    """Title, the province counts, the per-commune table and two charts. No frozen pane:
    the commune table sits below the counts, and freezing its heading would freeze half
    the screen; its auto-filter is the sheet's one filter."""
    sheet = _Sheet(wb, titles.summary, lang)
    counts, counts_kinds, bands = _counts_rows(report, lang)
    counts_headers = [lang.gettext(labels.SUMMARY), lang.gettext(labels.COUNT)]
    headers, kinds, communes = _commune_rows(report, lang)
    column_widths = _merge_widths(widths(counts_headers, [TEXT, MONEY], counts),
                                  widths(headers, kinds, communes))
    sheet.set_widths(column_widths)
    _info_rows(report, lang, sheet)
    counts_first = sheet.header(counts_headers, column_widths)
    sheet.rows(counts_kinds, counts)
    sheet.append([])
    communes_first, _ = sheet.table(headers, kinds, _linked(sheet, communes, titles),
                                    column_widths)
    anchor = get_column_letter(len(headers) + 2)

    ages = _bar_chart(lang.gettext(labels.AGE_CHART), False, 12, 7.5)
    first, last = counts_first + 1 + bands.start, counts_first + bands.stop
    ages.add_data(Reference(sheet.ws, min_col=2, min_row=first, max_row=last))
    ages.set_categories(Reference(sheet.ws, min_col=1, min_row=first, max_row=last))
    sheet.ws.add_chart(ages, f"{anchor}1")

    charted = min(len(communes), COST_CHART_COMMUNES)
    if charted:
        costs = _bar_chart(lang.gettext(labels.COST_CHART), True, 18, 3 + 0.6 * charted)
        first, last = communes_first + 1, communes_first + charted
        costs.add_data(Reference(sheet.ws, min_col=COMMUNE_COST_COLUMN, min_row=first,
                                 max_row=last))
        costs.set_categories(Reference(sheet.ws, min_col=1, min_row=first, max_row=last))
        costs.y_axis.numFmt = MONEY_FORMAT
        costs.x_axis.scaling.orientation = "maxMin"  # the costliest at the top
        sheet.ws.add_chart(costs, f"{anchor}17")
    # Left open: write-only sheets write their charts when closed, at save.


def _settings_rows(settings: Settings, lang: Lang) -> list[tuple[str, Any, str]]:
    """(label, value, kind) of what the report was made with."""
    gt = lang.gettext
    budget = ((gt(labels.NO_BUDGET), TEXT) if settings.budget_vnd is None
              else (settings.budget_vnd, MONEY))
    rows = [(gt(labels.REFRESH_AGE), settings.refresh_age_years, FLOAT),
            (gt(labels.USEFUL_LIFE), settings.useful_life_years, FLOAT),
            (gt(labels.BUDGET), *budget)]
    # The weights by their names in the rules: the paragraphs below say what they weigh.
    rows += [(gt(labels.WEIGHTS.get(key, key)), value, FLOAT)
             for key, value in settings.weights]
    rows += [(gt(label), ", ".join(values), TEXT) for label, values in
             ((labels.SITE, settings.sites), (labels.ROLE, settings.roles)) if values]
    if settings.assets_file:
        rows.append((gt(labels.ASSETS_FILE), settings.assets_file, TEXT))
    return rows


class _Placeholders(dict):
    def __missing__(self, key: str) -> str:
        return "–"  # a weight the settings lack: the paragraph still reads


def method_paragraphs(report: Report, lang: Lang) -> list[str]:
    """labels.METHOD_TEXT translated, its {placeholders} filled from the settings."""
    settings = report.settings
    values = _Placeholders({k: lang.number(v, 1) for k, v in settings.weights})
    values.update(refresh=lang.number(settings.refresh_age_years, 1),
                  useful_life=lang.number(settings.useful_life_years, 1),
                  start=lang.date(report.period_start), end=lang.date(report.period_end))
    return [lang.gettext(text).format_map(values) for text in labels.METHOD_TEXT]


def _write_method(wb: Workbook, report: Report, lang: Lang, title: str) -> None:
    """The method's paragraphs (they speak of "the unit prices below"), each merged across
    three columns and as tall as its wrapped lines (Excel does not grow merged rows by
    itself); then the unit prices and the settings. No frozen pane: it would hold the
    paragraphs, a screen of text."""
    sheet, gt = _Sheet(wb, title, lang), lang.gettext
    prices = [[lang.action(a), p] for a, p in report.settings.prices_vnd]
    price_headers = [gt(labels.ACTION), gt(labels.UNIT_PRICE)]
    settings = _settings_rows(report.settings, lang)
    settings_headers = [gt(labels.SETTING), gt(labels.VALUE)]
    column_widths = _merge_widths(
        widths(price_headers, [TEXT, MONEY], prices),
        widths(settings_headers, [TEXT, MONEY], [[label, None] for label, _, _ in settings]),
        [30, 18, 45])
    sheet.set_widths(column_widths)
    chars_per_line = sum(column_widths[:3]) * 0.9
    for paragraph in method_paragraphs(report, lang):
        cell = WriteOnlyCell(sheet.ws, paragraph)
        cell.alignment = sheet.wrap
        sheet.append([cell], height=15 * math.ceil(len(paragraph) / chars_per_line) + 4)
        sheet.ws.merged_cells.add(f"A{sheet.row}:C{sheet.row}")
    sheet.append([])
    sheet.table(price_headers, [TEXT, MONEY], prices, column_widths)
    sheet.append([])
    sheet.header(settings_headers, column_widths)
    for label, value, kind in settings:
        sheet.append([label, sheet.cell(value, kind)])
    sheet.ws.close()


# ---- the table sheets, written here as sheet XML ----

SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
WORKSHEET_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
WORKSHEET_CONTENT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
WIDTH_SAMPLE = 2_000  # rows a table's column widths are measured on
CHUNK = 500  # rows encoded and compressed at a time
TABLE_COMPRESSION = 1  # zlib level of the table sheets


@dataclass(frozen=True)
class _Table:
    """A sheet holding one table of lines, its heading row frozen."""

    title: str
    columns: Sequence[Column]
    lines: Sequence[Any]
    frozen_columns: int = 0  # frozen at the left, besides the heading row

    def part(self, index: int) -> str:
        return f"xl/worksheets/table{index}.xml"

    def filter_ref(self) -> str:
        last = get_column_letter(len(self.columns))
        return f"A1:{last}{max(len(self.lines), 1) + 1}"  # "Nothing to list." when empty


@dataclass(frozen=True)
class _Styles:
    """Style ids of the table cells, registered through openpyxl (its styles.xml holds
    them)."""

    header: int
    date: int
    money: int

    @classmethod
    def register(cls, wb: Workbook, lang: Lang) -> _Styles:
        probe = wb.create_sheet("styles")

        def style(**attributes: Any) -> int:
            cell = WriteOnlyCell(probe)
            for name, value in attributes.items():
                setattr(cell, name, value)
            return cell.style_id

        styles = cls(header=style(font=Font(bold=True),
                                  alignment=Alignment(wrap_text=True, vertical="top")),
                     date=style(number_format=DATE_FORMATS[lang.code]),
                     money=style(number_format=MONEY_FORMAT))
        wb.remove(probe)
        return styles


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


@functools.lru_cache(maxsize=4096)
def _text_xml(text: str) -> str:
    # Cached: roles, actions, yes/no and CPU models repeat through 130,000 rows.
    text = escape(text[:CELL_TEXT_MAX])
    if ILLEGAL_CHARACTERS_RE.search(text):
        text = ILLEGAL_CHARACTERS_RE.sub("", text)  # control characters are not XML
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f' t="inlineStr"><is><t{space}>{text}</t></is></c>'


def _pane(table: _Table) -> str:
    left = get_column_letter(table.frozen_columns + 1)
    if table.frozen_columns:
        return (f'<pane xSplit="{table.frozen_columns}" ySplit="1" topLeftCell="{left}2" '
                'activePane="bottomRight" state="frozen"/><selection pane="topRight"/>'
                '<selection pane="bottomLeft"/>'
                f'<selection pane="bottomRight" activeCell="{left}2" sqref="{left}2"/>')
    return ('<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>')


class _TableWriter:
    """Writes a table sheet as XML: openpyxl spends some 50 µs on each cell, and 130,000
    devices x 30 columns would take minutes."""

    def __init__(self, lang: Lang, styles: _Styles) -> None:
        self.lang, self.styles = lang, styles

    def write(self, table: _Table, out: IO[bytes]) -> None:
        lang = self.lang
        headers = [lang.gettext(c.header) for c in table.columns]
        kinds = [c.kind for c in table.columns]
        rows: Iterable[list[Any]] = (column_values(table.columns, line, lang)
                                     for line in table.lines)
        first = list(itertools.islice(rows, WIDTH_SAMPLE))
        if not first:
            first = [[lang.gettext(labels.NOTHING)] + [None] * (len(kinds) - 1)]
            kinds = [TEXT] * len(kinds)
        column_widths = widths(headers, kinds, first)
        cols = "".join(f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
                       for i, w in enumerate(column_widths, 1))
        out.write(f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                  f'<worksheet xmlns="{SHEET_NS}"><sheetViews><sheetView workbookViewId="0">'
                  f'{_pane(table)}</sheetView></sheetViews>'
                  '<sheetFormatPr defaultRowHeight="15"/>'
                  f'<cols>{cols}</cols><sheetData>'.encode())
        out.write(self._header(headers, column_widths).encode())
        row = 2
        for chunk in itertools.chain([first], _chunks(rows, CHUNK)):
            out.write(self._rows(kinds, chunk, row).encode())
            row += len(chunk)
        out.write(f'</sheetData><autoFilter ref="{table.filter_ref()}"/>'
                  '<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" '
                  'footer="0.5"/></worksheet>'.encode())

    def _header(self, headers: Sequence[str], column_widths: Sequence[float]) -> str:
        height = _header_height(headers, column_widths)
        attributes = f' ht="{height}" customHeight="1"' if height else ""
        cells = "".join(f'<c r="{get_column_letter(i)}1" s="{self.styles.header}"'
                        f"{_text_xml(h)}" for i, h in enumerate(headers, 1))
        return f'<row r="1"{attributes}>{cells}</row>'

    def _rows(self, kinds: Sequence[str], rows: Sequence[Sequence[Any]], first: int) -> str:
        letters = [get_column_letter(i) for i in range(1, len(kinds) + 1)]
        date, money = self.styles.date, self.styles.money
        out = []
        for index, values in enumerate(rows, first):
            out.append(f'<row r="{index}">')
            for letter, kind, value in zip(letters, kinds, values):
                if value is None:
                    continue
                if kind == TEXT:
                    out.append(f'<c r="{letter}{index}"{_text_xml(str(value))}')
                elif kind == DATE:  # a date: a day number, no time of day
                    out.append(f'<c r="{letter}{index}" s="{date}">'
                               f"<v>{value.toordinal() - EXCEL_EPOCH}</v></c>")
                elif kind == MONEY:
                    out.append(f'<c r="{letter}{index}" s="{money}"><v>{int(value)}</v></c>')
                elif kind == INT:
                    out.append(f'<c r="{letter}{index}"><v>{int(value)}</v></c>')
                elif math.isfinite(value):  # FLOAT; Excel has no NaN
                    out.append(f'<c r="{letter}{index}"><v>{round(float(value), 1)}</v></c>')
            out.append("</row>")
        return "".join(out)


def _chunks(rows: Iterable[list[Any]], size: int) -> Iterator[list[list[Any]]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class _Package:
    """openpyxl's workbook (the summary and the method) with the table sheets added
    between them: its sheet list, defined names, relationships and content types."""

    def __init__(self, tables: Sequence[_Table]) -> None:
        self.tables = tables

    def patch(self, name: str, xml: bytes) -> bytes:
        patches = {"xl/workbook.xml": self._workbook,
                   "xl/_rels/workbook.xml.rels": self._relationships,
                   "[Content_Types].xml": self._content_types}
        return patches[name](xml.decode()).encode() if name in patches else xml

    def _workbook(self, xml: str) -> str:
        sheets = "".join(f'<sheet name="{_attr(t.title)}" sheetId="{1000 + i}" '
                         f'state="visible" r:id="rIdTable{i}"/>'
                         for i, t in enumerate(self.tables, 1))
        # After the summary, openpyxl's first sheet; its other sheets move right.
        first = re.search(r"<sheet\s[^>]*/>", xml)
        if first is None:
            raise RuntimeError("openpyxl wrote a workbook.xml without sheets")
        xml = xml[:first.end()] + sheets + xml[first.end():]
        xml = re.sub(r'localSheetId="(\d+)"', self._shifted, xml)
        names = "".join(f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" '
                        f"hidden=\"1\">{escape(_absolute(t))}</definedName>"
                        for i, t in enumerate(self.tables, 1))
        if "<definedNames>" in xml:
            return xml.replace("<definedNames>", "<definedNames>" + names, 1)
        return xml.replace("</sheets>", f"</sheets><definedNames>{names}</definedNames>", 1)

    def _shifted(self, match: re.Match[str]) -> str:
        index = int(match.group(1))
        return f'localSheetId="{index + len(self.tables) if index else 0}"'

    def _relationships(self, xml: str) -> str:
        rels = "".join(f'<Relationship Type="{WORKSHEET_TYPE}" Target="/{t.part(i)}" '
                       f'Id="rIdTable{i}"/>' for i, t in enumerate(self.tables, 1))
        return xml.replace("</Relationships>", rels + "</Relationships>", 1)

    def _content_types(self, xml: str) -> str:
        parts = "".join(f'<Override PartName="/{t.part(i)}" ContentType="{WORKSHEET_CONTENT}"/>'
                        for i, t in enumerate(self.tables, 1))
        return xml.replace("</Types>", parts + "</Types>", 1)


def _absolute(table: _Table) -> str:
    """'Sheet'!$A$1:$AE$41, the filter range as Excel names it."""
    start, end = table.filter_ref().split(":")
    split = re.compile(r"([A-Z]+)(\d+)")
    start, end = (split.sub(r"$\1$\2", ref) for ref in (start, end))
    return "'{}'!{}:{}".format(table.title.replace("'", "''"), start, end)


def _tables(report: Report, titles: _Titles) -> list[_Table]:
    # Rank and device stay in view while scrolling across a commune's 32 columns.
    tables = [_Table(titles.communes[c.site], DEVICE_COLUMNS, c.devices, frozen_columns=2)
              for c in report.communes]
    tables.append(_Table(titles.sites, SITE_COLUMNS, report.sites))
    if report.settings.budget_vnd is not None:
        tables.append(_Table(titles.unfunded, UNFUNDED_COLUMNS, unfunded_lines(report)))
    if report.unmatched_assets:
        tables.append(_Table(titles.unmatched, UNMATCHED_COLUMNS, report.unmatched_assets))
    return tables


def write_xlsx(report: Report, lang: Lang, path: Path) -> Path:
    """Writes the report as an .xlsx workbook at path (replaced whole, never left half
    written); returns path."""
    path = Path(path)
    titles = _titles(report, lang)
    tables = _tables(report, titles)
    wb = Workbook(write_only=True)
    writer = _TableWriter(lang, _Styles.register(wb, lang))
    _write_summary(wb, report, lang, titles)
    _write_method(wb, report, lang, titles.method)
    built = io.BytesIO()
    wb.save(built)  # the summary and the method; small whatever the province

    package = _Package(tables)
    partial = path.with_name(f".{path.name}.partial")
    try:
        # Compression level 1 for the table sheets (200 MB of XML for a country): a
        # third of the time of the default level, for a file a third larger.
        with zipfile.ZipFile(built) as source, \
                zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED,
                                compresslevel=TABLE_COMPRESSION) as target:
            for info in source.infolist():
                target.writestr(info, package.patch(info.filename, source.read(info)))
            for index, table in enumerate(tables, 1):
                # By name: the entry gets the time of day and the archive's level.
                with target.open(table.part(index), "w") as out:
                    writer.write(table, out)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
