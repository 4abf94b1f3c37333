"""One simulated device's data at a sample time: health with office-hours load,
slow drifts, the injected faults, and the link quality of its site.

A value depends only on (seed, device, channel, seq, ts), never on when it is
computed, so a replay at any speed, and a backlog sent after an outage, carry
exactly the values the device measured at their times.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

from cwatch.sim.fleet import REBOOT_EVERY_S, Device, Fleet
from cwatch.worktime import office_hours

PORTAL_HOST = "dichvucong.dongnai.gov.vn"
GIB = 1 << 30


def _rng(fleet: Fleet, device: Device, channel: str, seq: int) -> random.Random:
    return random.Random(f"{fleet.seed}/{device.site}/{device.id}/{channel}/{seq}")


def boot_ts(device: Device, ts: float) -> float:
    fault = device.fault("unexpected_reboots", ts)
    if fault is None:
        return device.boot_ts
    reboots = int((ts - fault.start_ts) // REBOOT_EVERY_S)
    return fault.start_ts + reboots * REBOOT_EVERY_S


def status(device: Device, state: str, interval_s: float,
           reason: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"state": state, "agent_version": "sim", "interval_s": interval_s}
    if reason is not None:
        data["reason"] = reason
    return data


def metrics(fleet: Fleet, device: Device, ts: float, seq: int) -> dict[str, Any]:
    rng = _rng(fleet, device, "metrics", seq)
    hw = device.hw
    busy = office_hours(ts) or device.role in ("server", "router")
    cpu = min(100.0, device.cpu_base * (1.0 if busy else 0.3) * rng.uniform(0.6, 1.6))
    mem_total = int(hw.ram_gb * GIB)
    # Windows 10 on 2-4 GB runs near full all day; larger machines have room.
    mem_used = {0.125: 55, 0.25: 45, 2: 86, 4: 74, 8: 56, 16: 42, 32: 35}.get(hw.ram_gb, 50) \
        + (5 if busy else -5) + rng.uniform(-4, 4)
    swap_total = 0 if device.role == "router" else 2 * GIB
    swap_pct, swap_in = (5.0 + rng.uniform(0, 5)) if swap_total else 0.0, 0.0
    if device.fault("memory_pressure", ts):
        mem_used, swap_pct = rng.uniform(97, 99.5), rng.uniform(80, 95)
        swap_in = rng.uniform(200_000, 2_000_000)
    mem_used = max(1.0, min(99.9, mem_used))
    boot = boot_ts(device, ts)
    data: dict[str, Any] = {
        "interval_s": fleet.scenario.interval_s,
        "cpu_percent": round(cpu, 1),
        "cpu_max_core_percent": round(min(100.0, cpu * rng.uniform(1.2, 2.0)), 1),
        "cpu_count": hw.threads,
        "mem_total_bytes": mem_total,
        "mem_available_bytes": int(mem_total * (100 - mem_used) / 100),
        "mem_used_percent": round(mem_used, 1),
        "uptime_s": int(max(0.0, ts - boot)),
        "boot_ts": float(round(boot)),
        "process_count": rng.randint(40, 60) if device.role == "router" else rng.randint(
            110, 190),
        "net": [{"name": "eth0" if hw.os_name != "Windows" else "Ethernet",
                 "rx_bytes_per_s": round(rng.uniform(2_000, 200_000 if busy else 10_000), 1),
                 "tx_bytes_per_s": round(rng.uniform(500, 50_000 if busy else 3_000), 1),
                 "rx_errors_per_s": 0.0, "tx_errors_per_s": 0.0}],
        "agent": {"queue_size": 0, "rss_bytes": 29_000_000, "cpu_s": round(
            (ts - boot) / 60 * 0.03, 2)},
    }
    if swap_total:
        data.update(swap_total_bytes=swap_total, swap_used_bytes=int(swap_total * swap_pct / 100),
                    swap_used_percent=round(swap_pct, 1),
                    swap_in_bytes_per_s=round(swap_in, 1))
    if device.role == "router":
        data.update(_router(fleet, device, ts, seq, busy))
    else:
        data["disks"] = [_disk(fleet, device, ts, rng)]
        data["disk_io"] = [_disk_io(fleet, device, ts, seq, busy)]
        data["temperatures"] = [_cpu_temperature(device, ts, cpu, rng)]
        data["smart"] = [_smart(device, ts, rng)]
    return data


def _router(fleet: Fleet, device: Device, ts: float, seq: int, busy: bool) -> dict[str, Any]:
    """An OpenWrt router as its shell agent reports it: a WAN port on the provider's plan,
    the office LAN bridge, and the NAT table. Its own random stream, like _disk_io."""
    rng = _rng(fleet, device, "router", seq)
    plan_mbit = 20 + 10 * (zlib.crc32(device.site.encode()) % 4)  # 20-50 Mbit/s lines
    wan_in = plan_mbit * 1e6 / 8 * rng.uniform(0.10, 0.45 if busy else 0.05)
    wan_out = wan_in * rng.uniform(0.1, 0.3)
    return {
        "conntrack_count": rng.randint(300, 1500) if busy else rng.randint(40, 200),
        "conntrack_max": 16_384,
        "net": [
            {"name": "wan", "wan": True, "up": True, "speed_bps": plan_mbit * 1_000_000,
             "rx_bytes_per_s": round(wan_in, 1), "tx_bytes_per_s": round(wan_out, 1),
             "rx_errors_per_s": 0.0, "tx_errors_per_s": 0.0,
             "rx_drops_per_s": round(rng.uniform(0, 0.5), 2), "tx_drops_per_s": 0.0},
            {"name": "br-lan", "wan": False, "up": True, "speed_bps": 1_000_000_000,
             "rx_bytes_per_s": round(wan_out, 1), "tx_bytes_per_s": round(wan_in, 1),
             "rx_errors_per_s": 0.0, "tx_errors_per_s": 0.0,
             "rx_drops_per_s": round(rng.uniform(0, 2), 2), "tx_drops_per_s": 0.0}],
    }


def _disk_io(fleet: Fleet, device: Device, ts: float, seq: int, busy: bool) -> dict[str, Any]:
    # Its own random stream, so adding it left every other simulated value as it was.
    rng = _rng(fleet, device, "disk_io", seq)
    hdd = device.hw.disk_kind == "hdd"
    scale = (1.0 if busy else 0.2) * rng.uniform(0.3, 1.7)
    read, write = 400_000 * scale, 150_000 * scale
    # An old spinning disk is busy for the same work a solid-state one hardly notices.
    busy_pct = min(100.0, (35.0 if hdd else 4.0) * scale)
    if device.fault("memory_pressure", ts):  # paging keeps the disk busy
        busy_pct = rng.uniform(85, 100) if hdd else rng.uniform(30, 60)
    return {"name": "nvme0n1" if device.hw.disk_kind == "nvme" else "sda",
            "read_bytes_per_s": round(read, 1), "write_bytes_per_s": round(write, 1),
            "read_ops_per_s": round(read / 16_384, 1), "write_ops_per_s": round(write / 8_192, 1),
            "busy_percent": round(busy_pct, 1)}


def _disk(fleet: Fleet, device: Device, ts: float, rng: random.Random) -> dict[str, Any]:
    total = device.hw.disk_gb * 1_000_000_000
    days = (ts - fleet.start_ts) / 86400
    used_pct = min(95.0, device.disk_used_base + 0.02 * days)  # slow, steady growth
    if device.fault("disk_full", ts):
        used_pct = rng.uniform(98.0, 99.5)
    used = int(total * used_pct / 100)
    windows = device.hw.os_name == "Windows"
    return {"mount": "C:\\" if windows else "/", "fstype": "NTFS" if windows else "ext4",
            "total_bytes": total, "used_bytes": used, "free_bytes": total - used,
            "used_percent": round(used_pct, 2)}


def _cpu_temperature(device: Device, ts: float, cpu: float,
                     rng: random.Random) -> dict[str, Any]:
    temp = 38 + cpu * 0.35 + rng.uniform(-2, 2) + (6 if device.hw.year < 2015 else 0)
    if device.fault("high_temperature", ts):
        temp = rng.uniform(90, 96)
    return {"sensor": "coretemp", "label": "Package id 0", "temp_c": round(temp, 1),
            "high_c": 85.0, "critical_c": 100.0}


def _smart(device: Device, ts: float, rng: random.Random) -> dict[str, Any]:
    hw = device.hw
    hours = int((ts - device.boot_ts) / 3600 + (2025 - hw.year) * 2500)
    item: dict[str, Any] = {
        "device": "/dev/nvme0" if hw.disk_kind == "nvme" else "/dev/sda",
        "model": {"hdd": "ST500DM002-1BD142", "ssd": "KINGSTON SA400S37240G",
                  "nvme": "Samsung SSD 970 EVO Plus 250GB"}[hw.disk_kind],
        "serial": f"SIM{zlib.crc32(f'{device.site}/{device.id}'.encode()):010d}",
        "protocol": "nvme" if hw.disk_kind == "nvme" else "ata",
        "passed": True, "power_on_hours": max(0, hours),
        "temperature_c": round(rng.uniform(33, 44), 1)}
    if hw.disk_kind == "nvme":
        used = min(99, max(1, (2025 - hw.year) * 6))
        spare, warning = 100, 0
        if fault := device.fault("nvme_wear", ts):
            used = min(255, 101 + int((ts - fault.start_ts) / 3600))
            spare, warning = 8, 1  # spare below threshold sets bit 0
        item.update(nvme_percentage_used=used, nvme_available_spare_percent=spare,
                    nvme_media_errors=0, nvme_critical_warning=warning)
    else:
        reallocated = pending = 0
        if fault := device.fault("disk_reallocated", ts):
            grown_h = (ts - fault.start_ts) / 3600
            reallocated, pending = 8 + int(8 * grown_h), int(2 * grown_h)
        item.update(reallocated_sectors=reallocated, pending_sectors=pending,
                    offline_uncorrectable=0, reported_uncorrectable=0, command_timeouts=0)
    if device.fault("smart_failure", ts):
        item["passed"] = False
    return item


def probe(fleet: Fleet, device: Device, ts: float, seq: int,
          with_throughput: bool) -> dict[str, Any]:
    rng = _rng(fleet, device, "probe", seq)
    site = fleet.sites[device.site]
    rtt, loss, mbit = site.rtt_ms, site.loss_percent, site.mbit_per_s
    if fleet.site_fault(device.site, "slow_link", ts):
        rtt, loss, mbit = rng.uniform(500, 1200), rng.uniform(10, 25), rng.uniform(0.2, 0.9)
    portal_ttfb = rng.uniform(150, 600)
    if fleet.site_fault(device.site, "portal_slow", ts):
        portal_ttfb = rng.uniform(4000, 9000)
    targets = [
        _target("gateway", "gateway", "192.168.1.1", "icmp", rng.uniform(0.3, 2.0), 0.0, rng),
        _target("portal", "portal", PORTAL_HOST, "http", rtt * rng.uniform(0.9, 1.3), loss,
                rng, ttfb=portal_ttfb + rtt),
        _target("dns", "dns", "8.8.8.8", "dns", rtt * rng.uniform(0.8, 1.2), loss, rng),
    ]
    data: dict[str, Any] = {"targets": targets}
    if with_throughput:
        nbytes = 1_000_000
        speed = mbit * rng.uniform(0.8, 1.1)
        data["throughput"] = {"url": "http://collector:9555/probe/blob?bytes=1000000",
                              "bytes": nbytes, "duration_s": round(nbytes * 8 / speed / 1e6, 3),
                              "mbit_per_s": round(speed, 2), "error": None}
    return data


def _target(name: str, kind: str, host: str, method: str, rtt: float, loss: float,
            rng: random.Random, ttfb: float | None = None) -> dict[str, Any]:
    sent = 5
    received = sum(1 for _ in range(sent) if rng.uniform(0, 100) >= loss)
    target: dict[str, Any] = {"name": name, "kind": kind, "host": host, "method": method,
                              "sent": sent, "received": received,
                              "loss_percent": round(100 * (sent - received) / sent, 1)}
    if received:
        jitter = rtt * rng.uniform(0.05, 0.3)
        target.update(rtt_avg_ms=round(rtt, 1), rtt_min_ms=round(rtt * 0.8, 1),
                      rtt_max_ms=round(rtt * 1.4 + jitter, 1), jitter_ms=round(jitter, 1))
        if method == "dns":
            target["dns_ms"] = round(rtt, 1)
        if ttfb is not None:
            target.update(http_ttfb_ms=round(ttfb, 1), http_status=200)
        target["error"] = None
    else:
        target["error"] = "timeout"
    return target


def _serial(device: Device) -> str:
    """A maker's serial number look-alike, the same for a device on every run."""
    return f"VN{zlib.crc32(f'{device.site}/{device.id}'.encode()):010d}"


def inventory(fleet: Fleet, device: Device) -> dict[str, Any]:
    hw = device.hw
    windows = hw.os_name == "Windows"
    name, version = (hw.os_name, hw.os_version) if windows or device.role == "router" \
        else hw.os_version.split(" ", 1)
    disks = [] if hw.disk_kind == "none" else [
        {"model": None, "serial": None, "size_bytes": hw.disk_gb * 1_000_000_000,
         "kind": hw.disk_kind}]
    return {
        "hostname": f"{device.site}-{device.id}".upper()[:63],
        "os": {"name": name, "version": version, "arch": "AMD64" if windows else "x86_64"},
        "cpu": {"model": hw.cpu_model, "cores": hw.cores, "threads": hw.threads},
        "ram_bytes": int(hw.ram_gb * GIB),
        "disks": disks,
        "system": {"manufacturer": hw.manufacturer, "model": hw.model,
                   "serial": _serial(device)},
        "bios": {"vendor": hw.manufacturer, "version": "A01", "date": hw.bios_date},
        # UEFI boards from about 2012, Secure Boot and TPM 2.0 from about 2016-2017, as
        # office PCs of those years shipped.
        "firmware": "uefi" if hw.year >= 2012 else "bios",
        "secure_boot": hw.year >= 2016,
        "tpm": {"present": hw.year >= 2015, "version": "2.0" if hw.year >= 2017 else
                "1.2" if hw.year >= 2015 else None},
        "asset": {"tag": f"{device.site}-{device.id}".upper(), "role": device.role,
                  "purchase_date": hw.bios_date, "location": None},
        "agent_version": "sim",
    }
