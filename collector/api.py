"""The collector's HTTP side: Prometheus scrape, health, device API, throughput blob.

    waitress (one I/O thread + a small worker pool, in a background thread of ours)
        -> Flask app: /metrics, /healthz, /api/devices[/<site>/<device>], /api/sites,
                      /api/findings, /api/priorities, /api/silences[/<id>],
                      /api/alerts/outbox, /probe/blob?bytes=N
        -> every response counted in cwatch_http_requests_total{path=<route>, code}

Flask + waitress: both pure Python and long maintained (Pallets, Pylons), no async
runtime to host inside a threaded program, and waitress's start/stop can be driven
from our own thread. Waitress also buffers a response and writes it from its I/O
loop, so an agent on a slow ADSL line downloading the blob does not hold a worker.

Every error is JSON ({"error": "<one line>"}) with a 4xx/5xx status, never an HTML
page or a traceback: the API's clients are scripts and dashboards.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from alerts.service import AlertService
from alerts.silences import parse_request as parse_silence
from alerts.store import OUTBOX_STATES, SILENCE_STATES
from collector.rules.spec import SEVERITIES
from collector.store.findings import STATES as FINDING_STATES
from collector.store.findings import FindingsStore
from collector.store.state import STATUSES, StateStore
from cwatch.admin.enrollment import Enroller, EnrollError

log = logging.getLogger(__name__)

MAX_PAGE = 1000
DEFAULT_PAGE = 100
# The blob repeats one block of random bytes: nothing on the path can compress it
# (deflate's window is 32 KiB), and it costs 1 MiB of memory instead of N.
BLOB_BLOCK_BYTES = 1 << 20
BLOB_CHUNK_BYTES = 1 << 16
_UNSIGNED = re.compile(r"[0-9]{1,15}")
UNMATCHED = "<unmatched>"  # the path label of requests that match no route


class ApiError(Exception):
    """A bad request, answered as {"error": message} with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _error(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


def _only_params(*allowed: str) -> None:
    """Refuse unknown query parameters: a typo (?stats=online) must not pass silently."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown query parameter {unknown[0]!r} "
                            f"(allowed: {', '.join(allowed)})")


def _choice_param(name: str, choices: tuple[str, ...], default: str | None = None,
                  ) -> str | None:
    value = request.args.get(name) or default
    if value is not None and value not in choices:
        raise ApiError(400, f"{name} must be one of {', '.join(choices)}, not {value[:40]!r}")
    return value


def _int_param(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not _UNSIGNED.fullmatch(raw) or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}, not {raw[:40]!r}")
    return int(raw)


def _blob_chunks() -> list[bytes]:
    block = os.urandom(BLOB_BLOCK_BYTES)
    return [block[i:i + BLOB_CHUNK_BYTES] for i in range(0, BLOB_BLOCK_BYTES, BLOB_CHUNK_BYTES)]


def _stream(chunks: list[bytes], nbytes: int) -> Iterator[bytes]:
    index = 0
    while nbytes > 0:
        chunk = chunks[index % len(chunks)]
        if len(chunk) > nbytes:
            chunk = chunk[:nbytes]
        yield chunk
        nbytes -= len(chunk)
        index += 1


# Health checks, the agents' download test, and enrollment (its token is its proof).
OPEN_PATHS = ("/healthz", "/probe/blob", "/api/enroll")
LOCAL_ADDRESSES = ("127.0.0.1", "::1")


class _TokenGuard:
    """Who may do what over HTTP: changes need the write token (or, without one, a
    request from this host); reading needs the read token when one is set."""

    def __init__(self, write_token: str, read_token: str) -> None:
        self.write_token, self.read_token = write_token, read_token

    def _presented(self) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def _matches(self, token: str | None, *expected: str) -> bool:
        return token is not None and any(
            e and hmac.compare_digest(token.encode(), e.encode()) for e in expected)

    def check(self) -> Response | None:
        if request.path in OPEN_PATHS:
            return None
        token = self._presented()
        if request.method in ("GET", "HEAD", "OPTIONS"):
            if not self.read_token or self._matches(token, self.read_token, self.write_token):
                return None
            return _unauthorised("reading needs a token: Authorization: Bearer "
                                 "<[collector] api_read_token>", token)
        if self.write_token:
            if self._matches(token, self.write_token):
                return None
            return _unauthorised("changes need a token: Authorization: Bearer "
                                 "<[collector] api_token>", token)
        if request.remote_addr in LOCAL_ADDRESSES:
            return None
        return _error(403, "changes are allowed from the collector's own host only; set "
                           "[collector] api_token to allow them from elsewhere")


def _unauthorised(message: str, token: str | None) -> Response:
    response = _error(401, message if token is None else "wrong token")
    response.headers["WWW-Authenticate"] = 'Bearer realm="commune-watch"'
    return response


def create_app(state: StateStore, registry: CollectorRegistry, requests: Counter,
               health: Callable[[], dict[str, Any]] | None = None,
               blob_max_bytes: int = 10_000_000,
               findings: FindingsStore | None = None,
               priorities: Callable[[str | None, int], dict[str, Any]] | None = None,
               alerts: AlertService | None = None, write_token: str = "",
               read_token: str = "", enroller: Enroller | None = None,
               enroll_broker_url: str = "", enroll_ca_pem: str = "") -> Flask:
    """The WSGI app; `requests` counts responses by route template and status code."""
    app = Flask("collector.api")
    # No redirects to a canonical URL: a client gets its answer or a JSON error.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    blob = _blob_chunks()
    guard = _TokenGuard(write_token, read_token)
    app.before_request(guard.check)

    @app.get("/metrics")
    def metrics() -> Response:
        _only_params()
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        _only_params()
        try:
            details = dict(health()) if health is not None else {}
        except Exception as exc:  # a broken check is itself a health problem, not a 500
            log.exception("health check failed")
            return jsonify(status="error", error=f"health check failed: {exc}"[:200]), 503
        ok = bool(details.get("ok", True))
        return jsonify(status="ok" if ok else "unavailable", **details), 200 if ok else 503

    @app.get("/api/devices")
    def devices() -> Response:
        _only_params("site", "status", "limit", "offset")
        site = request.args.get("site") or None
        status = _choice_param("status", STATUSES)
        limit = _int_param("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        offset = _int_param("offset", 0, 0, 10**12)
        rows = state.devices(site=site, status=status, limit=limit, offset=offset)
        return jsonify(devices=rows, count=len(rows), limit=limit, offset=offset)

    @app.get("/api/devices/<site>/<device>")
    def device(site: str, device: str) -> Response:
        _only_params()
        found = state.device(site, device)
        if found is None:
            raise ApiError(404, f"unknown device {site[:64]}/{device[:64]}")
        return jsonify(found)

    @app.get("/api/sites")
    def sites() -> Response:
        _only_params()
        return jsonify(sites=state.sites())

    @app.get("/api/findings")
    def findings_list() -> Response:
        _only_params("state", "site", "device", "finding", "severity", "limit", "offset")
        if findings is None:
            raise ApiError(404, "rules are off in this collector ([collector] rules = false)")
        state_arg = _choice_param("state", FINDING_STATES, "active") or "active"
        severity = _choice_param("severity", SEVERITIES)
        limit = _int_param("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        offset = _int_param("offset", 0, 0, 10**12)
        rows = findings.query(state=state_arg, site=request.args.get("site") or None,
                              device=request.args.get("device") or None,
                              finding=request.args.get("finding") or None, severity=severity,
                              limit=limit, offset=offset)
        return jsonify(findings=rows, count=len(rows), limit=limit, offset=offset)

    @app.get("/api/priorities")
    def priorities_list() -> Response:
        _only_params("site", "limit")
        if priorities is None:
            raise ApiError(404, "rules are off in this collector ([collector] rules = false)")
        limit = _int_param("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        return jsonify(priorities(request.args.get("site") or None, limit))

    def _alerts() -> AlertService:
        if alerts is None:
            raise ApiError(404, "alerts are off in this collector ([alerts] enabled = false)")
        return alerts

    @app.get("/api/silences")
    def silences_list() -> Response:
        _only_params("state")
        state_arg = _choice_param("state", SILENCE_STATES, "all") or "all"
        now = time.time()
        rows = [s.as_json(now) for s in _alerts().store.silences(state_arg, now)]
        return jsonify(silences=rows, count=len(rows))

    @app.post("/api/silences")
    def silences_add() -> tuple[Response, int]:
        _only_params()
        service = _alerts()
        body = request.get_json(silent=True)
        if body is None:
            raise ApiError(400, "the body must be JSON (Content-Type: application/json)")
        now = time.time()
        try:
            wanted = parse_silence(body, now)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        silence = service.store.add_silence(**wanted)
        log.info("silence %d added by %s: %s", silence.id, silence.created_by, silence.reason)
        return jsonify(silence.as_json(now)), 201

    @app.delete("/api/silences/<int:silence_id>")
    def silences_expire(silence_id: int) -> Response:
        _only_params()
        silence = _alerts().store.expire_silence(silence_id)
        if silence is None:
            raise ApiError(404, f"no silence {silence_id}")
        log.info("silence %d expired", silence_id)
        return jsonify(silence.as_json(time.time()))

    @app.get("/api/alerts/outbox")
    def outbox() -> Response:
        _only_params("state", "limit")
        state_arg = _choice_param("state", OUTBOX_STATES)
        limit = _int_param("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        service = _alerts()
        return jsonify(messages=service.store.outbox(state_arg, limit), **service.status())

    @app.post("/api/enroll")
    def enroll() -> tuple[Response, int]:
        _only_params()
        if enroller is None:
            raise ApiError(404, "enrollment is off in this collector ([enroll] enabled = false)")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) for k in ("token", "site", "device")):
            raise ApiError(400, "the body must be JSON with the strings token, site, device")
        try:
            credential, not_reloaded = enroller.enroll(body["token"], body["site"],
                                                       body["device"])
        except EnrollError as exc:
            log.warning("enrollment of %s/%s refused: %s", str(body["site"])[:64],
                        str(body["device"])[:64], exc)
            raise ApiError(exc.status, str(exc)) from None
        if not_reloaded:
            log.error("enrolled %s but could not reload the broker (%s): it cannot log in "
                      "until the broker is reloaded", credential.username, not_reloaded)
        else:
            log.info("enrolled %s", credential.username)
        return jsonify(username=credential.username, password=credential.password,
                       broker_url=enroll_broker_url, ca_pem=enroll_ca_pem), 201

    @app.get("/probe/blob")
    def probe_blob() -> Response:
        _only_params("bytes")
        raw = request.args.get("bytes")
        if raw is None or not _UNSIGNED.fullmatch(raw):
            shown = "missing" if raw is None else repr(raw[:40])
            raise ApiError(400, f"bytes must be a non-negative integer, not {shown}")
        nbytes = int(raw)
        if nbytes > blob_max_bytes:
            raise ApiError(400, f"bytes {nbytes} is over the limit of {blob_max_bytes}")
        return Response(_stream(blob, nbytes), mimetype="application/octet-stream",
                        headers={"Content-Length": str(nbytes), "Cache-Control": "no-store"})

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return _error(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | HTTPException:
        if exc.code is not None and exc.code < 400:
            return exc
        path = request.path[:200]
        if isinstance(exc, NotFound):
            return _error(404, f"no such path: {path}")
        if isinstance(exc, MethodNotAllowed):
            allowed = ", ".join(sorted(exc.valid_methods or ()))
            return _error(405, f"method {request.method} is not allowed on {path} "
                               f"(allowed: {allowed})")
        return _error(exc.code or 400, (exc.name or "bad request").lower())

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path[:200])
        return _error(500, "internal error; the collector's log has the details")

    @app.after_request
    def count(response: Response) -> Response:
        # The route template, never the raw path: one series per route, not per device.
        rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        requests.labels(rule, str(response.status_code)).inc()
        return response

    return app


class ApiServer:
    """Serves create_app() with waitress from a background thread; port 0 picks a free one."""

    def __init__(self, state: StateStore, registry: CollectorRegistry, host: str, port: int,
                 health: Callable[[], dict[str, Any]] | None = None,
                 blob_max_bytes: int = 10_000_000, threads: int = 8,
                 findings: FindingsStore | None = None,
                 priorities: Callable[[str | None, int], dict[str, Any]] | None = None,
                 alerts: AlertService | None = None, write_token: str = "",
                 read_token: str = "", enroller: Enroller | None = None,
                 enroll_broker_url: str = "", enroll_ca_pem: str = "") -> None:
        self._host, self._requested_port, self._threads = host, port, threads
        self._registry = registry
        # Registered while serving only, so a stopped server can be replaced by a new one
        # on the same registry without a duplicate-metric error.
        self._requests = Counter("cwatch_http_requests", "HTTP requests answered, by route "
                                 "template and status code", ["path", "code"], registry=None)
        self.app = create_app(state, registry, self._requests, health, blob_max_bytes,
                              findings, priorities, alerts, write_token, read_token,
                              enroller, enroll_broker_url, enroll_ca_pem)
        self._server: Any = None
        self._listener: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (the requested one until start())."""
        if self._listener is None:
            return self._requested_port
        return int(self._listener.effective_port)

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("ApiServer already started")
        self._server = create_server(self.app, host=self._host, port=self._requested_port,
                                     threads=self._threads, ident="cwatch-collector")
        self._registry.register(self._requests)
        # A host name with several addresses gives a MultiSocketServer of listeners that
        # share one socket map; any listener's trigger can reach the loop.
        socket_map = self._socket_map()
        self._listener = next(o for o in socket_map.values() if isinstance(o, BaseWSGIServer))
        self._thread = threading.Thread(target=self._server.run, name="cwatch-http",
                                        daemon=True)
        self._thread.start()

    def _socket_map(self) -> dict[int, Any]:
        server = self._server
        return server.map if hasattr(server, "map") else server._map

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening, drop open connections, wait for the loop and the workers."""
        if self._server is None:
            return
        socket_map = self._socket_map()
        # Closing sockets from this thread would race the loop's select(); a thunk on the
        # trigger runs inside the loop thread, and the loop ends once its map is empty.
        try:
            self._listener.trigger.pull_trigger(lambda: wasyncore.close_all(socket_map))
        except OSError:  # the loop already ended and closed its trigger: close here
            wasyncore.close_all(socket_map)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("HTTP server thread did not stop within %g s", timeout_s)
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout_s)
        self._registry.unregister(self._requests)
        self._server = self._listener = self._thread = None
