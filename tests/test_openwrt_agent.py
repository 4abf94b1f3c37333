"""The OpenWrt router agent (agent/openwrt/cwatch-agent, POSIX sh) end to end.

The agent reads a fake router root, tests/fixtures/openwrt: a TP-Link Archer C6 v3
(ramips/mt7621, MIPS 1004Kc, 128 MB) on OpenWrt 23.05.5 with DSA ports eth0, wan,
lan1..lan4, the bridge br-lan and two radios phy0-ap0/phy1-ap0, laid out as the kernel
lays out /proc and /sys (interfaces are symlinks into /sys/devices, the device-tree
model is NUL-terminated). Values are typical for such a router, not a copy of one.
Tests move its counters while the agent runs, under dash (with the system's gawk
and coreutils) and BusyBox sh (with nothing but BusyBox applets and mosquitto_pub on
the PATH), against a real mosquitto and the real collector.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from agent_helpers import Received
from collector_helpers import INTERFACE_ERRORS_AT_ONCE, start_collector
from jsonschema import Draft7Validator
from openwrt_helpers import (
    DEVICE,
    FIXTURE,
    SHELLS,
    SITE,
    AgentProcess,
    Ticker,
    agent_env,
    command,
    fake_root,
    queued,
    run_once,
    wait_for,
)

from collector.ingest import Decoder
from cwatch import protocol
from cwatch.procs import Mosquitto

SCHEMA = protocol.load_schema()
NETS = {"eth0", "wan", "lan1", "lan2", "lan3", "lan4", "br-lan", "phy0-ap0", "phy1-ap0"}


def assert_valid(topic: str, doc: dict) -> None:
    """Valid for the schema (as tests/test_protocol.py checks) and for the collector."""
    channel = topic.rsplit("/", 1)[1]
    errors = list(Draft7Validator(protocol.channel_schema(SCHEMA, channel)).iter_errors(doc))
    assert errors == [], [e.message for e in errors]
    decoded = Decoder().decode(topic, json.dumps(doc).encode())
    assert decoded.rejections == []


def fixture_meminfo_kb(key: str) -> int:
    for line in (FIXTURE / "proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def nets_of(sample_data: dict) -> dict[str, dict]:
    return {nic["name"]: nic for nic in sample_data.get("net", [])}


def device_state(collector) -> dict | None:
    return collector.state.device(SITE, DEVICE)


@pytest.mark.parametrize("shell", SHELLS)
def test_once_prints_valid_envelopes_read_from_the_router(shell: str, tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    config = tmp_path / "cwatch.conf"
    # Settings from a file (-c), with a location that needs JSON escaping.
    config.write_text("WAN_MBIT=30\nTAG='TS-0042'\nPURCHASE_DATE=2021-03-15\n"
                      r"""LOCATION='Phòng một cửa "A" \ tầng 1'""" "\n", encoding="utf-8")
    env = agent_env(shell, tmp_path, root, PING_COUNT=2,
                    TARGETS="lo:custom:127.0.0.1 nx:dns:nonexistent.invalid")
    out = run_once(shell, env, "-c", str(config))
    assert sorted(out) == ["inventory", "metrics", "probe", "status"]
    for topic, doc in out.values():
        assert topic.startswith(f"cwatch/v1/{SITE}/{DEVICE}/")
        assert_valid(topic, doc)
    seqs = [doc["seq"] for _, doc in out.values()]
    assert len(set(seqs)) == 4
    assert not (tmp_path / "state").exists(), "--once must not reserve sequence numbers"

    metrics = out["metrics"][1]["data"]
    assert metrics["mem_total_bytes"] == fixture_meminfo_kb("MemTotal") * 1024
    assert metrics["mem_available_bytes"] == fixture_meminfo_kb("MemAvailable") * 1024
    assert metrics["mem_used_percent"] == pytest.approx(50.1, abs=0.05)
    assert "swap_total_bytes" not in metrics  # SwapTotal is 0
    assert metrics["cpu_count"] == 4
    assert (metrics["load_1m"], metrics["load_5m"], metrics["load_15m"]) == (0.08, 0.12, 0.09)
    assert metrics["uptime_s"] == 224612.47
    assert abs(metrics["boot_ts"] - (time.time() - 224612.47)) < 5
    assert metrics["process_count"] == len(list((FIXTURE / "proc").glob("[0-9]*")))
    assert (metrics["conntrack_count"], metrics["conntrack_max"]) == (412, 16384)
    assert "cpu_percent" not in metrics  # needs two samples
    nets = nets_of(metrics)
    assert set(nets) == NETS  # lo skipped
    assert nets["wan"] == {"name": "wan", "up": True, "speed_bps": 30_000_000, "wan": True}
    assert nets["lan1"]["speed_bps"] == 1_000_000_000 and nets["lan2"]["speed_bps"] == 10**8
    assert "speed_bps" not in nets["lan3"] and nets["lan3"]["up"] is False  # speed -1
    assert "speed_bps" not in nets["br-lan"] and nets["br-lan"]["up"] is True
    assert [n for n, nic in nets.items() if nic["wan"]] == ["wan"]
    assert not any(key.endswith("_per_s") for nic in nets.values() for key in nic)
    assert metrics["agent"] == {"queue_size": 0, "queue_dropped_total": 0,
                                "publish_failures_total": 0}

    inventory = out["inventory"][1]["data"]
    assert inventory["hostname"] == "OpenWrt"
    assert inventory["os"] == {"name": "OpenWrt", "version": "23.05.5",
                               "build": "r24106-10cc5fcd00", "arch": "mipsel_24kc"}
    assert inventory["description"] == "OpenWrt 23.05.5 r24106-10cc5fcd00"
    assert inventory["cpu"] == {"model": "MediaTek MT7621 ver:1 eco:3", "cores": 4}
    assert inventory["ram_bytes"] == fixture_meminfo_kb("MemTotal") * 1024
    assert inventory["system"] == {"model": "TP-Link Archer C6 v3"}
    assert inventory["macs"] == ["50:91:e3:2a:7c:10", "50:91:e3:2a:7c:12",
                                 "50:91:e3:2a:7c:13", "50:91:e3:2a:7c:11"]
    assert inventory["asset"] == {"role": "router", "tag": "TS-0042",
                                  "location": 'Phòng một cửa "A" \\ tầng 1',
                                  "purchase_date": "2021-03-15"}

    lo, nx = out["probe"][1]["data"]["targets"]
    assert lo["name"] == "lo" and lo["method"] == "icmp" and lo["error"] is None
    assert (lo["sent"], lo["received"], lo["loss_percent"]) == (2, 2, 0)
    assert 0 <= lo["rtt_min_ms"] <= lo["rtt_avg_ms"] <= lo["rtt_max_ms"] < 100
    assert lo["jitter_ms"] is not None
    assert nx["error"] == "does not resolve" and nx["received"] == 0
    assert out["status"][1]["data"]["state"] == "online"


def test_once_falls_back_on_older_and_other_systems(tmp_path: Path) -> None:
    """No /etc/openwrt_release, no /tmp/sysinfo, a kernel without MemAvailable, swap,
    no conntrack, a WAN called eth0.2 found through the default route."""
    root = fake_root(tmp_path)
    (root / "etc/openwrt_release").unlink()
    (root / "tmp/sysinfo/model").unlink()
    for name in ("nf_conntrack_count", "nf_conntrack_max"):
        (root / "proc/sys/net/netfilter" / name).unlink()
    meminfo = (root / "proc/meminfo").read_text().splitlines()
    meminfo = [line for line in meminfo if not line.startswith(("MemAvailable", "Swap"))]
    (root / "proc/meminfo").write_text("\n".join(meminfo + [
        "SwapTotal:         65532 kB", "SwapFree:          49152 kB"]) + "\n")
    (root / "sys/class/net/wan").rename(root / "sys/class/net/eth0.2")
    route = (root / "proc/net/route").read_text().replace("wan\t", "eth0.2\t")
    (root / "proc/net/route").write_text(route)
    env = agent_env("busybox sh", tmp_path, root, PROBE_INTERVAL=0, ROLE="gateway",
                    WAN_IFACE="wan")
    out = run_once("busybox sh", env)
    assert sorted(out) == ["inventory", "metrics", "status"]
    for topic, doc in out.values():
        assert_valid(topic, doc)
    metrics, inventory = out["metrics"][1]["data"], out["inventory"][1]["data"]
    free = sum(fixture_meminfo_kb(k) for k in ("MemFree", "Buffers", "Cached"))
    assert metrics["mem_available_bytes"] == free * 1024
    assert (metrics["swap_total_bytes"], metrics["swap_used_bytes"]) == (65532 * 1024,
                                                                         16380 * 1024)
    assert "conntrack_count" not in metrics
    nets = nets_of(metrics)
    assert nets["eth0.2"]["wan"] is True and nets["eth0.2"]["speed_bps"] == 10**9
    assert inventory["os"] == {"name": "Linux", "version": "5.15.167"}
    assert "description" not in inventory
    assert inventory["system"] == {"model": "TP-Link Archer C6 v3"}  # device-tree, NUL cut
    assert inventory["asset"] == {"role": "gateway"}


# Recorded outputs of iputils ping (Debian, Ubuntu) and BusyBox ping (OpenWrt).
PING_OUTPUTS = {
    "iputils-ok": """PING 1.1.1.1 (1.1.1.1) 56(84) bytes of data.
64 bytes from 1.1.1.1: icmp_seq=1 ttl=57 time=23.4 ms
64 bytes from 1.1.1.1: icmp_seq=2 ttl=57 time=31.9 ms
64 bytes from 1.1.1.1: icmp_seq=3 ttl=57 time=22.8 ms

--- 1.1.1.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2003ms
rtt min/avg/max/mdev = 22.800/26.033/31.900/4.156 ms
""",
    "iputils-partial": """PING 10.0.0.5 (10.0.0.5) 56(84) bytes of data.
From 10.0.0.1 icmp_seq=1 Destination Host Unreachable
64 bytes from 10.0.0.5: icmp_seq=3 ttl=63 time=412 ms

--- 10.0.0.5 ping statistics ---
3 packets transmitted, 1 received, +1 errors, 66.6667% packet loss, time 2034ms
rtt min/avg/max/mdev = 412.000/412.000/412.000/0.000 ms
""",
    "iputils-lost": """PING 10.0.0.99 (10.0.0.99) 56(84) bytes of data.

--- 10.0.0.99 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2047ms
""",
    "iputils-nx": "ping: portal.invalid: Name or service not known\n",
    "busybox-dup": """PING 192.168.1.1 (192.168.1.1): 56 data bytes
64 bytes from 192.168.1.1: seq=0 ttl=64 time=0.912 ms
64 bytes from 192.168.1.1: seq=0 ttl=64 time=1.204 ms (DUP!)
64 bytes from 192.168.1.1: seq=1 ttl=64 time=0.611 ms

--- 192.168.1.1 ping statistics ---
2 packets transmitted, 2 packets received, 1 duplicates, 0% packet loss
round-trip min/avg/max = 0.611/0.909/1.204 ms
""",
    "busybox-unreachable": """PING 8.8.8.8 (8.8.8.8): 56 data bytes
ping: sendto: Network is unreachable
""",
}


def test_probe_reads_iputils_and_busybox_ping_output(tmp_path: Path) -> None:
    """The probe's parser on recorded outputs, played back by a stand-in for ping
    (PING is a setting): the output file is chosen by the host name pinged."""
    outputs = tmp_path / "ping-outputs"
    outputs.mkdir()
    for name, text in PING_OUTPUTS.items():
        (outputs / name).write_text(text)
    player = tmp_path / "recorded-ping"
    player.write_text(f'for host; do :; done\ncat "{outputs}/$host"\n')
    env = agent_env("busybox sh", tmp_path, fake_root(tmp_path), PING=f"sh {player}",
                    TARGETS=" ".join(f"t{i}:custom:{name}"
                                     for i, name in enumerate(PING_OUTPUTS)))
    topic, probe = run_once("busybox sh", env)["probe"]
    assert_valid(topic, probe)
    got = {t["host"]: t for t in probe["data"]["targets"]}

    def stats(host: str) -> tuple:
        t = got[host]
        return (t["sent"], t["received"], t["loss_percent"], t["rtt_min_ms"],
                t["rtt_avg_ms"], t["rtt_max_ms"], t["jitter_ms"], t["error"])

    assert stats("iputils-ok") == (3, 3, 0, 22.8, 26.033, 31.9, 8.8, None)
    assert stats("iputils-partial") == (3, 1, 66.7, 412, 412, 412, None, None)
    assert stats("iputils-lost") == (3, 0, 100, None, None, None, None, "timeout")
    assert stats("iputils-nx")[:3] == (0, 0, None)
    assert stats("iputils-nx")[-1] == "does not resolve"
    assert stats("busybox-dup") == (2, 2, 0, 0.611, 0.762, 0.912, 0.301, None)
    assert stats("busybox-unreachable")[-1] == "network unreachable"


@pytest.mark.parametrize("shell", SHELLS)
def test_router_with_a_faulty_wan_port_through_the_collector(
        shell: str, mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Rates from moving counters, an interface_errors finding for the WAN port, and a
    clean stop (SIGTERM, as procd sends it) that leaves the router offline, not silent."""
    rules = tmp_path / "rules.toml"
    rules.write_text(INTERFACE_ERRORS_AT_ONCE, encoding="utf-8")
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "owrt-collector", sinks=[received],
                                rules_file=str(rules))
    root = fake_root(tmp_path)
    ticker = Ticker(root, {("wan", "rx_bytes"): 125_000, ("wan", "tx_bytes"): 25_000,
                           ("wan", "rx_errors"): 50}).start()
    env = agent_env(shell, tmp_path, root, BROKER_HOST="127.0.0.1",
                    BROKER_PORT=mosquitto.port, INTERVAL=1, PROBE_INTERVAL=2, WAN_MBIT=30)
    agent = AgentProcess(shell, env, tmp_path / "agent.log")
    try:
        def metrics_with_rates() -> list[dict]:
            return [s.data for s in list(received.samples) if s.channel == "metrics"
                    and "rx_bytes_per_s" in nets_of(s.data).get("wan", {})]

        wait_for(lambda: len(metrics_with_rates()) >= 2, 20, "two metrics with rates")
        data = metrics_with_rates()[-1]
        wan = nets_of(data)["wan"]
        assert 0.6 * 125_000 < wan["rx_bytes_per_s"] < 1.5 * 125_000, wan
        assert 0.6 * 25_000 < wan["tx_bytes_per_s"] < 1.5 * 25_000, wan
        assert wan["rx_errors_per_s"] > 2 and wan["tx_errors_per_s"] == 0
        assert nets_of(data)["lan1"]["rx_bytes_per_s"] == 0  # counters that did not move
        assert 10 < data["cpu_percent"] < 40  # the ticker keeps a quarter busy

        def errors_finding() -> list[dict]:
            return [f for f in collector.findings.query(state="active", limit=100)
                    if f["finding"] == "interface_errors" and f["device"] == DEVICE]

        wait_for(lambda: errors_finding(), 15, "an interface_errors finding")
        assert [f["item"] for f in errors_finding()] == ["wan"]
        wait_for(lambda: any(s.channel == "probe" for s in received.samples), 10, "a probe")
        probe = next(s for s in received.samples if s.channel == "probe")
        assert probe.data["targets"][0]["received"] == 1
        assert any(s.channel == "inventory" for s in received.samples)
        assert device_state(collector)["status"] == "online"

        assert agent.terminate() == 0
        wait_for(lambda: device_state(collector)["status_reason"] == "shutdown", 10,
                 "status offline/shutdown")
        assert device_state(collector)["status"] == "offline"
        wait_for(lambda: agent.group_members() == [], 5, "every child process gone")
        assert collector.wait_idle(10)
        assert collector.metrics.totals()["rejected"] == 0
        later = time.time() + 3600
        collector.state.mark_silent(later)
        collector.engine.check_silence(later)
        silent = [f for f in collector.findings.query(state="active", limit=100)
                  if f["finding"] == "device_silent"]
        assert silent == []
        assert "Terminated" not in agent.output() and "Killed" not in agent.output()
    finally:
        print(agent.output())  # shown when the test fails
        agent.cleanup()
        ticker.stop()
        collector.stop()


def test_power_cut_gives_the_last_will_and_a_silent_router(mosquitto: Mosquitto,
                                                           tmp_path: Path) -> None:
    collector = start_collector(mosquitto, tmp_path, "owrt-collector")
    root = fake_root(tmp_path)
    env = agent_env("busybox sh", tmp_path, root, BROKER_HOST="127.0.0.1",
                    BROKER_PORT=mosquitto.port, INTERVAL=1, PROBE_INTERVAL=0)
    agent = AgentProcess("busybox sh", env, tmp_path / "agent.log")
    try:
        wait_for(lambda: (device_state(collector) or {}).get("metrics_ts") is not None
                 and device_state(collector)["hostname"] == "OpenWrt", 15,
                 "metrics and inventory")
        assert device_state(collector)["status"] == "online"
        agent.power_cut()  # the agent and its will-holding mosquitto_pub die at once
        wait_for(lambda: device_state(collector)["status"] == "offline", 10, "the Last Will")
        assert device_state(collector)["status_reason"] == "lost"
        later = time.time() + 3600
        collector.state.mark_silent(later)
        collector.engine.check_silence(later)
        silent = [(f["finding"], f["site"], f["device"])
                  for f in collector.findings.query(state="active", limit=100)]
        assert ("device_silent", SITE, DEVICE) in silent
        assert collector.metrics.totals()["rejected"] == 0
    finally:
        print(agent.output())  # shown when the test fails
        agent.cleanup()
        collector.stop()


def test_broker_outage_loses_nothing_and_backfills_with_original_times(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "owrt-collector", sinks=[received])
    root = fake_root(tmp_path)
    env = agent_env("busybox sh", tmp_path, root, BROKER_HOST="127.0.0.1",
                    BROKER_PORT=mosquitto.port, INTERVAL=1, PROBE_INTERVAL=2)
    agent = AgentProcess("busybox sh", env, tmp_path / "agent.log")
    run_dir = tmp_path / "run"
    try:
        wait_for(lambda: len(received.seqs("metrics")) >= 2, 15, "first metrics")
        mosquitto.stop(kill=True)  # the link drops
        wait_for(lambda: len(queued(run_dir)) >= 6, 15, "a backlog on the router")
        backlog = queued(run_dir)
        reconnected = time.time()
        mosquitto.start()  # same port
        wait_for(lambda: set(backlog) <= {seq for _, _, seq in received.by_key}, 30, "the backlog")
        for seq, (channel, ts) in backlog.items():
            sample = received.by_key[(SITE, DEVICE, seq)]
            assert (sample.channel, sample.ts) == (channel, ts)
            assert ts < reconnected
        assert any(received.by_key[(SITE, DEVICE, seq)].from_batch for seq in backlog)
        assert {channel for channel, _ in backlog.values()} == {"metrics", "probe"}
        wait_for(lambda: device_state(collector)["status"] == "online", 10, "online again")
        wait_for(lambda: [s for s in received.samples
                          if s.channel == "metrics" and s.ts > reconnected], 10, "new metrics")
        later = [s for s in received.samples if s.channel == "metrics" and s.ts > reconnected]
        # One failed publish per round while the broker was away.
        assert later[0].data["agent"]["publish_failures_total"] >= len(
            [c for c, _ in backlog.values() if c == "metrics"])
        assert collector.wait_idle(10)
        assert collector.metrics.totals()["rejected"] == 0
        assert agent.terminate() == 0
    finally:
        print(agent.output())  # shown when the test fails
        agent.cleanup()
        collector.stop()


def test_backlog_bound_drops_the_oldest_and_counts_them(mosquitto: Mosquitto,
                                                        tmp_path: Path) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "owrt-collector", sinks=[received])
    mosquitto.stop()  # unreachable from the agent's start
    root = fake_root(tmp_path)
    env = agent_env("busybox sh", tmp_path, root, BROKER_HOST="127.0.0.1",
                    BROKER_PORT=mosquitto.port, INTERVAL=1, PROBE_INTERVAL=0,
                    BACKLOG_MAX=3)
    agent = AgentProcess("busybox sh", env, tmp_path / "agent.log")
    run_dir = tmp_path / "run"
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 20
        while len(seen) < 7:
            assert time.monotonic() < deadline, "the agent does not queue"
            now = queued(run_dir)
            assert len(now) <= 3
            seen |= set(now)
            time.sleep(0.1)
        last = queued(run_dir)
        dropped = seen - set(last)
        reconnected = time.time()
        mosquitto.start()
        wait_for(lambda: max(last) in {s.seq for s in received.samples}, 20,
                 "the newest queued envelope")
        wait_for(lambda: [s for s in received.samples
                          if s.channel == "metrics" and s.ts > reconnected], 20,
                 "metrics made after the outage")
        assert collector.wait_idle(10)
        arrived = {s.seq for s in received.samples}
        assert not arrived & dropped, "a dropped envelope arrived"
        assert 1 <= len(arrived & seen) <= 3
        after = [s for s in received.samples if s.channel == "metrics" and s.ts > reconnected]
        assert after[0].data["agent"]["queue_dropped_total"] >= len(dropped) >= 4
        assert collector.metrics.totals()["rejected"] == 0
        assert agent.terminate() == 0
    finally:
        print(agent.output())  # shown when the test fails
        agent.cleanup()
        collector.stop()


def _settle(received: Received, quiet_s: float = 1.0, timeout_s: float = 10.0) -> None:
    """Wait until nothing new has arrived for quiet_s."""
    deadline = time.monotonic() + timeout_s
    count, since = len(received.samples), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "messages keep arriving"
        time.sleep(0.05)
        if len(received.samples) != count:
            count, since = len(received.samples), time.monotonic()


def test_seq_survives_a_restart_and_is_written_once_per_block(mosquitto: Mosquitto,
                                                              tmp_path: Path) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "owrt-collector", sinks=[received])
    root = fake_root(tmp_path)
    seq_file = tmp_path / "state" / "seq"
    env = agent_env("busybox sh", tmp_path, root, BROKER_HOST="127.0.0.1",
                    BROKER_PORT=mosquitto.port, INTERVAL=1, PROBE_INTERVAL=1)
    agent = AgentProcess("busybox sh", env, tmp_path / "agent1.log")
    try:
        wait_for(lambda: len(received.samples) >= 1, 15, "a first message")
        reserved, mtime = int(seq_file.read_text()), seq_file.stat().st_mtime_ns
        wait_for(lambda: len(received.samples) >= 12, 20, "a dozen messages")
        assert agent.terminate() == 0
        _settle(received)  # the goodbye, said twice, may still be on its way
        first = {s.seq for s in received.samples}
        # One write for the run: a block of 1000 reserved at start, never touched again.
        assert (int(seq_file.read_text()), seq_file.stat().st_mtime_ns) == (reserved, mtime)
        assert max(first) < reserved <= min(first) + 1000

        count = len(received.samples)
        agent = AgentProcess("busybox sh", dict(env, SEQ_BLOCK="4"),
                             tmp_path / "agent2.log")
        wait_for(lambda: len(received.samples) >= count + 10, 20, "messages after a restart")
        assert agent.terminate() == 0
        second = {s.seq for s in received.samples} - first
        assert min(second) >= reserved
        assert int(seq_file.read_text()) > max(second)  # small blocks: reserved as it went
        assert collector.metrics.totals()["duplicate"] == 0
    finally:
        print(agent.output())  # shown when the test fails
        agent.cleanup()
        collector.stop()


@pytest.mark.parametrize(("setting", "value"), [
    ("SITE", "An Phuoc"), ("DEVICE", "-router"), ("SITE", ""), ("INTERVAL", "0"),
    ("TARGETS", "gw:router:192.168.1.1"), ("PURCHASE_DATE", "15/03/2021"),
    ("BROKER_HOST", ""), ("WAN_MBIT", "fast"),
])
def test_bad_settings_stop_the_agent_with_one_line(setting: str, value: str,
                                                   tmp_path: Path) -> None:
    env = agent_env("busybox sh", tmp_path, fake_root(tmp_path), BROKER_HOST="127.0.0.1")
    env[setting] = value
    result = subprocess.run(command("busybox sh"), env=env, capture_output=True, text=True,
                            timeout=10)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and setting in result.stderr, result.stderr
    assert result.stdout == ""


def test_help_and_scripts_parse_under_both_shells() -> None:
    result = subprocess.run(command("dash", "--help"), capture_output=True, text=True,
                            timeout=10)
    assert result.returncode == 0 and "Usage: cwatch-agent" in result.stdout
    agent_dir = Path(command("dash")[1]).parent
    for script in ("cwatch-agent", "cwatch.init"):
        for shell in (["dash", "-n"], ["busybox", "sh", "-n"]):
            subprocess.run([*shell, str(agent_dir / script)], check=True, timeout=10)
    assert os.access(agent_dir / "cwatch-agent", os.X_OK)
