"""The agent's config file: [agent], [broker], [probes], [smart], [queue], [asset], [[polled]]."""

from __future__ import annotations

import dataclasses
import os
import re
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


# SNMPv3 protocols by their config names (net-snmp's names, lower case). aes192/aes256 are
# the key extension net-snmp uses (Blumenthal); aes192c/aes256c the one Cisco uses (Reeder).
SNMP_VERSIONS = ("2c", "3", "none")
AUTH_PROTOCOLS = ("none", "md5", "sha", "sha224", "sha256", "sha384", "sha512")
PRIV_PROTOCOLS = ("none", "des", "3des", "aes", "aes192", "aes256", "aes192c", "aes256c")
MAX_POLLED = 64
_ROLE = re.compile(r"[a-z][a-z0-9-]{0,31}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST = re.compile(r"[A-Za-z0-9._:-]{1,253}")


@dataclasses.dataclass(frozen=True)
class PolledDeviceSection:
    """A router or switch this agent polls over SNMP (or only pings): one [[polled]] table.

    It is published as its own device (`device`) of the agent's site. Secrets can stay out
    of the file: `community_env = "NAME"` reads the community from environment variable
    NAME (likewise auth_password_env, priv_password_env).
    """

    device: str
    host: str
    # "2c", "3", or "none" (ping only: for devices without SNMP).
    snmp: str = "2c"
    port: int = 161
    community: str = ""
    community_env: str = ""
    # SNMPv3 (User-based Security Model).
    user: str = ""
    auth_protocol: str = "sha"
    auth_password: str = ""
    auth_password_env: str = ""
    priv_protocol: str = "aes"
    priv_password: str = ""
    priv_password_env: str = ""
    # Sent in the device's inventory (asset).
    role: str = "router"
    tag: Optional[str] = None
    location: Optional[str] = None
    purchase_date: Optional[str] = None
    # The interface (ifName or ifDescr) that leads to the internet, and the ISP plan's
    # speed in Mbit/s (the port's own speed, e.g. 1000, says nothing about the plan).
    wan_interface: str = ""
    wan_mbit: float = 0.0
    # 0: the agent's interval_s.
    interval_s: float = 0.0
    # Per SNMP request; a request is sent 1 + retries times before the device counts as
    # not answering. Also caps the wait for each ping.
    timeout_s: float = 2.0
    retries: int = 1

    def __post_init__(self) -> None:
        if not is_valid_id(self.device):
            raise ValueError(f"device {self.device!r} must match [a-z0-9][a-z0-9._-]{{0,63}}")
        if not _HOST.fullmatch(self.host):
            raise ValueError(f"host {self.host!r} must be an IP address or a host name")
        if self.snmp not in SNMP_VERSIONS:
            raise ValueError(f"snmp {self.snmp!r} must be \"2c\", \"3\" or \"none\"")
        _check_range("port", self.port, 1, 65535)
        _check_range("timeout_s", self.timeout_s, 0.1, 30)
        _check_range("retries", self.retries, 0, 5)
        if self.interval_s:
            _check_range("interval_s", self.interval_s, 1, 86400)
        _check_range("wan_mbit", self.wan_mbit, 0, 1_000_000)
        if not _ROLE.fullmatch(self.role):
            raise ValueError(f"role {self.role!r} must match [a-z][a-z0-9-]{{0,31}}")
        if self.purchase_date is not None and not _DATE.fullmatch(self.purchase_date):
            raise ValueError(f"purchase_date {self.purchase_date!r} must be YYYY-MM-DD")
        if self.tag is not None and len(self.tag) > 64:
            raise ValueError("tag: at most 64 characters")
        if self.location is not None and len(self.location) > 128:
            raise ValueError("location: at most 128 characters")
        if len(self.wan_interface) > 64:
            raise ValueError("wan_interface: at most 64 characters")
        for name in ("community", "auth_password", "priv_password"):
            self._check_env(name)
        if self.snmp == "2c" and not self.secret("community"):
            raise ValueError("community (or community_env) is required with snmp = \"2c\"")
        if self.snmp == "3":
            self._check_v3()

    def _check_env(self, name: str) -> None:
        env_name = getattr(self, name + "_env")
        if not env_name:
            return
        if not _ENV_NAME.fullmatch(env_name):
            raise ValueError(f"{name}_env {env_name!r} must be an environment variable name")
        if getattr(self, name):
            raise ValueError(f"give {name} or {name}_env, not both")
        if not os.environ.get(env_name):
            raise ValueError(f"{name}_env: environment variable {env_name} is not set")

    def _check_v3(self) -> None:
        if not self.user:
            raise ValueError("user is required with snmp = \"3\"")
        if self.auth_protocol not in AUTH_PROTOCOLS:
            raise ValueError(f"auth_protocol {self.auth_protocol!r} must be one of "
                             + ", ".join(AUTH_PROTOCOLS))
        if self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"priv_protocol {self.priv_protocol!r} must be one of "
                             + ", ".join(PRIV_PROTOCOLS))
        auth, priv = self.secret("auth_password"), self.secret("priv_password")
        if self.auth_protocol != "none" and len(auth) < 8:
            raise ValueError("auth_password (or auth_password_env) of at least 8 characters "
                             "is required with auth_protocol " + repr(self.auth_protocol))
        if self.priv_protocol != "none":
            if self.auth_protocol == "none":
                raise ValueError("priv_protocol needs an auth_protocol (SNMPv3 has no "
                                 "privacy without authentication)")
            if len(priv) < 8:
                raise ValueError("priv_password (or priv_password_env) of at least 8 "
                                 "characters is required with priv_protocol "
                                 + repr(self.priv_protocol))

    def secret(self, name: str) -> str:
        """community, auth_password or priv_password: from the file or the environment."""
        env_name = getattr(self, name + "_env")
        return os.environ.get(env_name, "") if env_name else getattr(self, name)


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    agent: AgentSection
    broker: BrokerConfig = dataclasses.field(default_factory=BrokerConfig)
    probes: ProbesSection = dataclasses.field(default_factory=ProbesSection)
    smart: SmartSection = dataclasses.field(default_factory=SmartSection)
    queue: QueueSection = dataclasses.field(default_factory=QueueSection)
    asset: AssetSection = dataclasses.field(default_factory=AssetSection)
    # Routers and switches this agent polls: [[polled]] tables (see docs/router-snmp.md).
    polled: List[PolledDeviceSection] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.polled) > MAX_POLLED:
            raise ValueError(f"[[polled]]: at most {MAX_POLLED} devices")
        seen = {self.agent.device}
        for number, polled in enumerate(self.polled, start=1):
            if polled.device in seen:
                raise ValueError(f"[polled #{number}] device {polled.device!r} is already "
                                 "used by this agent or another [[polled]] device")
            seen.add(polled.device)


def load(path: Optional[Path], overrides: Dict[str, Dict[str, Any]]) -> AgentConfig:
    """Read the file (if any), then apply command-line overrides per section."""
    return load_config(AgentConfig, path, overrides)
