"""The procurement report as data: what every output format (XLSX, CSV, HTML, PDF) shows.

Numbers stay numbers (VND as int, ages in years as float, dates as datetime.date) and
texts stay keys ("replace the machine", "in_place"); the renderers translate and format
them for the report's language (collector/reports/i18n.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# Windows 11 readiness of a Windows 10 (or older) PC.
READY = "ready"  # already Windows 11, or meets every requirement
IN_PLACE = "in_place"  # can be upgraded where it stands (switch on UEFI/Secure Boot/TPM, add RAM)
REPLACE = "replace"  # its CPU (or board) cannot run Windows 11: the PC must be replaced
UNKNOWN = "unknown"  # the agent could not tell (e.g. TPM unreadable), check by hand
NOT_WINDOWS = "not_windows"
WINDOWS11_STATES = (READY, IN_PLACE, REPLACE, UNKNOWN, NOT_WINDOWS)

# Age bands of the province summary, in whole years since purchase (else BIOS date).
AGE_BANDS = ((0, 3), (4, 5), (6, 8), (9, None))  # "0-3", "4-5", "6-8", "9+"; plus unknown


@dataclass(frozen=True)
class Evidence:
    """What the measurements over the report's period say about one device."""

    samples: int = 0  # metrics samples in the period
    cpu_p95: float | None = None  # % (95th percentile over the period)
    mem_p95: float | None = None  # %
    mem_pressure_hours: float | None = None  # hours with memory at 90 % or more
    swap_share: float | None = None  # % of samples swapping in
    disk_used_max: float | None = None  # % of the fullest partition, peak
    unexpected_reboots: int = 0  # in the period
    smart_reallocated: int | None = None  # latest, summed over the disks
    smart_pending: int | None = None
    smart_passed: bool | None = None  # False if any disk says FAILED
    nvme_used_percent: float | None = None
    findings: tuple[str, ...] = ()  # active finding kinds (disk_failing, ...)


@dataclass(frozen=True)
class Reason:
    part: str  # "risk", "shortfall" or "age" (collector/rules/priority.py)
    points: float
    because: str  # English, as the rules wrote it
    because_vi: str | None = None  # the same in Vietnamese

    def text(self, language: str) -> str:
        return self.because_vi if language == "vi" and self.because_vi else self.because


@dataclass(frozen=True)
class DeviceLine:
    site: str
    device: str
    rank: int  # 1 = first in the province (after filters)
    score: float
    action: str  # one of ACTIONS in collector/reports/costing.py, or "none"
    cost_vnd: int  # 0 for "none"
    funded: bool  # within the budget cap (True when there is no cap)
    hostname: str | None = None
    role: str | None = None
    os: str | None = None  # "Windows 10", "Ubuntu 22.04"
    os_end_of_support: bool = False
    windows11: str = NOT_WINDOWS  # one of WINDOWS11_STATES
    windows11_blockers: tuple[str, ...] = ()  # English keys, see readiness.BLOCKERS
    cpu_model: str | None = None
    ram_gb: float | None = None
    disk_kind: str | None = None  # hdd, ssd, nvme
    born: dt.date | None = None  # purchase date, else BIOS date
    born_from: str | None = None  # "purchase" or "bios"
    age_years: float | None = None
    beyond_refresh_age: bool = False  # older than the refresh age (4 years by default)
    beyond_useful_life: bool = False  # older than the accounting useful life
    asset_tag: str | None = None
    location: str | None = None
    health: str = "ok"  # "failing" (a critical hardware finding), "at_risk" (a warning), "ok"
    evidence: Evidence = field(default_factory=Evidence)
    why: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class SiteLine:
    """A commune's link or router to upgrade."""

    site: str
    site_name: str
    action: str  # "upgrade the link" or "replace the router"
    cost_vnd: int
    funded: bool
    score: float
    findings: tuple[str, ...]  # slow_link, local_network, site_unreachable, dns_slow
    rtt_p95_ms: float | None = None  # to the portal, over the period
    loss_percent: float | None = None
    throughput_mbit: float | None = None  # latest test
    router: str | None = None  # the router's device id, if it is monitored


@dataclass(frozen=True)
class Counts:
    devices: int = 0
    by_age_band: tuple[int, ...] = (0, 0, 0, 0, 0)  # AGE_BANDS then unknown
    beyond_refresh_age: int = 0
    beyond_useful_life: int = 0
    os_end_of_support: int = 0
    failing: int = 0  # an active critical equipment finding
    at_risk: int = 0  # an active warning equipment finding (and not failing)
    windows11: tuple[tuple[str, int], ...] = ()  # (state, devices) for WINDOWS11_STATES
    actions: tuple[tuple[str, int], ...] = ()  # (action, devices), most first
    cost_vnd: int = 0  # every suggested action
    funded_vnd: int = 0  # what fits the budget


@dataclass(frozen=True)
class Commune:
    site: str
    name: str
    counts: Counts
    devices: tuple[DeviceLine, ...]  # by rank
    sites: tuple[SiteLine, ...]  # its link/router lines


@dataclass(frozen=True)
class UnmatchedAsset:
    line: int  # in the CSV file, header = 1
    text: str  # the row as written
    why: str  # English


@dataclass(frozen=True)
class Settings:
    """What the report was made with (shown in the method appendix)."""

    prices_vnd: tuple[tuple[str, int], ...]  # (action, unit price)
    refresh_age_years: float
    useful_life_years: float
    budget_vnd: int | None
    weights: tuple[tuple[str, float], ...]  # the priority weights used
    sites: tuple[str, ...] = ()  # filters; empty = all
    roles: tuple[str, ...] = ()
    assets_file: str | None = None


@dataclass(frozen=True)
class Report:
    province: str  # e.g. "Đồng Nai"; may be empty
    generated: dt.datetime  # aware, Asia/Ho_Chi_Minh
    period_start: dt.date
    period_end: dt.date
    settings: Settings
    summary: Counts
    communes: tuple[Commune, ...]  # by site id
    sites: tuple[SiteLine, ...]  # all link/router lines, by priority
    unfunded: tuple[DeviceLine | SiteLine, ...]  # what did not fit the budget, by priority
    unmatched_assets: tuple[UnmatchedAsset, ...] = ()

    def devices(self) -> list[DeviceLine]:
        """Every device line of every commune, by rank."""
        return sorted((d for c in self.communes for d in c.devices), key=lambda d: d.rank)
