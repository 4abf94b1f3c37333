"""The agent's config file: [agent], [broker], [probes], [smart], [queue], [asset]."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional

from cwatch.config import load as load_config
from cwatch.mqtt import BrokerConfig
from cwatch.protocol import is_valid_id


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value:g}")


@dataclasses.dataclass(frozen=True)
class AgentSection:
    site: str
    device: str
    # Seconds between metrics messages.
    interval_s: float = 60.0
    # Seconds between connectivity probe rounds.
    probe_interval_s: float = 60.0
    # Seconds between inventory refreshes (it is also sent on every connect).
    inventory_interval_s: float = 86400.0
    # Sequence counter and offline queue live here; must survive reboots.
    data_dir: str = "cwatch-agent-data"
    log_level: str = "info"
    # Empty: log to stderr (systemd's journal). A path: a rotating file (Windows service).
    log_file: str = ""

    def __post_init__(self) -> None:
        for name in ("site", "device"):
            if not is_valid_id(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} must match "
                                 "[a-z0-9][a-z0-9._-]{0,63}")
        _check_range("interval_s", self.interval_s, 1, 86400)
        _check_range("probe_interval_s", self.probe_interval_s, 5, 86400)
        _check_range("inventory_interval_s", self.inventory_interval_s, 60, 30 * 86400)
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError("log_level must be debug, info, warning or error")


@dataclasses.dataclass(frozen=True)
class ProbesSection:
    """Connectivity targets; each layer separately so the fault can be located."""

    enabled: bool = True
    # The province's administrative-procedure portal (HTTP time to first byte).
    portal_url: str = ""
    # Defaults to the broker's host.
    collector_host: str = ""
    # "auto" detects the default gateway; "" leaves it out.
    gateway: str = "auto"
    # A public resolver pinged by address: tells "no internet" from "no DNS".
    public_dns: str = "1.1.1.1"
    # More hosts to ping (e.g. the ISP's next hop, the provincial data centre).
    extra_hosts: List[str] = dataclasses.field(default_factory=list)
    timeout_s: float = 10.0
    # Download test from the collector's /probe/blob; 0 = off. Costs bandwidth:
    # enable it on one PC per commune, e.g. every 3600 s.
    throughput_interval_s: float = 0.0
    throughput_bytes: int = 1_000_000
    # Defaults to http://<collector_host>:9555/probe/blob
    throughput_url: str = ""

    def __post_init__(self) -> None:
        if self.portal_url and not self.portal_url.startswith(("http://", "https://")):
            raise ValueError(f"portal_url {self.portal_url!r} must start with http(s)://")
        _check_range("timeout_s", self.timeout_s, 1, 120)
        if self.throughput_interval_s:
            _check_range("throughput_interval_s", self.throughput_interval_s, 60, 7 * 86400)
        _check_range("throughput_bytes", self.throughput_bytes, 10_000, 100_000_000)
        if len(self.extra_hosts) > 16:
            raise ValueError("extra_hosts: at most 16 hosts")


@dataclasses.dataclass(frozen=True)
class SmartSection:
    enabled: bool = True
    # SMART changes slowly and smartctl wakes disks: read it at most this often.
    interval_s: float = 3600.0

    def __post_init__(self) -> None:
        _check_range("interval_s", self.interval_s, 60, 7 * 86400)


@dataclasses.dataclass(frozen=True)
class QueueSection:
    """Store-and-forward bounds: when full, the oldest envelopes are dropped and counted."""

    max_mb: float = 50.0
    max_age_days: float = 7.0
    # Backlog pacing after an outage, so the flush leaves room on a weak link.
    flush_rate_bytes_per_s: float = 32_768.0
    batch_max_items: int = 500

    def __post_init__(self) -> None:
        _check_range("max_mb", self.max_mb, 1, 10_000)
        _check_range("max_age_days", self.max_age_days, 0.01, 365)
        _check_range("flush_rate_bytes_per_s", self.flush_rate_bytes_per_s, 1_000, 1e9)
        _check_range("batch_max_items", self.batch_max_items, 1, 1000)


@dataclasses.dataclass(frozen=True)
class AssetSection:
    """What only people know about the machine; sent in the inventory."""

    tag: Optional[str] = None
    role: Optional[str] = None
    purchase_date: Optional[str] = None
    location: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    agent: AgentSection
    broker: BrokerConfig = dataclasses.field(default_factory=BrokerConfig)
    probes: ProbesSection = dataclasses.field(default_factory=ProbesSection)
    smart: SmartSection = dataclasses.field(default_factory=SmartSection)
    queue: QueueSection = dataclasses.field(default_factory=QueueSection)
    asset: AssetSection = dataclasses.field(default_factory=AssetSection)


def load(path: Optional[Path], overrides: Dict[str, Dict[str, Any]]) -> AgentConfig:
    """Read the file (if any), then apply command-line overrides per section."""
    return load_config(AgentConfig, path, overrides)
