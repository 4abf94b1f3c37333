"""`cwatch alerts` as a user runs it: a subprocess talking to a real collector (alerts on,
a real mosquitto, a real aiosmtpd server), and test e-mails through a real SMTP server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import start_collector, wait_until
from smtp_helpers import SmtpServer

from alerts.config import AlertsSection, Recipient, SmtpSection
from collector.config import CollectorConfig, CollectorSection, TsdbSection
from collector.service import Collector
from cwatch.mqtt import BrokerConfig
from cwatch.procs import Mosquitto, free_port

CWATCH = Path(sys.executable).parent / "cwatch"
LAN = "lan@an-phuoc.example"  # a commune's contact: Vietnamese, the default language
MINH = "minh@province.example"  # the provincial team: English
SUBJECT_VI = "[commune-watch] Thư kiểm tra"
SUBJECT_EN = "[commune-watch] Test message"


def start_alerting_collector(broker: Mosquitto, state_dir: Path, client_id: str,
                             smtp_port: int) -> Collector:
    """tests/collector_helpers.start_collector with [alerts] on, sending to `smtp_port`."""
    config = CollectorConfig(
        collector=CollectorSection(client_id=client_id, listen="127.0.0.1:0",
                                   state_path=str(state_dir / f"{client_id}.db")),
        broker=BrokerConfig(url=broker.url),
        tsdb=TsdbSection(enabled=False, url="http://127.0.0.1:1"),
        # No daily digest: it would land in the outbox at any time after 07:45.
        alerts=AlertsSection(enabled=True, recipients=[Recipient(email=LAN)],
                             smtp=SmtpSection(host="127.0.0.1", port=smtp_port,
                                              security="none"), digest_time=""))
    collector = Collector(config)
    collector.start(serve_http=True)
    assert collector.wait_connected(10), "collector did not connect"
    return collector


@pytest.fixture
def collector(mosquitto: Mosquitto, smtp_server: SmtpServer,
              tmp_path: Path) -> Iterator[Collector]:
    started = start_alerting_collector(mosquitto, tmp_path, "cli-alerts", smtp_server.port)
    yield started
    started.stop()


def url_of(collector: Collector) -> str:
    assert collector.api is not None
    return f"http://127.0.0.1:{collector.api.port}"


def cwatch(*args: str, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CWATCH_")}
    clean["USER"] = "tester"
    return subprocess.run([str(CWATCH), *args], capture_output=True, text=True,
                          timeout=timeout, env={**clean, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess, status: int, text: str) -> str:
    """The command failed with `status` and said so in one line containing `text`."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert text in lines[0], lines[0]
    assert lines[0].startswith("cwatch alerts: error: "), lines[0]
    return lines[0]


def vn(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=7))).strftime(
        "%Y-%m-%d %H:%M")


# --- silences ----------------------------------------------------------------------------


def test_silence_add_list_expire(collector: Collector) -> None:
    url = url_of(collector)
    before = time.time()
    added = cwatch("alerts", "silence", "add", "--url", url, "--site", "an-phuoc",
                   "--device", "pc-01", "--duration", "2h", "--reason", "thay ổ cứng")
    assert added.returncode == 0, added.stderr
    first, summary = added.stdout.splitlines()
    silence_id = int(first)
    assert summary.startswith(f"silence {silence_id} (active): site=an-phuoc,device=pc-01")
    assert "Vietnam time (2h), by tester: thay ổ cứng" in summary
    assert vn(before + 7200)[:13] in summary or vn(time.time() + 7200)[:13] in summary

    # A second one, later, ending at a given local time, by a named person; from the env URL.
    start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    until = start + dt.timedelta(hours=3)
    local = dt.timezone(dt.timedelta(hours=7))
    pending = cwatch("alerts", "silence", "add", "--rule", "disk_full",
                     "--start", start.isoformat(timespec="minutes"),
                     "--until", until.astimezone(local).strftime("%Y-%m-%d %H:%M"),
                     "--reason", "planned move", "--by", "Nguyễn Văn Minh", "--json",
                     env={"CWATCH_API_URL": url})
    assert pending.returncode == 0, pending.stderr
    second = json.loads(pending.stdout)
    assert second["state"] == "pending" and second["rule"] == "disk_full"
    assert second["created_by"] == "Nguyễn Văn Minh"
    assert second["ends_ts"] == until.replace(second=0, microsecond=0).timestamp()

    listed = cwatch("alerts", "silence", "list", "--url", url)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "MATCHERS", "FROM", "(+07)", "UNTIL", "(+07)", "BY",
                              "REASON"]
    assert len(rows) == 1, listed.stdout  # active only: the pending one is not there
    assert rows[0].split()[:2] == [str(silence_id), "site=an-phuoc,device=pc-01"]
    assert rows[0].endswith("tester  thay ổ cứng")

    every = cwatch("alerts", "silence", "list", "--url", url, "--state", "all")
    assert [line.split()[:2] for line in every.stdout.splitlines()[1:]] == [
        [str(silence_id), "active"], [str(second["id"]), "pending"]]

    as_json = cwatch("alerts", "silence", "list", "--url", url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["count"] == 1
    (shown,) = answer["silences"]
    assert (shown["id"], shown["site"], shown["device"], shown["rule"], shown["reason"],
            shown["created_by"], shown["state"]) == (
        silence_id, "an-phuoc", "pc-01", None, "thay ổ cứng", "tester", "active")
    assert abs(shown["ends_ts"] - shown["starts_ts"] - 7200) < 1e-6

    expired = cwatch("alerts", "silence", "expire", "--url", url, str(silence_id))
    assert expired.returncode == 0, expired.stderr
    assert expired.stdout.startswith(f"silence {silence_id} expired: site=an-phuoc,device=pc-01, "
                                     "from ")

    assert cwatch("alerts", "silence", "list", "--url", url).stdout.strip() == \
        "no active silences"
    gone = cwatch("alerts", "silence", "list", "--url", url, "--state", "expired")
    assert gone.returncode == 0, gone.stderr
    (row,) = gone.stdout.splitlines()[1:]
    assert row.split()[:2] == [str(silence_id), "site=an-phuoc,device=pc-01"]
    gone_json = json.loads(cwatch("alerts", "silence", "list", "--url", url, "--state",
                                  "expired", "--json").stdout)
    assert [s["id"] for s in gone_json["silences"]] == [silence_id]
    assert gone_json["silences"][0]["ends_ts"] <= time.time()


@pytest.mark.parametrize(("args", "text"), [
    (("--duration", "2h"), "give at least one of --site, --device, --rule"),
    (("--site", "an-phuoc", "--duration", "two hours"),
     "--duration 'two hours' must be a duration like"),
    (("--site", "an-phuoc", "--duration", "0"), "--duration '0' must be longer than 0"),
    (("--site", "an-phuoc", "--until", "next monday"),
     "--until 'next monday' must be a time like 2026-12-01T17:00+07:00"),
    (("--site", "an-phuoc", "--duration", "1h", "--reason", " "), "--reason is empty"),
])
def test_silence_add_argument_mistakes(args: tuple[str, ...], text: str) -> None:
    # Checked before any request: no collector is needed to be told.
    if "--reason" not in args:
        args = (*args, "--reason", "x")
    result = cwatch("alerts", "silence", "add", "--url", "http://127.0.0.1:1", *args)
    one_line_error(result, 2, text)


@pytest.mark.parametrize(("args", "text"), [
    (("silence", "add", "--site", "a", "--duration", "1h", "--until", "2030-01-01",
      "--reason", "x"), "argument --until: not allowed with argument --duration"),
    (("silence", "add", "--site", "a", "--reason", "x"),
     "one of the arguments --duration --until is required"),
    (("silence", "add", "--site", "a", "--duration", "1h"),
     "the following arguments are required: --reason"),
    (("silence", "expire", "seven"), "argument ID: 'seven' is not a whole number"),
    (("silence", "list", "--state", "old"), "argument --state: invalid choice: 'old'"),
    (("outbox", "--limit", "0"), "argument --limit: '0' must be at least 1"),
    (("silence",), "the following arguments are required: ACTION"),
])
def test_argparse_mistakes(args: tuple[str, ...], text: str) -> None:
    result = cwatch("alerts", *args)
    assert result.returncode == 2
    assert text in result.stderr
    assert "Traceback" not in result.stderr


def test_api_errors_are_one_line(collector: Collector) -> None:
    url = url_of(collector)
    # Unknown id: the API's 404 line, exit 1.
    one_line_error(cwatch("alerts", "silence", "expire", "--url", url, "9999"), 1,
                   "no silence 9999")
    # Refused as invalid by the collector (HTTP 400): the API's line, exit 2.
    one_line_error(cwatch("alerts", "silence", "add", "--url", url, "--site", "an-phuoc",
                          "--until", "2020-01-01T08:00+07:00", "--reason", "x"), 2,
                   "ends is in the past")
    one_line_error(cwatch("alerts", "silence", "add", "--url", url, "--site", "An Phước",
                          "--duration", "1h", "--reason", "x"), 2,
                   "site must be an id like \"an-phuoc\"")
    one_line_error(cwatch("alerts", "outbox", "--url", url, "--limit", "5000"), 2,
                   "limit must be an integer from 1 to 1000")
    # Nothing was added by the refused requests.
    assert json.loads(cwatch("alerts", "silence", "list", "--url", url, "--state", "all",
                             "--json").stdout)["count"] == 0


def test_collector_not_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("silence", "list"), ("silence", "expire", "3"), ("outbox",),
                 ("silence", "add", "--site", "an-phuoc", "--duration", "1h", "--reason",
                  "x")):
        one_line_error(cwatch("alerts", *args, "--url", url), 1,
                       f"cannot reach the collector at {url}: connection refused")
    # The environment variable is the default address.
    one_line_error(cwatch("alerts", "outbox", env={"CWATCH_API_URL": url}), 1,
                   f"cannot reach the collector at {url}")
    one_line_error(cwatch("alerts", "outbox", "--url", "127.0.0.1:9555"), 2,
                   "--url '127.0.0.1:9555' must look like http://HOST:PORT")


def test_alerts_off(mosquitto: Mosquitto, tmp_path: Path) -> None:
    plain = start_collector(mosquitto, tmp_path, "cli-no-alerts", serve_http=True)
    try:
        assert plain.api is not None
        url = f"http://127.0.0.1:{plain.api.port}"
        for args in (("silence", "list"), ("outbox",)):
            one_line_error(cwatch("alerts", *args, "--url", url), 1,
                           "alerts are off in this collector ([alerts] enabled = false)")
    finally:
        plain.stop()


# --- outbox ------------------------------------------------------------------------------


def test_outbox(collector: Collector, smtp_server: SmtpServer) -> None:
    url = url_of(collector)
    empty = cwatch("alerts", "outbox", "--url", url)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.splitlines() == [
        "outbox: 0 pending, 0 sent, 0 failed; 0 failed attempt(s) in a row; "
        "0 finding(s) silenced, 0 inhibited", "no e-mails"]

    # Two e-mails through the outbox (queued as digests, the store's public way in): one
    # the server takes, one it refuses for good.
    service = collector.alerts
    assert service is not None
    nobody = "nobody@an-phuoc.example"
    smtp_server.refuse.add(nobody)
    for email in (LAN, nobody):
        subject, message = service.renderer.test_message(Recipient(email=email), time.time())
        service.store.record_digest(email, "2026-01-01", (subject, message))
    wait_until(lambda: service.store.outbox_counts() == {"sent": 1, "failed": 1},
               what="both e-mails handled")

    answer = json.loads(cwatch("alerts", "outbox", "--url", url, "--json").stdout)
    assert answer["outbox"] == {"sent": 1, "failed": 1}
    assert answer["failures_in_a_row"] == 1
    by_to = {m["recipient"]: m for m in answer["messages"]}
    assert by_to[LAN]["state"] == "sent" and by_to[LAN]["last_error"] is None
    assert by_to[nobody]["state"] == "failed"
    assert by_to[nobody]["last_error"] == f"{nobody} refused: 550 5.1.1 no such mailbox"
    assert {m["subject"] for m in answer["messages"]} == {SUBJECT_VI}

    text = cwatch("alerts", "outbox", "--url", url)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("outbox: 0 pending, 1 sent, 1 failed; 1 failed attempt(s)")
    assert lines[1].split() == ["ID", "STATE", "CREATED", "(+07)", "NEXT/SENT", "(+07)",
                                "TRIES", "TO", "KIND", "SUBJECT"]
    failed_row, error_row, sent_row = lines[2:]  # newest first
    assert failed_row.split()[1] == "failed" and nobody in failed_row
    assert failed_row.endswith(SUBJECT_VI)
    assert error_row == f"    last error: {nobody} refused: 550 5.1.1 no such mailbox"
    assert sent_row.split()[1] == "sent" and LAN in sent_row

    only = json.loads(cwatch("alerts", "outbox", "--url", url, "--state", "failed", "--limit",
                             "1", "--json").stdout)
    assert [m["recipient"] for m in only["messages"]] == [nobody]


# --- test e-mail -------------------------------------------------------------------------


def write_config(path: Path, smtp_port: int, *, enabled: bool = True) -> Path:
    path.write_text(f"""
[alerts]
enabled = {str(enabled).lower()}

[alerts.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "commune-watch <cwatch@province.example>"

[[alerts.recipients]]
email = "{LAN}"
name = "Chị Lan"
sites = ["an-phuoc"]

[[alerts.recipients]]
email = "{MINH}"
language = "en"
province = true
""", encoding="utf-8")
    return path


def test_test_email_to_every_recipient(smtp_server: SmtpServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "collector.toml", smtp_server.port)
    result = cwatch("alerts", "test-email", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"sending a test e-mail through 127.0.0.1:{smtp_server.port} (none) as "
        "commune-watch <cwatch@province.example>",
        f"sent to {LAN} (vi)", f"sent to {MINH} (en)"]
    got = {tuple(m.to): m for m in smtp_server.messages()}
    assert set(got) == {(LAN,), (MINH,)}
    assert got[(LAN,)].subject == SUBJECT_VI
    assert got[(MINH,)].subject == SUBJECT_EN
    assert "commune-watch" in got[(MINH,)].text()


def test_test_email_to_one(smtp_server: SmtpServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "collector.toml", smtp_server.port, enabled=False)
    result = cwatch("alerts", "test-email", "--config", str(config), "--to", MINH.upper())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [f"sent to {MINH} (en)"]
    assert "note: [alerts] enabled = false" in result.stderr  # a warning, not an error
    assert [(m.to, m.subject) for m in smtp_server.messages()] == [([MINH], SUBJECT_EN)]

    one_line_error(cwatch("alerts", "test-email", "--config", str(config), "--to",
                          "someone@else.example"), 2,
                   f"--to 'someone@else.example' is not a recipient in {config} "
                   f"(recipients: {LAN}, {MINH})")
    assert len(smtp_server.messages()) == 1


def test_test_email_failures(smtp_server: SmtpServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "collector.toml", smtp_server.port)
    smtp_server.refuse.add(LAN)
    result = cwatch("alerts", "test-email", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.strip() == f"not sent to {LAN}: {LAN} refused: 550 5.1.1 no such " \
                                    "mailbox"
    assert result.stdout.splitlines()[1:] == [f"sent to {MINH} (en)"]
    assert [m.to for m in smtp_server.messages()] == [[MINH]]

    down = write_config(tmp_path / "down.toml", free_port())
    result = cwatch("alerts", "test-email", "--config", str(down), "--to", LAN)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"not sent to {LAN}: cannot reach 127.0.0.1:")

    bad = tmp_path / "bad.toml"
    bad.write_text("[alerts]\nenabled = true\n", encoding="utf-8")
    one_line_error(cwatch("alerts", "test-email", "--config", str(bad)), 2,
                   "alerts are enabled but no [[alerts.recipients]] is given")
    one_line_error(cwatch("alerts", "test-email", "--config", str(tmp_path / "none.toml")),
                   2, "none.toml: file not found")
