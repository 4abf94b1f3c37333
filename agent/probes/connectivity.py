"""Link quality from the PC's point of view: echo (ICMP or TCP), DNS, HTTP(S), throughput.

The results are the `probe` channel's data: {"targets": [...], "throughput": {...}}.
Standard library only, Python 3.8+, Windows and Linux. Nothing here raises on a network
failure: it becomes the target's `error` text, and ConnectivityProbe.collect() returns within
its deadline even when a target hangs.
"""

from __future__ import annotations

import concurrent.futures
import errno
import http.client
import ipaddress
import logging
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

KINDS = ("gateway", "collector", "dns", "portal", "device", "custom")
METHODS = ("icmp", "tcp", "dns", "http")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# Ports tried, in order, when a target gives none and ICMP is not possible.
FALLBACK_PORTS = (443, 80)
MAX_TARGETS = 32  # schema: probe_data.targets maxItems
MAX_COUNT = 100  # echo packets per target; the schema allows 1000, a weak link does not
MAX_MS = 600000.0  # schema maximum for every *_ms field
MAX_ERROR = 300  # schema maxLength of `error`
USER_AGENT = "commune-watch-probe"
PUBLIC_DNS = "1.1.1.1"

# perf_counter, not monotonic: on Windows monotonic() ticks every ~15.6 ms, useless for RTTs.
_clock = time.perf_counter

# Address info as getaddrinfo returns it, minus the parts we never use.
Addr = Tuple[int, Tuple[Any, ...]]  # (family, sockaddr)


@dataclass(frozen=True)
class Target:
    """One thing to measure. Raises ValueError when a field would not fit the schema."""

    name: str
    kind: str
    host: str
    method: str
    port: Optional[int] = None
    url: Optional[str] = None
    count: int = 5

    def __post_init__(self) -> None:
        # Checked here so a bad config line fails at start-up, not as a rejected message later.
        if not isinstance(self.name, str) or NAME_PATTERN.fullmatch(self.name) is None:
            raise ValueError(f"target name {self.name!r} must match [a-z0-9][a-z0-9._-]{{0,63}}")
        if self.kind not in KINDS:
            raise ValueError(f"target kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.method not in METHODS:
            raise ValueError(f"target method {self.method!r} is not one of {', '.join(METHODS)}")
        if not isinstance(self.host, str) or not 0 < len(self.host) <= 253:
            raise ValueError(f"target host {self.host!r} must be 1 to 253 characters")
        if self.port is not None and not (isinstance(self.port, int) and 0 < self.port < 65536):
            raise ValueError(f"target port {self.port!r} must be 1 to 65535")
        if not isinstance(self.count, int) or not 1 <= self.count <= MAX_COUNT:
            raise ValueError(f"target count {self.count!r} must be 1 to {MAX_COUNT}")
        if self.url is not None and (
            len(self.url) > 2048 or urlsplit(self.url).scheme not in ("http", "https")
        ):
            raise ValueError(f"target url {self.url[:100]!r} must be an http(s) URL")

    def http_url(self) -> str:
        """The URL an http target fetches: `url`, or http://host[:port]/ when none is set."""
        if self.url:
            return self.url
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"http://{host}{port}/"


# --- small helpers -------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(min(max(seconds * 1000.0, 0.0), MAX_MS), 3)


def _clip(text: str) -> str:
    return text[:MAX_ERROR]


class ProbeError(Exception):
    """A failure whose str() is already the text to report."""


class ResolveError(ProbeError):
    """Name resolution failed or took too long."""


def error_text(exc: BaseException) -> str:
    """A short, stable description of a network failure for the `error` field."""
    if isinstance(exc, ProbeError):
        return _clip(str(exc))
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed without a response"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _clip(f"TLS certificate not trusted: {exc.verify_message or exc.reason}")
    if isinstance(exc, ssl.SSLError):
        return _clip(f"TLS error: {exc.reason or exc}")
    if isinstance(exc, http.client.HTTPException):
        return _clip(f"bad HTTP response: {type(exc).__name__}")
    if isinstance(exc, OSError):
        code = exc.errno
        if code == errno.ENETUNREACH:
            return "network unreachable"
        if code == errno.EHOSTUNREACH:
            return "host unreachable"
        if code == errno.EACCES:
            return "permission denied"
        return _clip(f"{type(exc).__name__}: {exc.strerror or exc}")
    return _clip(f"{type(exc).__name__}: {exc}")


def _gai_text(exc: socket.gaierror) -> str:
    # EAI_NODATA is Linux-only; on Windows both map to WSAHOST_NOT_FOUND (11001).
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
        return "name does not resolve"
    if exc.errno == socket.EAI_AGAIN:
        return "DNS server not reachable (temporary failure)"
    return _clip(f"DNS error: {exc.strerror or exc}")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(host: str, timeout_s: float = 3.0, port: Optional[int] = None
            ) -> Tuple[List[Addr], float]:
    """Resolve `host` with the system resolver; returns (addresses, seconds taken).

    getaddrinfo has no timeout of its own, so it runs in a daemon thread that is abandoned
    (not joined) when it overruns: a daemon thread cannot hold up the agent's exit either.
    Raises ResolveError with the text to report.
    """
    box = {}  # type: Dict[str, Any]
    done = threading.Event()

    def work() -> None:
        start = _clock()
        try:
            box["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["exc"] = exc
        box["elapsed"] = _clock() - start
        done.set()

    if _is_ip_literal(host):
        work()  # no lookup happens for a literal: no reason to pay for a thread
    else:
        threading.Thread(target=work, name="cwatch-resolve", daemon=True).start()
        if not done.wait(timeout_s):
            raise ResolveError("DNS timeout")
    exc = box.get("exc")
    if isinstance(exc, socket.gaierror):
        raise ResolveError(_gai_text(exc))
    if isinstance(exc, UnicodeError):  # e.g. a label longer than 63 characters
        raise ResolveError("invalid host name")
    if exc is not None:
        raise ResolveError(error_text(exc))
    addrs = []  # type: List[Addr]
    for family, _type, _proto, _canon, sockaddr in box["infos"]:
        if (family, sockaddr) not in addrs:
            addrs.append((family, sockaddr))
    if not addrs:
        raise ResolveError("name does not resolve")
    return addrs, box["elapsed"]


# --- echo: ICMP, or TCP connect timing -----------------------------------------------------


def icmp_available() -> bool:
    """True when this process may open an unprivileged ICMP echo socket.

    Linux allows it when net.ipv4.ping_group_range covers one of our groups; macOS always
    does. Windows has no such socket type (ping.exe uses IcmpSendEcho), so it is not tried.
    """
    if sys.platform == "win32":
        return False
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    except OSError:
        return False
    sock.close()
    return True


def _checksum(data: bytes) -> int:
    # RFC 1071 ones' complement sum. Linux fills it in for ping sockets; macOS does not.
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    csum = _checksum(header + payload)
    return struct.pack("!BBHHH", 8, 0, csum, ident, seq) + payload


def _is_echo_reply(packet: bytes, seq: int, payload: bytes) -> bool:
    # macOS hands datagram ICMP sockets the IP header too; Linux starts at the ICMP header.
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < 8:
        return False
    kind, code, _csum, _ident, rseq = struct.unpack("!BBHHH", packet[:8])
    # The identifier is not compared: Linux replaces ours with the socket's port and only
    # delivers replies that carry it. Sequence and payload rule out late or foreign replies.
    return kind == 0 and code == 0 and rseq == seq and packet[8:] == payload


class _IcmpPinger:
    """Sends echo requests over one datagram ICMP socket."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        self._ident = os.getpid() & 0xFFFF
        self._token = os.urandom(8)

    def once(self, seq: int, timeout_s: float) -> float:
        """Round-trip seconds of one echo; raises socket.timeout or OSError on a loss."""
        payload = self._token + struct.pack("!H", seq) + b"commune-watch"
        deadline = _clock() + timeout_s
        start = _clock()
        self._sock.sendto(_echo_request(self._ident, seq, payload), (self._address, 0))
        while True:
            remaining = deadline - _clock()
            if remaining <= 0:
                raise socket.timeout("timed out")
            self._sock.settimeout(remaining)
            packet = self._sock.recv(2048)
            if _is_echo_reply(packet, seq, payload):
                return _clock() - start

    def close(self) -> None:
        self._sock.close()


def _tcp_once(addr: Addr, timeout_s: float) -> Tuple[float, bool]:
    """(seconds, connected) for one TCP handshake, or for the RST that refuses it.

    Both are a full round trip. A timeout (nothing came back) raises socket.timeout and
    counts as a loss. Windows retries a refused SYN twice before it gives up, so there a
    closed port reads about 1 s: _pick_tcp_port prefers a port that accepts.
    """
    family, sockaddr = addr
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        start = _clock()
        try:
            sock.connect(sockaddr)
        except ConnectionRefusedError:
            return _clock() - start, False
        return _clock() - start, True
    finally:
        sock.close()


def _echo_stats(sent: int, rtts: List[float]) -> Dict[str, Any]:
    received = len(rtts)
    out = {
        "sent": sent, "received": received,
        "loss_percent": round(100.0 * (sent - received) / sent, 1) if sent else None,
        "rtt_avg_ms": None, "rtt_min_ms": None, "rtt_max_ms": None, "jitter_ms": None,
    }  # type: Dict[str, Any]
    if rtts:
        out["rtt_avg_ms"] = _ms(sum(rtts) / received)
        out["rtt_min_ms"] = _ms(min(rtts))
        out["rtt_max_ms"] = _ms(max(rtts))
    if received >= 2:
        # Mean absolute difference of consecutive RTTs: enough to see a bursty link.
        diffs = [abs(b - a) for a, b in zip(rtts, rtts[1:])]
        out["jitter_ms"] = _ms(sum(diffs) / len(diffs))
    return out


def probe_echo(target: Target, packet_timeout_s: float = 1.0, interval_s: float = 0.2,
               dns_timeout_s: float = 3.0) -> Dict[str, Any]:
    """Send `target.count` echoes, ICMP if allowed here, else TCP connects; never raises.

    The reported `method` says which was used. TCP goes to target.port, else 443, else 80.
    """
    out = _base(target)
    use_icmp = target.method == "icmp" and icmp_available()
    out["method"] = "icmp" if use_icmp else "tcp"
    out.update(_echo_stats(0, []))
    try:
        addrs, _elapsed = resolve(target.host, dns_timeout_s)
    except ResolveError as exc:
        out["error"] = str(exc)
        return out
    v4 = [a for a in addrs if a[0] == socket.AF_INET]
    pinger = None  # type: Optional[_IcmpPinger]
    if use_icmp and v4:
        try:
            pinger = _IcmpPinger(v4[0][1][0])
        except OSError:
            pinger = None  # refused after all (e.g. a sandbox): measure with TCP instead
    if pinger is None:
        out["method"] = "tcp"
    ports = (target.port,) if target.port else FALLBACK_PORTS
    # IPv4 first, as for ICMP: an office PC often has an IPv6 address but no IPv6 route.
    tcp_host = (v4 or addrs)[0]
    tcp_addr = None  # type: Optional[Addr]
    rtts = []  # type: List[float]
    last_error = None  # type: Optional[str]
    sent = 0
    try:
        for i in range(target.count):
            started = _clock()
            sent += 1
            try:
                if pinger is not None:
                    rtts.append(pinger.once(i + 1, packet_timeout_s))
                elif tcp_addr is None:
                    # Settle the port once; if none answers, stay on the first one so a
                    # dead host costs one timeout per attempt, not one per port.
                    tcp_addr = _with_port(tcp_host, ports[0])
                    tcp_addr, rtt = _pick_tcp_port(tcp_host, ports, packet_timeout_s)
                    rtts.append(rtt)
                else:
                    rtts.append(_tcp_once(tcp_addr, packet_timeout_s)[0])
            except OSError as exc:
                last_error = error_text(exc)
            if i + 1 < target.count:
                # Spaced out like ping so a burst does not measure our own queueing.
                time.sleep(max(0.0, interval_s - (_clock() - started)))
    finally:
        if pinger is not None:
            pinger.close()
    out.update(_echo_stats(sent, rtts))
    if not rtts:
        out["error"] = last_error or "no reply"
    return out


def _with_port(addr: Addr, port: int) -> Addr:
    family, sockaddr = addr
    return family, (sockaddr[0], port) + tuple(sockaddr[2:])  # IPv6 keeps flowinfo, scope


def _pick_tcp_port(addr: Addr, ports: Sequence[int], timeout_s: float) -> Tuple[Addr, float]:
    """Choose the port to time and return it with its first RTT.

    The first port that accepts wins, else the first that refused; when none answers the
    first port's error is raised, so this attempt counts as one loss.
    """
    refused = None  # type: Optional[Tuple[Addr, float]]
    first_exc = None  # type: Optional[OSError]
    for port in ports:
        candidate = _with_port(addr, port)
        try:
            rtt, connected = _tcp_once(candidate, timeout_s)
        except OSError as exc:
            first_exc = first_exc or exc
            continue
        if connected:
            return candidate, rtt
        refused = refused or (candidate, rtt)
    if refused is not None:
        return refused
    assert first_exc is not None
    raise first_exc


# --- DNS and HTTP --------------------------------------------------------------------------


def _base(target: Target) -> Dict[str, Any]:
    return {"name": target.name, "kind": target.kind, "host": target.host,
            "method": target.method, "error": None}


def probe_dns(target: Target, timeout_s: float = 3.0) -> Dict[str, Any]:
    """Time the system resolver on target.host; never raises.

    This is what applications see, including the OS cache (Windows' DNS Client service,
    systemd-resolved): a cached answer reads near 0 ms.
    """
    out = _base(target)
    out["dns_ms"] = None
    try:
        _addrs, elapsed = resolve(target.host, timeout_s)
        out["dns_ms"] = _ms(elapsed)
    except ResolveError as exc:
        out["error"] = str(exc)
    return out


def _connect(url: str, deadline: float, dns_timeout_s: float, verify_tls: bool = True,
             timings: Optional[Dict[str, float]] = None
             ) -> Tuple[http.client.HTTPConnection, str]:
    """Resolve and connect (TLS too for https) within `deadline`; returns (conn, path).

    We resolve and connect ourselves so the DNS time is known and bounded; http.client is
    then given the connected socket and only speaks HTTP. timings["dns_s"] is set as soon
    as the name resolves, so it is reported even when the connection then fails.
    """
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a port that is not a number or out of range
        host = None
    if scheme not in ("http", "https") or not host:
        raise ProbeError("invalid URL")
    addrs, dns_s = resolve(host, min(dns_timeout_s, max(0.05, deadline - _clock())), port)
    if timings is not None:
        timings["dns_s"] = dns_s
    sock = None  # type: Optional[socket.socket]
    last = None  # type: Optional[OSError]
    for family, sockaddr in addrs:
        remaining = deadline - _clock()
        if remaining <= 0:
            raise socket.timeout("timed out")
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining)
            sock.connect(sockaddr)
            break
        except OSError as exc:
            sock.close()
            sock, last = None, exc
    if sock is None:
        raise last or socket.timeout("timed out")
    conn = None  # type: Optional[http.client.HTTPConnection]
    try:
        if scheme == "https":
            ctx = ssl.create_default_context()
            if not verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            sock.settimeout(max(0.01, deadline - _clock()))
            sock = ctx.wrap_socket(sock, server_hostname=host)
            conn = http.client.HTTPSConnection(host, port, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port)
        conn.sock = sock  # already connected: http.client will not connect again
    except BaseException:
        sock.close()
        raise
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return conn, path


def _request(conn: http.client.HTTPConnection, path: str, deadline: float
             ) -> Tuple[http.client.HTTPResponse, float, socket.socket]:
    """Send a GET and wait for the response head; returns (response, seconds, socket).

    The socket is returned because http.client forgets conn.sock once the response says
    "Connection: close", and the body reads still need their timeout adjusted.
    """
    sock = conn.sock
    assert sock is not None
    sock.settimeout(max(0.01, deadline - _clock()))
    start = _clock()
    conn.request("GET", path, headers={
        "User-Agent": USER_AGENT, "Connection": "close", "Accept-Encoding": "identity"})
    # getresponse() returns once the status line and headers are read; they share a segment
    # in practice, so this is the time to first byte.
    resp = conn.getresponse()
    return resp, _clock() - start, sock


def probe_http(target: Target, timeout_s: float = 8.0, dns_timeout_s: float = 3.0,
               verify_tls: bool = True) -> Dict[str, Any]:
    """Fetch target's URL once: DNS time, time to first byte and status; never raises.

    Redirects are not followed (a 3xx is reported as is) and the body is not read, so a
    check costs a few kilobytes at most on a metered link.
    """
    out = _base(target)
    out.update({"dns_ms": None, "http_ttfb_ms": None, "http_status": None})
    deadline = _clock() + timeout_s
    conn = None  # type: Optional[http.client.HTTPConnection]
    resp = None  # type: Optional[http.client.HTTPResponse]
    timings = {}  # type: Dict[str, float]
    try:
        conn, path = _connect(target.http_url(), deadline, dns_timeout_s, verify_tls, timings)
        resp, ttfb, _sock = _request(conn, path, deadline)
        out["http_ttfb_ms"] = _ms(ttfb)
        if 100 <= resp.status <= 599:
            out["http_status"] = resp.status
        else:
            out["error"] = f"bad HTTP status {resp.status}"
    except (ProbeError, OSError, http.client.HTTPException) as exc:
        out["error"] = error_text(exc)
    finally:
        _close(conn, resp)
    if "dns_s" in timings:
        out["dns_ms"] = _ms(timings["dns_s"])
    return out


def _close(conn: Optional[http.client.HTTPConnection],
           resp: Optional[http.client.HTTPResponse]) -> None:
    # The response holds its own reference to the socket: both must go to free it now.
    if resp is not None:
        resp.close()
    if conn is not None:
        conn.close()


def measure_throughput(url: str, max_bytes: int = 1000000, max_seconds: float = 15.0,
                       timeout_s: float = 10.0, dns_timeout_s: float = 3.0,
                       verify_tls: bool = True) -> Dict[str, Any]:
    """Download from `url` until the end, `max_bytes` or `max_seconds`; never raises.

    duration_s and mbit_per_s cover the body only (from the response head to the last byte
    read), so connection setup and server think time do not count against the link.
    Reaching a cap is not an error: `bytes` says how much was measured.
    """
    out = {"url": url[:2048], "bytes": 0, "duration_s": 0.0, "mbit_per_s": None,
           "error": None}  # type: Dict[str, Any]
    start = _clock()
    stop_at = start + max_seconds
    conn = None  # type: Optional[http.client.HTTPConnection]
    resp = None  # type: Optional[http.client.HTTPResponse]
    try:
        conn, path = _connect(url, min(stop_at, start + timeout_s), dns_timeout_s, verify_tls)
        resp, _ttfb, sock = _request(conn, path, min(stop_at, _clock() + timeout_s))
        if resp.status != 200:
            out["error"] = f"HTTP {resp.status}"
            return out
        got = 0
        body_start = _clock()
        try:
            while got < max_bytes and not resp.isclosed():
                remaining = stop_at - _clock()
                if remaining <= 0:
                    break
                sock.settimeout(min(remaining, timeout_s))
                try:
                    # read1: one network read at most, so the time cap is checked between
                    # reads; read(n) would wait for all n bytes on a slow link.
                    chunk = resp.read1(min(65536, max_bytes - got))
                except socket.timeout:
                    if _clock() >= stop_at:
                        break  # the time cap, not a stall: what we have is the measurement
                    raise
                if not chunk:
                    break
                got += len(chunk)
        finally:
            # Also on a stall or reset: the bytes that did arrive are still a measurement.
            duration = _clock() - body_start
            out["bytes"] = got
            out["duration_s"] = round(min(duration, 86400.0), 6)
            if got and duration > 0:
                out["mbit_per_s"] = round(min(got * 8 / duration / 1e6, 1e6), 3)
    except (ProbeError, OSError, http.client.HTTPException) as exc:
        out["error"] = error_text(exc)
    except Exception as exc:  # noqa: BLE001 - a probe must not take the agent down
        log.exception("throughput measurement failed")
        out["error"] = error_text(exc)
    finally:
        _close(conn, resp)
    return out


def blob_url(collector_base_url: str, nbytes: int) -> str:
    """URL of the collector's test download of `nbytes` bytes."""
    return f"{collector_base_url.rstrip('/')}/probe/blob?bytes={int(nbytes)}"


# --- default gateway -----------------------------------------------------------------------


def parse_proc_net_route(text: str) -> Optional[str]:
    """Default IPv4 gateway from the text of Linux /proc/net/route, lowest metric first."""
    best = None  # type: Optional[Tuple[int, str]]
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, gateway, flags = int(fields[1], 16), int(fields[2], 16), int(fields[3], 16)
            metric, mask = int(fields[6]), int(fields[7], 16)
        except ValueError:
            continue
        # RTF_UP (1) and RTF_GATEWAY (2); addresses are in host (little-endian) byte order.
        if dest != 0 or mask != 0 or flags & 3 != 3 or gateway == 0:
            continue
        address = socket.inet_ntoa(struct.pack("<L", gateway))
        if best is None or metric < best[0]:
            best = (metric, address)
    return best[1] if best else None


_ROUTE_ROW = re.compile(
    r"^\s*0\.0\.0\.0\s+0\.0\.0\.0\s+(\d{1,3}(?:\.\d{1,3}){3})\s+\S+\s+(\d+)\s*$")


def parse_route_print(text: str) -> Optional[str]:
    """Default IPv4 gateway from Windows `route print -4` output, lowest metric first.

    Matches rows by shape (0.0.0.0 0.0.0.0 <gateway> <interface> <metric>) rather than by
    headings, because the headings are translated on localized Windows. The "Persistent
    Routes" rows have no interface column, so they are not taken for active routes.
    """
    best = None  # type: Optional[Tuple[int, str]]
    for line in text.splitlines():
        match = _ROUTE_ROW.match(line)
        if match is None or match.group(1) == "0.0.0.0":
            continue
        metric = int(match.group(2))
        if best is None or metric < best[0]:
            best = (metric, match.group(1))
    return best[1] if best else None


def default_gateway(proc_net_route: str = "/proc/net/route", timeout_s: float = 5.0
                    ) -> Optional[str]:
    """The default IPv4 gateway of this machine, or None when it cannot be found."""
    try:
        if sys.platform == "win32":
            # CREATE_NO_WINDOW: no console flashes up when the agent runs without one.
            result = subprocess.run(
                ["route", "print", "-4"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                timeout=timeout_s, creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
            # Output is in the OEM code page; the parts we read are ASCII.
            return parse_route_print(result.stdout.decode("ascii", "replace"))
        with open(proc_net_route, encoding="ascii", errors="replace") as fh:
            return parse_proc_net_route(fh.read())
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.debug("default gateway unknown: %s", exc)
        return None


def default_targets(collector_host: Optional[str], portal_url: Optional[str],
                    gateway: Optional[str] = "auto", public_dns: Optional[str] = PUBLIC_DNS
                    ) -> List[Target]:
    """Sensible targets for a commune office: LAN, collector, internet, portal.

    gateway="auto" detects it; None leaves it out. Each layer is a separate target so a
    dashboard can tell "router down" from "ISP down" from "portal down".
    """
    if gateway == "auto":
        gateway = default_gateway()
    targets = []  # type: List[Target]
    if gateway:
        targets.append(Target("gateway", "gateway", gateway, "icmp"))
    if collector_host:
        targets.append(Target("collector", "collector", collector_host, "icmp"))
    if public_dns:
        # Reaching a public resolver by address separates "no internet" from "no DNS".
        targets.append(Target("public-dns", "dns", public_dns, "icmp"))
    portal_host = urlsplit(portal_url).hostname if portal_url else None
    if portal_url and portal_host:
        targets.append(Target("portal-dns", "dns", portal_host, "dns"))
        targets.append(Target("portal", "portal", portal_host, "http", url=portal_url))
    return targets


# --- running them all ----------------------------------------------------------------------


class ConnectivityProbe:
    """Runs every target concurrently; collect() returns by `timeout_s` and never raises.

    The per-operation timeouts bound how long a worker may outlive a collect() that gave
    up on it; the deadline bounds how long the caller waits.
    """

    def __init__(self, targets: Sequence[Target], timeout_s: float = 10.0,
                 packet_timeout_s: float = 1.0, interval_s: float = 0.2,
                 dns_timeout_s: float = 3.0, http_timeout_s: float = 8.0,
                 throughput_url: Optional[str] = None, throughput_max_bytes: int = 1000000,
                 throughput_max_s: float = 15.0) -> None:
        targets = list(targets)
        if len(targets) > MAX_TARGETS:
            raise ValueError(f"at most {MAX_TARGETS} targets, got {len(targets)}")
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError("target names must be unique")
        self.targets = targets
        self.timeout_s = timeout_s
        self.packet_timeout_s = packet_timeout_s
        self.interval_s = interval_s
        self.dns_timeout_s = dns_timeout_s
        self.http_timeout_s = http_timeout_s
        self.throughput_url = throughput_url
        self.throughput_max_bytes = throughput_max_bytes
        self.throughput_max_s = throughput_max_s

    def probe(self, target: Target) -> Dict[str, Any]:
        """Measure one target now, in the caller's thread."""
        try:
            if target.method in ("icmp", "tcp"):
                return probe_echo(target, self.packet_timeout_s, self.interval_s,
                                  self.dns_timeout_s)
            if target.method == "dns":
                return probe_dns(target, self.dns_timeout_s)
            return probe_http(target, self.http_timeout_s, self.dns_timeout_s)
        except Exception as exc:  # noqa: BLE001 - a bug in one probe must not cost the rest
            log.exception("probe %s failed", target.name)
            out = _base(target)
            out["error"] = _clip(f"probe failed: {error_text(exc)}")
            return out

    def collect(self, throughput: bool = False) -> Dict[str, Any]:
        """{"targets": [...]} in target order, plus "throughput" when asked and configured.

        The throughput download runs after the targets (so it does not inflate their RTTs)
        and has its own cap, throughput_max_s, on top of timeout_s.
        """
        try:
            results = self._run_targets()
        except Exception as exc:  # noqa: BLE001 - e.g. no thread could be started
            log.exception("connectivity probes failed")
            results = []
            for target in self.targets:
                out = _base(target)
                out["error"] = _clip(f"probe failed: {error_text(exc)}")
                results.append(out)
        data = {"targets": results}  # type: Dict[str, Any]
        if throughput and self.throughput_url:
            data["throughput"] = measure_throughput(
                self.throughput_url, self.throughput_max_bytes, self.throughput_max_s,
                min(self.http_timeout_s, self.throughput_max_s), self.dns_timeout_s)
        return data

    def _run_targets(self) -> List[Dict[str, Any]]:
        if not self.targets:
            return []
        deadline = _clock() + self.timeout_s
        # One thread per target, all started now: nothing queues behind a slow target.
        # No `with`: its exit would join the workers and wait for the very hang we avoid.
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=len(self.targets), thread_name_prefix="cwatch-probe")
        futures = []  # type: List[concurrent.futures.Future[Dict[str, Any]]]
        try:
            futures = [pool.submit(self.probe, t) for t in self.targets]
            concurrent.futures.wait(futures, timeout=max(0.0, deadline - _clock()))
        finally:
            pool.shutdown(wait=False)
        results = []
        for target, future in zip(self.targets, futures):
            if future.done():
                results.append(future.result())
            else:
                log.info("probe %s still running at the deadline", target.name)
                out = _base(target)
                if target.method == "icmp" and not icmp_available():
                    out["method"] = "tcp"
                out["error"] = "timeout"
                results.append(out)
        return results
