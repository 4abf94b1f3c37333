"""The notifier inside a running collector: a failing disk published through a real
mosquitto becomes one e-mail on a real SMTP server; silences over the JSON API; a
collector restart sends nothing twice."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import samples
from collector_helpers import start_collector, wait_until
from mqtt_helpers import Publisher
from smtp_helpers import SmtpServer
from test_collector_pipeline import api_url, get_json, scrape

from alerts.config import AlertsSection, Recipient, SmtpSection
from collector.service import Collector
from cwatch import protocol
from cwatch.procs import Mosquitto


def alerts_for(smtp: SmtpServer) -> AlertsSection:
    return AlertsSection(
        enabled=True, group_wait="1s", group_interval="1s", repeat_interval="4h",
        office_hours=False, digest_time="",
        recipients=[Recipient(email="tinh@example.vn", language="en")],
        smtp=SmtpSection(host="127.0.0.1", port=smtp.port, security="none", timeout_s=5))


def send(url: str, method: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def publish_failing_disk(mosquitto: Mosquitto, seq: int) -> None:
    publisher = Publisher(mosquitto.host, mosquitto.port)
    try:
        env = samples.envelope("metrics", seq=seq)
        env["data"]["smart"][0]["passed"] = False
        publisher.publish(samples.topic("metrics"), protocol.encode(env))
    finally:
        publisher.close()


def test_a_failing_disk_becomes_one_email_and_a_restart_resends_nothing(
        mosquitto: Mosquitto, smtp_server: SmtpServer, tmp_path: Path) -> None:
    collector = start_collector(mosquitto, tmp_path, "alerts-e2e", serve_http=True,
                                alerts=alerts_for(smtp_server))
    try:
        publish_failing_disk(mosquitto, 1)
        wait_until(lambda: smtp_server.messages(), 30, "no e-mail arrived")
        time.sleep(3)  # a few more ticks: still one
        (message,) = smtp_server.messages()
        assert message.to == ["tinh@example.vn"]
        # The sample disk failed SMART and has reallocated sectors: both in one e-mail.
        assert message.subject.endswith(": 2 problems, 2 critical"), message.subject
        assert samples.DEVICE in message.text()
        scraped = scrape(collector)
        assert scraped[("cwatch_alert_delivery_attempts_total", (("result", "sent"),))] == 1
        code, body = get_json(api_url(collector, "/api/alerts/outbox"))
        assert code == 200 and body["outbox"] == {"sent": 1}
    finally:
        collector.stop()
    collector = start_collector(mosquitto, tmp_path, "alerts-e2e", serve_http=True,
                                alerts=alerts_for(smtp_server))
    try:
        publish_failing_disk(mosquitto, 2)  # the same faults, still open
        time.sleep(4)
        assert len(smtp_server.messages()) == 1
    finally:
        collector.stop()


def test_silences_api(mosquitto: Mosquitto, smtp_server: SmtpServer, tmp_path: Path) -> None:
    collector = start_collector(mosquitto, tmp_path, "silences-api", serve_http=True,
                                alerts=alerts_for(smtp_server))
    url = api_url(collector, "/api/silences")
    try:
        code, created = send(url, "POST", {"site": samples.SITE, "duration": "2h",
                                           "reason": "thay ổ cứng", "created_by": "Lan"})
        assert code == 201 and created["state"] == "active" and created["reason"] == "thay ổ cứng"
        assert 7199 <= created["ends_ts"] - created["starts_ts"] <= 7200
        publish_failing_disk(mosquitto, 1)
        wait_until(lambda: collector.findings.query(), 20, "no finding")
        time.sleep(3)
        assert smtp_server.messages() == []  # silenced
        code, listed = get_json(url + "?state=active")
        assert code == 200 and [s["id"] for s in listed["silences"]] == [created["id"]]
        for body, fragment in (
                ({"duration": "2h", "reason": "x", "created_by": "y"}, "at least one of"),
                ({"site": "An Phuoc", "duration": "2h", "reason": "x", "created_by": "y"},
                 "site must be an id"),
                ({"site": "a", "duration": "soon", "reason": "x", "created_by": "y"},
                 "duration 'soon' must be a duration"),
                ({"site": "a", "ends": "2020-01-01T00:00+07:00", "reason": "x",
                  "created_by": "y"}, "ends is in the past"),
                ({"site": "a", "ends": "2030-01-01T00:00", "reason": "x", "created_by": "y"},
                 "needs a UTC offset"),
                ({"site": "a", "duration": "2h", "created_by": "y"}, "reason is required"),
                ({"site": "a", "duration": "2h", "reason": "x", "created_by": "y",
                  "matchers": []}, "unknown field 'matchers'"),
                ([1, 2], "JSON object")):
            code, answer = send(url, "POST", body)
            assert code == 400 and fragment in answer["error"], (body, answer)
            assert "\n" not in answer["error"]
        code, answer = send(url, "POST", None)
        assert code == 400 and "must be JSON" in answer["error"]
        code, answer = send(f"{url}/999", "DELETE")
        assert code == 404 and answer["error"] == "no silence 999"
        code, expired = send(f"{url}/{created['id']}", "DELETE")
        assert code == 200 and expired["state"] == "expired"
        wait_until(lambda: smtp_server.messages(), 20, "no e-mail after the silence ended")
        code, answer = get_json(url + "?state=maybe")
        assert code == 400 and "state must be one of" in answer["error"]
    finally:
        collector.stop()


def test_alert_routes_say_when_alerts_are_off(mosquitto: Mosquitto, tmp_path: Path) -> None:
    collector: Collector = start_collector(mosquitto, tmp_path, "no-alerts", serve_http=True)
    try:
        for path in ("/api/silences", "/api/alerts/outbox"):
            code, body = get_json(api_url(collector, path))
            assert code == 404 and "alerts are off" in body["error"]
    finally:
        collector.stop()
