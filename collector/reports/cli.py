"""`cwatch report procurement`: read the collector's state database and write the
procurement report as XLSX, CSV, HTML and PDF.

The command line itself is in cwatch/cli.py (`_add_report_parser`); `run` returns the
exit status:
    0  written
    1  the report could not be made: no state database, a file that cannot be read or
       written, the PDF engine missing
    2  a mistake in the command line or the config file
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from collector import partition
from collector.config import CollectorConfig
from collector.config import load as load_config
from collector.reports.assets import AssetFileError, AssetRow, read_assets
from collector.reports.build import Selection, build_report, cpus, gc_paused
from collector.reports.config import ReportSection
from collector.reports.i18n import Lang
from collector.reports.model import Report, UnmatchedAsset
from collector.rules import priority
from collector.rules import spec as rule_spec
from collector.store.findings import FindingsStore
from collector.store.state import StateStore
from cwatch.config import ConfigError

PROG = "cwatch report"
FORMATS = ("xlsx", "csv", "html", "pdf")
log = logging.getLogger(__name__)


class CliError(Exception):
    """One line for the user; `usage` means exit status 2 (their input), else 1."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage

    def __reduce__(self) -> tuple[Any, ...]:  # from a writer process (_write_all), whole
        return _cli_error, (str(self), self.usage)


def _cli_error(message: str, usage: bool) -> CliError:
    return CliError(message, usage=usage)


def run(args: argparse.Namespace) -> int:
    try:
        written = procurement(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2 if exc.usage else 1
    for path in written:
        print(path)
    return 0


def procurement(args: argparse.Namespace) -> list[Path]:
    config = _config(args)
    section = config.report
    formats = _formats(",".join(FORMATS) if args.format is None else args.format)
    selection = _selection(args, section)
    state_path = Path(args.state or config.collector.state_path)
    if not state_path.is_file():
        raise CliError(f"no state database at {state_path}: give --state, or [collector] "
                       "state_path in --config (the collector's own file)")
    try:
        weights = rule_spec.load(Path(config.collector.rules_file)
                                 if config.collector.rules_file else None).priority
    except (rule_spec.RuleError, OSError) as exc:
        raise CliError(str(exc), usage=True) from None
    names = _site_names(args.sites_file or config.collector.sites_file)
    assets = _assets(args.assets or section.assets_file)
    return write_report(state_path, section, weights, selection, Path(args.out),
                        formats=formats, site_names=names, assets=assets,
                        pdf_devices=args.pdf_devices, pdf_by_default=args.format is None,
                        progress=None if args.quiet else Progress("devices"))


def write_report(state_path: Path, section: ReportSection, weights: priority.Weights,
                 selection: Selection, out: Path, *, formats: Sequence[str] = FORMATS,
                 site_names: dict[str, str] | None = None,
                 assets: tuple[list[AssetRow], list[UnmatchedAsset]] | None = None,
                 pdf_devices: int = 10, pdf_by_default: bool = False,
                 progress: Progress | None = None) -> list[Path]:
    """Build the report from the state database and write it in each format to `out`
    (the command, and `cwatch demo` for its sample report). pdf_by_default: the formats
    are the default ones, so a PDF too big to lay out in minutes is left out."""
    started = time.monotonic()
    state = StateStore(state_path)
    try:
        report = build_report(state, FindingsStore(state), section, weights, selection,
                              now=time.time(), site_names=site_names, assets=assets,
                              progress=progress)
    finally:
        state.close()
    if progress is not None:
        progress.done()
    if pdf_by_default and "pdf" in formats and len(report.communes) > PDF_DEFAULT_MAX_COMMUNES:
        formats = [fmt for fmt in formats if fmt != "pdf"]
        # WeasyPrint lays out 20-30 rows a second: 3,300 communes are 20-30 minutes.
        log.warning("no PDF by default for %d communes (about %d minutes); ask for it with "
                    "--format xlsx,csv,html,pdf, or make one per province with --site",
                    len(report.communes),
                    max(1, len(report.communes) * pdf_devices // 25 // 60))
    lang = Lang(section.language)
    out.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        progress.step(f"writing {', '.join(fmt.upper() for fmt in formats)}")
    with gc_paused():  # and so in the forked writers too
        written = _write_all(formats, report, lang, out, pdf_devices)
    log.info("report of %d devices written in %.1f s", report.summary.devices,
             time.monotonic() - started)
    return written


# A province has up to about 170 communes; beyond this the default formats leave out
# the PDF (the document a province signs), which would take most of an hour to lay out.
PDF_DEFAULT_MAX_COMMUNES = 300


# The report the forked writers of _write_all inherit (passing it to them would pickle
# 130,000 lines for each).
_SHARED: tuple[Report, Lang, Path, int] | None = None
# Longest first, so the short ones fill in beside it.
WRITE_ORDER = ("pdf", "xlsx", "html", "csv")


def _write_all(formats: Sequence[str], report: Report, lang: Lang, out: Path,
               pdf_devices: int) -> list[Path]:
    """Each format written by a process of its own, as many at once as there are CPUs:
    for a country the XLSX, HTML and CSV take some 7, 6 and 3 s one after the other.
    Forked, so only from a process without threads (the command), else one after the
    other."""
    workers = min(len(formats), cpus())
    if workers < 2 or threading.active_count() > 1 \
            or "fork" not in multiprocessing.get_all_start_methods():
        return [_write(fmt, report, lang, out, pdf_devices) for fmt in formats]
    global _SHARED
    _SHARED = (report, lang, out, pdf_devices)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) \
                as pool:
            jobs = {fmt: pool.submit(_write_shared, fmt)
                    for fmt in sorted(formats, key=WRITE_ORDER.index)}
            return [jobs[fmt].result() for fmt in formats]
    finally:
        _SHARED = None


def _write_shared(fmt: str) -> Path:
    assert _SHARED is not None, "only in a process forked by _write_all"
    return _write(fmt, *_SHARED)


def _config(args: argparse.Namespace) -> CollectorConfig:
    overrides: dict[str, dict[str, object]] = {"report": {
        "province": args.province, "language": args.lang, "period": args.period,
        "budget_vnd": args.budget, "assets_file": args.assets}}
    try:
        return load_config(Path(args.config) if args.config else None, overrides)
    except (ConfigError, ValueError) as exc:
        raise CliError(str(exc), usage=True) from None


def _formats(text: str) -> list[str]:
    formats = [part.strip().lower() for part in text.split(",") if part.strip()]
    wrong = [part for part in formats if part not in FORMATS]
    if wrong or not formats:
        raise CliError(f"--format {text!r}: each must be one of {', '.join(FORMATS)}",
                       usage=True)
    return list(dict.fromkeys(formats))


def _date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r} must be a date like 2026-11-27", usage=True) \
            from None


def _selection(args: argparse.Namespace, section: ReportSection) -> Selection:
    today = dt.datetime.now(dt.timezone.utc).date()
    end = _date(args.to_date, "--to") if args.to_date else today
    if args.from_date:
        start = _date(args.from_date, "--from")
    else:
        start = end - dt.timedelta(days=max(1, round(section.period_s / 86400)) - 1)
    if start > end:
        raise CliError(f"--from {start} is after --to {end}", usage=True)
    return Selection(start=start, end=end, sites=frozenset(args.site or ()),
                     roles=frozenset(args.role or ()))


def _site_names(path: str) -> dict[str, str]:
    if not path:
        return {}
    try:
        return partition.site_names(Path(path))
    except (OSError, ValueError) as exc:
        raise CliError(str(exc), usage=True) from None


def _assets(path: str) -> tuple[list[AssetRow], list[UnmatchedAsset]] | None:
    if not path:
        return None
    try:
        return read_assets(Path(path))
    except AssetFileError as exc:
        raise CliError(str(exc)) from None


def file_name(report: Report, lang: Lang, fmt: str) -> str:
    stem = "bao-cao-mua-sam" if lang.code == "vi" else "procurement-report"
    return f"{stem}-{report.period_end.isoformat()}.{fmt}"


def pdf_view(report: Report) -> Report:
    """The PDF is the document to sign: in each commune, the devices that need something
    (WeasyPrint lays out about 20 table rows a second; the XLSX has every device)."""
    communes = tuple(dataclasses.replace(c, devices=tuple(
        d for d in c.devices if d.action != "none")) for c in report.communes)
    return dataclasses.replace(report, communes=communes)


def _write(fmt: str, report: Report, lang: Lang, out: Path, pdf_devices: int) -> Path:
    path = out / file_name(report, lang, fmt)
    try:
        if fmt == "xlsx":
            from collector.reports.render_xlsx import write_xlsx
            return write_xlsx(report, lang, path)
        if fmt == "csv":
            from collector.reports.render_csv import write_csv
            return write_csv(report, lang, path)
        if fmt == "html":
            from collector.reports.render_html import write_html
            return write_html(report, lang, path)
        from collector.reports.render_pdf import write_pdf
        return write_pdf(pdf_view(report), lang, path,
                         max_devices_per_commune=pdf_devices or None)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    except RuntimeError as exc:  # the PDF engine missing
        raise CliError(str(exc)) from None


class Progress:
    """A one-line counter on stderr: redrawn in place on a terminal, a line every ten
    thousand otherwise (logs, CI). Once told how many to expect, a bar and a share."""

    BAR = 24  # characters

    def __init__(self, what: str, stream=None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.clock = clock
        self.started = clock()
        self.last = 0
        self.printed = 0
        self.total: int | None = None

    def step(self, what: str) -> None:
        self.stream.write(f"{what}...\n")
        self.stream.flush()

    def expect(self, total: int) -> None:
        self.total = total

    def __call__(self, count: int) -> None:
        if self.tty:
            self.stream.write(f"\rreading {self.what}: {self._count(count, bar=True)}")
            self.stream.flush()
        elif count - self.printed >= 10_000:
            self.stream.write(f"reading {self.what}: {self._count(count, bar=False)}\n")
            self.printed = count
        self.last = count

    def _count(self, count: int, *, bar: bool) -> str:
        if not self.total:
            return f"{count:,}"
        share = min(1.0, count / self.total)
        percent = f"{100 * share:.0f} %"
        if not bar:
            return f"{count:,} of {self.total:,} ({percent})"
        drawn = "#" * round(share * self.BAR)
        return f"{count:,} of {self.total:,} [{drawn:.<{self.BAR}}] {percent}"

    def done(self) -> None:
        end = "\n" if self.tty else ""
        self.stream.write(f"{end}read {self.last:,} {self.what} in "
                          f"{self.clock() - self.started:.1f} s\n")
