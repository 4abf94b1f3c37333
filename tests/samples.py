"""Valid protocol-v1 envelopes that use every field the schema defines.

The schema-mutation tests break these one rule at a time, so each optional
field must be present here for its rules to be exercised, even those only a router
sends (conntrack, link speed, polled_by).
"""

from __future__ import annotations

import copy
import time
from typing import Any

SITE = "an-phuoc"
DEVICE = "pc-ketoan-01"


def metrics_data() -> dict[str, Any]:
    return {
        "interval_s": 60, "cpu_percent": 37.5, "cpu_max_core_percent": 88.0, "cpu_count": 4,
        "load_1m": 1.2, "load_5m": 0.9, "load_15m": 0.7,
        "mem_total_bytes": 4_294_967_296, "mem_available_bytes": 805_306_368,
        "mem_used_percent": 81.3, "swap_total_bytes": 2_147_483_648,
        "swap_used_bytes": 536_870_912, "swap_used_percent": 25.0,
        "swap_in_bytes_per_s": 4096.0, "swap_out_bytes_per_s": 1024.0,
        "uptime_s": 86_400, "boot_ts": 1_790_000_000.0, "process_count": 143,
        "conntrack_count": 312, "conntrack_max": 16_384,
        "disks": [{"mount": "C:\\", "fstype": "NTFS", "total_bytes": 500_107_862_016,
                   "used_bytes": 400_000_000_000, "free_bytes": 100_107_862_016,
                   "used_percent": 80.0}],
        "disk_io": [{"name": "PhysicalDrive0", "read_bytes_per_s": 120_000.0,
                     "write_bytes_per_s": 64_000.0, "read_ops_per_s": 12.0,
                     "write_ops_per_s": 8.5, "busy_percent": 35.0}],
        "net": [{"name": "Ethernet", "rx_bytes_per_s": 51_200.0, "tx_bytes_per_s": 10_240.0,
                 "rx_errors_per_s": 0.0, "tx_errors_per_s": 0.0, "rx_drops_per_s": 0.1,
                 "tx_drops_per_s": 0.0, "up": True, "speed_bps": 100_000_000, "wan": False}],
        "temperatures": [{"sensor": "coretemp", "label": "Package id 0", "temp_c": 61.0,
                          "high_c": 80.0, "critical_c": 100.0}],
        "fans": [{"sensor": "dell_smm", "label": "CPU fan", "rpm": 2100}],
        "battery": {"charge_percent": 93.0, "plugged": True, "wear_percent": 31.0,
                    "cycle_count": 412},
        "smart": [{"device": "/dev/sda", "model": "ST500DM002-1BD142", "serial": "Z3T1ABCD",
                   "protocol": "ata", "passed": True, "reallocated_sectors": 8,
                   "pending_sectors": 0, "offline_uncorrectable": 0,
                   "reported_uncorrectable": 0, "command_timeouts": 0,
                   "power_on_hours": 41_235, "temperature_c": 38.0,
                   "nvme_percentage_used": None, "nvme_available_spare_percent": None,
                   "nvme_media_errors": None, "nvme_critical_warning": None}],
        "smart_note": "smartctl 7.3",
        "agent": {"queue_size": 0, "queue_bytes": 0, "queue_dropped_total": 0,
                  "publish_failures_total": 0, "rss_bytes": 24_000_000, "cpu_s": 1.5},
    }


def probe_data() -> dict[str, Any]:
    return {
        "targets": [{
            "name": "portal", "kind": "portal", "host": "dichvucong.dongnai.gov.vn",
            "method": "http", "sent": 5, "received": 5, "loss_percent": 0.0,
            "rtt_avg_ms": 48.2, "rtt_min_ms": 40.1, "rtt_max_ms": 61.0, "jitter_ms": 6.3,
            "dns_ms": 12.0, "http_ttfb_ms": 310.0, "http_status": 200, "error": None,
        }],
        "throughput": {"url": "http://collector.example:9555/probe/blob?bytes=1000000",
                       "bytes": 1_000_000, "duration_s": 1.6, "mbit_per_s": 5.0,
                       "error": None},
    }


def inventory_data() -> dict[str, Any]:
    return {
        "hostname": "KETOAN-01",
        "description": "Windows 10 Pro 22H2 on a Dell OptiPlex 3020",
        "polled_by": "pc-motcua-01",
        "os": {"name": "Windows", "version": "10", "build": "19045", "arch": "AMD64"},
        "cpu": {"model": "Intel(R) Core(TM) i3-4150 CPU @ 3.50GHz", "cores": 2, "threads": 4,
                "max_mhz": 3500},
        "ram_bytes": 4_294_967_296,
        "disks": [{"model": "ST500DM002-1BD142", "serial": "Z3T1ABCD",
                   "size_bytes": 500_107_862_016, "kind": "hdd"}],
        "system": {"manufacturer": "Dell Inc.", "model": "OptiPlex 3020", "serial": "7XK2Q32"},
        "bios": {"vendor": "Dell Inc.", "version": "A18", "date": "2014-06-05"},
        "firmware": "bios", "secure_boot": False,
        "tpm": {"present": True, "version": "1.2"},
        "macs": ["00:1a:2b:3c:4d:5e"],
        "asset": {"tag": "DN-AP-0042", "role": "service-counter", "purchase_date": "2014-09-01",
                  "location": "Bộ phận một cửa, quầy 2"},
        "agent_version": "0.1.0", "python_version": "3.8.10",
    }


def status_data() -> dict[str, Any]:
    return {"state": "online", "agent_version": "0.1.0", "interval_s": 60}


DATA = {"metrics": metrics_data, "probe": probe_data, "inventory": inventory_data,
        "status": status_data}


def envelope(channel: str, seq: int = 1, ts: float | None = None, **overrides: Any) -> dict:
    ts = time.time() - 5 if ts is None else ts
    if channel == "batch":
        items = [dict(envelope(ch, seq + i, ts - 60 * (i + 1)), channel=ch)
                 for i, ch in enumerate(("metrics", "probe", "inventory"))]
        env = {"v": 1, "site": SITE, "device": DEVICE, "ts": ts, "channel": "batch",
               "data": {"items": items}}
    else:
        env = {"v": 1, "site": SITE, "device": DEVICE, "ts": ts, "seq": seq,
               "channel": channel, "data": DATA[channel]()}
    env.update(overrides)
    return copy.deepcopy(env)


def topic(channel: str, site: str = SITE, device: str = DEVICE) -> str:
    return f"cwatch/v1/{site}/{device}/{channel}"
