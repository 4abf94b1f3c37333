"""A scenario and a seed become concrete sites and devices, with their faults, and the
ground truth: which devices and sites should be flagged, by which finding, and why.

Everything drawn here comes from one random.Random(seed), in a fixed order, so the
same seed always gives the same fleet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from typing import Any

from cwatch.sim.scenario import DEVICE_FAULTS, PROVINCE_FAULTS, SITE_FAULTS, Fault, Scenario

# What the rules should report for each injected fault (the rules issue uses these
# names), and the sentence the truth file gives as the reason.
FINDINGS = {
    "disk_reallocated": ("disk_failing", "reallocated sectors grow by 8 and pending sectors "
                                         "by 2 per hour"),
    "smart_failure": ("smart_failed", "the drive's SMART overall assessment is FAILED"),
    "nvme_wear": ("nvme_worn", "NVMe percentage used is past 100 and spare is at 8 %"),
    "high_temperature": ("overheating", "CPU temperature at 90-96 °C, sustained"),
    "memory_pressure": ("memory_pressure", "memory 97-99 % used and swapping in"),
    "disk_full": ("disk_full", "system partition 98-99 % used"),
    "unexpected_reboots": ("unexpected_reboots", "a reboot every 2 hours, never a clean "
                                                 "shutdown"),
    "silent": ("device_silent", "the device stops publishing and never comes back"),
    "slow_link": ("slow_link", "every device of the site sees 500-1200 ms round trips, "
                               "10-25 % loss and under 1 Mbit/s"),
    "outage": ("site_unreachable", "the whole site stops publishing; afterwards its agents "
                                   "backfill the gap"),
    "portal_slow": ("portal_slow", "the provincial portal answers in 4-9 s from every site "
                                   "while links and gateways are normal"),
}

REBOOT_EVERY_S = 2 * 3600.0


@dataclasses.dataclass(frozen=True)
class Hardware:
    year: int
    bios_date: str
    manufacturer: str
    model: str
    cpu_model: str
    cores: int
    threads: int
    ram_gb: float
    disk_kind: str  # hdd, ssd, nvme; none on routers
    disk_gb: int
    os_name: str
    os_version: str


@dataclasses.dataclass(frozen=True)
class ActiveFault:
    kind: str
    start_ts: float
    end_ts: float | None  # None: to the end

    def active(self, ts: float) -> bool:
        return ts >= self.start_ts and (self.end_ts is None or ts < self.end_ts)


@dataclasses.dataclass(frozen=True)
class Site:
    id: str
    rtt_ms: float  # the commune link's normal round trip to the province
    loss_percent: float
    mbit_per_s: float
    faults: tuple[ActiveFault, ...] = ()


@dataclasses.dataclass(frozen=True)
class Device:
    site: str
    id: str
    role: str  # service-counter, office, server, router
    hw: Hardware
    boot_ts: float  # last boot before the simulation starts
    cpu_base: float
    disk_used_base: float
    faults: tuple[ActiveFault, ...] = ()

    def fault(self, kind: str, ts: float) -> ActiveFault | None:
        for fault in self.faults:
            if fault.kind == kind and fault.active(ts):
                return fault
        return None


@dataclasses.dataclass(frozen=True)
class Fleet:
    seed: int
    start_ts: float
    scenario: Scenario
    sites: dict[str, Site]
    devices: list[Device]
    province_faults: tuple[ActiveFault, ...]
    truth: list[dict[str, Any]]

    def site_fault(self, site: str, kind: str, ts: float) -> ActiveFault | None:
        for fault in self.sites[site].faults + self.province_faults:
            if fault.kind == kind and fault.active(ts):
                return fault
        return None

    def truth_document(self) -> dict[str, Any]:
        faulted = {(t["site"], t["device"]) for t in self.truth if t.get("device")}
        return {
            "seed": self.seed, "start_ts": self.start_ts,
            "sites": sorted(self.sites), "devices": len(self.devices),
            "expected": self.truth,
            "healthy_devices": sorted(f"{d.site}/{d.id}" for d in self.devices
                                      if (d.site, d.id) not in faulted
                                      and not _in_faulted_site(d, self.truth)),
        }


def _in_faulted_site(device: Device, truth: list[dict[str, Any]]) -> bool:
    return any(t["scope"] == "site" and t["site"] == device.site for t in truth)


# --- hardware generations ------------------------------------------------------------

_MAKERS = [("Dell Inc.", "OptiPlex"), ("HP", "ProDesk"), ("Lenovo", "ThinkCentre"),
           ("FPT Elead", "Elead"), ("Asus", "ExpertCenter")]
_CPUS = [(2010, "Intel(R) Core(TM) i3-540 CPU @ 3.07GHz", 2, 4),
         (2012, "Intel(R) Pentium(R) CPU G2020 @ 2.90GHz", 2, 2),
         (2014, "Intel(R) Core(TM) i3-4150 CPU @ 3.50GHz", 2, 4),
         (2016, "Intel(R) Core(TM) i5-6500 CPU @ 3.20GHz", 4, 4),
         (2018, "Intel(R) Core(TM) i3-8100 CPU @ 3.60GHz", 4, 4),
         (2020, "Intel(R) Core(TM) i5-10400 CPU @ 2.90GHz", 6, 12),
         (2022, "12th Gen Intel(R) Core(TM) i5-12400", 6, 12),
         (2024, "13th Gen Intel(R) Core(TM) i5-13400", 10, 16)]


def _hardware(rng: random.Random, role: str) -> Hardware:
    if role == "router":
        year = rng.randint(2014, 2023)
        return Hardware(year, f"{year}-01-01", "TP-Link", rng.choice(["Archer C6", "TL-ER605"]),
                        "MediaTek MT7621", 2, 4, 0.125 if year < 2020 else 0.25, "none", 0,
                        "OpenWrt", rng.choice(["21.02", "22.03", "23.05"]))
    # Most commune PCs are old: weight the years towards the early 2010s.
    year = min(2024, 2010 + int(rng.triangular(0, 14, 3)))
    if role == "server":
        year = max(year, 2016)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    maker, family = rng.choice(_MAKERS)
    cpu = max((c for c in _CPUS if c[0] <= year), key=lambda c: c[0])
    ram = rng.choice([2, 4, 4] if year < 2014 else [4, 4, 8] if year < 2018 else [8, 8, 16])
    if role == "server":
        ram = max(ram, 8) * 2
    kind = ("hdd" if year < 2016 or rng.random() < 0.3 else
            rng.choice(["ssd", "nvme"]) if year >= 2019 else "ssd")
    if role == "server":
        os_name, os_version = "Linux", rng.choice(["Ubuntu 18.04", "Ubuntu 22.04", "Debian 12"])
    elif year < 2015 and rng.random() < 0.4:
        os_name, os_version = "Windows", "7"  # out of support since 2020
    elif year < 2021 or rng.random() < 0.5:
        os_name, os_version = "Windows", "10"  # out of support since October 2025
    else:
        os_name, os_version = "Windows", "11"
    return Hardware(year, f"{year}-{month:02d}-{day:02d}", maker,
                    f"{family} {rng.randint(3, 9)}0{rng.randint(1, 9)}0", cpu[1], cpu[2], cpu[3],
                    ram, kind, rng.choice([250, 500, 1000] if kind == "hdd" else [128, 256, 512]),
                    os_name, os_version)


# --- building the fleet --------------------------------------------------------------


def fleet_site_ids(scenario: Scenario) -> list[str]:
    """The fleet's site ids: the scenario's own names, then xa-001, xa-002, ..."""
    ids = list(scenario.site_names[:scenario.sites])
    return ids + [f"xa-{n:03d}" for n in range(len(ids) + 1, scenario.sites + 1)]


def build(scenario: Scenario, seed: int, start_ts: float) -> Fleet:
    rng = random.Random(seed)
    site_ids = fleet_site_ids(scenario)
    sites = {sid: Site(sid, rtt_ms=rng.uniform(15, 60), loss_percent=rng.uniform(0, 0.5),
                       mbit_per_s=rng.uniform(8, 40)) for sid in site_ids}
    devices = _devices(scenario, site_ids, rng, start_ts)
    truth: list[dict[str, Any]] = []
    taken: set[tuple[str, str]] = set()
    site_faults: dict[str, list[ActiveFault]] = {sid: [] for sid in site_ids}
    province: list[ActiveFault] = []
    for fault in scenario.faults:
        active = ActiveFault(fault.kind, start_ts + fault.start_s,
                             None if fault.duration_s is None
                             else start_ts + fault.start_s + fault.duration_s)
        if fault.kind in PROVINCE_FAULTS:
            province.append(active)
            truth.append(_truth(active, "province", None, None))
        elif fault.kind in SITE_FAULTS:
            for sid in _pick_sites(fault, site_ids, site_faults, rng):
                site_faults[sid].append(active)
                truth.append(_truth(active, "site", sid, None))
        else:
            for index in _pick_devices(fault, devices, taken, rng):
                device = devices[index]
                taken.add((device.site, device.id))
                devices[index] = _with_fault(device, active)
                truth.append(_truth(active, "device", device.site, device.id))
    sites = {sid: dataclasses.replace(site, faults=tuple(site_faults[sid]))
             for sid, site in sites.items()}
    return Fleet(seed, start_ts, scenario, sites, devices, tuple(province), truth)


def _devices(scenario: Scenario, site_ids: list[str], rng: random.Random,
             start_ts: float) -> list[Device]:
    roles = sorted(scenario.roles.items())
    total_share = sum(share for _, share in roles)
    devices = []
    per_site = [scenario.devices // len(site_ids)] * len(site_ids)
    for i in range(scenario.devices - sum(per_site)):
        per_site[i] += 1
    for sid, count in zip(site_ids, per_site):
        numbers: dict[str, int] = {}
        for n in range(count):
            if n == 0:
                role = "router"
            else:
                pick, role = rng.uniform(0, total_share), roles[-1][0]
                for name, share in roles:
                    if pick < share:
                        role = name
                        break
                    pick -= share
            numbers[role] = numbers.get(role, 0) + 1
            prefix = {"router": "router", "server": "srv", "service-counter": "quay",
                      "office": "pc"}[role]
            hw = _hardware(rng, role)
            devices.append(Device(
                site=sid, id=f"{prefix}-{numbers[role]:02d}", role=role, hw=hw,
                boot_ts=start_ts - rng.uniform(3600, 10 * 86400),
                # Old machines run hotter under the same work.
                cpu_base=rng.uniform(8, 25) * (1.6 if hw.year < 2015 else 1.0),
                disk_used_base=rng.uniform(35, 80)))
    return devices


def _pick_sites(fault: Fault, site_ids: list[str], site_faults: dict[str, list[ActiveFault]],
                rng: random.Random) -> list[str]:
    if fault.target is not None:
        if fault.target not in site_faults:
            raise ValueError(f"fault {fault.kind}: site {fault.target!r} is not in the fleet")
        return [fault.target]
    free = [sid for sid in site_ids if not site_faults[sid]] or list(site_ids)
    return rng.sample(free, min(fault.count, len(free)))


def _pick_devices(fault: Fault, devices: list[Device], taken: set[tuple[str, str]],
                  rng: random.Random) -> list[int]:
    if fault.target is not None:
        site, device = fault.target.split("/")
        for index, candidate in enumerate(devices):
            if (candidate.site, candidate.id) == (site, device):
                return [index]
        raise ValueError(f"fault {fault.kind}: device {fault.target!r} is not in the fleet")
    # Hardware faults need hardware that has them; routers only go silent or reboot.
    pcs = fault.kind not in ("silent", "unexpected_reboots")
    free = [i for i, d in enumerate(devices)
            if (d.site, d.id) not in taken and (d.role != "router" or not pcs)]
    return rng.sample(free, min(fault.count, len(free)))


def _with_fault(device: Device, fault: ActiveFault) -> Device:
    hw = device.hw
    # The fault decides the drive: NVMe wear needs an NVMe drive, sector counts an ATA one.
    if fault.kind == "nvme_wear" and hw.disk_kind != "nvme":
        hw = dataclasses.replace(hw, disk_kind="nvme", disk_gb=256)
    elif fault.kind in ("disk_reallocated", "smart_failure") and hw.disk_kind == "nvme":
        hw = dataclasses.replace(hw, disk_kind="hdd", disk_gb=500)
    return dataclasses.replace(device, hw=hw, faults=device.faults + (fault,))


def _truth(fault: ActiveFault, scope: str, site: str | None,
           device: str | None) -> dict[str, Any]:
    finding, why = FINDINGS[fault.kind]
    return {"finding": finding, "fault": fault.kind, "scope": scope, "site": site,
            "device": device, "from_ts": fault.start_ts, "until_ts": fault.end_ts,
            "from": _iso(fault.start_ts),
            "until": None if fault.end_ts is None else _iso(fault.end_ts), "why": why}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


__all__ = ["DEVICE_FAULTS", "FINDINGS", "Device", "Fleet", "Site", "build"]
