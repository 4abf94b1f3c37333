"""How long the procurement report takes for a whole country: N devices in S communes,
each with inventory, newest metrics and D days of roll-ups, 5 % of them with a finding.

    .venv/bin/python bench/report_scale.py --devices 130000 --sites 3300 --days 30
    .venv/bin/python bench/report_scale.py --devices 3000 --sites 100   # a province
    .venv/bin/python bench/report_scale.py --state /tmp/country.db --formats xlsx  # again

--state keeps the filled database (and reuses it when it is there: filling a country
takes minutes); --formats times only some of the outputs.

The state database is written straight into SQLite (the collector's schema), which is
much faster than replaying messages; the report then reads it as it would a real one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from collector.ingest import Sample
from collector.reports.build import Selection, build_report
from collector.reports.cli import FORMATS, pdf_view
from collector.reports.config import ReportSection
from collector.reports.i18n import Lang
from collector.reports.render_csv import write_csv
from collector.reports.render_html import write_html
from collector.reports.render_pdf import write_pdf
from collector.reports.render_xlsx import write_xlsx
from collector.rules import spec
from collector.store.findings import FindingsStore
from collector.store.state import PERCENT_BUCKETS, StateStore

CPUS = ["Intel(R) Core(TM) i3-3220 CPU @ 3.30GHz", "Intel(R) Core(TM) i5-6500 CPU @ 3.20GHz",
        "Intel(R) Core(TM) i5-10400 CPU @ 2.90GHz", "12th Gen Intel(R) Core(TM) i5-12400"]


def fill(state: StateStore, findings: FindingsStore, devices: int, sites: int,
         days: int, today: dt.date) -> None:
    rng = random.Random(1)
    now = time.time()
    batch = []
    for n in range(devices):
        site, device = f"xa-{n % sites:04d}", f"pc-{n // sites:03d}"
        year = rng.randint(2010, 2024)
        inventory = {
            "hostname": f"{site}-{device}".upper(),
            "os": {"name": "Windows", "version": rng.choice(["7", "10", "10", "11"])},
            "cpu": {"model": CPUS[min(3, (year - 2010) // 4)]},
            "ram_bytes": rng.choice([2, 4, 8, 16]) << 30,
            "disks": [{"kind": "hdd" if year < 2016 else "ssd", "size_bytes": 5e11}],
            "system": {"serial": f"VN{n:010d}"}, "bios": {"date": f"{year}-06-01"},
            "firmware": "uefi" if year >= 2012 else "bios", "secure_boot": year >= 2016,
            "tpm": {"present": year >= 2015, "version": "2.0" if year >= 2017 else "1.2"},
            "asset": {"role": rng.choice(["service-counter", "office", "office"])}}
        metrics = {"cpu_percent": rng.uniform(5, 90), "mem_used_percent": rng.uniform(40, 99),
                   "smart": [{"device": "/dev/sda", "protocol": "ata", "passed": True,
                              "reallocated_sectors": 0, "pending_sectors": 0}]}
        batch += [Sample(site, device, "inventory", now - 120, 1, inventory),
                  Sample(site, device, "status", now - 120, 2, {"state": "online"}),
                  Sample(site, device, "metrics", now - 60, 3, metrics)]
        if len(batch) >= 30_000:
            state.apply_many(batch)
            batch = []
    state.apply_many(batch)
    # Roll-ups: written directly, one row per device and day.
    db, lock = state.connection()
    hists = [orjson.dumps([0] * (low) + [1440] + [0] * (PERCENT_BUCKETS - low - 1)).decode()
             for low in range(0, PERCENT_BUCKETS, 5)]
    with lock, db:
        for day_index in range(days):
            day = (today - dt.timedelta(days=day_index)).isoformat()
            db.executemany(
                "INSERT OR REPLACE INTO device_daily (site, device, day, samples, cpu_hist, "
                "mem_hist, disk_used_max, swap_in_samples, temp_max) "
                "VALUES (?, ?, ?, 1440, ?, ?, ?, ?, NULL)",
                [(f"xa-{n % sites:04d}", f"pc-{n // sites:03d}", day, rng.choice(hists),
                  rng.choice(hists), rng.uniform(30, 99), rng.randint(0, 300))
                 for n in range(devices)])
    for n in rng.sample(range(devices), devices // 20):
        findings.open(finding="disk_failing", rule="disk_bad_sectors", severity="critical",
                      scope="device", site=f"xa-{n % sites:04d}", device=f"pc-{n // sites:03d}",
                      item="/dev/sda", started_ts=now - 3600, value=24.0,
                      summary="Disk /dev/sda: 24 reallocated sectors", summary_vi="Ổ đĩa")


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def timed(what: str, fn, *args, **kwargs):
    # CPU time too: on a machine shared with other jobs the wall time says less.
    started, cpu = time.perf_counter(), cpu_seconds()
    result = fn(*args, **kwargs)
    print(f"{what:<32} {time.perf_counter() - started:7.1f} s "
          f"(CPU {cpu_seconds() - cpu:5.1f} s)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=130_000)
    parser.add_argument("--sites", type=int, default=3_300)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--pdf", action="store_true", help="also the PDF (top 10 per commune)")
    parser.add_argument("--formats", default="xlsx,csv,html", metavar="LIST",
                        help="which outputs to time (xlsx,csv,html,pdf; default all but pdf)")
    parser.add_argument("--state", metavar="PATH",
                        help="the state database: filled if missing, else reused as it is")
    args = parser.parse_args()
    formats = {part.strip() for part in args.formats.split(",") if part.strip()}
    if args.pdf:
        formats.add("pdf")
    today = dt.datetime.now(dt.timezone.utc).date()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        db_path = Path(args.state) if args.state else out / "state.db"
        reuse = db_path.exists()
        state = StateStore(db_path)
        findings = FindingsStore(state)
        if reuse:  # its roll-ups end on the day it was filled
            db, lock = state.connection()
            with lock:
                today = dt.date.fromisoformat(
                    db.execute("SELECT MAX(day) FROM device_daily").fetchone()[0])
        else:
            timed(f"fill {args.devices:,} devices x {args.days} days", fill, state, findings,
                  args.devices, args.sites, args.days, today)
        # Each step alone, one after the other.
        selection = Selection(start=today - dt.timedelta(days=args.days - 1), end=today)
        section, weights = ReportSection(budget_vnd=50_000_000_000), spec.load().priority
        started = time.perf_counter()
        report = timed("build (read, score, cost)", build_report, state, findings, section,
                       weights, selection, now=time.time())
        lang = Lang("vi")
        if "xlsx" in formats:
            timed("XLSX", write_xlsx, report, lang, out / "r.xlsx")
        if "csv" in formats:
            timed("CSV", write_csv, report, lang, out / "r.csv")
        if "html" in formats:
            timed("HTML", write_html, report, lang, out / "r.html")
        if "pdf" in formats:
            timed("PDF (10 per commune)", write_pdf, pdf_view(report), lang, out / "r.pdf",
                  max_devices_per_commune=10)
        total = time.perf_counter() - started
        devices = report.summary.devices
        del report
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{'steps one after the other':<32} {total:7.1f} s; {devices:,} devices, "
              f"peak RSS {peak_mb:,.0f} MB", flush=True)
        # The command itself, in a process of its own as an officer runs it: the build,
        # then the formats side by side (cli.write_report).
        chosen = [fmt for fmt in FORMATS if fmt in formats]
        command = [sys.executable, "-m", "cwatch", "report", "procurement", "--state",
                   str(db_path), "--out", str(out / "command"), "--format", ",".join(chosen),
                   "--budget", str(section.budget_vnd), "--from", selection.start.isoformat(),
                   "--to", selection.end.isoformat(), "--pdf-devices", "10", "--quiet"]
        timed(f"the command: {','.join(chosen)}", subprocess.run, command, check=True,
              stdout=subprocess.DEVNULL)
        children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{'':<32} peak RSS of its largest process {children_mb:,.0f} MB")

if __name__ == "__main__":
    main()
