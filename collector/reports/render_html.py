"""The procurement report as one self-contained, printable HTML page (the PDF's source).

Python turns the report model into ready-to-show strings (every word through
Lang.gettext, every number, sum of money and date through Lang); the Jinja2 template
(templates/report.html.j2, with report.css inlined) only lays them out. The charts are
inline SVG drawn here: no JavaScript, nothing to fetch, so the PDF needs no network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
from markupsafe import Markup, escape

from collector.reports import labels
from collector.reports.i18n import Lang
from collector.reports.model import (
    WINDOWS11_STATES,
    Commune,
    Counts,
    DeviceLine,
    Report,
    SiteLine,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"


DASH = "–"
# The cost chart is cut into blocks of this many communes: an SVG cannot break across
# pages, and 40 rows still fit one A4 page under a heading.
CHART_ROWS = 40
SVG_FONT = "DejaVu Sans, Noto Sans, Arial, sans-serif"
# Fills as SVG attributes: WeasyPrint does not apply the page's CSS inside an inline SVG.
FILLS = {"bar": "#4a6178", "bar-unfunded": "#c9d2db"}
_TO_ESCAPE = re.compile(r"[&<>'\"]")


# --- public --------------------------------------------------------------------------------

def render_html(report: Report, lang: Lang, *, max_devices_per_commune: int | None = None
                ) -> str:
    """The whole report as one HTML document in `lang`. `max_devices_per_commune` keeps
    only the first devices (by rank) of each commune, and as many lines of the not-funded
    list, so the PDF of a huge fleet stays readable; the XLSX keeps every line."""
    if max_devices_per_commune is not None and max_devices_per_commune < 0:
        raise ValueError("max_devices_per_commune must be 0 or more")
    return _environment().get_template(TEMPLATE).render(
        _context(report, lang, max_devices_per_commune))


def write_html(report: Report, lang: Lang, path: str | Path, *,
               max_devices_per_commune: int | None = None) -> Path:
    path = Path(path)
    path.write_text(render_html(report, lang, max_devices_per_commune=max_devices_per_commune),
                    encoding="utf-8")
    return path


def age_chart_svg(counts: Counts, lang: Lang) -> Markup:
    """Vertical bars: devices in each age band (AGE_BANDS, then unknown age)."""
    values = list(counts.by_age_band)
    names = [lang.gettext(n) for n in labels.AGE_BAND_NAMES]
    width, height, top, bottom, left = 640, 230, 24, 40, 20
    slot = (width - 2 * left) / len(values)
    bar_width = slot * 0.6
    plot = height - top - bottom
    biggest = max(values, default=0) or 1
    parts = [_svg_open(width, height, lang.gettext(labels.AGE_CHART)),
             _line(left, height - bottom, width - left, height - bottom)]
    for i, (value, name) in enumerate(zip(values, names)):
        bar = plot * value / biggest
        x = left + i * slot + (slot - bar_width) / 2
        y = height - bottom - bar
        parts.append(_rect("bar", x, y, bar_width, bar, f"{name}: {lang.number(value, 0)}"))
        parts.append(_text(x + bar_width / 2, y - 5, lang.number(value, 0), "middle"))
        parts.append(_text(x + bar_width / 2, height - bottom + 16, name, "middle"))
    parts.append("</svg>")
    return Markup("".join(parts))


def cost_chart_svg(communes: Sequence[Commune], lang: Lang, *, scale_vnd: int | None = None,
                   show_unfunded: bool = True) -> Markup:
    """Horizontal bars: each commune's estimated cost, in the order given, the part that
    is not funded paler (unless `show_unfunded` is off: a report without a budget).
    `scale_vnd` is the cost of a full-length bar (the largest by default), so that
    several blocks of one chart share a scale."""
    width, row, top, label_width, bar_area = 640, 18, 8, 190, 300
    height = top * 2 + row * max(len(communes), 1)
    scale = scale_vnd or max((c.counts.cost_vnd for c in communes), default=0) or 1
    parts = [_svg_open(width, height, lang.gettext(labels.COST_CHART)),
             _line(label_width, top, label_width, height - top)]
    for i, commune in enumerate(communes):
        y = top + i * row
        cost, funded = commune.counts.cost_vnd, min(commune.counts.funded_vnd,
                                                    commune.counts.cost_vnd)
        bar, funded_bar = bar_area * cost / scale, bar_area * funded / scale
        money = lang.money(cost)
        parts.append(_text(label_width - 6, y + row * 0.68, _shorten(commune.name, 30), "end"))
        parts.append(_rect("bar", label_width, y + 3, bar, row - 6, f"{commune.name}: {money}"))
        if show_unfunded and funded_bar < bar:  # beyond the budget: paler, at the end
            parts.append(_rect("bar-unfunded", label_width + funded_bar, y + 3,
                               bar - funded_bar, row - 6, None))
        parts.append(_text(label_width + bar + 6, y + row * 0.68, money, "start"))
    parts.append("</svg>")
    return Markup("".join(parts))


# --- the template's data -------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _context(report: Report, lang: Lang, limit: int | None) -> dict[str, Any]:
    has_budget = report.settings.budget_vnd is not None
    by_cost = sorted(report.communes, key=lambda c: (-c.counts.cost_vnd, c.name))
    scale = max((c.counts.cost_vnd for c in by_cost), default=0) or 1
    return {
        "_": lang.gettext, "labels": labels, "lang_code": lang.code,
        "header": _header(report, lang),
        "has_budget": has_budget,
        "summary": _summary(report.summary, lang, has_budget),
        "age_chart": age_chart_svg(report.summary, lang),
        # Blocks of one chart with one scale, the costliest communes first.
        "cost_charts": [cost_chart_svg(by_cost[i:i + CHART_ROWS], lang, scale_vnd=scale,
                                       show_unfunded=has_budget)
                        for i in range(0, len(by_cost), CHART_ROWS)],
        "cost_legend": has_budget and any(c.counts.funded_vnd < c.counts.cost_vnd
                                          for c in by_cost),
        "communes": [_commune(c, lang, limit, has_budget) for c in report.communes],
        "sites": [_site_row(s, lang) for s in report.sites],
        "unfunded": _unfunded(report, lang, limit) if has_budget else None,
        "unmatched": [{"line": lang.number(u.line, 0), "text": u.text,
                       "why": lang.gettext(u.why)} for u in report.unmatched_assets],
        "method": _method(report, lang),
    }


def _header(report: Report, lang: Lang) -> dict[str, str]:
    budget = report.settings.budget_vnd
    title = lang.gettext(labels.TITLE)
    return {
        "title": f"{title} – {report.province}" if report.province else title,
        "province": report.province or DASH,
        "period": f"{lang.date(report.period_start)} – {lang.date(report.period_end)}",
        "generated": lang.datetime(report.generated),
        "budget": lang.gettext(labels.NO_BUDGET) if budget is None else lang.money(budget),
    }


def _summary(counts: Counts, lang: Lang, has_budget: bool) -> dict[str, Any]:
    _ = lang.gettext
    rows = [(labels.DEVICES, counts.devices), (labels.FAILING, counts.failing),
            (labels.AT_RISK, counts.at_risk), (labels.BEYOND_REFRESH, counts.beyond_refresh_age),
            (labels.BEYOND_LIFE, counts.beyond_useful_life),
            (labels.OS_EOS, counts.os_end_of_support)]
    order = {state: i for i, state in enumerate(WINDOWS11_STATES)}
    windows11 = sorted(counts.windows11, key=lambda kv: order.get(kv[0], len(order)))
    costs = [(_(labels.TOTAL_COST), lang.money(counts.cost_vnd))]
    if has_budget:
        costs += [(_(labels.FUNDED_COST), lang.money(counts.funded_vnd)),
                  (_(labels.NOT_FUNDED), lang.money(counts.cost_vnd - counts.funded_vnd))]
    return {
        "counts": [(_(name), lang.number(value, 0)) for name, value in rows],
        "windows11": [(lang.windows11(state), lang.number(n, 0)) for state, n in windows11],
        "actions": [(lang.action(action), lang.number(n, 0)) for action, n in counts.actions],
        "costs": costs,
    }


def _counts_line(counts: Counts, lang: Lang, has_budget: bool) -> str:
    """A commune's counts in one line, for under its heading."""
    _ = lang.gettext
    parts = [(labels.DEVICES, lang.number(counts.devices, 0)),
             (labels.FAILING, lang.number(counts.failing, 0)),
             (labels.AT_RISK, lang.number(counts.at_risk, 0)),
             (labels.BEYOND_REFRESH, lang.number(counts.beyond_refresh_age, 0)),
             (labels.OS_EOS, lang.number(counts.os_end_of_support, 0)),
             (labels.TOTAL_COST, lang.money(counts.cost_vnd))]
    if has_budget:
        parts.append((labels.FUNDED_COST, lang.money(counts.funded_vnd)))
    return " · ".join(f"{_(name)}: {value}" for name, value in parts)


def _commune(commune: Commune, lang: Lang, limit: int | None, has_budget: bool
             ) -> dict[str, Any]:
    devices = sorted(commune.devices, key=lambda d: d.rank)
    shown = devices if limit is None else devices[:limit]
    return {
        "site": commune.site, "name": commune.name,
        "counts": _counts_line(commune.counts, lang, has_budget),
        # Each row's HTML made here (device_row_html), where its layout is.
        "rows": [Markup(device_row_html(_device_row(d, lang), has_budget)) for d in shown],
        "more": _more(len(devices) - len(shown), lang),
    }


def _more(hidden: int, lang: Lang) -> str | None:
    return (lang.gettext(labels.MORE_DEVICES).format(count=lang.number(hidden, 0)) if hidden > 0
            else None)


def _device_row(d: DeviceLine, lang: Lang) -> dict[str, Any]:
    acts = d.action != "none"
    return {
        "rank": lang.number(d.rank, 0), "device": d.device, "hostname": d.hostname or "",
        "role": lang.role(d.role), "age": lang.number(d.age_years),
        "born": _born(d, lang), "os": _os(d, lang), "windows11": _windows11(d, lang),
        "score": lang.number(d.score), "action": lang.action(d.action),
        "cost": lang.money(d.cost_vnd) if acts else DASH,
        "funded": lang.yes_no(d.funded) if acts else DASH,
        "unfunded": acts and not d.funded,
        "evidence": _evidence(d, lang), "why": _why(d, lang),
    }


def device_row_html(d: dict[str, Any], has_budget: bool) -> str:
    """One device's <tr>, as the template would lay it out (tests/test_report_fast_paths.py
    compares the two): a country's 130,000 rows took half a minute through Jinja2, most of
    it in its attribute look-ups and escaping, a few seconds this way."""
    e = _escape
    rank = e(d["rank"])
    host = f"<br><small>{e(d['hostname'])}</small>" if d["hostname"] else ""
    born = f"<br><small>{e(d['born'])}</small>" if d["born"] else ""
    windows = f"<br><small>{e(d['windows11'])}</small>" if d["windows11"] else ""
    funded = f"<td>{e(d['funded'])}</td>" if has_budget else ""
    why = "".join(f"<div>{e(item)}</div>" for item in d["why"])
    evidence = f'<div class="evidence">{e(d["evidence"])}</div>' if d["evidence"] else ""
    return (f'        <tr class="device{" unfunded" if d["unfunded"] else ""}" '
            f'data-rank="{rank}">\n'
            f'          <td class="num">{rank}</td>\n'
            f"          <td><b>{e(d['device'])}</b>{host}</td>\n"
            f"          <td>{e(d['role'])}</td>\n"
            f'          <td class="num">{e(d["age"])}{born}</td>\n'
            f"          <td>{e(d['os'])}{windows}</td>\n"
            f'          <td class="num">{e(d["score"])}</td>\n'
            f"          <td>{e(d['action'])}</td>\n"
            f'          <td class="num money-cell">{e(d["cost"])}</td>\n'
            f'{funded}          <td class="why">\n'
            f"{why}{evidence}          </td>\n"
            f"        </tr>\n")


def _escape(text: str) -> str:
    """markupsafe.escape's output, as a plain str (a Markup object per cell is half the
    cost of escaping); most cells have nothing to escape."""
    if not _TO_ESCAPE.search(text):
        return text
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&#39;").replace('"', "&#34;"))


def _born(d: DeviceLine, lang: Lang) -> str:
    if d.born is None:
        return ""
    source = {"purchase": labels.FROM_PURCHASE, "bios": labels.FROM_BIOS}.get(d.born_from or "")
    return lang.date(d.born) + (f" ({lang.gettext(source)})" if source else "")


def _os(d: DeviceLine, lang: Lang) -> str:
    if not d.os:
        return DASH
    return d.os + (f" ({lang.gettext(labels.OS_EOS)})" if d.os_end_of_support else "")


def _windows11(d: DeviceLine, lang: Lang) -> str:
    if d.windows11 == "not_windows":
        return ""  # a Linux server or a router: nothing to say about Windows 11
    text = f"{lang.gettext(labels.WINDOWS11)}: {lang.windows11(d.windows11)}"
    if d.windows11_blockers:
        text += " (" + "; ".join(lang.blocker(b) for b in d.windows11_blockers) + ")"
    return text


def _evidence(d: DeviceLine, lang: Lang) -> str:
    """The active findings, in words. The numbers behind them are in the reasons and in
    the XLSX: every further line in a row costs the PDF of a province many pages."""
    findings = ", ".join(lang.finding(f) for f in d.evidence.findings)
    return f"{lang.gettext(labels.FINDINGS)}: {findings}" if findings else ""


def _why(d: DeviceLine, lang: Lang) -> list[str]:
    return [f"{lang.reason_part(r.part)} {lang.number(r.points)}: {r.text(lang.code)}"
            for r in d.why]


def _site_row(s: SiteLine, lang: Lang) -> dict[str, Any]:
    return {
        "name": s.site_name or s.site, "action": lang.action(s.action),
        "findings": ", ".join(lang.finding(f) for f in s.findings) or DASH,
        "rtt": lang.number(s.rtt_p95_ms, 0), "loss": lang.number(s.loss_percent),
        "throughput": lang.number(s.throughput_mbit), "router": s.router or DASH,
        "score": lang.number(s.score), "cost": lang.money(s.cost_vnd),
        "funded": lang.yes_no(s.funded), "unfunded": not s.funded,
    }


def _unfunded(report: Report, lang: Lang, limit: int | None) -> dict[str, Any]:
    # With a per-commune limit the list is cut to as many lines as the commune tables show.
    names = {c.site: c.name for c in report.communes}
    lines = list(report.unfunded)
    shown = lines if limit is None else lines[:limit * max(len(report.communes), 1)]
    # Namespaces, not dicts: Jinja2 tries an attribute before an item, and a failed
    # attribute look-up costs a raised exception, for each of 100,000 rows x 5 cells.
    return {"rows": [SimpleNamespace(**_unfunded_row(line, lang, names)) for line in shown],
            "more": _more(len(lines) - len(shown), lang),
            "total": lang.money(sum(line.cost_vnd for line in lines))}


def _unfunded_row(line: DeviceLine | SiteLine, lang: Lang, names: dict[str, str]
                  ) -> dict[str, str]:
    if isinstance(line, DeviceLine):
        rank, place = lang.number(line.rank, 0), names.get(line.site, line.site)
        what = line.device + (f" ({line.hostname})" if line.hostname else "")
    else:  # a link or router: what was found says more than the router's id
        rank, place = DASH, line.site_name or line.site
        what = ", ".join(lang.finding(f) for f in line.findings) or line.router or DASH
    return {"rank": rank, "place": place, "what": what, "action": lang.action(line.action),
            "cost": lang.money(line.cost_vnd)}


def _method(report: Report, lang: Lang) -> dict[str, Any]:
    s, _ = report.settings, lang.gettext
    weights = dict(s.weights)
    values = {key: lang.number(weights.get(key)) for key in
              ("critical", "warning", "risk_max", "shortfall_max", "per_year",
               "end_of_support", "age_max")}
    values |= {"refresh": lang.number(s.refresh_age_years),
               "useful_life": lang.number(s.useful_life_years),
               "start": lang.date(report.period_start), "end": lang.date(report.period_end)}
    settings = [(_(labels.BUDGET), _(labels.NO_BUDGET) if s.budget_vnd is None
                 else lang.money(s.budget_vnd)),
                (_(labels.REFRESH_AGE), lang.number(s.refresh_age_years)),
                (_(labels.USEFUL_LIFE), lang.number(s.useful_life_years)),
                (_(labels.SITE), ", ".join(s.sites) or _(labels.ALL)),
                (_(labels.ROLE), ", ".join(lang.role(r) for r in s.roles) or _(labels.ALL))]
    if s.assets_file:
        settings.append((_(labels.ASSETS_FILE), s.assets_file))
    return {
        "prices": [(lang.action(action), lang.money(price)) for action, price in s.prices_vnd],
        "settings": settings,
        "paragraphs": [_(text).format(**values) for text in labels.METHOD_TEXT],
    }


# --- SVG pieces ----------------------------------------------------------------------------

def _svg_open(width: int, height: float, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'width="{width}" height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" '
            f'font-family="{SVG_FONT}" font-size="11"><title>{escape(title)}</title>')


def _rect(css_class: str, x: float, y: float, w: float, h: float, tooltip: str | None) -> str:
    inner = f"<title>{escape(tooltip)}</title></rect>" if tooltip else "</rect>"
    return (f'<rect class="{css_class}" fill="{FILLS[css_class]}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{max(w, 0):.1f}" height="{max(h, 0):.1f}">{inner}')


def _text(x: float, y: float, text: str, anchor: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return (f'<line class="axis" stroke="#555" stroke-width="1" x1="{x1:.1f}" y1="{y1:.1f}" '
            f'x2="{x2:.1f}" y2="{y2:.1f}"/>')


def _shorten(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size - 1] + "…"

