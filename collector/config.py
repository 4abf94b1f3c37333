"""The collector's config file: [collector], [broker], [tsdb], [alerts] and [report]
sections."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from alerts.config import AlertsSection
from collector import partition
from collector.reports.config import ReportSection
from collector.store.spool import DEFAULT_MAX_BYTES
from cwatch.config import load as load_config
from cwatch.config import parse_host_port
from cwatch.mqtt import BrokerConfig


@dataclasses.dataclass(frozen=True)
class CollectorSection:
    # Stable id: the broker keeps this client's session (and its queued
    # messages) across collector restarts only if the id does not change.
    client_id: str = "cwatch-collector"
    # MQTT 5 shared subscription group; empty means a plain subscription.
    shared_group: str = ""
    # Several collectors, each with its share of the sites (see collector/partition.py):
    # "K/N" for the K-th of N, and the file listing every site of the province.
    partition: str = ""
    # The province's sites: one id per line, or a CSV with `site` and `name` columns
    # (the name is what e-mails show). Needed for partition, optional otherwise.
    sites_file: str = ""
    listen: str = "127.0.0.1:9555"
    state_path: str = "cwatch-state.db"
    log_level: str = "info"
    # A device is offline after this many of its intervals without a message (min 180 s).
    silence_intervals: float = 3.0
    # Health and link rules (collector/rules/default.toml); rules_file overrides them.
    rules: bool = True
    rules_file: str = ""
    # Per-device flood limit, in messages (a batch is one): on average per second, and
    # at once. About 100 times what an agent sends; 0 turns it off (fast simulator replays).
    device_rate_per_s: float = 5.0
    device_burst: int = 300
    # HTTP API. POST/DELETE (silences) need `Authorization: Bearer <api_token>`; with no
    # token they are allowed from this host only. api_read_token, when set, is also
    # needed for /api/* and /metrics (/healthz and /probe/blob stay open). Keep both
    # out of the file: CWATCH_COLLECTOR_API_TOKEN, CWATCH_COLLECTOR_API_READ_TOKEN.
    api_token: str = ""
    api_read_token: str = ""
    # "process": MQTT is received in a child process, so receiving and storing run on
    # two cores (about twice the messages/s); "thread": all in one process.
    receiver: str = "process"

    def __post_init__(self) -> None:
        parse_host_port(self.listen, "listen")
        if self.partition:
            partition.parse(self.partition)
            if not self.sites_file:
                raise ValueError("partition needs sites_file, the list of every site")
            if self.shared_group:
                raise ValueError("use partition or shared_group, not both")
        if not self.client_id or len(self.client_id) > 128:
            raise ValueError("client_id must be 1-128 characters")
        if self.receiver not in ("process", "thread"):
            raise ValueError("receiver must be \"process\" or \"thread\"")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError("log_level must be debug, info, warning or error")
        if not 1.5 <= self.silence_intervals <= 1000:
            raise ValueError("silence_intervals must be between 1.5 and 1000")
        if not 0 <= self.device_rate_per_s <= 1_000_000:
            raise ValueError("device_rate_per_s must be between 0 (off) and 1000000")
        if not 1 <= self.device_burst <= 1_000_000:
            raise ValueError("device_burst must be between 1 and 1000000")
        for name in ("api_token", "api_read_token"):
            token = getattr(self, name)
            if token and (len(token) < 16 or not token.isprintable() or " " in token):
                raise ValueError(f"{name} must be at least 16 characters, no spaces "
                                 "(e.g. `python3 -c 'import secrets; "
                                 "print(secrets.token_urlsafe(24))'`)")


SPOOL_MIN_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class TsdbSection:
    enabled: bool = True
    # An InfluxDB v2 write API: VictoriaMetrics (http://host:8428) or InfluxDB 2.x/3.x.
    url: str = "http://127.0.0.1:8428"
    org: str = "cwatch"
    bucket: str = "cwatch"
    token: str = ""
    # The writer's queue on disk, so that what the broker was told we have survives a
    # kill -9 or a restart while the database is down. "" = "<state_path>.tsdb-spool".
    spool_dir: str = ""
    # Its bound; when full, the oldest data is dropped (counted). 6 GiB holds about a
    # day of a province's points (docs/collector.md has the arithmetic).
    spool_max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        if self.spool_max_bytes < SPOOL_MIN_BYTES:
            raise ValueError(f"spool_max_bytes must be at least {SPOOL_MIN_BYTES} (1 MiB), "
                             f"got {self.spool_max_bytes}")

    def spool_path(self, state_path: str) -> str:
        """The spool folder: spool_dir, or next to the state file."""
        return self.spool_dir or f"{state_path}.tsdb-spool"


@dataclasses.dataclass(frozen=True)
class EnrollSection:
    """Zero-touch enrollment (docs/security.md): agents trade a one-time token from
    `cwatch admin enroll-token` for their own broker account. Needs the collector on
    the broker's host (it writes mosquitto's password file)."""

    enabled: bool = False
    tokens_file: str = "/var/lib/cwatch/enroll-tokens.db"
    password_file: str = "/etc/mosquitto/cwatch.passwd"
    # The broker reads its password file again on SIGHUP; "" leaves that to you.
    broker_pid_file: str = "/run/mosquitto/mosquitto.pid"
    # What the agents are told to connect to, e.g. mqtts://mqtt.dongnai.gov.vn:8883,
    # and the CA certificate they should trust for it (sent along; "" for a public CA).
    broker_url: str = ""
    broker_ca_file: str = ""

    def __post_init__(self) -> None:
        if self.enabled and not self.broker_url:
            raise ValueError("broker_url is needed with enabled = true: the address agents "
                             "connect to")


@dataclasses.dataclass(frozen=True)
class CollectorConfig:
    collector: CollectorSection = dataclasses.field(default_factory=CollectorSection)
    broker: BrokerConfig = dataclasses.field(default_factory=BrokerConfig)
    tsdb: TsdbSection = dataclasses.field(default_factory=TsdbSection)
    alerts: AlertsSection = dataclasses.field(default_factory=AlertsSection)
    report: ReportSection = dataclasses.field(default_factory=ReportSection)
    enroll: EnrollSection = dataclasses.field(default_factory=EnrollSection)

    def __post_init__(self) -> None:
        if self.alerts.enabled and not self.collector.rules:
            raise ValueError("[alerts] enabled needs the rules ([collector] rules = true)")


def load(path: Path | None, overrides: dict[str, dict[str, object]]) -> CollectorConfig:
    """Read the file (if any), then apply command-line overrides per section."""
    return load_config(CollectorConfig, path, overrides)
