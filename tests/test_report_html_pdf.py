"""The procurement report as HTML (one self-contained page) and as PDF (WeasyPrint), from
the hand-made sample report of tests/report_samples.py."""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_samples import sample_report

from collector.reports import labels
from collector.reports.i18n import Lang
from collector.reports.model import AGE_BANDS, Counts, Report
from collector.reports.render_html import (
    age_chart_svg,
    cost_chart_svg,
    render_html,
    write_html,
)
from collector.reports.render_pdf import write_pdf

SVG = "{http://www.w3.org/2000/svg}"
VI, EN = Lang("vi"), Lang("en")


def svgs(html: str) -> list[ET.Element]:
    """Every inline chart, parsed as XML (fails on anything not well-formed)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def bars(svg: ET.Element, css_class: str = "bar") -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if r.get("class") == css_class]


def section(html: str, element_id: str) -> str:
    """The HTML of one <section id=...> (sections of communes nest in #communes, so the
    text up to the next section's start is enough)."""
    start = html.index(f'id="{element_id}"')
    end = html.find("<section", start)
    return html[start:end if end != -1 else len(html)]


def with_commune_devices(report: Report, index: int, **changes) -> Report:
    """The report with the first device of commune `index` changed."""
    communes = list(report.communes)
    commune = communes[index]
    first = dataclasses.replace(commune.devices[0], **changes)
    communes[index] = dataclasses.replace(commune, devices=(first, *commune.devices[1:]))
    return dataclasses.replace(report, communes=tuple(communes))


# --- HTML ----------------------------------------------------------------------------------

def test_vietnamese_html_has_the_communes_and_translated_words() -> None:
    html = render_html(sample_report(), VI)
    assert '<html lang="vi">' in html
    assert "An Phước" in html and "Bình Minh" in html and "Đồng Nai" in html
    assert VI.gettext("Province summary") == "Tổng hợp toàn tỉnh"
    assert "<h1>Tổng hợp toàn tỉnh</h1>" in html
    assert VI.gettext(labels.TITLE) in html
    assert "28/10/2026 – 27/11/2026" in html  # the period, as Vietnamese offices write it


def test_money_is_written_the_way_of_each_language() -> None:
    # Babel puts a no-break space (U+00A0) between the amount and ₫ in Vietnamese.
    assert VI.money(15_000_000) == "15.000.000\u00a0₫"
    assert "15.000.000\u00a0₫" in render_html(sample_report(), VI)
    html = render_html(sample_report(), EN)
    assert '<html lang="en">' in html
    assert "₫15,000,000" in html and "15.000.000" not in html


def test_html_is_one_file_with_print_css() -> None:
    html = render_html(sample_report(), VI)
    assert "<link" not in html and "<script" not in html and "src=" not in html
    assert "@page" in html and "counter(page)" in html and "table-header-group" in html
    assert 'font-family: "DejaVu Sans"' in html


def test_charts_are_svg_with_a_bar_per_age_band_and_per_commune() -> None:
    report = sample_report()
    age, cost = svgs(render_html(report, VI))
    assert age.tag == f"{SVG}svg" and cost.tag == f"{SVG}svg"
    assert len(bars(age)) == len(AGE_BANDS) + 1  # the bands, then unknown age
    texts = [t.text for t in age.iter(f"{SVG}text")]
    assert VI.gettext(labels.AGE_BAND_NAMES[3]) in texts
    assert [b.find(f"{SVG}title").text for b in bars(age)][1] == \
        f"{VI.gettext(labels.AGE_BAND_NAMES[1])}: 2"  # the sample's two 4-5 year olds
    assert len(bars(cost)) == len(report.communes)
    names = [t.text for t in cost.iter(f"{SVG}text")]
    assert "An Phước" in names and "Bình Minh" in names
    assert VI.money(15_900_000) in names  # An Phước's cost
    # Bình Minh's link did not fit the budget: the end of its bar is paler.
    assert len(bars(cost, "bar-unfunded")) == 1


def test_the_cost_chart_of_many_communes_comes_in_page_sized_blocks() -> None:
    report = sample_report()
    many = tuple(dataclasses.replace(report.communes[i % 2], site=f"xa-{i:03}",
                                     name=f"Xã số {i}") for i in range(90))
    charts = svgs(render_html(dataclasses.replace(report, communes=many), VI))[1:]
    assert len(charts) == 3
    assert sum(len(bars(c)) for c in charts) == 90
    # One scale for every block: An Phước's cost draws the same length in each.
    widths = {b.get("width") for c in charts for b in bars(c)}
    assert len(widths) == 2


def test_chart_functions_alone() -> None:
    empty = ET.fromstring(age_chart_svg(Counts(), EN))  # no devices: no division by zero
    assert [b.get("height") for b in bars(empty)] == ["0.0"] * 5
    assert bars(ET.fromstring(cost_chart_svg((), EN))) == []


def test_devices_of_a_commune_come_by_rank() -> None:
    report = sample_report()
    # Even when the model hands them over out of order.
    an_phuoc = dataclasses.replace(report.communes[0],
                                   devices=tuple(reversed(report.communes[0].devices)))
    report = dataclasses.replace(report, communes=(an_phuoc, report.communes[1]))
    html = section(render_html(report, VI), "site-an-phuoc")
    assert html.index('data-rank="1"') < html.index('data-rank="3"') < \
        html.index('data-rank="5"')
    assert "AN-PHUOC-QUAY-01" in html and "quầy một cửa" in html
    assert "BINH-MINH-SRV-01" not in html


def test_evidence_and_reasons_are_in_the_device_row() -> None:
    html = section(render_html(sample_report(), EN), "site-binh-minh")
    assert "failure risk 20: Disk /dev/sda: SMART overall-health FAILED" in html
    assert "Findings: SMART failed" in html
    assert "Windows 11: ready" in html


def test_not_funded_only_with_a_budget() -> None:
    heading = VI.gettext(labels.UNFUNDED)
    html = render_html(sample_report(budget=20_000_000), VI)
    assert heading in html
    unfunded = section(html, "unfunded")
    assert "Bình Minh" in unfunded and "6.000.000\u00a0₫" in unfunded
    assert "pc-04" not in unfunded  # free (a Windows 11 upgrade): always funded
    assert f"<th class=\"c-funded\">{VI.gettext(labels.FUNDED)}</th>" in html
    html = render_html(sample_report(budget=None), VI)
    assert heading not in html and 'id="unfunded"' not in html
    assert VI.gettext(labels.NO_BUDGET) in html
    assert VI.gettext(labels.FUNDED) not in html  # no cap: every line is funded


def test_unmatched_asset_rows_only_when_there_are_some() -> None:
    report = sample_report()
    html = render_html(report, EN)
    assert labels.UNMATCHED in html
    assert "SN-99;;TS-0099;2015-01-01;Kho" in section(html, "unmatched")
    html = render_html(dataclasses.replace(report, unmatched_assets=()), EN)
    assert labels.UNMATCHED not in html


def test_method_paragraphs_have_their_numbers_and_the_signature_block() -> None:
    html = section(render_html(sample_report(), EN), "method")
    assert "critical 20 points, warning 8, at most 40" in html
    assert "Age adds 2.5 points a year" in html
    assert "Refresh age: 4 years. Useful life under the province's asset rules: 5 years." \
        in html.replace("&#39;", "'")
    assert "Measurements from Oct 28, 2026 to Nov 27, 2026." in html
    assert "{" not in re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    assert "Prepared by" in html and "Approved by" in html
    assert "₫15,000,000" in html  # the unit price of a new PC


def test_text_from_the_data_is_escaped() -> None:
    report = with_commune_devices(sample_report(), 0, hostname="<script>alert(1)</script>")
    communes = (dataclasses.replace(report.communes[0], name='An <i>"Phước"</i> & Co'),
                report.communes[1])
    html = render_html(dataclasses.replace(report, communes=communes), VI)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>" not in html
    assert "<h2>An &lt;i&gt;&#34;Phước&#34;&lt;/i&gt; &amp; Co</h2>" in html
    assert all(svg is not None for svg in svgs(html))  # the charts are still valid XML


def test_max_devices_per_commune_cuts_the_tables_and_says_so() -> None:
    html = render_html(sample_report(), EN, max_devices_per_commune=1)
    an_phuoc = section(html, "site-an-phuoc")
    assert 'data-rank="1"' in an_phuoc and 'data-rank="3"' not in an_phuoc
    assert "… and 2 more, see the XLSX" in an_phuoc
    binh_minh = section(html, "site-binh-minh")
    assert "… and 1 more, see the XLSX" in binh_minh
    full = render_html(sample_report(), EN)
    assert "more, see the XLSX" not in full
    none_shown = section(render_html(sample_report(), EN, max_devices_per_commune=0),
                         "site-an-phuoc")
    assert "data-rank" not in none_shown and labels.NOTHING not in none_shown
    assert "… and 3 more, see the XLSX" in none_shown
    with pytest.raises(ValueError):
        render_html(sample_report(), EN, max_devices_per_commune=-1)


def test_write_html(tmp_path: Path) -> None:
    path = write_html(sample_report(), VI, tmp_path / "report.html")
    assert "An Phước" in path.read_text(encoding="utf-8")


# --- PDF -----------------------------------------------------------------------------------

def test_pdf_has_pages_and_vietnamese_text(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    pypdf = pytest.importorskip("pypdf")
    with caplog.at_level(logging.INFO):
        try:
            path = write_pdf(sample_report(), VI, tmp_path / "report.pdf")
        except RuntimeError as exc:  # no WeasyPrint or no Pango on this machine
            pytest.skip(str(exc))
    reader = pypdf.PdfReader(path)
    assert len(reader.pages) >= 2
    text = "\n".join(page.extract_text() for page in reader.pages)
    # Exact, not normalised: DejaVu Sans has the precomposed letters, so the PDF's text
    # layer holds them as written (no split combining marks).
    assert "An Phước" in text
    assert "Tổng hợp toàn tỉnh" in text
    assert "15.000.000" in text
    # WeasyPrint's and fontTools' chatter went to DEBUG.
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and
                r.name.startswith(("weasyprint", "fontTools"))]


def test_pdf_without_weasyprint_says_what_to_install(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # makes `import weasyprint` fail
    with pytest.raises(RuntimeError, match="apt-get install libpango-1.0-0") as caught:
        write_pdf(sample_report(), VI, tmp_path / "report.pdf")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "report.pdf").exists()
