"""`cwatch alerts`: silences and the e-mail outbox of a running collector, over its JSON
API (like Alertmanager's amtool), and a test e-mail through the configured SMTP server.

    silence add / list / expire  ->  POST / GET / DELETE  /api/silences
    outbox                       ->  GET /api/alerts/outbox
    test-email                   ->  the collector's config file -> AlertService.send_test
                                     (no collector needs to run)

The collector's address: --url, else $CWATCH_API_URL, else http://127.0.0.1:9555. Only
the standard library speaks HTTP here (urllib), and it goes straight to the collector,
never through an http_proxy of the environment: the API is on the office network.

Times are read and shown in Vietnam time (Asia/Ho_Chi_Minh, UTC+07:00, no daylight
saving) unless a time given carries its own offset.

Exit status (the same for every command):
    0  done
    1  the collector could not be reached, or it could not do it: no such silence,
       alerts off, a server error; or a test e-mail was not sent
    2  a mistake in the command line, including a request the collector refused as
       invalid (HTTP 400: a bad site id, an end in the past, ...)
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cwatch.config import parse_duration

DEFAULT_URL = "http://127.0.0.1:9555"
URL_ENV = "CWATCH_API_URL"
TOKEN_ENV = "CWATCH_API_TOKEN"  # the collector's api_token (or api_read_token for reading)
TIMEZONE = "Asia/Ho_Chi_Minh"
TIMEOUT_S = 15.0
SILENCE_STATES = ("active", "pending", "expired", "all")
OUTBOX_STATES = ("pending", "sent", "failed")


class CliError(Exception):
    """One line for the user; `usage` means exit status 2 (their input), else 1."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


# --- times ------------------------------------------------------------------------------


def _zone() -> dt.tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(TIMEZONE)
    except Exception:  # no tz database (a bare Windows Python): Vietnam has no DST
        return dt.timezone(dt.timedelta(hours=7), "+07")


VN = _zone()


def parse_time(text: str, option: str) -> float:
    """"2026-12-01T17:00+07:00", "2026-12-01 17:00" (Vietnam time), "...Z" -> unix s."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{option} {text!r} must be a time like 2026-12-01T17:00+07:00 "
                       "(without an offset: Vietnam time)", usage=True) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=VN)
    return moment.timestamp()


def parse_span(text: str, option: str) -> float:
    """"90m", "2h", "1d", "3600" -> seconds above 0."""
    try:
        seconds = parse_duration(text, option)
    except ValueError as exc:
        raise CliError(str(exc), usage=True) from None
    if seconds <= 0:
        raise CliError(f"{option} {text!r} must be longer than 0", usage=True)
    return seconds


def local_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, VN).strftime("%Y-%m-%d %H:%M")


def span_text(seconds: float) -> str:
    """3660 -> "1h 1m"; 90000 -> "1d 1h"; rounded to the minute, two units at most."""
    minutes = max(0, round(seconds / 60))
    if minutes == 0:
        return f"{max(0, round(seconds))}s"
    parts = []
    for unit, size in (("d", 1440), ("h", 60), ("m", 1)):
        if minutes >= size:
            parts.append(f"{minutes // size}{unit}")
            minutes %= size
    return " ".join(parts[:2])


# --- the collector's API ----------------------------------------------------------------


def api_url(given: str | None) -> str:
    """--url, else $CWATCH_API_URL, else the default; checked and without a trailing /."""
    url = (given or os.environ.get(URL_ENV) or DEFAULT_URL).strip()
    origin = "--url" if given else (URL_ENV if os.environ.get(URL_ENV) else "URL")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.query or parts.fragment:
        raise CliError(f"{origin} {url!r} must look like http://HOST:PORT", usage=True)
    return url.rstrip("/")


class Api:
    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.url, self.timeout_s = url, timeout_s
        # From the environment only: a token on the command line shows in `ps`.
        self.token = os.environ.get(TOKEN_ENV, "").strip()
        # No ProxyHandler from the environment: the collector is on the local network.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer; CliError with the API's own error line otherwise."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Accept": "application/json"})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                raise CliError(self._error_line(exc.code, exc.reason, exc.read()),
                               usage=exc.code == 400) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise CliError(f"cannot reach the collector at {self.url}: "
                           f"{_network_reason(exc)}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(f"the answer of {self.url}{path} is not JSON: is this the "
                           "collector's address?") from None

    def _error_line(self, code: int, reason: str, raw: bytes) -> str:
        try:
            message = json.loads(raw)["error"]
        except (ValueError, KeyError, TypeError):
            return (f"{self.url} answered HTTP {code} {reason}, not the collector's API "
                    "(wrong address?)")
        return " ".join(str(message).split())


def _network_reason(exc: BaseException) -> str:
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer (timed out)"
    if isinstance(reason, OSError) and reason.strerror:  # "[Errno 111] Connection refused"
        return reason.strerror[:1].lower() + reason.strerror[1:]
    text = " ".join(str(reason).split())
    return text or type(reason).__name__


# --- output ------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns two spaces apart; the last one is not padded (it holds free text)."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def matchers(silence: dict[str, Any]) -> str:
    return ",".join(f"{name}={silence[name]}" for name in ("site", "device", "rule")
                    if silence.get(name))


def silence_summary(silence: dict[str, Any], what: str | None = None) -> str:
    """One line: "silence 7 (active): site=an-phuoc, from ... until ... Vietnam time ..."."""
    starts, ends = silence["starts_ts"], silence["ends_ts"]
    what = what or f"silence {silence['id']} ({silence['state']})"
    return (f"{what}: {matchers(silence)}, from {local_time(starts)} until "
            f"{local_time(ends)} Vietnam time ({span_text(ends - starts)}), by "
            f"{silence['created_by']}: {silence['reason']}")


# --- commands ----------------------------------------------------------------------------


def silence_add(url: str, *, site: str | None, device: str | None, rule: str | None,
                duration: str | None, until: str | None, start: str | None, reason: str,
                created_by: str | None, as_json: bool = False) -> int:
    if not any((site, device, rule)):
        raise CliError("give at least one of --site, --device, --rule (a silence that "
                       "matches everything would hide every alert)", usage=True)
    if (duration is None) == (until is None):
        raise CliError("give --duration or --until (one of them)", usage=True)
    if not reason.strip():
        raise CliError("--reason is empty: say why alerts are silenced", usage=True)
    body: dict[str, Any] = {name: value for name, value in
                            (("site", site), ("device", device), ("rule", rule)) if value}
    if start is not None:
        body["starts"] = parse_time(start, "--start")
    if duration is not None:
        body["duration"] = parse_span(duration, "--duration")
    else:
        body["ends"] = parse_time(until or "", "--until")
    body["reason"] = reason
    body["created_by"] = created_by or os.environ.get("USER") or os.environ.get(
        "USERNAME") or "cli"
    silence = Api(url).call("POST", "/api/silences", body)
    if as_json:
        _print_json(silence)
    else:
        print(silence["id"])
        print(silence_summary(silence))
    return 0


def silence_list(url: str, state: str = "active", as_json: bool = False) -> int:
    answer = Api(url).call("GET", "/api/silences?" + urllib.parse.urlencode({"state": state}))
    if as_json:
        _print_json(answer)
        return 0
    silences = answer.get("silences", [])
    if not silences:
        print("no silences" if state == "all" else f"no {state} silences")
        return 0
    headers = ["ID", "MATCHERS", "FROM (+07)", "UNTIL (+07)", "BY", "REASON"]
    rows = [[str(s["id"]), matchers(s), local_time(s["starts_ts"]), local_time(s["ends_ts"]),
             s["created_by"], s["reason"]] for s in silences]
    if state == "all":
        headers.insert(1, "STATE")
        for row, silence in zip(rows, silences):
            row.insert(1, silence["state"])
    print(_table(headers, rows))
    return 0


def silence_expire(url: str, silence_id: int) -> int:
    silence = Api(url).call("DELETE", f"/api/silences/{silence_id}")
    print(silence_summary(silence, f"silence {silence['id']} expired"))
    return 0


def outbox(url: str, state: str | None = None, limit: int | None = None,
           as_json: bool = False) -> int:
    query = {k: v for k, v in (("state", state), ("limit", limit)) if v is not None}
    path = "/api/alerts/outbox" + ("?" + urllib.parse.urlencode(query) if query else "")
    answer = Api(url).call("GET", path)
    if as_json:
        _print_json(answer)
        return 0
    counts = answer.get("outbox", {})
    print("outbox: " + ", ".join(f"{counts.get(name, 0)} {name}" for name in OUTBOX_STATES)
          + f"; {answer.get('failures_in_a_row', 0)} failed attempt(s) in a row; "
          f"{answer.get('silenced', 0)} finding(s) silenced, {answer.get('inhibited', 0)} "
          "inhibited")
    messages = answer.get("messages", [])
    if not messages:
        print(f"no {state} e-mails" if state else "no e-mails")
        return 0
    rows = []
    for item in messages:
        # When it will be tried next (pending) or when it went out (sent).
        when = {"pending": item.get("next_attempt_ts"), "sent": item.get("sent_ts")}.get(
            item["state"])
        rows.append([str(item["id"]), item["state"], local_time(item["created_ts"]),
                     local_time(when), str(item["attempts"]), item["recipient"], item["kind"],
                     item["subject"]])
    header, *lines = _table(["ID", "STATE", "CREATED (+07)", "NEXT/SENT (+07)", "TRIES", "TO",
                             "KIND", "SUBJECT"], rows).splitlines()
    print(header)
    for line, item in zip(lines, messages):
        print(line)
        if item.get("last_error") and item["state"] != "sent":
            print("    last error: " + " ".join(str(item["last_error"]).split()))
    return 0


def send_tests(config: Any, emails: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """(email, None) when sent, (email, error line) when not, through the SMTP server of
    `config` (a CollectorConfig) with the collector's own AlertService.send_test, on a
    throwaway state file: nothing of a running collector's is touched."""
    from prometheus_client import CollectorRegistry

    from alerts.service import AlertService
    from alerts.smtp import DeliveryError
    from collector.store.findings import FindingsStore
    from collector.store.state import StateStore

    with tempfile.TemporaryDirectory(prefix="cwatch-test-email-") as folder:
        state = StateStore(Path(folder) / "state.db")
        try:
            service = AlertService(config.alerts, state, FindingsStore(state),
                                   CollectorRegistry())
            for email in emails:
                try:
                    service.send_test(email)
                except DeliveryError as exc:
                    yield email, " ".join(str(exc).split())
                else:
                    yield email, None
        finally:
            state.close()


def run_test_email(config_path: Path, to: str | None = None) -> int:
    from collector import config as collector_config

    config = collector_config.load(config_path, {})  # ConfigError: one line, exit 2
    section = config.alerts
    if not section.recipients:
        raise CliError(f"{config_path}: no [[alerts.recipients]]: nobody to send a test "
                       "e-mail to", usage=True)
    recipients = list(section.recipients)
    if to is not None:
        recipients = [r for r in recipients if r.email.lower() == to.strip().lower()]
        if not recipients:
            known = ", ".join(r.email for r in section.recipients)
            raise CliError(f"--to {to!r} is not a recipient in {config_path} (recipients: "
                           f"{known})", usage=True)
    if not section.enabled:
        print(f"note: [alerts] enabled = false in {config_path}: the collector sends no "
              "alerts until it is true", file=sys.stderr)
    smtp = section.smtp
    print(f"sending a test e-mail through {smtp.host}:{smtp.port} ({smtp.security}) as "
          f"{smtp.sender}", flush=True)
    languages = {r.email: r.language for r in recipients}
    failed = 0
    for email, error in send_tests(config, [r.email for r in recipients]):
        if error is None:
            print(f"sent to {email} ({languages[email]})", flush=True)
        else:
            failed += 1
            print(f"not sent to {email}: {error}", file=sys.stderr, flush=True)
    return 1 if failed else 0
