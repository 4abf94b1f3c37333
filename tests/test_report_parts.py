"""The procurement report's parts: Windows 11 readiness, costing and the budget cap,
the [report] section, the words of both languages."""

from __future__ import annotations

import ast
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from report_samples import sample_report

from collector.reports import costing, labels
from collector.reports.cli import Progress
from collector.reports.config import PricesSection, ReportSection
from collector.reports.i18n import LOCALE_DIR, Lang
from collector.reports.model import IN_PLACE, NOT_WINDOWS, READY, REPLACE, UNKNOWN
from collector.reports.readiness import windows11_readiness

LABELS = Path(labels.__file__)


def windows(version: str = "10", cpu: str = "Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz",
            ram_gb: float = 8, **facts: Any) -> dict[str, Any]:
    inventory = {"os": {"name": "Windows", "version": version}, "cpu": {"model": cpu},
                 "ram_bytes": int(ram_gb * (1 << 30)), "firmware": "uefi",
                 "secure_boot": True, "tpm": {"present": True, "version": "2.0"}}
    inventory.update(facts)
    return inventory


@pytest.mark.parametrize(("inventory", "state", "blockers"), [
    (windows(), READY, ()),
    (windows(version="11"), READY, ()),
    ({"os": {"name": "Linux", "version": "Ubuntu 22.04"}}, NOT_WINDOWS, ()),
    (windows(ram_gb=2), IN_PLACE, ("under 4 GB RAM",)),
    (windows(secure_boot=False, tpm={"present": False}), IN_PLACE,
     ("no TPM 2.0", "Secure Boot off or absent")),
    (windows(cpu="Intel(R) Core(TM) i3-3220 CPU @ 3.30GHz"), REPLACE,
     ("CPU older than Windows 11 supports",)),
    (windows(cpu="AMD Ryzen 5 1600 Six-Core Processor"), REPLACE,
     ("CPU older than Windows 11 supports",)),
    (windows(cpu="AMD Ryzen 5 3400G with Radeon Vega Graphics"), READY, ()),
    # A Pentium may or may not qualify: somebody has to look.
    (windows(cpu="Intel(R) Pentium(R) CPU G2020 @ 2.90GHz"), UNKNOWN, ()),
    # What the agent could not read is not counted as missing.
    (windows(tpm=None, secure_boot=None), READY, ()),
])
def test_windows11_readiness(inventory: dict[str, Any], state: str,
                             blockers: tuple[str, ...]) -> None:
    assert windows11_readiness(inventory) == (state, blockers)


@pytest.mark.parametrize(("action", "eos", "state", "blockers", "expected"), [
    ("upgrade the operating system", True, REPLACE, ("CPU older than Windows 11 supports",),
     "replace the machine"),
    ("add RAM", True, REPLACE, ("CPU older than Windows 11 supports",),
     "replace the machine"),
    ("upgrade the operating system", True, IN_PLACE, ("under 4 GB RAM",), "add RAM"),
    ("replace the HDD with an SSD", True, IN_PLACE, ("under 4 GB RAM",),
     "replace the HDD with an SSD"),
    ("upgrade the operating system", True, READY, (), "upgrade the operating system"),
    ("replace the disk", False, REPLACE, ("CPU older than Windows 11 supports",),
     "replace the disk"),  # Linux or Windows 11 already: Windows 11 is no reason
])
def test_windows11_decides_the_action(action: str, eos: bool, state: str,
                                      blockers: tuple[str, ...], expected: str) -> None:
    assert costing.windows11_action(action, eos, state, blockers) == expected


def test_every_action_has_a_price_setting() -> None:
    prices = PricesSection()
    assert {costing.cost(action, prices) for action in costing.ACTIONS} >= {
        15_000_000, 900_000, 0}
    assert costing.cost("none", prices) == 0
    assert set(costing.PRICE_OF.values()) == {f.name for f in
                                             PricesSection.__dataclass_fields__.values()}


class Line:
    def __init__(self, cost_vnd: int) -> None:
        self.cost_vnd = cost_vnd


@pytest.mark.parametrize(("costs", "budget", "funded"), [
    ([5, 4, 3], None, {0, 1, 2}),
    ([5, 4, 3], 9, {0, 1}),
    ([5, 4, 3], 8, {0}),  # 3 would still fit, but it must not jump the queue
    ([5, 0, 4, 0], 6, {0, 1, 3}),  # free lines are always funded
    ([7], 6, set()),
    ([], 6, set()),
])
def test_budget_funds_a_prefix_by_priority(costs: list[int], budget: int | None,
                                           funded: set[int]) -> None:
    assert costing.within_budget([Line(c) for c in costs], budget) == funded  # type: ignore


@pytest.mark.parametrize(("section", "fragment"), [
    ({"language": "fr"}, "language must be vi or en"),
    ({"period": "12h"}, "period must be at least one day"),
    ({"period": "soon"}, "period"),
    ({"refresh_age_years": 0}, "refresh_age_years must be between 0 and 50"),
    ({"budget_vnd": -1}, "budget_vnd must be 0 (no cap) or more"),
])
def test_report_section_mistakes(section: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        ReportSection(**section)


def test_a_price_must_be_whole_vnd() -> None:
    for value in (-1, 1.5, True, "900000"):
        with pytest.raises(ValueError, match="ram_module must be a whole number of VND"):
            PricesSection(ram_module=value)  # type: ignore[arg-type]


def _label_texts() -> list[str]:
    tree = ast.parse(LABELS.read_text(encoding="utf-8"))
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "N_"]


def test_every_label_has_a_vietnamese_translation_with_its_placeholders() -> None:
    po = (LOCALE_DIR / "vi" / "LC_MESSAGES" / "messages.po").read_bytes()
    catalog = read_po(io.BytesIO(po), locale="vi")
    texts = set(_label_texts())
    translated = {m.id: m.string for m in catalog if m.id}
    assert texts == set(translated), (texts - set(translated), set(translated) - texts)
    for text, vietnamese in translated.items():
        assert vietnamese, text
        assert set(re.findall(r"{\w+}", text)) == set(re.findall(r"{\w+}", vietnamese)), text


def test_money_numbers_and_dates_per_language() -> None:
    vi, en = Lang("vi"), Lang("en")
    assert vi.money(15_000_000) == "15.000.000\u00a0₫" and en.money(15_000_000) == "₫15,000,000"
    assert vi.number(1234.56) == "1.234,6" and en.number(1234.56) == "1,234.6"
    assert vi.date(dt.date(2026, 11, 27)) == "27/11/2026"
    assert en.date(dt.date(2026, 11, 27)) == "Nov 27, 2026"
    assert vi.action("add RAM") == "lắp thêm RAM" and en.action("add RAM") == "add RAM"
    assert vi.windows11(REPLACE) == "phải thay máy"
    with pytest.raises(ValueError, match="language must be one of vi, en"):
        Lang("fr")


def test_sample_report_totals_are_consistent() -> None:
    report = sample_report()
    lines = [*report.devices(), *report.sites]
    assert report.summary.cost_vnd == sum(line.cost_vnd for line in lines)
    assert report.summary.funded_vnd == sum(line.cost_vnd for line in lines if line.funded)


def test_progress_redraws_on_a_terminal_and_prints_lines_in_a_log() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock = iter([0.0, 2.5])
    shown = Terminal()
    progress = Progress("devices", shown, clock=lambda: next(clock))
    progress.step("summing the daily roll-ups")
    progress(1000)
    progress(2000)
    progress.done()
    assert shown.getvalue() == ("summing the daily roll-ups...\n"
                                "\rreading devices: 1,000\rreading devices: 2,000\n"
                                "read 2,000 devices in 2.5 s\n")
    log = io.StringIO()
    progress = Progress("devices", log, clock=lambda: 0.0)
    for count in range(1000, 25_001, 1000):
        progress(count)
    assert log.getvalue().splitlines() == ["reading devices: 10,000", "reading devices: 20,000"]
