"""The notifier's parts: working calendar, config errors, translation catalog, SMTP with
TLS and login against a real aiosmtpd server."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from smtp_helpers import SmtpServer, make_certificate

from alerts import render
from alerts.calendar import WorkCalendar
from alerts.config import Recipient, SmtpSection
from alerts.smtp import DeliveryError, Mailer
from collector import config as collector_config
from cwatch.config import ConfigError

ZONE = "Asia/Ho_Chi_Minh"


def at(*args: int) -> float:
    from zoneinfo import ZoneInfo
    return dt.datetime(*args, tzinfo=ZoneInfo(ZONE)).timestamp()


def test_vietnam_working_days_follow_the_public_holidays() -> None:
    calendar = WorkCalendar()
    assert calendar.is_working_day(dt.date(2026, 11, 26))  # a Thursday
    assert not calendar.is_working_day(dt.date(2026, 11, 28))  # Saturday
    for day in range(16, 21):  # Tết Bính Ngọ, 16-20 February 2026
        assert not calendar.is_working_day(dt.date(2026, 2, day)), day
    assert calendar.is_working_day(dt.date(2026, 2, 23))
    assert not calendar.is_working_day(dt.date(2026, 4, 27))  # Hùng Kings, observed
    assert calendar.is_working_day(dt.date(2026, 8, 22))  # a make-up Saturday
    assert calendar.holiday_name(dt.date(2026, 9, 2)) == "National Day"


def test_working_time_and_the_next_working_moment() -> None:
    calendar = WorkCalendar()
    assert calendar.is_working_time(at(2026, 11, 26, 7, 30))
    assert not calendar.is_working_time(at(2026, 11, 26, 7, 29))
    assert not calendar.is_working_time(at(2026, 11, 26, 17, 0))
    # Friday evening before Tết: next is Monday 23 February 07:30.
    assert calendar.next_working_time(at(2026, 2, 13, 18, 0)) == at(2026, 2, 23, 7, 30)
    assert calendar.next_working_time(at(2026, 11, 26, 6, 0)) == at(2026, 11, 26, 7, 30)
    noon = at(2026, 11, 26, 12, 0)
    assert calendar.next_working_time(noon) == noon


def test_operator_lists_change_the_calendar() -> None:
    calendar = WorkCalendar(extra_holidays=["2026-11-26"], extra_workdays=["2026-11-28"],
                            work_start="08:00", work_end="16:30")
    assert not calendar.is_working_day(dt.date(2026, 11, 26))
    assert calendar.is_working_time(at(2026, 11, 28, 8, 0))
    assert not calendar.is_working_time(at(2026, 11, 27, 16, 30))


@pytest.mark.parametrize("text, fragment", [
    ("[alerts]\nenabled = true\n", "no [[alerts.recipients]]"),
    ("[alerts]\nenabled = true\n[[alerts.recipients]]\nemail = \"not-an-address\"\n",
     "[alerts.recipients #1] recipient email 'not-an-address' is not an e-mail address"),
    ("[[alerts.recipients]]\nemail = \"a@b.vn\"\nlanguage = \"fr\"\n", "language must be vi"),
    ("[[alerts.recipients]]\nemail = \"a@b.vn\"\nseverities = [\"loud\"]\n",
     "unknown severity 'loud'"),
    ("[[alerts.recipients]]\nemail = \"a@b.vn\"\n[[alerts.recipients]]\nemail = \"A@b.vn\"\n",
     "listed twice"),
    ("[[alerts.recipients]]\nemail = \"a@b.vn\"\nphone = \"090\"\n", "unknown key 'phone'"),
    ("[alerts]\nrecipients = \"a@b.vn\"\n", "must be an array of tables"),
    ("[alerts]\ngroup_wait = \"soon\"\n", "group_wait 'soon' must be a duration"),
    ("[alerts]\ngroup_by = [\"commune\"]\n", "group_by label 'commune'"),
    ("[alerts]\nwork_start = \"7h30\"\n", "work_start '7h30' must be a time of day"),
    ("[alerts]\nholidays_country = \"XX\"\n", "not a country code"),
    ("[alerts]\ntimezone = \"Asia/Hanoi-ish\"\n", "not a known time zone"),
    ("[alerts]\nextra_holidays = [\"30/04/2026\"]\n", "must be a date like"),
    ("[alerts.smtp]\nsecurity = \"ssl\"\n", "smtp.security must be one of"),
    ("[alerts.smtp]\nusername = \"u\"\n", "go together"),
    ("[alerts.smtp]\nsender = \"Giám sát\"\n", "has no e-mail address"),
    ("[[alerts.inhibit]]\nsource = [\"site_unreachable\"]\nequal = [\"room\"]\n",
     "inhibit equal label 'room'"),
    ("[collector]\nrules = false\n[alerts]\nenabled = true\n[[alerts.recipients]]\n"
     "email = \"a@b.vn\"\n", "needs the rules"),
])
def test_alert_config_mistakes_are_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        collector_config.load(path, {})
    message = str(caught.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_a_full_alerts_section_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CWATCH_ALERTS_SMTP_PASSWORD", "secret")
    path = tmp_path / "collector.toml"
    path.write_text("""
[alerts]
enabled = true
group_by = ["site", "device"]
[alerts.smtp]
host = "mail.dongnai.gov.vn"
port = 465
security = "tls"
username = "cwatch"
[[alerts.recipients]]
email = "tinh@dongnai.gov.vn"
language = "en"
province = true
[[alerts.recipients]]
email = "anphuoc@dongnai.gov.vn"
name = "Nguyễn Văn An"
sites = ["an-phuoc"]
severities = ["critical"]
""", encoding="utf-8")
    config = collector_config.load(path, {}).alerts
    assert [r.email for r in config.recipients] == ["tinh@dongnai.gov.vn",
                                                   "anphuoc@dongnai.gov.vn"]
    province, commune = config.recipients
    assert province.wants(None, "info") and province.wants("x", "info")
    assert commune.wants("an-phuoc", "critical") and not commune.wants("an-phuoc", "warning")
    assert not commune.wants(None, "critical") and not commune.wants("binh-minh", "critical")
    assert config.group_by == ["site", "device"] and config.seconds("group_interval") == 300
    assert config.smtp.password == "secret"  # from the environment, not the file
    monkeypatch.delenv("CWATCH_ALERTS_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="go together"):
        collector_config.load(path, {})


def test_password_comes_from_the_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "collector.toml"
    path.write_text("[alerts.smtp]\nusername = \"cwatch\"\n", encoding="utf-8")
    monkeypatch.setenv("CWATCH_ALERTS_SMTP_PASSWORD", "s3cret")
    assert collector_config.load(path, {}).alerts.smtp.password == "s3cret"
    monkeypatch.setenv("CWATCH_ALERTS_SMTP_PASSWORD", "bí mật")
    with pytest.raises(ConfigError, match="ASCII"):  # what SMTP AUTH in smtplib can send
        collector_config.load(path, {})


def test_the_vietnamese_catalog_covers_every_message() -> None:
    """Every string in the templates and code is in messages.pot and translated in vi."""
    root = Path(render.__file__).parent
    method_map = [("**.py", "python"), ("templates/**", "jinja2")]
    options = {"templates/**": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                                "lstrip_blocks": "true"}}
    used = {message[2] if isinstance(message[2], str) else message[2][0]
            for message in extract_from_dir(str(root), method_map, options,
                                            keywords={"_": None, "gettext": None,
                                                      "ngettext": (1, 2), "N_": None})}
    with (root / "locale" / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog
                  if m.id and (m.string if isinstance(m.string, str) else all(m.string))}
    missing = sorted(used - translated)
    assert not missing, f"untranslated (run pybabel extract, then translate): {missing}"
    with (root / "locale" / "messages.pot").open("rb") as fh:
        template = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    assert used == template, "alerts/locale/messages.pot is out of date (see alerts/babel.cfg)"


def test_every_finding_has_advice_and_a_report_label() -> None:
    from collector.reports import labels
    from collector.rules import spec
    from collector.rules.engine import SILENT, SITE_DOWN
    findings = {rule.finding for rule in spec.load().rules} | {SILENT, SITE_DOWN}
    findings |= {"slow_link", "local_network", "dns_slow", "portal_slow"}  # the link tracker's
    assert findings <= set(render.ADVICE), findings - set(render.ADVICE)
    assert findings - {"portal_slow"} <= set(labels.FINDING_KINDS), (
        findings - set(labels.FINDING_KINDS))


def test_every_priority_action_is_translated() -> None:
    source = (Path(render.__file__).parents[1] / "collector" / "rules" / "priority.py").read_text()
    import re
    actions = set(re.findall(r'return "([a-z][^"]+)"', source))
    actions |= set(re.findall(r'return "([^"]+)" if', source))
    actions |= set(re.findall(r'else "([^"]+)"', source))
    assert actions and actions <= set(render.ACTIONS), actions - set(render.ACTIONS)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_login(tmp_path: Path, security: str) -> None:
    cert = make_certificate(tmp_path)
    server = SmtpServer(tls=security, cert=cert, login=("cwatch", "mat-khau")).start()
    try:
        settings = dict(host="127.0.0.1", port=server.port, security=security,
                        username="cwatch", ca_file=str(cert[0]), timeout_s=5)
        recipient = Recipient(email="a@b.vn")
        _, message = render.Renderer("cwatch@b.vn").test_message(recipient, time.time())
        Mailer(SmtpSection(password="mat-khau", **settings)).send("a@b.vn", message)  # type: ignore[arg-type]
        (received,) = server.messages()
        assert received.subject == "[commune-watch] Thư kiểm tra"
        with pytest.raises(DeliveryError) as wrong:
            Mailer(SmtpSection(password="sai", **settings)).send("a@b.vn", message)  # type: ignore[arg-type]
        assert wrong.value.retryable and "login as 'cwatch' refused: 535" in str(wrong.value)
        with pytest.raises(DeliveryError) as untrusted:  # the system CAs do not know it
            Mailer(SmtpSection(password="mat-khau", **{**settings, "ca_file": ""})).send(  # type: ignore[arg-type]
                "a@b.vn", message)
        assert untrusted.value.retryable and "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
    finally:
        server.stop()


def test_plain_smtp_refused_where_starttls_is_required(tmp_path: Path) -> None:
    server = SmtpServer(tls="starttls", cert=make_certificate(tmp_path)).start()
    try:
        _, message = render.Renderer("cwatch@b.vn").test_message(Recipient(email="a@b.vn"),
                                                                 time.time())
        with pytest.raises(DeliveryError) as caught:
            Mailer(SmtpSection(host="127.0.0.1", port=server.port, security="none",
                               timeout_s=5)).send("a@b.vn", message)
        assert "530" in str(caught.value) and server.messages() == []
    finally:
        server.stop()
