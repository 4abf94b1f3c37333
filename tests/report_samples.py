"""A small procurement report built by hand (two Dong Nai communes), for the renderers'
tests. The pipeline that builds a report from a collector's state is tested on its own
(tests/test_report_e2e.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from zoneinfo import ZoneInfo

from collector.reports.model import (
    IN_PLACE,
    NOT_WINDOWS,
    READY,
    REPLACE,
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

PRICES = (("replace the machine", 15_000_000), ("replace the HDD with an SSD", 1_200_000),
          ("replace the disk", 1_200_000), ("add RAM", 900_000),
          ("replace the battery", 1_500_000), ("upgrade the operating system", 0),
          ("replace the router", 2_500_000), ("upgrade the link", 6_000_000))


def _device(site: str, device: str, rank: int, score: float, action: str, cost: int,
            funded: bool, **fields) -> DeviceLine:
    return DeviceLine(site=site, device=device, rank=rank, score=score, action=action,
                      cost_vnd=cost, funded=funded, **fields)


AN_PHUOC = (
    _device("an-phuoc", "quay-01", 1, 78.0, "replace the machine", 15_000_000, True,
            hostname="AN-PHUOC-QUAY-01", role="service-counter", os="Windows 10",
            os_end_of_support=True, windows11=REPLACE,
            windows11_blockers=("no TPM 2.0", "CPU older than Windows 11 supports"),
            cpu_model="Intel(R) Core(TM) i3-3220 CPU @ 3.30GHz", ram_gb=4.0, disk_kind="hdd",
            born=dt.date(2012, 5, 3), born_from="bios", age_years=14.6,
            beyond_refresh_age=True, beyond_useful_life=True, asset_tag="TS-0012",
            location="Quầy một cửa số 1",
            evidence=Evidence(samples=43_000, cpu_p95=97.0, mem_p95=94.0,
                              mem_pressure_hours=212.5, swap_share=31.0, disk_used_max=71.0,
                              unexpected_reboots=3, smart_reallocated=24, smart_pending=6,
                              smart_passed=True, findings=("disk_failing", "cpu_saturated")),
            why=(Reason("risk", 20.0, "Disk /dev/sda: 24 reallocated, 6 pending sectors"),
                 Reason("shortfall", 25.0, "CPU p95 97 % over 30 days, memory p95 94 %"),
                 Reason("age", 25.0, "15 years old (from BIOS date)"))),
    _device("an-phuoc", "pc-02", 3, 31.5, "add RAM", 900_000, True,
            hostname="AN-PHUOC-PC-02", role="office", os="Windows 10", os_end_of_support=True,
            windows11=IN_PLACE, windows11_blockers=("under 4 GB RAM",),
            cpu_model="Intel(R) Core(TM) i5-8400 CPU @ 2.80GHz", ram_gb=2.0, disk_kind="ssd",
            born=dt.date(2019, 3, 1), born_from="purchase", age_years=7.7,
            beyond_refresh_age=True, beyond_useful_life=True,
            evidence=Evidence(samples=40_000, cpu_p95=60.0, mem_p95=98.0,
                              mem_pressure_hours=540.0, swap_share=45.0, disk_used_max=55.0,
                              findings=("memory_pressure",)),
            why=(Reason("shortfall", 15.0, "memory p95 98 %, swapping in 45 % of the time"),
                 Reason("age", 16.5, "8 years old (from purchase date)"))),
    _device("an-phuoc", "router-01", 5, 0.0, "none", 0, True, role="router",
            os="OpenWrt 23.05", windows11=NOT_WINDOWS, born=dt.date(2021, 1, 1),
            born_from="bios", age_years=5.9, beyond_refresh_age=True),
)
BINH_MINH = (
    _device("binh-minh", "srv-01", 2, 52.0, "replace the HDD with an SSD", 1_200_000, True,
            hostname="BINH-MINH-SRV-01", role="server", os="Ubuntu 22.04",
            windows11=NOT_WINDOWS, cpu_model="Intel(R) Xeon(R) E3-1220 v5", ram_gb=16.0,
            disk_kind="hdd", born=dt.date(2016, 6, 1), born_from="bios", age_years=10.5,
            beyond_refresh_age=True, beyond_useful_life=True,
            evidence=Evidence(samples=43_000, cpu_p95=40.0, mem_p95=60.0, smart_passed=False,
                              smart_reallocated=120, smart_pending=10,
                              findings=("smart_failed",)),
            why=(Reason("risk", 20.0, "Disk /dev/sda: SMART overall-health FAILED"),
                 Reason("age", 25.0, "10 years old (from BIOS date)"))),
    _device("binh-minh", "pc-04", 4, 12.0, "upgrade the operating system", 0, True,
            hostname="BINH-MINH-PC-04", role="office", os="Windows 10", os_end_of_support=True,
            windows11=READY,
            cpu_model="AMD Ryzen 5 3400G", ram_gb=8.0, disk_kind="nvme",
            born=dt.date(2021, 9, 9), born_from="purchase", age_years=5.2,
            beyond_refresh_age=True),
)
SLOW_LINK = SiteLine(site="binh-minh", site_name="Bình Minh", action="upgrade the link",
                     cost_vnd=6_000_000, funded=False, score=20.0, findings=("slow_link",),
                     rtt_p95_ms=950.0, loss_percent=14.5, throughput_mbit=0.6,
                     router="router-01")


def _counts(devices: tuple[DeviceLine, ...], sites: tuple[SiteLine, ...]) -> Counts:
    bands = [0, 0, 0, 0, 0]
    for d in devices:
        age = d.age_years
        index = 4 if age is None else 0 if age < 4 else 1 if age < 6 else 2 if age < 9 else 3
        bands[index] += 1
    windows11 = {}
    for d in devices:
        windows11[d.windows11] = windows11.get(d.windows11, 0) + 1
    actions: dict[str, int] = {}
    for d in devices:
        if d.action != "none":
            actions[d.action] = actions.get(d.action, 0) + 1
    lines = [*devices, *sites]
    return Counts(
        devices=len(devices), by_age_band=tuple(bands),
        beyond_refresh_age=sum(d.beyond_refresh_age for d in devices),
        beyond_useful_life=sum(d.beyond_useful_life for d in devices),
        os_end_of_support=sum(d.os_end_of_support for d in devices),
        failing=sum(1 for d in devices if {"smart_failed", "disk_failing"}
                    & set(d.evidence.findings)),
        at_risk=sum(1 for d in devices if "memory_pressure" in d.evidence.findings),
        windows11=tuple(sorted(windows11.items())),
        actions=tuple(sorted(actions.items(), key=lambda kv: -kv[1])),
        cost_vnd=sum(line.cost_vnd for line in lines),
        funded_vnd=sum(line.cost_vnd for line in lines if line.funded))


def sample_report(budget: int | None = 20_000_000) -> Report:
    """With a budget the slow link (6,000,000 ₫ after 17,100,000 ₫ of devices) does not
    fit; without one everything is funded."""
    link = SLOW_LINK if budget is not None else dataclasses.replace(SLOW_LINK, funded=True)
    communes = (
        Commune("an-phuoc", "An Phước", _counts(AN_PHUOC, ()), AN_PHUOC, ()),
        Commune("binh-minh", "Bình Minh", _counts(BINH_MINH, (link,)), BINH_MINH, (link,)),
    )
    every = AN_PHUOC + BINH_MINH
    return Report(
        province="Đồng Nai",
        generated=dt.datetime(2026, 11, 27, 9, 30, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")),
        period_start=dt.date(2026, 10, 28), period_end=dt.date(2026, 11, 27),
        settings=Settings(prices_vnd=PRICES, refresh_age_years=4, useful_life_years=5,
                          budget_vnd=budget,
                          weights=(("critical", 20.0), ("warning", 8.0), ("info", 2.0),
                                   ("risk_max", 40.0), ("shortfall_max", 25.0),
                                   ("per_year", 2.5), ("end_of_support", 5.0),
                                   ("age_max", 25.0)),
                          assets_file="tai-san.csv"),
        summary=_counts(every, (link,)),
        communes=communes,
        sites=(link,),
        unfunded=(link,) if budget is not None else (),
        unmatched_assets=(UnmatchedAsset(4, "SN-99;;TS-0099;2015-01-01;Kho",
                                         "no device with serial SN-99 or host name"),),
    )
