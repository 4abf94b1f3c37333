"""The procurement report as an Excel workbook and as CSV (collector/reports/render_xlsx.py,
render_csv.py), read back with openpyxl and the csv module."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet
from report_samples import sample_report

from collector.reports import labels
from collector.reports.i18n import Lang
from collector.reports.model import Commune, Report
from collector.reports.render_csv import write_csv, write_sites_csv
from collector.reports.render_xlsx import FORBIDDEN_IN_TITLE, sheet_title, write_xlsx

VI = Lang("vi")
EN = Lang("en")


def _workbook(report: Report, lang: Lang, folder: Path) -> Workbook:
    return load_workbook(write_xlsx(report, lang, folder / "report.xlsx"))


@pytest.fixture(scope="module")
def vi_book(tmp_path_factory: pytest.TempPathFactory) -> Workbook:
    return _workbook(sample_report(), VI, tmp_path_factory.mktemp("vi"))


@pytest.fixture(scope="module")
def en_book(tmp_path_factory: pytest.TempPathFactory) -> Workbook:
    return _workbook(sample_report(), EN, tmp_path_factory.mktemp("en"))


def _sheet(book: Workbook, label: str, lang: Lang = VI) -> Worksheet | None:
    """The sheet titled by label (cut to Excel's 31 characters), or None."""
    text = lang.gettext(label)
    found = [ws for ws in book.worksheets if text.startswith(ws.title)]
    return found[0] if found else None


def _column(ws: Worksheet, header: str, lang: Lang = VI) -> list:
    """The cells under a heading of the first row."""
    headers = [c.value for c in ws[1]]
    index = headers.index(lang.gettext(header))
    return [row[index] for row in ws.iter_rows(min_row=2)]


def _row_after(ws: Worksheet, label: str, lang: Lang = VI):
    """The value beside a label of the first column."""
    for row in ws.iter_rows():
        if row[0].value == lang.gettext(label):
            return row[1].value
    raise AssertionError(f"no row {label!r} on {ws.title}")


# ---- the workbook ----


def test_sheets_come_in_order(vi_book: Workbook) -> None:
    names = vi_book.sheetnames
    assert names[0] == VI.gettext(labels.SUMMARY)
    assert names[1:3] == ["An Phước", "Bình Minh"]
    fixed = [labels.SITES_SHEET, labels.UNFUNDED, labels.UNMATCHED_SHEET, labels.METHOD]
    assert [_sheet(vi_book, label) for label in fixed] == vi_book.worksheets[3:]
    assert all(len(name) <= 31 for name in names)


def test_without_a_budget_nothing_is_unfunded(tmp_path: Path) -> None:
    book = _workbook(sample_report(budget=None), VI, tmp_path)
    assert _sheet(book, labels.UNFUNDED) is None
    assert _sheet(book, labels.SITES_SHEET) is not None
    method = _sheet(book, labels.METHOD)
    assert _row_after(method, labels.BUDGET) == VI.gettext(labels.NO_BUDGET)


def test_unmatched_assets_sheet_only_when_there_are_some(vi_book: Workbook,
                                                         tmp_path: Path) -> None:
    sheet = _sheet(vi_book, labels.UNMATCHED_SHEET)
    asset = sample_report().unmatched_assets[0]
    assert [c.value for c in sheet[2]] == [asset.line, asset.text, asset.why]
    report = dataclasses.replace(sample_report(), unmatched_assets=())
    assert _sheet(_workbook(report, VI, tmp_path), labels.UNMATCHED_SHEET) is None


def test_commune_sheet_lists_its_devices_by_rank_with_typed_cells(vi_book: Workbook) -> None:
    ws, devices = vi_book["An Phước"], sample_report().communes[0].devices
    ranks = [c.value for c in _column(ws, labels.RANK)]
    assert ranks == [d.rank for d in devices] and all(type(r) is int for r in ranks)

    born = _column(ws, labels.BORN)
    assert born[0].value == dt.datetime(2012, 5, 3)
    assert all(c.is_date and "yy" in c.number_format for c in born)

    cost = _column(ws, labels.COST)
    assert [c.value for c in cost] == [d.cost_vnd for d in devices]
    assert all(type(c.value) is int and "₫" in c.number_format and "#,##0" in c.number_format
               for c in cost)

    assert _column(ws, labels.AGE)[0].value == pytest.approx(14.6)
    assert _column(ws, labels.ACTION)[0].value == VI.action("replace the machine")
    assert _column(ws, labels.FUNDED)[0].value == VI.gettext(labels.YES)
    assert _column(ws, labels.REALLOCATED)[0].value == 24
    assert _column(ws, labels.REALLOCATED)[1].value is None  # no SMART data: an empty cell
    assert _column(ws, labels.FINDINGS)[0].value == (
        f"{VI.finding('disk_failing')}, {VI.finding('cpu_saturated')}")
    why = _column(ws, labels.WHY)[1].value
    assert why.endswith(f"{VI.reason_part('age')}: 8 years old (from purchase date) (+16,5)")
    assert _column(ws, labels.LOCATION)[0].value == "Quầy một cửa số 1"


def test_smart_verdict_in_words(vi_book: Workbook) -> None:
    smart = [c.value for c in _column(vi_book["Bình Minh"], labels.SMART)]
    assert smart == [VI.gettext(labels.FAILED), None]


def test_every_table_has_a_frozen_bold_heading_and_a_filter(vi_book: Workbook) -> None:
    tables = [vi_book["An Phước"], vi_book["Bình Minh"],
              *(_sheet(vi_book, label) for label in (labels.SITES_SHEET, labels.UNFUNDED,
                                                     labels.UNMATCHED_SHEET))]
    for ws in tables:
        assert ws.freeze_panes in ("A2", "C2"), ws.title
        last = ws.max_column
        assert ws.auto_filter.ref == f"A1:{ws.cell(1, last).column_letter}{ws.max_row}"
        assert all(c.font.b for c in ws[1]), ws.title
        assert all(ws.column_dimensions[c.column_letter].width >= 8 for c in ws[1])
    summary = vi_book.worksheets[0]
    assert summary.auto_filter.ref  # over the per-commune table


def test_summary_holds_the_totals_and_two_charts(vi_book: Workbook) -> None:
    report, ws = sample_report(), vi_book.worksheets[0]
    assert ws["A1"].value == VI.gettext(labels.TITLE)
    assert _row_after(ws, labels.PROVINCE) == "Đồng Nai"
    assert _row_after(ws, labels.PERIOD) == dt.datetime(2026, 10, 28)
    assert _row_after(ws, labels.GENERATED) == dt.datetime(2026, 11, 27, 9, 30)
    assert _row_after(ws, labels.BUDGET) == 20_000_000
    assert _row_after(ws, labels.TOTAL_COST) == report.summary.cost_vnd
    assert _row_after(ws, labels.FUNDED_COST) == report.summary.funded_vnd
    assert _row_after(ws, labels.DEVICES) == 5
    assert _row_after(ws, labels.AGE_BAND_NAMES[3]) == 2

    start = int(ws.auto_filter.ref.split(":")[0][1:])
    communes = list(ws.iter_rows(min_row=start + 1, values_only=True))
    assert [r[0] for r in communes] == ["An Phước", "Bình Minh"]  # costliest first
    assert sum(r[7] for r in communes) == report.summary.cost_vnd
    assert ws.cell(start + 1, 1).hyperlink.location == "'An Phước'!A1"
    assert len(ws._charts) == 2


def test_headings_in_the_report_language(vi_book: Workbook, en_book: Workbook) -> None:
    assert "Đề xuất" in [c.value for c in vi_book["An Phước"][1]]
    assert "Suggested action" in [c.value for c in en_book["An Phước"][1]]
    assert en_book.sheetnames[0] == "Province summary"
    assert en_book.worksheets[0]["A1"].value == labels.TITLE


def test_method_sheet_prices_and_paragraphs(vi_book: Workbook) -> None:
    ws = _sheet(vi_book, labels.METHOD)
    assert _row_after(ws, labels.ACTION)  # the prices' heading
    assert _row_after(ws, VI.action("replace the machine")) == 15_000_000
    texts = [c.value for c in ws["A"] if isinstance(c.value, str) and len(c.value) > 100]
    assert len(texts) == len(labels.METHOD_TEXT)
    assert not any("{" in t for t in texts)
    assert "28/10/2026" in texts[-1] and "20 " in texts[0] and "2,5" in texts[0]


def test_links_sheet_and_nothing_to_list(vi_book: Workbook, tmp_path: Path) -> None:
    ws = _sheet(vi_book, labels.SITES_SHEET)
    assert [c.value for c in ws[2]][:4] == ["Bình Minh", "binh-minh",
                                            VI.action("upgrade the link"), 6_000_000]
    report = dataclasses.replace(sample_report(), sites=())
    empty = _sheet(_workbook(report, VI, tmp_path), labels.SITES_SHEET)
    assert empty["A2"].value == VI.gettext(labels.NOTHING)


def test_unfunded_sheet_lists_devices_and_links(tmp_path: Path) -> None:
    report = sample_report()
    device = report.communes[1].devices[-1]
    report = dataclasses.replace(report, unfunded=(device, *report.unfunded))
    ws = _sheet(_workbook(report, VI, tmp_path), labels.UNFUNDED)
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[1], r[3]) for r in rows] == [(device.rank, "Bình Minh", device.device),
                                                  (None, "Bình Minh", None)]
    assert rows[1][6] == report.sites[0].cost_vnd


def test_texts_are_escaped_and_control_characters_dropped(tmp_path: Path) -> None:
    report = sample_report()
    first = report.communes[0]
    device = dataclasses.replace(first.devices[0], location="Kho <A&B>\x01 ", asset_tag="=1+1")
    commune = dataclasses.replace(first, devices=(device,))
    report = dataclasses.replace(report, communes=(commune, *report.communes[1:]))
    ws = _workbook(report, VI, tmp_path)["An Phước"]
    assert _column(ws, labels.LOCATION)[0].value == "Kho <A&B> "
    assert _column(ws, labels.ASSET_TAG)[0].value == "=1+1"  # a text, not a formula
    assert list(tmp_path.iterdir()) == [tmp_path / "report.xlsx"]  # no partial file left


# ---- sheet titles ----


def test_sheet_titles_are_valid_and_unique() -> None:
    taken: set[str] = set()
    long = "Phường Tân Phong, thành phố Biên Hòa, tỉnh Đồng Nai"
    titles = [sheet_title(name, taken) for name in
              (long, long, "Xã [A]: 1/2 * ? \\ x", "'Quoted'", "bình minh", "Bình Minh")]
    assert all(0 < len(t) <= 31 for t in titles)
    assert not any(FORBIDDEN_IN_TITLE.search(t) for t in titles)
    assert len({t.casefold() for t in titles}) == len(titles)
    assert titles[0] == "Phường Tân Phong, thành phố"  # cut at a space
    assert titles[1].endswith(" (2)") and titles[5] == "Bình Minh (2)"
    assert titles[2] == "Xã -A-- 1-2 - - - x" and titles[3] == "Quoted"


def test_communes_with_awkward_names_get_sheets(tmp_path: Path) -> None:
    report = sample_report()
    names = ("Thị trấn Long Thành, huyện Long Thành, Đồng Nai", "Thị trấn Long Thành, huyện "
             "Long Thành, Đồng Nai", "Xã 1/2: [Mới]?", "Tổng hợp toàn tỉnh")
    communes = tuple(Commune(f"site-{i}", name, report.communes[0].counts, (), ())
                     for i, name in enumerate(names))
    book = _workbook(dataclasses.replace(report, communes=communes), VI, tmp_path)
    titles = book.sheetnames[1:5]
    assert len(set(titles)) == 4 and all(len(t) <= 31 for t in titles)
    assert titles[2] == "Xã 1-2- -Mới--"
    assert titles[3] == "Tổng hợp toàn tỉnh (2)"  # the summary keeps its name
    assert book[titles[0]]["A2"].value == VI.gettext(labels.NOTHING)


# ---- CSV ----


def _csv_rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel wants
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_csv_one_row_per_device_by_rank(tmp_path: Path) -> None:
    report = sample_report()
    header, *rows = _csv_rows(write_csv(report, VI, tmp_path / "report.csv"))
    assert len(rows) == len(report.devices())
    assert header[:3] == [VI.gettext(labels.COMMUNE), VI.gettext(labels.SITE),
                          VI.gettext(labels.RANK)]
    assert "Đề xuất" in header
    assert [r[2] for r in rows] == [str(d.rank) for d in report.devices()]
    assert [r[0] for r in rows[:2]] == ["An Phước", "Bình Minh"]
    column = {name: i for i, name in enumerate(header)}
    first = rows[0]
    assert int(first[column[VI.gettext(labels.COST)]]) == 15_000_000
    assert dt.date.fromisoformat(first[column[VI.gettext(labels.BORN)]]) == dt.date(2012, 5, 3)
    assert float(first[column[VI.gettext(labels.AGE)]]) == 14.6
    assert first[column[VI.gettext(labels.ACTION)]] == VI.action("replace the machine")
    assert rows[2][column[VI.gettext(labels.REALLOCATED)]] == ""


def test_csv_in_english_and_sites(tmp_path: Path) -> None:
    header, *rows = _csv_rows(write_csv(sample_report(), EN, tmp_path / "report.csv"))
    assert "Suggested action" in header and rows[0][header.index("Funded")] == "yes"
    header, *rows = _csv_rows(write_sites_csv(sample_report(), EN, tmp_path / "sites.csv"))
    assert rows == [["Bình Minh", "binh-minh", "upgrade the link", "6000000", "no", "20.0",
                     "slow link", "950.0", "14.5", "0.6", "router-01"]]
    assert header[:2] == ["Commune", "Site"]


def test_csv_texts_that_look_like_formulas_are_neutralised(tmp_path: Path) -> None:
    report = sample_report()
    first = report.communes[0]
    tagged = dataclasses.replace(first.devices[0], asset_tag="=HYPERLINK(\"http://x\")",
                                 location="+84 phòng 2")
    report = dataclasses.replace(report, communes=(
        dataclasses.replace(first, devices=(tagged, *first.devices[1:])),
        *report.communes[1:]))
    path = write_csv(report, VI, tmp_path / "r.csv")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    row = next(r for r in rows if tagged.device in r)
    assert "'=HYPERLINK(\"http://x\")" in row and "'+84 phòng 2" in row
    assert str(tagged.cost_vnd) in row  # numbers are left alone
