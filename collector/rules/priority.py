"""Upgrade priority: which devices (and sites) to spend the budget on first, and the
cheapest action that would help.

    score = (failure risk + performance shortfall + age) x role weight

    failure risk   active equipment findings, by severity
    shortfall      how often CPU, memory or disk limited the user over the last days
                   (p95 of the daily roll-ups, share of samples spent swapping)
    age            years since purchase (else the BIOS date), end-of-support OS
    role weight    a service-counter PC that serves citizens counts more than a spare

Every score comes with its explanation: the parts and why each counted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from collector.store.findings import FindingsStore
from collector.store.state import StateStore

GIB = 1 << 30
DISK_FINDINGS = ("disk_failing", "smart_failed", "nvme_worn")
LINK_FINDINGS = ("slow_link", "local_network")


@dataclasses.dataclass(frozen=True)
class Weights:
    critical: float = 20.0
    warning: float = 8.0
    info: float = 2.0
    risk_max: float = 40.0
    cpu_busy: float = 10.0  # CPU p95 at or above 90 % over the period
    memory_short: float = 10.0  # memory p95 at or above 90 %
    swapping: float = 5.0  # more than 10 % of samples swapping in
    disk_nearly_full: float = 5.0  # a partition at or above 90 %
    shortfall_max: float = 25.0
    per_year: float = 2.5
    end_of_support: float = 5.0
    age_max: float = 25.0
    roles: tuple[tuple[str, float], ...] = (("service-counter", 1.3), ("server", 1.2),
                                            ("office", 1.0), ("router", 1.0), ("spare", 0.5))
    days: int = 7

    def role(self, role: str | None) -> float:
        return dict(self.roles).get(role or "", 1.0)


def rank(state: StateStore, findings: FindingsStore, now: float, weights: Weights,
         site: str | None = None, limit: int = 100) -> dict[str, Any]:
    since = dt.datetime.fromtimestamp(now - weights.days * 86400, dt.timezone.utc).date()
    usage = state.usage_since(since)
    by_device, by_site = split_findings(
        findings.query(state="active", site=site, limit=1_000_000))
    devices = []
    for summary in state.every_device():  # one pass, not a query per device
        if site is not None and summary["site"] != site:
            continue
        key = (summary["site"], summary["device"])
        devices.append(score_device(summary, summary["inventory"] or {},
                                    usage.get(key), by_device.get(key, []), now, weights))
    devices.sort(key=lambda d: (-d["score"], d["site"], d["device"]))
    sites = score_sites(devices, by_site)
    return {"devices": devices[:limit], "sites": sites[:limit], "weights": dataclasses.asdict(
        weights)}


def split_findings(active: list[dict[str, Any]]) -> tuple[
        dict[tuple[str, str], list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """Findings about a device, by (site, device), and about a whole site, by site."""
    by_device: dict[tuple[str, str], list[dict[str, Any]]] = {}
    by_site: dict[str, list[dict[str, Any]]] = {}
    for finding in active:
        if finding["device"]:
            by_device.setdefault((finding["site"], finding["device"]), []).append(finding)
        elif finding["site"]:
            by_site.setdefault(finding["site"], []).append(finding)
    return by_device, by_site


def score_device(summary: dict[str, Any], inventory: dict[str, Any],
                  usage: dict[str, Any] | None, found: list[dict[str, Any]], now: float,
                  w: Weights) -> dict[str, Any]:
    why: list[dict[str, Any]] = []
    kinds = {f["finding"] for f in found}
    equipment = [f for f in found if f["finding"] != "os_end_of_support"]
    risk = min(w.risk_max, sum(getattr(w, f["severity"]) for f in equipment))
    # Each reason in English and Vietnamese (`because_vi`), like the findings' summaries.
    if risk:
        why.append({"part": "risk", "points": risk,
                    "because": "; ".join(f["summary"] for f in equipment),
                    "because_vi": "; ".join(f.get("summary_vi") or f["summary"]
                                            for f in equipment)})
    shortfall, reasons, reasons_vi = 0.0, [], []
    if usage and usage["samples"]:
        if (usage["cpu_p95"] or 0) >= 90:
            shortfall += w.cpu_busy
            reasons.append(f"CPU p95 {usage['cpu_p95']} % over {usage['days']} days")
            reasons_vi.append(f"CPU p95 {usage['cpu_p95']} % trong {usage['days']} ngày")
        if (usage["mem_p95"] or 0) >= 90:
            shortfall += w.memory_short
            reasons.append(f"memory p95 {usage['mem_p95']} %")
            reasons_vi.append(f"bộ nhớ p95 {usage['mem_p95']} %")
        if usage["swap_in_samples"] > 0.1 * usage["samples"]:
            shortfall += w.swapping
            share = 100 * usage["swap_in_samples"] / usage["samples"]
            reasons.append(f"swapping in {share:.0f} % of the time")
            reasons_vi.append(f"tráo đổi bộ nhớ {share:.0f} % thời gian")
        if (usage["disk_used_max"] or 0) >= 90:
            shortfall += w.disk_nearly_full
            reasons.append(f"a partition at {usage['disk_used_max']:.0f} %")
            reasons_vi.append(f"một phân vùng đầy {usage['disk_used_max']:.0f} %")
    shortfall = min(w.shortfall_max, shortfall)
    if shortfall:
        why.append({"part": "shortfall", "points": shortfall, "because": ", ".join(reasons),
                    "because_vi": ", ".join(reasons_vi)})
    asset = inventory.get("asset") or {}
    born = asset.get("purchase_date") or (inventory.get("bios") or {}).get("date")
    years = None
    if born:
        try:
            years = max(0.0, (now - dt.datetime.fromisoformat(born).replace(
                tzinfo=dt.timezone.utc).timestamp()) / (365.25 * 86400))
        except ValueError:
            years = None
    age = 0.0
    if years is not None:
        age = w.per_year * years
        bought = bool(asset.get("purchase_date"))
        why.append({"part": "age", "points": round(min(age, w.age_max), 1),
                    "because": f"{years:.0f} years old (from "
                               f"{'purchase' if bought else 'BIOS'} date)",
                    "because_vi": f"{years:.0f} năm tuổi (theo ngày "
                                  f"{'mua' if bought else 'BIOS'})"})
    if "os_end_of_support" in kinds:
        age += w.end_of_support
        why.append({"part": "age", "points": w.end_of_support,
                    "because": "operating system past its end of support",
                    "because_vi": "hệ điều hành đã hết hỗ trợ"})
    age = min(w.age_max, age)
    role = summary.get("role") or asset.get("role")
    factor = w.role(role)
    score = round((risk + shortfall + age) * factor, 1)
    return {"site": summary["site"], "device": summary["device"], "role": role,
            "score": score, "role_weight": factor, "risk": risk, "shortfall": shortfall,
            "age": round(age, 1), "action": _action(kinds, inventory, usage, years, role),
            "why": why}


def _action(kinds: set[str], inventory: dict[str, Any], usage: dict[str, Any] | None,
            years: float | None, role: str | None) -> str:
    """The cheapest change that would fix what was found."""
    disks = inventory.get("disks") or []
    hdd = any(d.get("kind") == "hdd" for d in disks)
    ram = inventory.get("ram_bytes") or 0
    old = years is not None and years >= 8
    if role in ("router", "switch"):
        # A full WAN link is the provider's plan, not the box: the link needs upgrading.
        if kinds - {"wan_saturated"}:
            return "replace the router" if role == "router" else "replace the switch"
        return "upgrade the link" if kinds else "none"
    if old and (kinds - {"battery_worn"} or (usage and (usage["cpu_p95"] or 0) >= 90)):
        return "replace the machine"
    if kinds & set(DISK_FINDINGS):
        return "replace the HDD with an SSD" if hdd else "replace the disk"
    if usage and ((usage["mem_p95"] or 0) >= 90 or usage["swap_in_samples"]) and ram < 8 * GIB:
        return "add RAM"
    if hdd and usage and usage["samples"] and ((usage["cpu_p95"] or 0) >= 90):
        return "replace the HDD with an SSD"
    if "battery_worn" in kinds:
        return "replace the battery"
    if "os_end_of_support" in kinds:
        return "upgrade the operating system" if not old else "replace the machine"
    return "none"


def score_sites(devices: list[dict[str, Any]],
                 site_findings: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    sites: dict[str, dict[str, Any]] = {}
    for device in devices:
        entry = sites.setdefault(device["site"], {"site": device["site"], "devices": 0,
                                                  "score": 0.0, "link": [], "action": "none"})
        entry["devices"] += 1
        entry["score"] += device["score"]
    for site, found in site_findings.items():
        entry = sites.setdefault(site, {"site": site, "devices": 0, "score": 0.0, "link": [],
                                        "action": "none"})
        for finding in found:
            if finding["finding"] in LINK_FINDINGS:
                entry["score"] += 20.0
                entry["link"].append(finding["summary"])
                entry["action"] = ("replace the router" if finding["finding"] == "local_network"
                                   else "upgrade the link")
    for entry in sites.values():
        entry["score"] = round(entry["score"], 1)
    return sorted(sites.values(), key=lambda s: (-s["score"], s["site"]))
