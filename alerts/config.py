"""The [alerts] section of the collector's config file: where e-mail goes, when, and how
it is grouped. Durations are strings like "30s", "5m", "4h" (Alertmanager's defaults)."""

from __future__ import annotations

import dataclasses
import re
from email.utils import parseaddr
from typing import List

from cwatch.config import parse_duration

SEVERITIES = ("info", "warning", "critical")
LANGUAGES = ("vi", "en")
GROUP_LABELS = ("site", "device", "rule", "severity")
SECURITY = ("starttls", "tls", "none")
_EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+")  # fullmatch: "$" would let a final newline in
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def clock_minutes(text: str, what: str) -> int:
    """"07:30" -> 450; raises ValueError naming `what`."""
    match = _CLOCK.match(text.strip())
    if match is None:
        raise ValueError(f"{what} {text!r} must be a time of day like \"07:30\"")
    return int(match.group(1)) * 60 + int(match.group(2))


@dataclasses.dataclass(frozen=True)
class SmtpSection:
    host: str = "127.0.0.1"
    port: int = 25
    # starttls (port 587), tls (implicit, port 465) or none (a relay on localhost).
    security: str = "starttls"
    username: str = ""
    password: str = ""  # better from the environment: CWATCH_ALERTS_SMTP_PASSWORD
    sender: str = "commune-watch <cwatch@localhost>"
    timeout_s: float = 30.0
    # A private CA's certificate (PEM) when the mail server's is not signed by a public one.
    ca_file: str = ""

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"smtp.security must be one of {', '.join(SECURITY)}")
        if not 0 < self.port < 65536:
            raise ValueError(f"smtp.port {self.port} must be 1-65535")
        if not 0 < self.timeout_s <= 600:
            raise ValueError("smtp.timeout_s must be between 0 and 600")
        if bool(self.username) != bool(self.password):
            raise ValueError("smtp.username and smtp.password go together")
        if not (self.username + self.password).isascii():
            raise ValueError("smtp.username and smtp.password must be ASCII (SMTP AUTH)")
        if not _EMAIL.fullmatch(parseaddr(self.sender)[1]):
            raise ValueError(f"smtp.sender {self.sender!r} has no e-mail address")


@dataclasses.dataclass(frozen=True)
class Recipient:
    """Who gets what: a commune's contact (sites = ["an-phuoc"]) or the provincial team
    (sites = ["*"], severities = ["critical"], province = true)."""

    email: str
    name: str = ""
    language: str = "vi"
    sites: List[str] = dataclasses.field(default_factory=lambda: ["*"])
    severities: List[str] = dataclasses.field(default_factory=lambda: list(SEVERITIES))
    # Province-level findings (the portal slow for every commune), whatever their severity.
    province: bool = False
    digest: bool = True

    def __post_init__(self) -> None:
        if not _EMAIL.fullmatch(self.email):
            raise ValueError(f"recipient email {self.email!r} is not an e-mail address")
        if self.language not in LANGUAGES:
            raise ValueError(f"recipient {self.email!r}: language must be vi or en")
        bad = [s for s in self.severities if s not in SEVERITIES]
        if bad:
            raise ValueError(f"recipient {self.email}: unknown severity {bad[0]!r}")
        if not self.sites:
            raise ValueError(f"recipient {self.email}: sites is empty (use [\"*\"] for all)")

    def wants(self, site: str | None, severity: str) -> bool:
        if site is None:
            return self.province
        return severity in self.severities and ("*" in self.sites or site in self.sites)


@dataclasses.dataclass(frozen=True)
class InhibitRule:
    """While a `source` finding is active, `target` findings with the same `equal`
    labels are not notified (Alertmanager's inhibit_rules)."""

    source: List[str]
    target: List[str] = dataclasses.field(default_factory=lambda: ["*"])
    equal: List[str] = dataclasses.field(default_factory=lambda: ["site"])

    def __post_init__(self) -> None:
        bad = [label for label in self.equal if label not in ("site", "device", "item")]
        if bad:
            raise ValueError(f"inhibit equal label {bad[0]!r} must be site, device or item")
        if not self.source:
            raise ValueError("inhibit source is empty")


def _default_inhibit() -> List[InhibitRule]:
    # A commune whose link or power is down: one e-mail about that, not one per device.
    return [InhibitRule(source=["site_unreachable"])]


@dataclasses.dataclass(frozen=True)
class AlertsSection:
    enabled: bool = False
    recipients: List[Recipient] = dataclasses.field(default_factory=list)
    smtp: SmtpSection = dataclasses.field(default_factory=SmtpSection)
    group_by: List[str] = dataclasses.field(default_factory=lambda: ["site"])
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    inhibit: List[InhibitRule] = dataclasses.field(default_factory=_default_inhibit)
    # Non-critical notifications wait for working hours; working days follow the
    # country's public holidays (python-holidays) plus the lists below.
    office_hours: bool = True
    work_start: str = "07:30"
    work_end: str = "17:00"
    holidays_country: str = "VN"
    extra_holidays: List[str] = dataclasses.field(default_factory=list)  # "2026-12-31"
    extra_workdays: List[str] = dataclasses.field(default_factory=list)  # make-up Saturdays
    timezone: str = "Asia/Ho_Chi_Minh"
    digest_time: str = "07:45"  # local time, working days only; "" = no digest
    digest_priorities: int = 10
    # The outbox: failed deliveries are retried with backoff, never dropped silently.
    retry_min: str = "30s"
    retry_max: str = "30m"
    failures_before_error: int = 5
    # Link in every e-mail (the Grafana or API address the reader can open).
    link: str = ""

    def __post_init__(self) -> None:
        bad = [label for label in self.group_by if label not in GROUP_LABELS]
        if bad:
            raise ValueError(f"group_by label {bad[0]!r} must be one of "
                             f"{', '.join(GROUP_LABELS)}")
        for name in ("group_wait", "group_interval", "repeat_interval", "retry_min",
                     "retry_max"):
            parse_duration(getattr(self, name), name)
        if self.seconds("group_interval") <= 0 or self.seconds("repeat_interval") <= 0:
            raise ValueError("group_interval and repeat_interval must be above 0")
        if self.seconds("retry_max") < self.seconds("retry_min") or \
                self.seconds("retry_min") <= 0:
            raise ValueError("retry_min must be above 0 and at most retry_max")
        start = clock_minutes(self.work_start, "work_start")
        if clock_minutes(self.work_end, "work_end") <= start:
            raise ValueError("work_end must be after work_start")
        if self.digest_time:
            clock_minutes(self.digest_time, "digest_time")
        if self.failures_before_error < 1:
            raise ValueError("failures_before_error must be at least 1")
        if self.enabled and not self.recipients:
            raise ValueError("alerts are enabled but no [[alerts.recipients]] is given")
        from alerts.calendar import WorkCalendar  # here: calendar.py imports this module

        WorkCalendar.from_config(self)  # an unknown country or time zone fails at load
        seen = set()
        for recipient in self.recipients:
            if recipient.email.lower() in seen:
                raise ValueError(f"recipient {recipient.email} is listed twice")
            seen.add(recipient.email.lower())

    def seconds(self, name: str) -> float:
        return parse_duration(getattr(self, name), name)
