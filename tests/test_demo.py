"""`cwatch demo` runs the whole chain on this machine and leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import openpyxl
import psutil

from cwatch import demo

NOT_EQUIPMENT = demo.LINK_FINDINGS + demo.PLANNING_FINDINGS


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.process_iter()}
    result = subprocess.run(
        [sys.executable, "-m", "cwatch", "demo", "--duration", "12", "--output",
         str(tmp_path / "demo")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    counts = re.findall(r"sites\s+(\d+)\s+devices online\s+(\d+)\s+offline\s+(\d+)\s+"
                        r"accepted\s+(\d+)\s+rejected\s+(\d+)", result.stdout)
    sites, online, offline, accepted, rejected = map(int, counts[-1])
    truth = json.loads((tmp_path / "demo" / "truth.json").read_text(encoding="utf-8"))
    assert sites == len(truth["sites"]) + 1  # the simulated communes and this PC's "demo"
    assert online + offline == truth["devices"] + 1
    assert accepted > truth["devices"] * 3  # status, inventory, metrics at least
    assert rejected == 0
    state = sqlite3.connect(tmp_path / "demo" / "state.db")
    this_pc = state.execute("SELECT COUNT(*) FROM devices WHERE site = 'demo' AND "
                            "metrics_json IS NOT NULL").fetchone()
    assert this_pc == (1,)  # the real agent's data, next to the simulated fleet
    # The replay reached the injected faults: the rules flagged equipment.
    flagged = {row[0] for row in state.execute("SELECT DISTINCT finding FROM findings")}
    assert flagged & {"disk_failing", "smart_failed", "nvme_worn", "disk_full"}, flagged
    # The last line counts after every queued message is stored, so it matches the store.
    final = re.findall(r"\[final\].*flagged equipment\s+(\d+)", result.stdout)
    active = state.execute(
        "SELECT COUNT(*) FROM findings WHERE ended_ts IS NULL AND finding NOT IN "
        f"({', '.join('?' * len(NOT_EQUIPMENT))})", NOT_EQUIPMENT).fetchone()[0]
    assert len(final) == 1 and int(final[0]) == active > 0
    assert "nothing left running" in result.stdout
    # The sample procurement report of the demo fleet, in every format.
    day = dt.datetime.now(dt.timezone.utc).date().isoformat()
    report = tmp_path / "demo" / "report"
    assert sorted(p.name for p in report.iterdir()) == sorted(
        f"bao-cao-mua-sam-{day}.{ext}" for ext in ("csv", "html", "pdf", "xlsx"))
    assert str(report / f"bao-cao-mua-sam-{day}.pdf") in result.stdout
    workbook = openpyxl.load_workbook(report / f"bao-cao-mua-sam-{day}.xlsx", read_only=True)
    assert "an-phuoc" in workbook.sheetnames
    leftovers = [p for p in psutil.process_iter(["pid", "cmdline"]) if p.pid not in before
                 and "cwatch-demo-broker" in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []
