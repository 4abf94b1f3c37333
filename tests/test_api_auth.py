"""Who may read and change what over the collector's HTTP API: tokens, the local-only
default for changes, and the alerts CLI passing its token along."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import psutil
import pytest
from collector_helpers import start_collector

from alerts.config import AlertsSection, Recipient, SmtpSection
from collector.config import CollectorSection
from collector.service import Collector
from cwatch.procs import Mosquitto

WRITE, READ = "w-" + "x" * 30, "r-" + "y" * 30
# Alerts on (silences live there), to a mail server nobody listens on: never sent here.
ALERTS = AlertsSection(enabled=True, recipients=[Recipient(email="it@tinh.example")],
                       smtp=SmtpSection(host="127.0.0.1", port=9, security="none"),
                       digest_time="")
SILENCE = {"site": "an-phuoc", "duration": "1h", "reason": "thay router", "created_by": "test"}
CWATCH = Path(sys.executable).parent / "cwatch"


def call(port: int, method: str, path: str, token: str | None = None, body: dict | None = None,
         host: str = "127.0.0.1") -> tuple[int, dict | str, Message]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            raw, code, headers = response.read(), response.status, response.headers
    except urllib.error.HTTPError as exc:
        with exc:
            raw, code, headers = exc.read(), exc.code, exc.headers
    try:
        return code, json.loads(raw), headers
    except ValueError:
        return code, raw.decode(errors="replace"), headers


@pytest.fixture
def guarded(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Collector]:
    collector = start_collector(mosquitto, tmp_path, "auth-collector", serve_http=True,
                                alerts=ALERTS, api_token=WRITE,
                                api_read_token=READ)
    yield collector
    collector.stop()


def test_reading_needs_the_read_or_write_token(guarded: Collector) -> None:
    port = guarded.api.port
    for path in ("/api/devices", "/api/findings", "/api/silences", "/metrics"):
        code, body, headers = call(port, "GET", path)
        assert code == 401 and "api_read_token" in body["error"], (path, body)
        assert headers.get("WWW-Authenticate", "").startswith("Bearer")  # any case
        assert call(port, "GET", path, "not-the-token")[:2] == (401, {"error": "wrong token"})
        assert call(port, "GET", path, READ)[0] == 200, path
        assert call(port, "GET", path, WRITE)[0] == 200, path
    # Health checks and the agents' download test stay open.
    assert call(port, "GET", "/healthz")[0] == 200
    assert call(port, "GET", "/probe/blob?bytes=10")[0] == 200


def test_changes_need_the_write_token(guarded: Collector) -> None:
    port = guarded.api.port
    code, body, _ = call(port, "POST", "/api/silences", body=SILENCE)
    assert code == 401 and "api_token" in body["error"]
    assert call(port, "POST", "/api/silences", READ, SILENCE)[:2] == \
        (401, {"error": "wrong token"})  # the read token cannot change anything
    code, created, _ = call(port, "POST", "/api/silences", WRITE, SILENCE)
    assert code == 201
    assert call(port, "DELETE", f"/api/silences/{created['id']}", READ)[0] == 401
    assert call(port, "DELETE", f"/api/silences/{created['id']}", WRITE)[0] == 200
    counted = guarded.metrics.registry.get_sample_value(
        "cwatch_http_requests_total", {"path": "/api/silences", "code": "401"})
    assert counted == 2


def test_the_alerts_cli_sends_its_token_from_the_environment(guarded: Collector) -> None:
    url = f"http://127.0.0.1:{guarded.api.port}"
    args = [str(CWATCH), "alerts", "silence", "add", "--url", url, "--site", "an-phuoc",
            "--duration", "1h", "--reason", "test"]
    env = {k: v for k, v in os.environ.items() if k != "CWATCH_API_TOKEN"}
    refused = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("cwatch alerts: error: changes need a token: "
                                      "Authorization: Bearer <[collector] api_token>")
    allowed = subprocess.run(args, capture_output=True, text=True, timeout=60,
                             env={**env, "CWATCH_API_TOKEN": WRITE})
    assert allowed.returncode == 0, allowed.stderr


def _other_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_without_a_token_changes_come_from_this_host_only(mosquitto: Mosquitto,
                                                         tmp_path: Path) -> None:
    other = _other_address()
    assert other is not None, "this test needs a non-loopback IPv4 address"
    collector = start_collector(mosquitto, tmp_path, "open-collector", serve_http=True,
                                alerts=ALERTS, listen="0.0.0.0:0")
    try:
        port = collector.api.port
        assert call(port, "GET", "/api/devices", host=other)[0] == 200  # reading is open
        code, body, _ = call(port, "POST", "/api/silences", body=SILENCE, host=other)
        assert code == 403 and "set [collector] api_token" in body["error"]
        assert call(port, "POST", "/api/silences", body=SILENCE)[0] == 201  # from 127.0.0.1
    finally:
        collector.stop()


@pytest.mark.parametrize("token", ["short", "has a space in it, long enough"])
def test_weak_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="api_token must be at least 16 characters"):
        CollectorSection(api_token=token)
