"""The procurement report from a simulated province stored by the real collector (through
a real mosquitto): ranking, Windows 11 readiness, totals, the budget cap, the asset
register import, and every output format opened by a reader of its own."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import openpyxl
import pypdf
import pytest
from collector_helpers import REPLAY, start_collector, wait_until

from collector.reports.assets import read_assets
from collector.reports.build import Selection, build_report
from collector.reports.config import ReportSection
from collector.reports.model import Report
from collector.rules import spec as rule_spec
from collector.store.findings import FindingsStore
from collector.store.state import StateStore
from cwatch.procs import Mosquitto

SCENARIO = Path(__file__).parent / "fixtures" / "sim-dashboards.toml"
SITES_CSV = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / \
    "sites-dong-nai-sample.csv"
CWATCH = str(Path(sys.executable).parent / "cwatch")
HARDWARE_FAULTS = ("disk_reallocated", "smart_failure", "nvme_wear")


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A simulated fleet's state database (the collector stopped) and its ground truth."""
    folder = tmp_path_factory.mktemp("report")
    broker = Mosquitto(folder / "mosquitto").start()
    collector = start_collector(broker, folder, "report-collector", **REPLAY)
    try:
        truth_path = folder / "truth.json"
        result = subprocess.run(
            [CWATCH, "sim", "--broker", broker.url, "--scenario", str(SCENARIO), "--seed", "3",
             "--start", "6h", "--speed", "4000", "--duration", "8", "--truth",
             str(truth_path), "--connections", "4"],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        sent = int(re.search(r"\((\d+) envelopes", result.stderr).group(1))
        wait_until(lambda: collector.metrics.totals()["accepted"] >= sent, 60, "all accepted")
        assert collector.wait_idle(60)
    finally:
        collector.stop()
        broker.stop()
    return {"state": folder / "report-collector.db",
            "truth": json.loads(truth_path.read_text(encoding="utf-8")), "folder": folder}


def make(province: dict[str, Any], **section: Any) -> Report:
    state = StateStore(province["state"])
    try:
        today = dt.datetime.now(dt.timezone.utc).date()
        assets = section.pop("assets", None)
        return build_report(
            state, FindingsStore(state), ReportSection(province="Đồng Nai", **section),
            rule_spec.load().priority, Selection(start=today - dt.timedelta(days=29),
                                                 end=today),
            now=time.time(), site_names={"an-phuoc": "An Phước", "binh-minh": "Bình Minh",
                                         "hung-thinh": "Hưng Thịnh",
                                         "thien-hung": "Thiện Hưng"},
            assets=assets)
    finally:
        state.close()


def test_faulty_and_oldest_devices_rank_first_and_totals_add_up(province) -> None:
    report = make(province)
    devices = report.devices()
    assert len(devices) == 40 and [d.rank for d in devices] == list(range(1, 41))
    assert [d.score for d in devices] == sorted((d.score for d in devices), reverse=True)
    top = {(d.site, d.device) for d in devices[:len(devices) // 4]}
    faulty = {(t["site"], t["device"]) for t in province["truth"]["expected"]
              if t["fault"] in HARDWARE_FAULTS}
    assert len(faulty) == 3 and faulty <= top, (faulty - top, devices[:10])
    computers = [d for d in devices if d.role != "router" and d.age_years is not None]
    oldest = max(computers, key=lambda d: d.age_years)
    assert (oldest.site, oldest.device) in top
    for line in devices[:10]:
        assert line.why and line.action != "none", line
    # Each reason in both languages: the Vietnamese report's "why" is Vietnamese.
    ages = [r for d in devices for r in d.why if r.part == "age"]
    assert ages and all("năm tuổi" in r.text("vi") and "years old" in r.text("en")
                        for r in ages if "old" in r.because)
    # A failing disk is replaced, not the whole PC, unless the PC is old or cannot run
    # Windows 11 (then the disk goes with it).
    for line in devices:
        if {"smart_failed", "disk_failing"} & set(line.evidence.findings):
            assert line.health == "failing"
            assert line.action in ("replace the HDD with an SSD", "replace the disk",
                                   "replace the machine"), line
    # Totals: every line's cost, per commune and for the province.
    lines = [*devices, *report.sites]
    assert report.summary.cost_vnd == sum(line.cost_vnd for line in lines) > 0
    assert sum(c.counts.cost_vnd for c in report.communes) == report.summary.cost_vnd
    assert sum(c.counts.devices for c in report.communes) == report.summary.devices == 40
    assert sum(report.summary.by_age_band) == 40
    assert report.summary.funded_vnd == report.summary.cost_vnd  # no budget: all funded
    assert report.unfunded == ()
    # The slow link shows up as a site line with its evidence.
    slow = next(t for t in province["truth"]["expected"] if t["fault"] == "slow_link")
    line = next(s for s in report.sites if s.site == slow["site"])
    assert line.action == "upgrade the link" and line.rtt_p95_ms > 300


def test_windows_11_readiness_and_end_of_support(province) -> None:
    report = make(province)
    devices = report.devices()
    states = dict(report.summary.windows11)
    assert sum(states.values()) == 40 and states["not_windows"] >= 4  # routers, servers
    for line in devices:
        if line.os and line.os.startswith("Windows 10") and line.windows11 == "replace":
            assert line.action == "replace the machine", line
            assert "CPU older than Windows 11 supports" in line.windows11_blockers
        if line.os == "Windows 11":
            assert line.windows11 == "ready"
        if line.os and line.os.startswith(("Windows 7", "Windows 10")):
            assert line.os_end_of_support
    assert states["replace"] + states["in_place"] + states["ready"] > 0


def test_the_budget_cap_funds_by_priority_and_lists_the_rest(province) -> None:
    full = make(province)
    budget = full.summary.cost_vnd // 3
    report = make(province, budget_vnd=budget)
    assert 0 < report.summary.funded_vnd <= budget
    queue = sorted([d for d in report.devices() if d.action != "none"] + list(report.sites),
                   key=lambda x: -x.score)
    paid = [line for line in queue if line.cost_vnd]
    funded_flags = [line.funded for line in paid]
    # A prefix is funded, the rest is not: nothing cheaper jumps the queue.
    cut = funded_flags.index(False)
    assert all(funded_flags[:cut]) and not any(funded_flags[cut:])
    assert sum(line.cost_vnd for line in paid[:cut]) + paid[cut].cost_vnd > budget
    assert list(report.unfunded) == paid[cut:]
    assert report.summary.funded_vnd == sum(line.cost_vnd for line in paid[:cut])


def test_asset_register_rows_match_by_serial_or_host_name(province, tmp_path: Path) -> None:
    report = make(province)
    first, second = report.devices()[5], report.devices()[6]
    state = StateStore(province["state"])
    serial = state.device(first.site, first.device)["inventory"]["system"]["serial"]
    state.close()
    register = tmp_path / "tai-san.csv"
    register.write_text(
        "Số serial;Tên máy;Mã tài sản;Ngày mua;Vị trí\n"
        f"{serial};;TS-0001;15/03/2011;Phòng một cửa\n"
        f";{second.hostname.lower()};TS-0002;2013-06-01;Kho\n"
        "SN-KHONG-CO;MAY-LA;TS-0099;2015-01-01;Kho\n", encoding="utf-8-sig")
    report = make(province, assets=read_assets(register))
    lines = {(d.site, d.device): d for d in report.devices()}
    one, two = lines[(first.site, first.device)], lines[(second.site, second.device)]
    assert (one.asset_tag, one.location, one.born, one.born_from) == (
        "TS-0001", "Phòng một cửa", dt.date(2011, 3, 15), "purchase")
    assert (two.asset_tag, two.born) == ("TS-0002", dt.date(2013, 6, 1))
    assert [row.line for row in report.unmatched_assets] == [4]
    assert "SN-KHONG-CO" in report.unmatched_assets[0].text


def _pdf_text(path: Path) -> str:
    reader = pypdf.PdfReader(path)
    assert len(reader.pages) >= 2
    return unicodedata.normalize("NFC", "\n".join(page.extract_text() for page in
                                                  reader.pages))


def test_the_command_writes_every_format(province, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [CWATCH, "report", "procurement", "--state", str(province["state"]), "--out", str(out),
         "--sites-file", str(SITES_CSV), "--province", "Đồng Nai", "--budget", "30000000"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    day = dt.datetime.now(dt.timezone.utc).date().isoformat()
    files = {Path(line).suffix: Path(line) for line in result.stdout.split()}
    assert set(files) == {".xlsx", ".csv", ".html", ".pdf"}
    assert files[".xlsx"].name == f"bao-cao-mua-sam-{day}.xlsx"
    assert "read 40 devices" in result.stderr
    workbook = openpyxl.load_workbook(files[".xlsx"])
    assert {"An Phước", "Bình Minh", "Hưng Thịnh", "Thiện Hưng"} <= set(workbook.sheetnames)
    with files[".csv"].open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 41 and any("An Phước" in row for row in rows[1:])
    html = files[".html"].read_text(encoding="utf-8")
    assert "Tổng hợp toàn tỉnh" in html and "An Phước" in html
    text = _pdf_text(files[".pdf"])
    assert "Tổng hợp toàn tỉnh" in text and "An Phước" in text and "Đồng Nai" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--state", "/nonexistent/state.db"], "no state database at /nonexistent/state.db"),
    (["--format", "docx"], "--format 'docx': each must be one of xlsx, csv, html, pdf"),
    (["--from", "2026-13-01"], "--from '2026-13-01' must be a date like 2026-11-27"),
    (["--from", "2026-11-20", "--to", "2026-11-01"], "--from 2026-11-20 is after --to"),
    (["--period", "2h"], "period must be at least one day"),
    (["--assets", "/nonexistent/assets.csv"], "/nonexistent/assets.csv"),
])
def test_mistakes_are_one_line(province, tmp_path: Path, args: list[str],
                               message: str) -> None:
    command = [CWATCH, "report", "procurement", "--out", str(tmp_path), "--quiet"]
    if "--state" not in args:
        command += ["--state", str(province["state"])]
    result = subprocess.run(command + args, capture_output=True, text=True, timeout=120)
    assert result.returncode in (1, 2), result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cwatch report: error: "), result.stderr
    assert message in lines[0]
    assert not list(tmp_path.glob("*.xlsx"))



def test_a_fleet_of_many_communes_gets_no_pdf_unless_asked(
        province, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Beyond PDF_DEFAULT_MAX_COMMUNES (a country's 3,300 communes: 20-30 minutes of
    layout) the default formats leave out the PDF and say how to get it."""
    from collector.reports import cli as report_cli

    monkeypatch.setattr(report_cli, "PDF_DEFAULT_MAX_COMMUNES", 2)  # this fleet has 4
    section = ReportSection(province="Đồng Nai")
    today = dt.datetime.now(dt.timezone.utc).date()
    month = Selection(start=today - dt.timedelta(days=29), end=today)
    written = report_cli.write_report(province["state"], section, rule_spec.load().priority,
                                      month, tmp_path / "default", pdf_by_default=True)
    assert sorted(path.suffix for path in written) == [".csv", ".html", ".xlsx"]
    assert "no PDF by default for 4 communes" in caplog.text
    assert "--format xlsx,csv,html,pdf" in caplog.text
    written = report_cli.write_report(province["state"], section, rule_spec.load().priority,
                                      month, tmp_path / "asked", formats=["pdf"])
    assert [path.suffix for path in written] == [".pdf"]
