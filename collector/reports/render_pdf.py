"""The procurement report as a PDF: the HTML of render_html.py laid out by WeasyPrint.

WeasyPrint needs Pango (a system library), so it is imported only here, when a PDF is
asked for: the collector, the XLSX and the HTML work without it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from collector.reports.i18n import Lang
from collector.reports.model import Report
from collector.reports.render_html import TEMPLATE_DIR, render_html

log = logging.getLogger(__name__)

INSTALL_HINT = ("PDF output needs WeasyPrint and the Pango library: pip install weasyprint; "
                "on Debian/Ubuntu apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
                "fonts-dejavu-core")
# Loggers that report harmless font and CSS details at WARNING/INFO while laying out.
NOISY_LOGGERS = ("weasyprint", "weasyprint.progress", "fontTools", "fontTools.subset",
                 "fontTools.ttLib", "fontTools.ttLib.ttFont")


def write_pdf(report: Report, lang: Lang, path: str | Path, *,
              max_devices_per_commune: int | None = None) -> Path:
    """Writes the report in `lang` to `path` as an A4 PDF; RuntimeError (one line) when
    WeasyPrint or Pango is missing."""
    html = render_html(report, lang, max_devices_per_commune=max_devices_per_commune)
    path = Path(path)
    with _quiet(NOISY_LOGGERS):  # its import logs too (the user-agent stylesheets)
        weasyprint = _weasyprint()
        # base_url: nothing is fetched today, but a relative URL would resolve next to
        # the template rather than in the current directory.
        weasyprint.HTML(string=html, base_url=str(TEMPLATE_DIR)).write_pdf(path)
    return path


def _weasyprint() -> ModuleType:
    try:
        # Its import warns about optional libraries (e.g. "HarfBuzz-Subset will be
        # required"): news for a packager, not for the officer printing a report.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import weasyprint
    except (ImportError, OSError) as exc:  # OSError: WeasyPrint found, Pango not
        first_line = (str(exc).splitlines() or [repr(exc)])[0]
        raise RuntimeError(f"{INSTALL_HINT} ({type(exc).__name__}: {first_line})") from exc
    for warning in caught:
        log.debug("weasyprint: %s", warning.message)
    return weasyprint


class _ToDebug(logging.Filter):
    """Lets errors through; passes warnings and progress notes on to this module's logger
    at DEBUG and drops the fonts' own debug chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        if record.levelno >= logging.INFO:
            log.debug("%s: %s", record.name, record.getMessage())
        return False


@contextlib.contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    # Filters for this call only: raising those loggers' levels would change them for good.
    demote = _ToDebug()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(demote)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(demote)
