"""The notifier against a real SMTP server (aiosmtpd): grouping, de-duplication, resolved
notices, silences, inhibition, office hours, the digest, outages and restarts.

The clock is handed in, so an hour of Alertmanager timers takes no wall time; the
findings are written the way the rule engine writes them (FindingsStore)."""

from __future__ import annotations

import datetime as dt
import email.header
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from smtp_helpers import Received, SmtpServer
from zoneinfo import ZoneInfo

from alerts.config import AlertsSection, InhibitRule, Recipient, SmtpSection
from alerts.service import AlertService
from collector.store.findings import FindingsStore
from collector.store.state import StateStore

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
# Thursday 26 November 2026, 09:00 in Vietnam: a working day, in office hours.
MORNING = dt.datetime(2026, 11, 26, 9, 0, tzinfo=ZONE).timestamp()
PROVINCE = "tinh@dongnai.gov.vn"
AN_PHUOC = "it.anphuoc@dongnai.gov.vn"


class Clock:
    def __init__(self, ts: float) -> None:
        self.ts = ts

    def __call__(self) -> float:
        return self.ts

    def advance(self, seconds: float) -> float:
        self.ts += seconds
        return self.ts


def recipients() -> list[Recipient]:
    return [Recipient(email=PROVINCE, name="Tổ kỹ thuật tỉnh", language="en", province=True,
                      digest=False),
            Recipient(email=AN_PHUOC, name="Nguyễn Văn An", sites=["an-phuoc"],
                      severities=["warning", "critical"], digest=False)]


class Rig:
    """A state file, its findings, an alert service on a fake clock, a real SMTP server."""

    def __init__(self, folder: Path, smtp: SmtpServer, clock: Clock, **alerts: Any) -> None:
        self.folder, self.smtp_server, self.clock = folder, smtp, clock
        settings: dict[str, Any] = dict(
            enabled=True, recipients=recipients(), group_wait="30s", group_interval="5m",
            repeat_interval="4h", digest_time="",
            smtp=SmtpSection(host="127.0.0.1", port=smtp.port, security="none",
                             sender="Giám sát CNTT <cwatch@dongnai.gov.vn>", timeout_s=5))
        settings.update(alerts)
        self.section = AlertsSection(**settings)
        self.open_service()

    def open_service(self) -> None:
        self.state = StateStore(str(self.folder / "state.db"), clock=self.clock)
        self.findings = FindingsStore(self.state)
        self.registry = CollectorRegistry()
        self.service = AlertService(self.section, self.state, self.findings, self.registry,
                                    site_names={"an-phuoc": "An Phước",
                                                "binh-minh": "Bình Minh"},
                                    clock=self.clock)

    def restart(self) -> None:
        self.state.close()
        self.open_service()

    def finding(self, site: str | None, device: str | None, kind: str = "overheating",
                severity: str = "warning", item: str = "", scope: str = "device") -> int:
        return self.findings.open(
            finding=kind, rule=kind, severity=severity, scope=scope, site=site, device=device,
            item=item, started_ts=self.clock() - 60, value=81.0,
            summary=f"{kind} on {device}", summary_vi=f"{kind} trên {device}")

    def run(self, seconds: float = 0.0) -> list[Received]:
        """Advance the clock, dispatch and deliver; the e-mails that arrived meanwhile."""
        before = len(self.smtp_server.messages())
        self.clock.advance(seconds)
        self.service.dispatch_once()
        self.service.deliver_due()
        return self.smtp_server.messages()[before:]

    def first(self) -> list[Received]:
        """The group sees the findings, then waits group_wait (30 s)."""
        return self.run() + self.run(31)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture
def rig(tmp_path: Path, smtp_server: SmtpServer) -> Rig:
    return Rig(tmp_path, smtp_server, Clock(MORNING))


def to(messages: list[Received], address: str) -> list[Received]:
    return [m for m in messages if m.to == [address]]


def test_one_grouped_message_per_site_after_group_wait(rig: Rig) -> None:
    for device in ("pc-01", "pc-02", "pc-03"):
        rig.finding("an-phuoc", device)
    rig.finding("binh-minh", "pc-01", "smart_failed", "critical", "/dev/sda")
    assert rig.run() == []  # group_wait: companions may still come
    rig.finding("an-phuoc", "pc-04", "disk_full", "warning", "C:\\")  # joins the wait
    assert rig.run(29) == []
    sent = rig.run(2)
    province = to(sent, PROVINCE)
    assert len(province) == 2 and len(sent) == 3  # one per site; the commune gets its own
    by_subject = {m.subject: m for m in province}
    assert set(by_subject) == {"[commune-watch] An Phước: 4 problems",
                               "[commune-watch] Bình Minh: 1 problem, 1 critical"}
    body = by_subject["[commune-watch] An Phước: 4 problems"].text()
    assert all(f"pc-0{n}" in body for n in range(1, 5)) and "binh-minh" not in body
    commune = to(sent, AN_PHUOC)[0]
    assert commune.subject == "[commune-watch] An Phước: 4 sự cố"
    assert rig.metric("cwatch_alert_emails_queued_total", kind="firing") == 3
    assert rig.metric("cwatch_alert_delivery_attempts_total", result="sent") == 3


def test_no_repeat_before_the_repeat_interval_and_news_waits_for_the_group_interval(
        rig: Rig) -> None:
    rig.finding("an-phuoc", "pc-01")
    assert len(rig.first()) == 2
    for _ in range(40):  # 40 x 5 min = 3 h 20 min: nothing new, nothing sent
        assert rig.run(300) == []
    rig.finding("an-phuoc", "pc-02")
    sent = rig.run(60)
    assert sent == []  # the group looks again only group_interval after its last look
    sent = rig.run(240)
    assert [m.subject for m in to(sent, PROVINCE)] == ["[commune-watch] An Phước: 2 problems"]
    rig.run(4 * 3600 - 600)
    assert rig.run(300) == []  # 3 h 55 min after the last e-mail
    repeat = rig.run(300)  # 4 h 0 min: the reminder
    assert [m.subject for m in to(repeat, PROVINCE)] == ["[commune-watch] An Phước: 2 problems"]


def test_resolved_notice_then_the_group_ends(rig: Rig) -> None:
    first = rig.finding("an-phuoc", "pc-01")
    second = rig.finding("an-phuoc", "pc-02", "disk_full")
    rig.first()
    rig.findings.resolve(first, rig.clock() + 1)
    sent = rig.run(300)
    province = to(sent, PROVINCE)
    assert [m.subject for m in province] == ["[commune-watch] An Phước: 1 problem, 1 resolved"]
    assert "Resolved (1):" in province[0].text() and "overheating on pc-01" in province[0].text()
    rig.findings.resolve(second, rig.clock() + 1)
    sent = rig.run(300)
    assert [m.subject for m in to(sent, AN_PHUOC)] == ["[commune-watch] An Phước: 1 đã khắc phục"]
    assert rig.run(300) == [] and rig.run(5 * 3600) == []  # nothing left to tell
    assert rig.metric("cwatch_alert_emails_queued_total", kind="resolved") == 2


def test_a_finding_resolved_before_anyone_was_told_sends_nothing(rig: Rig) -> None:
    blip = rig.finding("an-phuoc", "pc-01")
    rig.run(10)
    rig.findings.resolve(blip, rig.clock())
    assert rig.run(30) == [] and rig.run(600) == []


def test_routing_by_site_severity_and_province(rig: Rig) -> None:
    rig.finding("an-phuoc", "pc-01", "cpu_saturated", "info")  # below the commune's severities
    rig.finding("binh-minh", "pc-01", "disk_full")  # not the commune's site
    rig.finding(None, None, "portal_slow", "warning", scope="province")
    sent = rig.first()
    assert to(sent, AN_PHUOC) == []
    subjects = sorted(m.subject for m in to(sent, PROVINCE))
    assert subjects == ["[commune-watch] An Phước: 1 problem",
                        "[commune-watch] Bình Minh: 1 problem",
                        "[commune-watch] whole province: 1 problem"]


def test_silence_holds_back_and_its_end_releases(rig: Rig) -> None:
    rig.finding("an-phuoc", "pc-01")
    rig.finding("an-phuoc", "pc-02", "disk_full")
    silence = rig.service.store.add_silence(site="an-phuoc", device="pc-01", rule=None,
                                            starts_ts=rig.clock(), ends_ts=rig.clock() + 3600,
                                            reason="thay quạt", created_by="test")
    sent = rig.first()
    body = to(sent, PROVINCE)[0].text()
    assert "pc-02" in body and "pc-01" not in body
    assert rig.metric("cwatch_alert_findings_silenced") == 1
    rig.restart()  # silences are on disk
    assert rig.run(1800) == []
    sent = rig.run(1800)  # the silence ended: pc-01 is news now
    assert "pc-01" in to(sent, PROVINCE)[0].text()
    assert rig.service.store.silence(silence.id).state(rig.clock()) == "expired"  # type: ignore[union-attr]


def test_a_commune_that_is_down_does_not_page_for_every_device_behind_it(rig: Rig) -> None:
    for device in ("pc-01", "pc-02"):
        rig.finding("an-phuoc", device, "device_silent")
    rig.finding("an-phuoc", None, "site_unreachable", "critical", scope="site")
    rig.finding("binh-minh", "pc-01", "device_silent")  # another commune: not inhibited
    sent = to(rig.first(), PROVINCE)
    assert sorted(m.subject for m in sent) == ["[commune-watch] An Phước: 1 problem, 1 critical",
                                               "[commune-watch] Bình Minh: 1 problem"]
    assert rig.metric("cwatch_alert_findings_inhibited") == 2


def test_inhibit_rules_are_configurable(tmp_path: Path, smtp_server: SmtpServer) -> None:
    rig = Rig(tmp_path, smtp_server, Clock(MORNING),
              inhibit=[InhibitRule(source=["smart_failed"], target=["disk_failing"],
                                   equal=["site", "device"])])
    rig.finding("an-phuoc", "pc-01", "smart_failed", "critical", "/dev/sda")
    rig.finding("an-phuoc", "pc-01", "disk_failing", "critical", "/dev/sda")
    rig.finding("an-phuoc", "pc-02", "disk_failing", "critical", "/dev/sda")
    body = to(rig.first(), PROVINCE)[0].text()
    assert body.count("disk_failing on") == 1 and "disk_failing on pc-02" in body


def test_vietnamese_subject_and_names_decode_exactly(rig: Rig) -> None:
    rig.finding("an-phuoc", "pc-01", "smart_failed", "critical", "/dev/sda")
    rig.finding("an-phuoc", "pc-02")
    rig.finding("an-phuoc", "pc-03")
    message = to(rig.first(), AN_PHUOC)[0]
    raw_headers = message.raw.split(b"\r\n\r\n")[0].decode("ascii")  # 7-bit on the wire
    subject = re.search(r"^Subject: (.*?)\r\n(?!\s)", raw_headers, re.S | re.M).group(1)
    decoded = str(email.header.make_header(email.header.decode_header(subject)))
    assert decoded == "[commune-watch] An Phước: 3 sự cố, 1 nghiêm trọng"
    assert message.subject == decoded
    assert message.message["To"].addresses[0].display_name == "Nguyễn Văn An"
    assert message.message["From"].addresses[0].display_name == "Giám sát CNTT"
    text, html = message.text(), message.html()
    assert "[NGHIÊM TRỌNG] An Phước / pc-01" in text
    assert "Cách xử lý: Ổ cứng báo sắp hỏng" in text and "smart_failed trên pc-01" in text
    assert "<td>smart_failed trên pc-01</td>" in html and "Cần xử lý (3):" in html
    assert message.message["Auto-Submitted"] == "auto-generated"


def test_non_critical_news_waits_for_office_hours_and_holidays(tmp_path: Path,
                                                             smtp_server: SmtpServer) -> None:
    # Monday 31 August 2026 is a day off (moved from Saturday 22 August) and 1-2 September
    # are National Day: the next working time is Thursday 07:30.
    evening = dt.datetime(2026, 8, 31, 18, 0, tzinfo=ZONE).timestamp()
    rig = Rig(tmp_path, smtp_server, Clock(evening))
    rig.finding("an-phuoc", "pc-01")
    assert rig.first() == []  # a warning after 17:00 waits
    critical = rig.finding("binh-minh", "pc-01", "smart_failed", "critical", "/dev/sda")
    sent = rig.first()
    assert [m.subject for m in to(sent, PROVINCE)] == [
        "[commune-watch] Bình Minh: 1 problem, 1 critical"]  # criticals go out at night
    rig.findings.resolve(critical, rig.clock())
    thursday = dt.datetime(2026, 9, 3, 7, 30, tzinfo=ZONE).timestamp()
    meanwhile: list[Received] = []
    while rig.clock() < thursday - 300:  # through the day off and the two holidays
        meanwhile += rig.run(300)
    # ... only the good news about the critical; the warning still waits.
    assert [m.subject for m in to(meanwhile, PROVINCE)] == [
        "[commune-watch] Bình Minh: 1 resolved"]
    sent = rig.run(300)
    assert [m.subject for m in to(sent, PROVINCE)] == ["[commune-watch] An Phước: 1 problem"]
    local = dt.datetime.fromtimestamp(rig.clock(), ZONE)
    assert (local.date(), local.hour) == (dt.date(2026, 9, 3), 7)


def test_office_hours_can_be_switched_off(tmp_path: Path, smtp_server: SmtpServer) -> None:
    sunday = dt.datetime(2026, 11, 29, 22, 0, tzinfo=ZONE).timestamp()
    rig = Rig(tmp_path, smtp_server, Clock(sunday), office_hours=False)
    rig.finding("an-phuoc", "pc-01")
    assert len(rig.first()) == 2


def test_smtp_outage_then_recovery_delivers_everything_exactly_once(rig: Rig) -> None:
    rig.smtp_server.stop()
    rig.finding("an-phuoc", "pc-01")
    rig.finding("binh-minh", "pc-01")
    rig.first()
    for _ in range(6):  # retried with backoff while the server is down
        rig.run(60)
    assert rig.metric("cwatch_alert_delivery_failures") >= 5
    assert rig.metric("cwatch_alert_outbox_pending") == 3
    assert rig.metric("cwatch_alert_delivery_attempts_total", result="retry") >= 5
    rig.findings.resolve(rig.finding("an-phuoc", "pc-02"), rig.clock())  # never told: no e-mail
    rig.smtp_server.start()
    delivered: list[Received] = []
    for _ in range(40):  # backoff tops out at retry_max (30 min)
        delivered += rig.run(60)
    assert len(delivered) == 3
    assert len({m.message["Message-ID"] for m in delivered}) == 3
    assert rig.metric("cwatch_alert_delivery_failures") == 0
    assert rig.metric("cwatch_alert_outbox_pending") == 0
    assert rig.service.store.outbox_counts() == {"sent": 3}


def test_a_restart_neither_duplicates_nor_drops(rig: Rig) -> None:
    rig.finding("an-phuoc", "pc-01")
    assert len(rig.first()) == 2  # told once
    rig.smtp_server.stop()
    rig.finding("binh-minh", "pc-01")
    rig.first()  # queued, not delivered
    rig.restart()
    rig.smtp_server.start()
    delivered = rig.run(60)
    assert [m.subject for m in delivered] == ["[commune-watch] Bình Minh: 1 problem"]
    assert rig.run(300) == [] and rig.run(3600) == []  # an-phuoc was told before the restart


def test_a_refused_address_fails_for_good_without_blocking_others(tmp_path: Path,
                                                                  smtp_server: SmtpServer,
                                                                  ) -> None:
    smtp_server.refuse.add(AN_PHUOC)
    rig = Rig(tmp_path, smtp_server, Clock(MORNING))
    rig.finding("an-phuoc", "pc-01")
    sent = rig.first()
    assert [m.to for m in sent] == [[PROVINCE]]
    assert rig.service.store.outbox_counts() == {"sent": 1, "failed": 1}
    failed = rig.service.store.outbox("failed")[0]
    assert failed["recipient"] == AN_PHUOC and "550" in failed["last_error"]
    assert rig.metric("cwatch_alert_outbox_failed") == 1


def test_a_busy_server_is_retried(tmp_path: Path, smtp_server: SmtpServer) -> None:
    smtp_server.busy.add(PROVINCE)
    rig = Rig(tmp_path, smtp_server, Clock(MORNING))
    rig.finding("binh-minh", "pc-01")
    assert rig.first() == []
    smtp_server.busy.clear()
    assert [m.to for m in rig.run(60)] == [[PROVINCE]]


def test_daily_digest_once_per_working_day(tmp_path: Path, smtp_server: SmtpServer) -> None:
    people = [Recipient(email=PROVINCE, language="en", province=True),
              Recipient(email=AN_PHUOC, sites=["an-phuoc"]),
              Recipient(email="thienhung@dongnai.gov.vn", sites=["thien-hung"])]  # all well
    friday = dt.datetime(2026, 11, 27, 7, 0, tzinfo=ZONE).timestamp()
    rig = Rig(tmp_path, smtp_server, Clock(friday), recipients=people, digest_time="07:45")
    rig.service.dispatcher._priorities = lambda site, limit: [  # the collector's ranking
        {"site": "an-phuoc", "device": "pc-01", "role": "service-counter", "score": 41.0,
         "action": "replace the HDD with an SSD", "why": []}]
    rig.finding("an-phuoc", "pc-01", "disk_full")
    rig.finding("binh-minh", "pc-01", "cpu_saturated", "info")
    rig.findings.resolve(rig.finding("an-phuoc", "pc-02", "overheating"), rig.clock())
    assert not any(m.subject.startswith("[commune-watch] Daily") for m in rig.run(60))
    sent = rig.run(45 * 60)  # 07:46
    digests = {m.to[0]: m for m in sent if "summary" in m.subject or "Tổng hợp" in m.subject}
    assert set(digests) == {PROVINCE, AN_PHUOC}
    english = digests[PROVINCE]
    assert english.subject == "[commune-watch] Daily summary 27/11/2026: 2 open, 1 resolved"
    text = english.text()
    assert "Bình Minh" in text and "cpu_saturated on pc-01" in text
    assert "1. An Phước / pc-01 (service counter): score 41.0; suggested action: replace " \
           "the HDD with an SSD" in text
    vietnamese = digests[AN_PHUOC]
    assert vietnamese.subject == "[commune-watch] Tổng hợp ngày 27/11/2026: 1 đang mở, " \
                                 "1 đã khắc phục"
    assert "đề xuất: thay ổ HDD bằng SSD" in vietnamese.text()
    rig.restart()
    later = rig.run(3600) + rig.run(6 * 3600)
    assert not [m for m in later if "summary" in m.subject or "Tổng hợp" in m.subject]
    saturday_8am = dt.datetime(2026, 11, 28, 8, 0, tzinfo=ZONE).timestamp()
    assert not [m for m in rig.run(saturday_8am - rig.clock()) if "summary" in m.subject]
    monday = dt.datetime(2026, 11, 30, 7, 50, tzinfo=ZONE).timestamp()
    sent = rig.run(monday - rig.clock())
    assert len([m for m in sent if "summary" in m.subject or "Tổng hợp" in m.subject]) == 2
