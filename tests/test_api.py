"""The collector's HTTP API over real HTTP: a real StateStore behind a server on port 0."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from samples import envelope, topic

from collector.api import ApiServer
from collector.ingest import Decoder
from collector.metrics import FleetCollector
from collector.store.state import StateStore
from cwatch import protocol

BLOB_MAX = 2_000_000
T = time.time() - 3600


class Api:
    def __init__(self, server: ApiServer, health: dict[str, Any]) -> None:
        self.server, self.health = server, health

    def request(self, path: str, method: str = "GET") -> tuple[int, Message, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.server.port}{path}",
                                     method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers, exc.read()

    def json(self, path: str, method: str = "GET") -> tuple[int, Any]:
        status, headers, body = self.request(path, method)
        assert headers["Content-Type"] == "application/json", (path, body[:200])
        return status, json.loads(body)

    def error(self, path: str, status: int, method: str = "GET") -> str:
        """The one-line error message of a request that must fail with `status`."""
        got, body = self.json(path, method)
        assert got == status, (path, body)
        assert set(body) == {"error"} and "\n" not in body["error"], body
        return body["error"]


def fill(state: StateStore) -> None:
    decoder = Decoder()
    sent = [("an-phuoc", f"pc-{i}", "metrics", {}) for i in range(3)]
    sent += [("an-phuoc", "pc-0", "inventory", {}), ("binh-an", "router-1", "metrics", {}),
             ("an-phuoc", "pc-2", "status", {"state": "offline"})]
    for seq, (site, device, channel, data) in enumerate(sent, 1):
        env = envelope(channel, seq=seq, ts=T + seq, site=site, device=device)
        env["data"].update(data)
        decoded = decoder.decode(topic(channel, site, device), protocol.encode(env))
        assert not decoded.rejections
        state.apply(decoded.samples[0])


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    state = StateStore(tmp_path / "state.db")
    fill(state)
    registry = CollectorRegistry()
    registry.register(FleetCollector(state.counts_by_site))
    health: dict[str, Any] = {"ok": True, "broker_connected": True, "state_queue": 0}
    server = ApiServer(state, registry, "127.0.0.1", 0, health=lambda: dict(health),
                       blob_max_bytes=BLOB_MAX)
    server.start()
    yield Api(server, health)
    server.stop()
    state.close()


def test_healthz_follows_the_health_callback(api: Api) -> None:
    assert api.json("/healthz") == (200, {"status": "ok", "ok": True,
                                          "broker_connected": True, "state_queue": 0})
    api.health.update(ok=False, broker_connected=False)
    status, body = api.json("/healthz")
    assert status == 503 and body["status"] == "unavailable" and not body["broker_connected"]


def test_healthz_when_the_check_itself_fails(tmp_path: Path) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    server = ApiServer(StateStore(tmp_path / "s.db"), CollectorRegistry(), "127.0.0.1", 0,
                       health=broken)
    server.start()
    try:
        status, body = Api(server, {}).json("/healthz")
        assert status == 503 and body["status"] == "error" and "boom" in body["error"]
    finally:
        server.stop()


def test_devices_list_filters_and_pages(api: Api) -> None:
    status, body = api.json("/api/devices")
    assert status == 200 and (body["count"], body["limit"], body["offset"]) == (4, 100, 0)
    assert [(d["site"], d["device"]) for d in body["devices"]] == [
        ("an-phuoc", "pc-0"), ("an-phuoc", "pc-1"), ("an-phuoc", "pc-2"),
        ("binh-an", "router-1")]
    first = body["devices"][0]
    assert first["status"] == "online" and first["hostname"] == "KETOAN-01"
    assert first["cpu_percent"] == 37.5 and first["interval_s"] == 60
    assert isinstance(first["last_seen"], float)
    _, body = api.json("/api/devices?site=an-phuoc&status=offline")
    assert [d["device"] for d in body["devices"]] == ["pc-2"]
    _, body = api.json("/api/devices?status=online&limit=2&offset=1")
    assert [d["device"] for d in body["devices"]] == ["pc-1", "router-1"]
    _, body = api.json("/api/devices?site=&status=")  # empty means no filter
    assert body["count"] == 4
    assert api.json("/api/devices?site=nowhere")[1]["devices"] == []


@pytest.mark.parametrize("query, fragment", [
    ("status=up", "status must be one of online, offline, not 'up'"),
    ("limit=0", "limit must be an integer from 1 to 1000"),
    ("limit=1001", "limit must be an integer from 1 to 1000"),
    ("limit=ten", "not 'ten'"),
    ("offset=-1", "offset must be an integer"),
    ("stats=online", "unknown query parameter 'stats'"),
])
def test_devices_bad_queries_are_json_400(api: Api, query: str, fragment: str) -> None:
    assert fragment in api.error(f"/api/devices?{query}", 400)


def test_one_device_and_unknown_device(api: Api) -> None:
    status, body = api.json("/api/devices/an-phuoc/pc-0")
    assert status == 200 and body["device"] == "pc-0" and body["role"] == "service-counter"
    assert body["inventory"]["system"]["model"] == "OptiPlex 3020"
    assert body["metrics"]["disks"][0]["used_percent"] == 80.0
    assert body["probe"] is None and body["reboots"] == []
    assert api.error("/api/devices/an-phuoc/pc-9", 404) == "unknown device an-phuoc/pc-9"


def test_sites(api: Api) -> None:
    status, body = api.json("/api/sites")
    assert status == 200
    assert [{k: s[k] for k in ("site", "devices_total", "online", "offline")}
            for s in body["sites"]] == [
        {"site": "an-phuoc", "devices_total": 3, "online": 2, "offline": 1},
        {"site": "binh-an", "devices_total": 1, "online": 1, "offline": 0}]


def test_unknown_paths_and_methods_are_json(api: Api) -> None:
    assert api.error("/nope", 404) == "no such path: /nope"
    assert api.error("/api/devices/a/b/c", 404) == "no such path: /api/devices/a/b/c"
    message = api.error("/api/sites", 405, method="POST")
    assert message.startswith("method POST is not allowed on /api/sites") and "GET" in message
    assert api.error("/metrics", 405, method="DELETE").startswith("method DELETE")
    assert api.json("/api/sites/")[0] == 200  # a trailing slash is no redirect


def test_metrics_exposition_parses_and_counts_by_route(api: Api) -> None:
    api.json("/api/devices/an-phuoc/pc-0")
    api.json("/api/devices/binh-an/router-1")
    api.request("/no/such/thing")
    status, headers, body = api.request("/metrics")
    assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    requests = {(s.labels["path"], s.labels["code"]): s.value
                for s in families["cwatch_http_requests"].samples if s.name.endswith("_total")}
    # Route templates, not raw paths: one series however many devices are asked for.
    assert requests[("/api/devices/<site>/<device>", "200")] == 2
    assert requests[("<unmatched>", "404")] == 1
    assert not any("pc-0" in path for path, _ in requests)
    devices = {(s.labels["site"], s.labels["status"]): s.value
               for s in families["cwatch_devices"].samples}
    assert devices[("an-phuoc", "online")] == 2 and devices[("an-phuoc", "offline")] == 1


@pytest.mark.parametrize("nbytes", [0, 1, 65_537, BLOB_MAX])
def test_blob_streams_exactly_n_bytes(api: Api, nbytes: int) -> None:
    status, headers, body = api.request(f"/probe/blob?bytes={nbytes}")
    assert status == 200 and len(body) == nbytes
    assert headers["Content-Length"] == str(nbytes)
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"] == "application/octet-stream"
    if nbytes >= 65_537:
        assert len(zlib.compress(body[:65_536])) > 65_000  # random: nothing to compress


@pytest.mark.parametrize("query, fragment", [
    (f"bytes={BLOB_MAX + 1}", f"over the limit of {BLOB_MAX}"),
    ("bytes=-5", "bytes must be a non-negative integer, not '-5'"),
    ("bytes=1e6", "not '1e6'"),
    ("", "not missing"),
    ("bytes=10&x=1", "unknown query parameter 'x'"),
])
def test_blob_refuses_bad_sizes(api: Api, query: str, fragment: str) -> None:
    assert fragment in api.error(f"/probe/blob?{query}", 400)


def test_stop_then_a_new_server_on_the_same_registry(tmp_path: Path) -> None:
    state, registry = StateStore(tmp_path / "s.db"), CollectorRegistry()
    first = ApiServer(state, registry, "127.0.0.1", 0)
    first.start()
    port = first.port
    assert port != 0 and Api(first, {}).json("/healthz") == (200, {"status": "ok"})
    first.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
    second = ApiServer(state, registry, "127.0.0.1", 0)
    second.start()
    try:
        assert Api(second, {}).json("/api/sites") == (200, {"sites": []})
    finally:
        second.stop()
