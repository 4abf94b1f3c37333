"""Connectivity probes against real sockets on loopback only.

Nothing here sends a packet beyond 127.0.0.0/8: public addresses such as 1.1.1.1 appear only
in default_targets()' output, which is inspected, never probed.
"""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import time
from typing import Any, Dict, Iterator, List  # noqa: F401 - List in type comments
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest

from agent.probes import connectivity as cx
from agent.probes.connectivity import ConnectivityProbe, Target
from cwatch import protocol

SLOW_S = 0.4
TRICKLE_CHUNK = 1000
TRICKLE_TOTAL = 200 * TRICKLE_CHUNK  # would take 10 s at one chunk per 50 ms
UNRESOLVABLE = "no-such-host.commune-watch.invalid"  # RFC 2606: never resolves
DNS_ERRORS = ("name does not resolve", "DNS server not reachable (temporary failure)",
              "DNS timeout")

VALIDATOR = jsonschema.Draft7Validator(
    protocol.channel_schema(protocol.load_schema(), "probe"))


def assert_valid(data: Dict[str, Any]) -> None:
    env = protocol.envelope("an-phuoc", "pc-01", time.time(), 1, data)
    errors = sorted(VALIDATOR.iter_errors(env), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def icmp_allowed_here() -> bool:
    """Checked independently of the module: may this process open a ping socket?"""
    if sys.platform == "win32":
        return False
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
    except OSError:
        return False
    return True


# --- loopback servers ----------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path == "/ok":
            self._reply(200, b"hello")
        elif url.path == "/slow":
            time.sleep(SLOW_S)
            self._reply(200, b"finally")
        elif url.path == "/error":
            self._reply(500, b"boom")
        elif url.path == "/moved":
            self._reply(301, b"", {"Location": "/ok"})
        elif url.path == "/probe/blob":
            self._blob(int(parse_qs(url.query)["bytes"][0]))
        elif url.path == "/trickle":
            self._trickle()
        else:
            self._reply(404, b"no")

    def _reply(self, status: int, body: bytes, headers: Dict[str, str] = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _blob(self, nbytes: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(nbytes))
        self.end_headers()
        chunk = b"\0" * 65536
        sent = 0
        try:
            while sent < nbytes:
                part = chunk[:nbytes - sent]
                self.wfile.write(part)
                sent += len(part)
        except OSError:
            pass  # the client stopped at its byte cap

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(TRICKLE_TOTAL))
        self.end_headers()
        try:
            for _ in range(TRICKLE_TOTAL // TRICKLE_CHUNK):
                self.wfile.write(b"x" * TRICKLE_CHUNK)
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client stopped at its time cap

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early are expected here


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word: an HTTP server that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []  # type: List[socket.socket]
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # bound, never listened: connecting gets an RST
    return port


# --- echo: ICMP or TCP ---------------------------------------------------------------------


def test_echo_to_loopback_uses_icmp_only_where_allowed() -> None:
    assert cx.icmp_available() == icmp_allowed_here()
    probe = ConnectivityProbe([Target("lo", "custom", "127.0.0.1", "icmp", count=3)],
                              timeout_s=5)
    data = probe.collect()
    assert_valid(data)
    (result,) = data["targets"]
    assert result["method"] == ("icmp" if icmp_allowed_here() else "tcp")
    assert (result["sent"], result["received"], result["loss_percent"]) == (3, 3, 0.0)
    assert result["error"] is None
    assert 0 <= result["rtt_min_ms"] <= result["rtt_avg_ms"] <= result["rtt_max_ms"] < 1000
    assert result["jitter_ms"] is not None
    assert result["jitter_ms"] <= result["rtt_max_ms"] - result["rtt_min_ms"] + 0.001


def test_echo_paces_packets() -> None:
    start = time.perf_counter()
    result = cx.probe_echo(Target("lo", "custom", "127.0.0.1", "icmp", count=3),
                           interval_s=0.2)
    # Three packets, two gaps of ~0.2 s: not a burst, not much more.
    assert 0.35 < time.perf_counter() - start < 2.0
    assert result["received"] == 3


def test_tcp_echo_hits_the_given_port() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        result = cx.probe_echo(Target("svc", "custom", "127.0.0.1", "tcp", port=port, count=3),
                               interval_s=0.05)
        listener.settimeout(0.5)
        accepted = 0
        for _ in range(3):
            listener.accept()[0].close()
            accepted += 1
    finally:
        listener.close()
    assert accepted == 3
    assert result["method"] == "tcp"
    assert (result["sent"], result["received"], result["error"]) == (3, 3, None)
    assert_valid({"targets": [result]})


@pytest.mark.skipif(sys.platform == "win32", reason="Windows retries refused SYNs for ~1 s")
def test_refused_port_still_measures_a_round_trip() -> None:
    target = Target("closed", "custom", "127.0.0.1", "tcp", port=closed_port(), count=2)
    result = cx.probe_echo(target, packet_timeout_s=1.0, interval_s=0.05)
    assert (result["received"], result["loss_percent"], result["error"]) == (2, 0.0, None)
    assert result["rtt_avg_ms"] is not None and result["rtt_avg_ms"] < 500
    assert_valid({"targets": [result]})


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port whose SYNs go unanswered: a listener with a full accept queue."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []  # type: List[socket.socket]
    try:
        for _ in range(8):
            sock = socket.socket()
            fillers.append(sock)
            sock.settimeout(0.3)
            try:
                sock.connect(("127.0.0.1", port))
            except socket.timeout:
                break  # the queue is full: further SYNs are dropped
        else:
            pytest.skip("this TCP stack answers SYNs beyond the backlog")
        yield port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


def test_dead_port_is_total_loss(black_hole: int) -> None:
    target = Target("dead", "custom", "127.0.0.1", "tcp", port=black_hole, count=2)
    start = time.perf_counter()
    result = cx.probe_echo(target, packet_timeout_s=0.3, interval_s=0.05)
    assert time.perf_counter() - start < 1.5
    assert (result["sent"], result["received"], result["loss_percent"]) == (2, 0, 100.0)
    assert result["rtt_avg_ms"] is None and result["jitter_ms"] is None
    assert result["error"] == "timeout"
    assert_valid({"targets": [result]})


def test_echo_to_unresolvable_name_sends_nothing() -> None:
    result = cx.probe_echo(Target("nx", "custom", UNRESOLVABLE, "icmp"), dns_timeout_s=2)
    assert (result["sent"], result["received"], result["loss_percent"]) == (0, 0, None)
    assert result["error"] in DNS_ERRORS
    assert_valid({"targets": [result]})


# --- DNS -----------------------------------------------------------------------------------


def test_dns_resolves_localhost_and_fails_on_invalid() -> None:
    probe = ConnectivityProbe([
        Target("local-name", "dns", "localhost", "dns"),
        Target("nx", "dns", UNRESOLVABLE, "dns"),
    ], timeout_s=5, dns_timeout_s=2)
    data = probe.collect()
    assert_valid(data)
    good, bad = data["targets"]
    assert good["error"] is None and 0 <= good["dns_ms"] < 2000
    assert bad["dns_ms"] is None
    assert bad["error"] in DNS_ERRORS


# --- HTTP ----------------------------------------------------------------------------------


def test_http_status_ttfb_and_no_redirects(web: str) -> None:
    probe = ConnectivityProbe([
        Target("ok", "portal", "127.0.0.1", "http", url=web + "/ok"),
        Target("slow", "portal", "127.0.0.1", "http", url=web + "/slow"),
        Target("err", "portal", "127.0.0.1", "http", url=web + "/error"),
        Target("moved", "portal", "127.0.0.1", "http", url=web + "/moved"),
    ], timeout_s=5)
    data = probe.collect()
    assert_valid(data)
    ok, slow, err, moved = data["targets"]
    assert [r["http_status"] for r in data["targets"]] == [200, 200, 500, 301]
    assert all(r["error"] is None and r["method"] == "http" for r in data["targets"])
    assert ok["dns_ms"] is not None
    assert slow["http_ttfb_ms"] >= SLOW_S * 1000
    assert ok["http_ttfb_ms"] < slow["http_ttfb_ms"] - 200
    assert err["http_ttfb_ms"] is not None and moved["http_ttfb_ms"] is not None


def test_http_url_defaults_from_host_and_port(web: str) -> None:
    port = int(web.rsplit(":", 1)[1])
    target = Target("root", "custom", "127.0.0.1", "http", port=port)
    assert target.http_url() == f"http://127.0.0.1:{port}/"
    assert cx.probe_http(target, timeout_s=3)["http_status"] == 404  # our server's "/"


def test_http_errors_are_reported() -> None:
    refused = cx.probe_http(Target("down", "portal", "127.0.0.1", "http",
                                   url=f"http://127.0.0.1:{closed_port()}/"), timeout_s=3)
    assert refused["error"] == "connection refused"
    assert refused["http_status"] is None and refused["http_ttfb_ms"] is None
    assert refused["dns_ms"] is not None  # resolution succeeded before the connect failed
    nx = cx.probe_http(Target("nx", "portal", UNRESOLVABLE, "http",
                              url=f"http://{UNRESOLVABLE}/"), timeout_s=3, dns_timeout_s=2)
    assert nx["error"] in DNS_ERRORS and nx["dns_ms"] is None
    assert_valid({"targets": [refused, nx]})


def test_http_timeout_of_a_silent_server(silent_server: int) -> None:
    target = Target("mute", "portal", "127.0.0.1", "http",
                    url=f"http://127.0.0.1:{silent_server}/")
    start = time.perf_counter()
    result = cx.probe_http(target, timeout_s=0.5)
    assert 0.4 < time.perf_counter() - start < 1.5
    assert result["error"] == "timeout" and result["http_status"] is None


# --- the deadline --------------------------------------------------------------------------


def test_collect_deadline_reports_hung_target_and_keeps_the_rest(
        silent_server: int, web: str) -> None:
    probe = ConnectivityProbe([
        Target("mute", "portal", "127.0.0.1", "http", url=f"http://127.0.0.1:{silent_server}/"),
        Target("ok", "portal", "127.0.0.1", "http", url=web + "/ok"),
        Target("lo", "gateway", "127.0.0.1", "icmp", count=2),
    ], timeout_s=1.0, http_timeout_s=10.0, interval_s=0.05)
    start = time.perf_counter()
    data = probe.collect()
    elapsed = time.perf_counter() - start
    # The HTTP timeout is 10 s: only the collect deadline can have ended this.
    assert 0.9 < elapsed < 1.8
    assert_valid(data)
    mute, ok, lo = data["targets"]
    assert (mute["name"], mute["method"], mute["error"]) == ("mute", "http", "timeout")
    assert ok["http_status"] == 200 and ok["error"] is None
    assert lo["received"] == 2 and lo["method"] == ("icmp" if icmp_allowed_here() else "tcp")


def test_collect_with_no_targets() -> None:
    data = ConnectivityProbe([]).collect()
    assert data == {"targets": []}
    assert_valid(data)


# --- throughput ----------------------------------------------------------------------------


def test_throughput_full_download(web: str) -> None:
    url = cx.blob_url(web, 300000)
    assert url == web + "/probe/blob?bytes=300000"
    data = ConnectivityProbe([], throughput_url=url).collect(throughput=True)
    assert_valid(data)
    tp = data["throughput"]
    assert (tp["url"], tp["bytes"], tp["error"]) == (url, 300000, None)
    assert tp["duration_s"] > 0 and tp["mbit_per_s"] > 0
    # The reported rate is the reported bytes over the reported time.
    assert tp["mbit_per_s"] == pytest.approx(300000 * 8 / tp["duration_s"] / 1e6, rel=0.05)
    assert "throughput" not in ConnectivityProbe([], throughput_url=url).collect()


def test_throughput_stops_at_byte_cap(web: str) -> None:
    tp = cx.measure_throughput(cx.blob_url(web, 2000000), max_bytes=100000, max_seconds=5)
    assert (tp["bytes"], tp["error"]) == (100000, None)


def test_throughput_stops_at_time_cap(web: str) -> None:
    start = time.perf_counter()
    tp = cx.measure_throughput(web + "/trickle", max_bytes=10 ** 7, max_seconds=0.6,
                               timeout_s=5)
    assert time.perf_counter() - start < 1.5
    assert tp["error"] is None
    assert 0 < tp["bytes"] < TRICKLE_TOTAL
    assert 0.3 < tp["duration_s"] <= 0.7
    assert_valid({"targets": [], "throughput": tp})


def test_throughput_errors(web: str) -> None:
    missing = cx.measure_throughput(web + "/nothing-here", max_seconds=3)
    assert (missing["bytes"], missing["mbit_per_s"], missing["error"]) == (0, None, "HTTP 404")
    refused = cx.measure_throughput(f"http://127.0.0.1:{closed_port()}/", max_seconds=3)
    assert refused["error"] == "connection refused"
    assert_valid({"targets": [], "throughput": missing})
    assert_valid({"targets": [], "throughput": refused})


# --- default gateway -----------------------------------------------------------------------

# Linux /proc/net/route layout; addresses are little-endian hex. Two default routes (the
# lower metric wins), a link route, and a lower-metric default route that is not UP.
PROC_NET_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
tun0\t00000000\t0101010A\t0002\t0\t0\t50\t00000000\t0\t0\t0
"""


def test_parse_proc_net_route() -> None:
    assert cx.parse_proc_net_route(PROC_NET_ROUTE) == "10.0.0.1"
    only_wlan = "\n".join(PROC_NET_ROUTE.splitlines()[:2])
    assert cx.parse_proc_net_route(only_wlan) == "192.168.1.1"
    no_default = "\n".join(PROC_NET_ROUTE.splitlines()[0:1] + PROC_NET_ROUTE.splitlines()[3:])
    assert cx.parse_proc_net_route(no_default) is None
    assert cx.parse_proc_net_route("") is None


@pytest.mark.skipif(sys.platform == "win32", reason="reads a /proc-style file")
def test_default_gateway_reads_the_given_file(tmp_path: Any) -> None:
    path = tmp_path / "route"
    path.write_text(PROC_NET_ROUTE, encoding="ascii")
    assert cx.default_gateway(str(path)) == "10.0.0.1"
    assert cx.default_gateway(str(tmp_path / "missing")) is None


# An EXAMPLE of the layout of `route print -4` on Windows 10 (written for this test, not
# captured from a machine); headings are translated on localized Windows, the rows are not.
ROUTE_PRINT = """\
===========================================================================
Interface List
 12...00 1a 2b 3c 4d 5e ......Intel(R) Ethernet Connection I217-LM
 15...00 1a 2b 3c 4d 5f ......Realtek RTL8188EU Wireless LAN 802.11n USB 2.0
  1...........................Software Loopback Interface 1
===========================================================================

IPv4 Route Table
===========================================================================
Active Routes:
Network Destination        Netmask          Gateway       Interface  Metric
          0.0.0.0          0.0.0.0      192.168.1.1    192.168.1.23     35
          0.0.0.0          0.0.0.0       10.10.0.1      10.10.0.57     25
        10.10.0.0    255.255.255.0         On-link        10.10.0.57    281
        127.0.0.0        255.0.0.0         On-link         127.0.0.1    331
      192.168.1.0    255.255.255.0         On-link      192.168.1.23    291
===========================================================================
Persistent Routes:
  Network Address          Netmask  Gateway Address  Metric
          0.0.0.0          0.0.0.0      172.16.0.1  Default
===========================================================================
"""


def test_parse_route_print() -> None:
    assert cx.parse_route_print(ROUTE_PRINT) == "10.10.0.1"
    without_10 = ROUTE_PRINT.replace("       10.10.0.1      10.10.0.57     25\n",
                                     "       10.10.0.1      10.10.0.57    999\n")
    assert cx.parse_route_print(without_10) == "192.168.1.1"
    no_active = "\n".join(line for line in ROUTE_PRINT.splitlines()
                          if not line.strip().startswith("0.0.0.0") or "Default" in line)
    assert cx.parse_route_print(no_active) is None  # a persistent route is not active


# --- targets -------------------------------------------------------------------------------


def test_default_targets_layers() -> None:
    targets = cx.default_targets("collector.an-phuoc.lan", "https://dichvucong.example.vn/home",
                                 gateway="192.168.1.1")
    summary = [(t.name, t.kind, t.host, t.method) for t in targets]
    assert summary == [
        ("gateway", "gateway", "192.168.1.1", "icmp"),
        ("collector", "collector", "collector.an-phuoc.lan", "icmp"),
        ("public-dns", "dns", "1.1.1.1", "icmp"),
        ("portal-dns", "dns", "dichvucong.example.vn", "dns"),
        ("portal", "portal", "dichvucong.example.vn", "http"),
    ]
    assert targets[-1].url == "https://dichvucong.example.vn/home"
    names = [t.name for t in cx.default_targets("c.lan", None, gateway=None, public_dns=None)]
    assert names == ["collector"]
    ConnectivityProbe(targets)  # accepted as a set: unique names, not too many


@pytest.mark.parametrize("kwargs", [
    {"name": "Gateway"}, {"name": "-gw"}, {"name": "a" * 65}, {"name": "a b"},
    {"kind": "router"}, {"method": "udp"}, {"count": 0}, {"count": 1001}, {"host": ""},
    {"host": "h" * 254}, {"port": 0}, {"port": 70000}, {"url": "ftp://x/"},
])
def test_target_rejects_what_the_schema_would(kwargs: Dict[str, Any]) -> None:
    fields = {"name": "gw", "kind": "gateway", "host": "127.0.0.1", "method": "icmp"}
    fields.update(kwargs)
    with pytest.raises(ValueError):
        Target(**fields)


def test_probe_rejects_duplicate_names_and_too_many_targets() -> None:
    with pytest.raises(ValueError):
        ConnectivityProbe([Target("a", "custom", "127.0.0.1", "tcp")] * 2)
    with pytest.raises(ValueError):
        ConnectivityProbe([Target(f"t{i}", "custom", "127.0.0.1", "tcp") for i in range(33)])


def test_schema_check_is_not_a_formality() -> None:
    result = {"name": "Bad Name", "kind": "custom", "method": "tcp", "error": None}
    with pytest.raises(AssertionError):
        assert_valid({"targets": [result]})


# --- ICMP packet handling (the ping socket may be refused on this machine) -----------------


def test_echo_request_checksum_and_reply_matching() -> None:
    payload = b"token123\x00\x01commune-watch"
    request = cx._echo_request(0x1234, 1, payload)
    assert cx._checksum(request) == 0  # RFC 1071: a packet with its checksum sums to zero
    reply = bytes([0, 0]) + request[2:]  # type 0 echo reply, same id, seq and payload
    assert cx._is_echo_reply(reply, 1, payload)
    assert not cx._is_echo_reply(reply, 2, payload)
    assert not cx._is_echo_reply(reply, 1, payload[:-1] + b"!")
    assert not cx._is_echo_reply(request, 1, payload)  # our own request is not a reply
    ip_header = bytes([0x45]) + bytes(19)  # macOS delivers the IPv4 header as well
    assert cx._is_echo_reply(ip_header + reply, 1, payload)
