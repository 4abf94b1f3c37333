"""Fault 6: the mail server down while a finding should be e-mailed (and the collector
killed while the e-mail waits in its outbox), then back."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import samples
from collector_helpers import wait_until
from mqtt_helpers import Publisher
from smtp_helpers import SmtpServer

from cwatch import protocol
from cwatch.procs import Mosquitto

from .conftest import Loss
from .helpers import CollectorProcess, finish_all

ALERTS_TOML = """
[alerts]
enabled = true
group_wait = "1s"
group_interval = "1s"
repeat_interval = "4h"
office_hours = false
digest_time = ""
retry_min = "1s"
retry_max = "2s"
[alerts.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout_s = 5
[[alerts.recipients]]
email = "tinh@example.vn"
language = "en"
"""


def outbox(collector: CollectorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(collector.url + "/api/alerts/outbox", timeout=10) as answer:
        return dict(json.loads(answer.read()))


def retries(collector: CollectorProcess) -> float:
    return collector.metrics()[("cwatch_alert_delivery_attempts_total", (("result", "retry"),))]


def test_smtp_outage_delivers_the_alert_later_and_once(
        mosquitto: Mosquitto, smtp_server: SmtpServer, tmp_path: Path, loss_report) -> None:
    smtp_server.stop()  # the province's mail server is down
    collector = CollectorProcess(tmp_path / "collector", mosquitto.url, "faults-mail",
                                 extra_toml=ALERTS_TOML.format(port=smtp_server.port))
    try:
        collector.start()
        publisher = Publisher(mosquitto.host, mosquitto.port)
        try:
            env = samples.envelope("metrics", seq=1)
            env["data"]["smart"][0]["passed"] = False  # a failing disk: critical findings
            publisher.publish(samples.topic("metrics"), protocol.encode(env))
        finally:
            publisher.close()
        wait_until(lambda: any(m["attempts"] >= 2 for m in outbox(collector)["messages"]), 30,
                   "the e-mail is queued and retried", poll_s=0.2)
        first_retries = retries(collector)
        # The collector dies while the e-mail waits; the outbox is in its state file.
        collector.kill()
        collector.start()
        wait_until(lambda: retries(collector) >= 1, 20, "the restarted collector retries",
                   poll_s=0.2)
        waiting = outbox(collector)
        assert waiting["outbox"] == {"pending": 1}, waiting
        smtp_server.start()  # same port
        delivered_s = wait_until(lambda: smtp_server.messages(), 20,
                                 "the e-mail arrives once the server is back", poll_s=0.1)
        time.sleep(4.0)  # more ticks of both loops: nothing else goes out
        final = outbox(collector)
        second_retries = retries(collector)
    finally:
        finish_all(collector.stop, collector.kill)

    messages = smtp_server.messages()
    assert len(messages) == 1
    assert messages[0].to == ["tinh@example.vn"]
    assert messages[0].subject.endswith(": 2 problems, 2 critical"), messages[0].subject
    assert samples.DEVICE in messages[0].text()
    assert final["outbox"] == {"sent": 1} and final["failures_in_a_row"] == 0
    (item,) = final["messages"]
    loss_report(Loss(
        "SMTP down + collector kill", 1, len(messages), len(messages) - 1, 0,
        bound="none; a 5xx refusal is final (state failed, counted)", unit="e-mails",
        notes=f"{item['attempts']} attempts ({first_retries:.0f} retries before the "
              f"SIGKILL, {second_retries:.0f} after), delivered {delivered_s:.1f} s after "
              f"the server was back, {item['sent_ts'] - item['created_ts']:.1f} s after it "
              "was queued"))
