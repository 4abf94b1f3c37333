"""From the collector's state to the procurement report's data (model.Report).

    state store ──► every device: inventory, newest metrics and probe
                ──► roll-ups over the period: CPU/memory p95, hours at high memory,
                    swapping, fullest disk; unexpected reboots; portal round trips
    findings    ──► what is wrong now, per device and per site
    asset CSV   ──► purchase dates, tags, locations (matched by serial or host name)
        │
        ▼
    score (collector/rules/priority.py) ─► Windows 11 readiness ─► action and cost
        ─► rank ─► budget cap ─► communes and totals ─► Report

The same ranking as /api/priorities, computed over the report's period, with all data
read in bulk so a country's 130,000 devices take seconds, not hours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import gc
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from zoneinfo import ZoneInfo

from collector.reports import costing
from collector.reports.assets import AssetRow, DeviceIdentity, match_assets
from collector.reports.config import ReportSection
from collector.reports.model import (
    AGE_BANDS,
    WINDOWS11_STATES,
    Commune,
    Counts,
    DeviceLine,
    Evidence,
    Reason,
    Report,
    Settings,
    SiteLine,
    UnmatchedAsset,
)
from collector.reports.readiness import windows11_readiness
from collector.rules import priority
from collector.store.findings import FindingsStore
from collector.store.state import StateStore

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
YEAR_S = 365.25 * 86400
# Findings about the hardware itself: they make a device failing (critical) or at risk.
EQUIPMENT = frozenset({"smart_failed", "disk_failing", "nvme_worn", "overheating",
                       "memory_pressure", "disk_full", "disk_filling", "unexpected_reboots",
                       "cpu_saturated", "battery_worn", "interface_errors",
                       "interface_discards", "lan_loss"})
SITE_FINDINGS = ("slow_link", "local_network", "site_unreachable", "dns_slow")
ROLE_ID = re.compile(r"[a-z][a-z0-9-]{0,31}")  # as the protocol's asset.role


class ProgressSink(Protocol):
    """Where a long build says how far it is (cli.Progress on stderr)."""

    def step(self, what: str) -> None: ...

    def expect(self, devices: int) -> None: ...  # how many __call__ will count up to

    def __call__(self, devices_done: int) -> None: ...


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which devices and which days the report covers."""

    start: dt.date  # first UTC day of measurements
    end: dt.date  # last UTC day
    sites: frozenset[str] = frozenset()  # empty: all
    roles: frozenset[str] = frozenset()  # empty: all


def build_report(state: StateStore, findings: FindingsStore, section: ReportSection,
                 weights: priority.Weights, selection: Selection, *, now: float,
                 site_names: dict[str, str] | None = None,
                 assets: tuple[list[AssetRow], list[UnmatchedAsset]] | None = None,
                 progress: ProgressSink | None = None, workers: int | None = None) -> Report:
    """The report for `selection`, as of `now` (Unix time). `workers`: processes that
    share the summing of a big fleet's roll-ups (default: one per CPU this may use)."""
    with gc_paused():
        return _build(state, findings, section, weights, selection, now, site_names or {},
                      assets, progress, workers)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile. A country's report makes millions of
    objects and next to no cycles, and each full collection walks all of them again: a
    fifth of the build's time, and in a forked writer it copies every page it walks."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(state: StateStore, findings: FindingsStore, section: ReportSection,
           weights: priority.Weights, selection: Selection, now: float,
           names: dict[str, str], assets: tuple[list[AssetRow], list[UnmatchedAsset]] | None,
           progress: ProgressSink | None, workers: int | None) -> Report:
    budget = section.budget_vnd or None
    start_ts = dt.datetime.combine(selection.start, dt.time(), dt.timezone.utc).timestamp()
    end_ts = dt.datetime.combine(selection.end, dt.time.max, dt.timezone.utc).timestamp()
    by_device, by_site = priority.split_findings(
        findings.query(state="active", limit=10_000_000))
    if progress is not None:  # the longest step for a big fleet: say so first
        progress.step(f"summing the daily roll-ups {selection.start} to {selection.end}")
    usage = state.usage_between(selection.start, selection.end,
                                workers=workers or cpus())
    reboots = state.unexpected_reboots_between(start_ts, end_ts)
    every = list(state.every_device())
    matched: dict[tuple[str, str], AssetRow] = {}
    unmatched: list[UnmatchedAsset] = []
    if assets is not None:
        # Against every device: a row of a commune left out by --site is not "unmatched".
        rows, unmatched = assets[0], list(assets[1])
        matched, not_found = match_assets(rows, (_identity(d) for d in every))
        unmatched += not_found
    devices = [d for d in every if _selected(d, selection)]
    if progress is not None:
        progress.expect(len(devices))
    fields, scored = [], []
    for count, device in enumerate(devices, start=1):
        key = (device["site"], device["device"])
        line, score = _device_line(device, matched.get(key), usage.get(key),
                                   reboots.get(key, 0), by_device.get(key, []), section,
                                   weights, selection.end, now)
        fields.append(line)
        scored.append(score)
        if progress is not None and count % 1000 == 0:
            progress(count)
    if progress is not None:
        progress(len(devices))
    fields.sort(key=lambda f: (-f["score"], f["site"], f["device"]))
    site_lines = _site_lines(scored, by_site, devices, state, selection, section, names)
    queue = _budget_queue(fields, site_lines)
    funded = costing.within_budget(queue, budget)
    unfunded = [item.key for index, item in enumerate(queue) if index not in funded]
    # Each line is made once, with its rank and whether it is funded (a
    # dataclasses.replace per device costs seconds at a country's size).
    left_out = set(unfunded)
    lines = [DeviceLine(rank=rank, funded=("device", line["site"], line["device"])
                        not in left_out, **line) for rank, line in enumerate(fields, 1)]
    site_lines = [dataclasses.replace(line, funded=False) if _key(line) in left_out
                  else line for line in site_lines]
    return _assemble(lines, site_lines, unfunded, section, weights, selection, budget, names,
                     unmatched, now)


class _Queued(NamedTuple):
    """A device or site line in the budget's queue (costing.within_budget)."""

    score: float
    site: str
    device: str
    cost_vnd: int
    key: tuple[str, str, str]  # as _key()


def _budget_queue(fields: list[dict[str, Any]], site_lines: list[SiteLine]) -> list[_Queued]:
    """Devices and links compete for one budget, highest score first."""
    queue = [_Queued(f["score"], f["site"], f["device"], f["cost_vnd"],
                     ("device", f["site"], f["device"])) for f in fields if f["action"] != "none"]
    queue += [_Queued(s.score, s.site, "", s.cost_vnd, _key(s)) for s in site_lines]
    queue.sort(key=lambda x: (-x.score, x.site, x.device))
    return queue


def cpus() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (Linux)
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _selected(device: dict[str, Any], selection: Selection) -> bool:
    if selection.sites and device["site"] not in selection.sites:
        return False
    return not selection.roles or _role(device) in selection.roles


def _role(device: dict[str, Any]) -> str | None:
    inventory = device.get("inventory") or {}
    return device.get("role") or (inventory.get("asset") or {}).get("role")


def _identity(device: dict[str, Any]) -> DeviceIdentity:
    inventory = device.get("inventory") or {}
    serials = [(inventory.get("system") or {}).get("serial")]
    serials += [disk.get("serial") for disk in inventory.get("disks") or ()]
    return DeviceIdentity(site=device["site"], device=device["device"],
                          hostname=inventory.get("hostname") or device.get("hostname"),
                          serials=tuple(s for s in serials if s))


def _with_asset(inventory: dict[str, Any], asset: AssetRow | None) -> dict[str, Any]:
    """The inventory as the scoring sees it: the province's register wins over what the
    agent's config says for purchase date, tag and location. Not for the role: the
    register's is free text ("Một cửa"), the agent's a role id the weights know; it only
    fills in a role the agent lacks, and only when it is such an id."""
    if asset is None:
        return inventory
    mine = dict(inventory.get("asset") or {})
    for name, value in (("purchase_date", asset.purchase_date and asset.purchase_date
                         .isoformat()), ("tag", asset.asset_tag),
                        ("location", asset.location)):
        if value:
            mine[name] = value
    if not mine.get("role") and asset.role and ROLE_ID.fullmatch(asset.role):
        mine["role"] = asset.role
    return {**inventory, "asset": mine}


def _device_line(device: dict[str, Any], asset: AssetRow | None,
                 usage: dict[str, Any] | None, reboots: int, found: list[dict[str, Any]],
                 section: ReportSection, weights: priority.Weights, end: dt.date,
                 now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The DeviceLine's fields but its rank, and the priority's scoring of the device."""
    inventory = _with_asset(device.get("inventory") or {}, asset)
    # What score_device reads of the device's summary (a copy of all of it, twice, cost
    # seconds at a country's size).
    summary = {"site": device["site"], "device": device["device"],
               "role": device.get("role") or (inventory.get("asset") or {}).get("role")}
    scored = priority.score_device(summary, inventory, usage, found, now, weights)
    kinds = sorted({f["finding"] for f in found})
    eos = "os_end_of_support" in kinds
    windows, blockers = windows11_readiness(inventory)
    action = costing.windows11_action(scored["action"], eos, windows, blockers)
    born, born_from = _born(inventory)
    age = None if born is None else max(0.0, (_midnight(end) - _midnight(born)) / YEAR_S)
    os = inventory.get("os") or {}
    asset_info = inventory.get("asset") or {}
    line = dict(
        site=device["site"], device=device["device"], score=scored["score"],
        action=action, cost_vnd=costing.cost(action, section.prices),
        hostname=inventory.get("hostname") or device.get("hostname"), role=scored["role"],
        os=" ".join(str(p) for p in (os.get("name"), os.get("version")) if p) or None,
        os_end_of_support=eos, windows11=windows, windows11_blockers=blockers,
        cpu_model=(inventory.get("cpu") or {}).get("model"),
        ram_gb=round(inventory["ram_bytes"] / (1 << 30), 1)
        if inventory.get("ram_bytes") else None,
        disk_kind=_disk_kind(inventory), born=born, born_from=born_from,
        age_years=None if age is None else round(age, 1),
        beyond_refresh_age=age is not None and age >= section.refresh_age_years,
        beyond_useful_life=age is not None and age >= section.useful_life_years,
        asset_tag=asset_info.get("tag"), location=asset_info.get("location"),
        health=_health(found), evidence=_evidence(device, usage, reboots, kinds),
        why=tuple(_reason(part["part"], part["points"], part["because"],
                          part.get("because_vi")) for part in scored["why"]))
    return line, scored


# The same reasons recur through a fleet ("13 years old (from BIOS date)"), and making a
# frozen dataclass costs several times a look-up. typed: 20 and 20.0 points stay apart.
_reason = functools.lru_cache(maxsize=65_536, typed=True)(Reason)


@functools.lru_cache(maxsize=4096)
def _midnight(day: dt.date) -> float:
    """00:00 UTC of the day, as Unix time (the same few thousand BIOS dates recur)."""
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()


def _born(inventory: dict[str, Any]) -> tuple[dt.date | None, str | None]:
    for source, text in (("purchase", (inventory.get("asset") or {}).get("purchase_date")),
                         ("bios", (inventory.get("bios") or {}).get("date"))):
        if text:
            try:
                return dt.date.fromisoformat(str(text)[:10]), source
            except ValueError:
                continue
    return None, None


def _disk_kind(inventory: dict[str, Any]) -> str | None:
    kinds = [d.get("kind") for d in inventory.get("disks") or () if d.get("kind")]
    # The slowest disk is the one that matters to the user.
    for kind in ("hdd", "ssd", "nvme"):
        if kind in kinds:
            return kind
    return kinds[0] if kinds else None


def _health(found: list[dict[str, Any]]) -> str:
    severities = {f["severity"] for f in found if f["finding"] in EQUIPMENT}
    return "failing" if "critical" in severities else "at_risk" if "warning" in severities \
        else "ok"


def _evidence(device: dict[str, Any], usage: dict[str, Any] | None, reboots: int,
              kinds: list[str]) -> Evidence:
    metrics = device.get("metrics") or {}
    smart = metrics.get("smart") or []

    def total(name: str) -> int | None:
        values = [disk[name] for disk in smart if disk.get(name) is not None]
        return sum(values) if values else None

    passed = [disk["passed"] for disk in smart if disk.get("passed") is not None]
    worn = [disk["nvme_percentage_used"] for disk in smart
            if disk.get("nvme_percentage_used") is not None]
    interval = device.get("interval_s") or 60
    samples = usage["samples"] if usage else 0
    return Evidence(
        samples=samples,
        cpu_p95=usage["cpu_p95"] if usage else None,
        mem_p95=usage["mem_p95"] if usage else None,
        mem_pressure_hours=round(usage["mem_high_samples"] * interval / 3600, 1)
        if usage else None,
        swap_share=round(100 * usage["swap_in_samples"] / samples, 1) if samples else None,
        disk_used_max=usage["disk_used_max"] if usage else None,
        unexpected_reboots=reboots,
        smart_reallocated=total("reallocated_sectors"), smart_pending=total("pending_sectors"),
        smart_passed=all(passed) if passed else None,
        nvme_used_percent=max(worn) if worn else None,
        findings=tuple(kinds))


def _site_lines(scored: list[dict[str, Any]], by_site: dict[str, list[dict[str, Any]]],
                devices: list[dict[str, Any]], state: StateStore, selection: Selection,
                section: ReportSection, names: dict[str, str]) -> list[SiteLine]:
    chosen = {d["site"] for d in devices} if selection.sites or selection.roles else None
    sites = [s for s in priority.score_sites(scored, by_site)
             if s["action"] != "none" and (chosen is None or s["site"] in chosen)]
    if not sites:
        return []
    links = state.link_between(selection.start, selection.end, "portal")
    routers = {d["site"]: d["device"] for d in devices if _role(d) == "router"}
    speeds: dict[str, list[float]] = {}
    for device in devices:
        speed = ((device.get("probe") or {}).get("throughput") or {}).get("mbit_per_s")
        if speed is not None:
            speeds.setdefault(device["site"], []).append(float(speed))
    out = []
    for site in sites:
        link = links.get(site["site"], {})
        speed = speeds.get(site["site"])
        kinds = sorted({f["finding"] for f in by_site.get(site["site"], [])
                        if f["finding"] in SITE_FINDINGS})
        out.append(SiteLine(
            site=site["site"], site_name=names.get(site["site"], site["site"]),
            action=site["action"], cost_vnd=costing.cost(site["action"], section.prices),
            funded=True, score=site["score"], findings=tuple(kinds),
            rtt_p95_ms=link.get("rtt_p95_ms"), loss_percent=link.get("loss_percent_mean"),
            throughput_mbit=round(sum(speed) / len(speed), 2) if speed else None,
            router=routers.get(site["site"])))
    return out


def _assemble(lines: list[DeviceLine], site_lines: list[SiteLine],
              unfunded: list[tuple[str, str, str]], section: ReportSection,
              weights: priority.Weights, selection: Selection, budget: int | None,
              names: dict[str, str], unmatched: list[UnmatchedAsset], now: float) -> Report:
    """The report of the lines, funded or not already; `unfunded`: the keys (_key) of
    those that did not fit the budget, highest priority first."""
    funded_lines = {_key(line): line for line in [*lines, *site_lines]}
    by_commune: dict[str, list[DeviceLine]] = {}
    for line in lines:
        by_commune.setdefault(line.site, []).append(line)
    sites_of: dict[str, list[SiteLine]] = {}
    for line in site_lines:
        sites_of.setdefault(line.site, []).append(line)
    communes = tuple(
        Commune(site, names.get(site, site), count(members, sites_of.get(site, [])),
                tuple(members), tuple(sites_of.get(site, [])))
        for site, members in sorted(by_commune.items()))
    settings = Settings(
        prices_vnd=tuple((action, costing.cost(action, section.prices))
                         for action in costing.ACTIONS),
        refresh_age_years=section.refresh_age_years,
        useful_life_years=section.useful_life_years, budget_vnd=budget,
        weights=tuple((name, float(getattr(weights, name))) for name in (
            "critical", "warning", "info", "risk_max", "shortfall_max", "per_year",
            "end_of_support", "age_max")),
        sites=tuple(sorted(selection.sites)), roles=tuple(sorted(selection.roles)),
        assets_file=section.assets_file or None)
    return Report(
        province=section.province, generated=dt.datetime.fromtimestamp(now, ZONE),
        period_start=selection.start, period_end=selection.end, settings=settings,
        summary=count(lines, site_lines), communes=communes,
        sites=tuple(sorted(site_lines, key=lambda s: (-s.score, s.site))),
        unfunded=tuple(funded_lines[key] for key in unfunded),
        unmatched_assets=tuple(unmatched))


def _key(line: DeviceLine | SiteLine) -> tuple[str, str, str]:
    return ("device", line.site, line.device) if isinstance(line, DeviceLine) else (
        "site", line.site, line.action)


def age_band(age: float | None) -> int:
    """Index into AGE_BANDS by whole years; len(AGE_BANDS) for an unknown age."""
    if age is None:
        return len(AGE_BANDS)
    years = int(age)
    for index, (low, high) in enumerate(AGE_BANDS):
        if years >= low and (high is None or years <= high):
            return index
    return len(AGE_BANDS)


def count(devices: Sequence[DeviceLine], sites: Iterable[SiteLine]) -> Counts:
    """The totals of a commune or of the province."""
    bands = [0] * (len(AGE_BANDS) + 1)
    for line in devices:
        bands[age_band(line.age_years)] += 1
    windows = Counter(line.windows11 for line in devices)
    actions = Counter(line.action for line in devices if line.action != "none")
    costed = [*devices, *sites]
    return Counts(
        devices=len(devices), by_age_band=tuple(bands),
        beyond_refresh_age=sum(line.beyond_refresh_age for line in devices),
        beyond_useful_life=sum(line.beyond_useful_life for line in devices),
        os_end_of_support=sum(line.os_end_of_support for line in devices),
        failing=sum(line.health == "failing" for line in devices),
        at_risk=sum(line.health == "at_risk" for line in devices),
        windows11=tuple((state, windows[state]) for state in WINDOWS11_STATES),
        actions=tuple(sorted(actions.items(), key=lambda kv: (-kv[1], kv[0]))),
        cost_vnd=sum(line.cost_vnd for line in costed),
        funded_vnd=sum(line.cost_vnd for line in costed if line.funded))
