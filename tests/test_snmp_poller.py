"""The agent's SNMP and ping poller of routers and switches, against a real snmpd (Debian's
net-snmp, started per module on a free UDP port), a real mosquitto and the real collector."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_helpers import Received, agent_toml
from collector_helpers import INTERFACE_ERRORS_AT_ONCE, start_collector, wait_until
from jsonschema import Draft7Validator
from snmp_helpers import Snmpd, machine_interfaces

import cwatch
from agent import config as agent_config
from agent.config import PolledDeviceSection
from agent.probes.connectivity import Target, probe_echo
from agent.service import Agent
from agent.snmp import poller
from agent.snmp.publisher import device_dir
from agent.snmp.session import Answer
from cwatch import protocol
from cwatch.config import ConfigError
from cwatch.procs import Mosquitto

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = protocol.load_schema()
VALIDATORS = {ch: Draft7Validator(protocol.channel_schema(SCHEMA, ch)) for ch in protocol.CHANNELS}
SITE = "an-phuoc"


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    server = Snmpd(tmp_path_factory.mktemp("snmpd")).start()
    yield server
    server.stop()


# --- helpers -------------------------------------------------------------------------------


def v2c(name: str, snmpd: Snmpd, **extra: object) -> str:
    keys = {"device": name, "host": snmpd.host, "port": snmpd.port,
            "community": snmpd.community, "timeout_s": 1, "retries": 0, **extra}
    return "[[polled]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())


def v3(name: str, snmpd: Snmpd, **extra: object) -> str:
    keys = {"device": name, "host": snmpd.host, "port": snmpd.port, "snmp": "3",
            "user": snmpd.user, "auth_protocol": "sha", "auth_password": snmpd.auth_password,
            "priv_protocol": "aes", "priv_password": snmpd.priv_password, "timeout_s": 1,
            "retries": 0, **extra}
    return "[[polled]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def config_for(tmp_path: Path, broker: Mosquitto, polled: str) -> agent_config.AgentConfig:
    path = agent_toml(tmp_path / "agent.toml", broker.url, tmp_path / "data", extra=polled)
    return agent_config.load(path, {})


class Running:
    """The real agent in a thread of this process (so its log lines reach caplog)."""

    def __init__(self, config: agent_config.AgentConfig) -> None:
        self.agent = Agent(config)
        self.thread = threading.Thread(target=self.agent.run, daemon=True)

    def __enter__(self) -> Agent:
        self.thread.start()
        return self.agent

    def __exit__(self, *exc: object) -> None:
        self.agent.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the agent did not stop"


def of(received: Received, device: str, channel: str) -> list:
    with received._lock:  # noqa: SLF001 - the helper's own lock, read-only here
        return [s for s in received.samples if s.device == device and s.channel == channel]


def assert_valid(received: Received, devices: set[str]) -> None:
    """Every accepted sample of these devices, as an envelope, passes the JSON Schema."""
    with received._lock:  # noqa: SLF001
        samples = [s for s in received.samples if s.device in devices]
    assert samples
    for s in samples:
        env = protocol.envelope(s.site, s.device, s.ts, s.seq, s.data)
        errors = [e.message for e in VALIDATORS[s.channel].iter_errors(env)]
        assert errors == [], (s.channel, errors)


def with_rates(received: Received, device: str) -> list:
    return [s for s in of(received, device, "metrics")
            if any("rx_bytes_per_s" in nic for nic in s.data.get("net", []))]


def unreachable_host() -> str:
    """An address that answers neither ping nor anything else from here. TEST-NET and
    discard addresses are not equally dead everywhere (a sandbox may proxy TCP), so the
    agent's own echo decides."""
    for host in ("100::1", "192.0.2.77", "198.51.100.77", "203.0.113.77"):
        result = probe_echo(Target("lan", "device", host, "icmp", count=1), 0.5)
        if not result["received"]:
            return host
    pytest.fail("no address here that answers no ping")


# --- polls of the real snmpd --------------------------------------------------------------


def test_v2c_and_v3_polls_give_valid_metrics_and_inventory(
        snmpd: Snmpd, mosquitto: Mosquitto, tmp_path: Path) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "snmp-polls", sinks=[received])
    wan = snmpd.error_interface
    config = config_for(tmp_path, mosquitto, v2c("router-v2c", snmpd, wan_interface=wan,
                                                 wan_mbit=40, tag="AP-R1") +
                        v3("router-v3", snmpd, role="switch"))
    started = time.time()
    try:
        with Running(config):
            for device in ("router-v2c", "router-v3"):
                received.wait_for(lambda d=device: len(with_rates(received, d)) >= 1, 20,
                                  f"{device}: metrics with rates")
                received.wait_for(lambda d=device: of(received, d, "inventory"), 10,
                                  f"{device}: inventory")
            state = {d: collector.state.device(SITE, d) for d in ("router-v2c", "router-v3")}
        # The clean stop says goodbye for the polled devices too.
        received.wait_for(lambda: [s for s in of(received, "router-v2c", "status")
                                   if s.data["state"] == "offline"], 10, "goodbye")
        totals = collector.metrics.totals()
    finally:
        collector.stop()
    assert totals["rejected"] == 0
    assert_valid(received, {"router-v2c", "router-v3"})
    machine = {name for _index, name in machine_interfaces()}
    for device in ("router-v2c", "router-v3"):
        inventory = of(received, device, "inventory")[0].data
        assert inventory["hostname"] == snmpd.sys_name
        assert inventory["description"] == snmpd.sys_descr
        assert inventory["os"] == {"name": "Linux", "version": "6.1.0"}
        assert inventory["polled_by"] == "pc-01"
        assert inventory["ram_bytes"] > 0
        first, second = of(received, device, "metrics")[:2]
        for sample in (first, second):
            data = sample.data
            assert data["interval_s"] == 1
            assert data["uptime_s"] > 0
            assert abs(data["boot_ts"] - (sample.ts - data["uptime_s"])) <= 1
            # hrProcessorLoad: two processors at 10 % and 30 % (snmp_helpers.CPU_LOADS).
            assert (data["cpu_count"], data["cpu_percent"], data["cpu_max_core_percent"]) == (
                2, 20.0, 30.0)
            assert data["mem_total_bytes"] == inventory["ram_bytes"]
            names = {nic["name"] for nic in data["net"]}
            assert "lo" not in names  # softwareLoopback is skipped
            assert machine <= names
        # Rates need two polls: none in the first, all of them in the second.
        assert not any(k.endswith("_per_s") for nic in first.data["net"] for k in nic)
        nic = next(n for n in second.data["net"] if n["name"] == wan)
        for key in ("rx_bytes_per_s", "tx_bytes_per_s", "rx_errors_per_s", "tx_errors_per_s",
                    "rx_drops_per_s", "tx_drops_per_s"):
            assert nic[key] >= 0, key
        assert isinstance(nic["up"], bool)
        status = of(received, device, "status")
        assert status[0].data["state"] == "online" and status[0].ts >= started - 1
        # A device of its own in the collector, with the role from its inventory.
        assert state[device]["status"] == "online"
        probe = of(received, device, "probe")[0].data["targets"]
        assert [(t["name"], t["kind"], t["host"]) for t in probe] == [
            ("lan", "device", snmpd.host)]
        assert probe[0]["received"] > 0
    assert state["router-v2c"]["role"] == "router"
    assert state["router-v3"]["role"] == "switch"
    wan_nic = next(n for n in of(received, "router-v2c", "metrics")[1].data["net"]
                   if n["name"] == wan)
    assert wan_nic["wan"] is True and wan_nic["speed_bps"] == 40_000_000
    assert of(received, "router-v2c", "inventory")[0].data["asset"]["tag"] == "AP-R1"
    assert of(received, "router-v2c", "status")[-1].data == {
        "state": "offline", "reason": "shutdown", "agent_version": cwatch.__version__,
        "interval_s": 1.0}


def test_wrong_community_or_password_is_one_warning_and_ping_goes_on(
        snmpd: Snmpd, mosquitto: Mosquitto, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "snmp-bad", sinks=[received])
    config = config_for(tmp_path, mosquitto,
                        v2c("bad-community", snmpd, community="not-the-community",
                            timeout_s=0.3) +
                        v3("bad-password", snmpd, auth_password="not-the-password"))
    caplog.set_level("WARNING", logger="agent.snmp")
    try:
        with Running(config):
            for device in ("bad-community", "bad-password"):
                received.wait_for(lambda d=device: len(of(received, d, "probe")) >= 3, 20,
                                  f"{device}: three probes")
        totals = collector.metrics.totals()
    finally:
        collector.stop()
    assert totals["rejected"] == 0
    assert_valid(received, {"bad-community", "bad-password"})
    warnings = {d: [r.getMessage() for r in caplog.records
                    if r.levelname == "WARNING" and r.getMessage().startswith(d + " ")]
                for d in ("bad-community", "bad-password")}
    # Once, not every poll; one line that names the device and says what is wrong.
    assert len(warnings["bad-community"]) == 1, warnings
    assert "no SNMP answer within 0.3 s (1 try): wrong community" in \
        warnings["bad-community"][0]
    assert len(warnings["bad-password"]) == 1, warnings
    assert "authentication failed: wrong auth_password" in warnings["bad-password"][0]
    assert all("\n" not in w[0] for w in warnings.values())
    for device in ("bad-community", "bad-password"):
        assert not of(received, device, "metrics")
        assert not of(received, device, "inventory")  # nothing known about it but ping
        assert of(received, device, "status")[0].data["state"] == "online"  # it does answer
        target = of(received, device, "probe")[0].data["targets"][0]
        assert target["kind"] == "device" and target["received"] > 0


def test_router_in_the_collector_and_interface_errors_finding(
        snmpd: Snmpd, mosquitto: Mosquitto, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(INTERFACE_ERRORS_AT_ONCE, encoding="utf-8")
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "snmp-rules", sinks=[received],
                                rules_file=str(rules))
    config = config_for(tmp_path, mosquitto, v2c("router-01", snmpd, location="Tủ mạng"))
    stop_errors = threading.Event()

    def raise_errors() -> None:  # a bad cable: about 60 errors/s on the test interface
        while not stop_errors.wait(0.25):
            snmpd.add_errors(15)

    try:
        with Running(config):
            received.wait_for(lambda: with_rates(received, "router-01"), 20, "rates")
            raiser = threading.Thread(target=raise_errors, daemon=True)
            raiser.start()
            wait_until(lambda: collector.findings.query(state="active", device="router-01"),
                       20, "an interface_errors finding")
            stop_errors.set()
            raiser.join()
        findings = collector.findings.query(state="active", limit=1000)
        totals = collector.metrics.totals()
        device = collector.state.device(SITE, "router-01")
    finally:
        stop_errors.set()
        collector.stop()
    assert totals["rejected"] == 0 and totals["accepted"] > 0
    found = [f for f in findings if f["device"] == "router-01"]
    assert [(f["finding"], f["item"]) for f in found] == [
        ("interface_errors", snmpd.error_interface)]
    assert found[0]["value"] > 2
    assert device["role"] == "router" and device["hostname"] == snmpd.sys_name
    assert device["inventory"]["asset"]["location"] == "Tủ mạng"
    rising = [nic["rx_errors_per_s"] for s in of(received, "router-01", "metrics")
              for nic in s.data.get("net", [])
              if nic["name"] == snmpd.error_interface and "rx_errors_per_s" in nic]
    assert max(rising) > 2


def test_unreachable_device_goes_offline_and_silent_ping_only_device_online(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    dead = unreachable_host()
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "snmp-dead", sinks=[received])
    polled = (f'[[polled]]\ndevice = "gone"\nhost = "{dead}"\ncommunity = "x"\n'
              "timeout_s = 0.3\nretries = 0\n"
              '[[polled]]\ndevice = "lan-switch"\nhost = "127.0.0.1"\nsnmp = "none"\n'
              'role = "switch"\n')
    config = config_for(tmp_path, mosquitto, polled)
    try:
        with Running(config):
            received.wait_for(lambda: of(received, "gone", "status"), 30, "gone: offline")
            time.sleep(3)  # more polls: still silent
            received.wait_for(lambda: of(received, "lan-switch", "probe"), 10, "a probe")
            later = time.time() + 3600
            collector.state.mark_silent(time.time())
            collector.engine.check_silence(later)
            findings = collector.findings.query(state="active", limit=1000)
        totals = collector.metrics.totals()
    finally:
        collector.stop()
    assert totals["rejected"] == 0
    assert_valid(received, {"gone", "lan-switch"})
    status = of(received, "gone", "status")
    assert [s.data["state"] for s in status] == ["offline"]  # once (the stop adds nothing)
    assert status[0].data["reason"] == "lost"
    # Before the verdict at most one probe (the first miss), nothing at all after it.
    assert len(of(received, "gone", "probe")) <= 1
    assert not [s for s in received.samples if s.device == "gone"
                and s.channel != "status" and s.ts > status[0].ts]
    assert [(f["finding"], f["device"]) for f in findings] == [("device_silent", "gone")]
    # The ping-only device: online, its probe with kind device, a minimal inventory.
    assert of(received, "lan-switch", "status")[0].data["state"] == "online"
    target = of(received, "lan-switch", "probe")[0].data["targets"][0]
    assert (target["kind"], target["host"], target["loss_percent"]) == (
        "device", "127.0.0.1", 0.0)
    inventory = of(received, "lan-switch", "inventory")[0].data
    assert inventory["asset"]["role"] == "switch" and inventory["os"] == {"name": "unknown"}
    assert not of(received, "lan-switch", "metrics")


def test_broker_outage_backfills_the_polled_device(
        snmpd: Snmpd, mosquitto: Mosquitto, tmp_path: Path) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "snmp-fwd", sinks=[received])
    config = config_for(tmp_path, mosquitto, v2c("router-01", snmpd))
    queue_db = device_dir(tmp_path / "data", "router-01") / "queue.db"
    try:
        with Running(config):
            # Two polls: by then mosquitto (autosave every second) has saved the collector's
            # subscription, so the broker killed below keeps messages for it after its restart.
            received.wait_for(lambda: len(of(received, "router-01", "metrics")) >= 2, 20,
                              "metrics")
            time.sleep(1)
            mosquitto.stop(kill=True)
            outage = time.time()
            time.sleep(5)
            with sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True) as db:
                buffered = db.execute("SELECT channel, payload FROM queue").fetchall()
            made = {}
            for channel, payload in buffered:
                env = json.loads(payload)
                made[env["seq"]] = (channel, env["ts"])
            assert sum(1 for ch, _ts in made.values() if ch == "metrics") >= 3, made
            mosquitto.start()
            received.wait_for(lambda: set(made) <= {s.seq for s in received.samples
                                                     if s.device == "router-01"},
                              30, "the polled device's backlog")
        totals = collector.metrics.totals()
    finally:
        collector.stop()
    assert totals["rejected"] == 0
    got = {s.seq: s for s in received.samples if s.device == "router-01"}
    # Arrived with their original sample times, some in compressed batches.
    assert {seq: (got[seq].channel, got[seq].ts) for seq in made} == made
    assert any(got[seq].from_batch for seq in made)
    assert all(ts >= outage - 1.5 for _ch, ts in made.values())


def test_without_pysnmp_devices_are_pinged_after_one_warning(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    received = Received()
    collector = start_collector(mosquitto, tmp_path, "snmp-none", sinks=[received])
    path = agent_toml(tmp_path / "agent.toml", mosquitto.url, tmp_path / "data", extra=(
        '[[polled]]\ndevice = "router-01"\nhost = "127.0.0.1"\ncommunity = "public"\n'
        '[[polled]]\ndevice = "switch-01"\nhost = "127.0.0.1"\nsnmp = "3"\nuser = "u"\n'
        'auth_password = "12345678"\npriv_protocol = "none"\n'))
    script = ("import sys\n"
              "sys.modules['pysnmp'] = None  # as if the [snmp] extra were not installed\n"
              "from cwatch.cli import main\n"
              f"sys.exit(main(['agent', '--config', {str(path)!r}]))\n")
    agent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True)
    try:
        for device in ("router-01", "switch-01"):
            received.wait_for(lambda d=device: len(of(received, d, "probe")) >= 2, 20,
                              f"{device}: pinged")
        assert agent.poll() is None, "the agent ended"
        agent.send_signal(signal.SIGTERM)
        _out, err = agent.communicate(timeout=30)
        received.wait_for(lambda: [s for s in of(received, "router-01", "status")
                                   if s.data["state"] == "offline"], 10, "goodbye")
        totals = collector.metrics.totals()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
        collector.stop()
    assert agent.returncode == 0, err
    assert totals["rejected"] == 0
    warnings = [line for line in err.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, err
    assert "SNMP polling is not available here: pysnmp is not installed" in warnings[0]
    assert "router-01, switch-01" in warnings[0]
    for device in ("router-01", "switch-01"):
        assert not of(received, device, "metrics")
        assert of(received, device, "status")[0].data["state"] == "online"
        assert of(received, device, "inventory")[0].data["os"] == {"name": "unknown"}
        assert of(received, device, "probe")[0].data["targets"][0]["received"] > 0


# --- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "message"), [
    ('device = "Router 1"\nhost = "10.0.0.1"\ncommunity = "c"',
     "[polled #1] device 'Router 1' must match"),
    ('device = "r1"\nhost = "10.0.0.1"\nsnmp = "1"\ncommunity = "c"',
     "[polled #1] snmp '1' must be \"2c\", \"3\" or \"none\""),
    ('device = "r1"\nhost = "10.0.0.1"\nsnmp = "3"\nauth_password = "12345678"',
     "[polled #1] user is required with snmp = \"3\""),
    ('device = "r1"\nhost = "10.0.0.1"', "[polled #1] community (or community_env) is required"),
    ('device = "r1"\nhost = "10.0.0.1"\nsnmp = "3"\nuser = "u"\nauth_password = "short"',
     "[polled #1] auth_password (or auth_password_env) of at least 8 characters"),
    ('device = "r1"\nhost = "10.0.0.1"\ncommunity_env = "CWATCH_TEST_UNSET_COMMUNITY"',
     "[polled #1] community_env: environment variable CWATCH_TEST_UNSET_COMMUNITY is not set"),
    ('device = "r1"\nhost = "10.0.0.1"\ncomunity = "c"', "[polled #1] unknown key 'comunity'"),
    ('device = "pc-01"\nhost = "10.0.0.1"\nsnmp = "none"',
     "[polled #1] device 'pc-01' is already used"),
])
def test_bad_polled_device_fails_in_one_line_naming_the_key(
        tmp_path: Path, table: str, message: str) -> None:
    path = agent_toml(tmp_path / "agent.toml", "mqtt://127.0.0.1:1", tmp_path / "data",
                      extra="[[polled]]\n" + table + "\n")
    with pytest.raises(ConfigError) as info:
        agent_config.load(path, {})
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_polled_device_stops_the_agent_command(tmp_path: Path) -> None:
    path = agent_toml(tmp_path / "agent.toml", "mqtt://127.0.0.1:1", tmp_path / "data",
                      extra='[[polled]]\ndevice = "r1"\nhost = "10.0.0.1"\nsnmp = "v2"\n')
    result = subprocess.run([sys.executable, "-m", "cwatch", "agent", "--config", str(path),
                             "--once", "--print"], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"cwatch agent: error: {path}: [polled #1] snmp 'v2' must be \"2c\", \"3\" or \"none\""]


def test_secrets_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_COMMUNITY", "from-env")
    path = agent_toml(tmp_path / "agent.toml", "mqtt://127.0.0.1:1", tmp_path / "data",
                      extra='[[polled]]\ndevice = "r1"\nhost = "10.0.0.1"\n'
                            'community_env = "ROUTER_COMMUNITY"\n')
    polled = agent_config.load(path, {}).polled[0]
    assert polled.secret("community") == "from-env" and polled.community == ""


def test_example_config_block_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commented [[polled]] examples in deploy/agent.example.toml are valid once
    uncommented (lines starting with '#' directly followed by text are config)."""
    example = (ROOT / "deploy" / "agent.example.toml").read_text(encoding="utf-8")
    lines = [line[1:] if line.startswith("#") and line[1:2] not in ("", " ", "#") else line
             for line in example.splitlines()]
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in ("CWATCH_ROUTER_COMMUNITY", "CWATCH_SWITCH_AUTH", "CWATCH_SWITCH_PRIV"):
        monkeypatch.setenv(name, "example-secret")
    polled = agent_config.load(path, {}).polled
    assert [p.snmp for p in polled] == ["2c", "3", "none"]
    assert polled[0].wan_interface and polled[0].wan_mbit


# --- answers to data, without a device ----------------------------------------------------


def test_counters_wrap_reset_and_reboot() -> None:
    counters = poller.Counters()
    key = ("4", "eth0", "rx_bytes_per_s")
    assert counters.new_round(("hrSystemUptime", 100.0))
    assert counters.rate(key, 2 ** 32 - 100, 32, 10.0) is None  # first poll: no rate
    counters.end_round()
    counters.new_round(("hrSystemUptime", 101.0))
    assert counters.rate(key, 50, 32, 11.0) == 150.0  # wrapped past 2^32
    counters.end_round()
    counters.new_round(("hrSystemUptime", 102.0))
    assert counters.rate(key, 250, 32, 12.0) == 200.0  # and goes on from there
    counters.end_round()
    counters.new_round(("hrSystemUptime", 103.0))
    assert counters.rate(key, 3_000_000_000, 32, 13.0) == pytest.approx(2_999_999_750)
    counters.end_round()
    counters.new_round(("hrSystemUptime", 104.0))
    # Back by more than half the range: a reset (or a very busy 32-bit port), no rate.
    assert counters.rate(key, 1_500_000_000, 32, 14.0) is None
    counters.end_round()
    counters.new_round(("hrSystemUptime", 105.0))
    assert counters.rate(key, 1_500_000_100, 32, 15.0) == 100.0
    counters.end_round()
    assert not counters.new_round(("hrSystemUptime", 3.0))  # rebooted: everything forgotten
    assert counters.rate(key, 5000, 32, 16.0) is None
    counters.end_round()
    counters.new_round(("hrSystemUptime", 4.0))
    assert counters.rate(key, 5000, 32, 17.0) == 0.0
    big = ("4", "eth0", "tx_bytes_per_s")
    counters.rate(big, 2 ** 40, 64, 17.0)
    counters.end_round()
    counters.new_round(("hrSystemUptime", 5.0))
    assert counters.rate(big, 2 ** 40 - 1, 64, 18.0) is None  # a 64-bit counter never wraps
    assert counters.rate(("x",), 10 ** 18, 64, 18.0) is None
    counters.end_round()
    counters.new_round(("hrSystemUptime", 6.0))
    assert counters.rate(("x",), 10 ** 18 + 2 * 10 ** 15, 64, 19.0) is None  # > schema max


def test_interfaces_and_inventory_from_plain_answers() -> None:
    device = PolledDeviceSection(device="r1", host="10.0.0.1", community="c",
                                 wan_interface="WAN", wan_mbit=30)
    tables = {
        "ifDescr": {"1": b"lo", "2": b"port 1", "3": b"port 1", "7": b"wan"},
        "ifName": {"2": b"", "7": b"WAN"},
        "ifType": {"1": 24, "2": 6, "3": 6, "7": 6},
        "ifOperStatus": {"1": 1, "2": 1, "3": 7, "7": 6},
        "ifSpeed": {"2": 100_000_000, "3": 0, "7": 4294967295},
        "ifInOctets": {"2": 1000, "3": 0, "7": 5},
        "ifPhysAddress": {"1": b"\0" * 6, "2": bytes.fromhex("0011223344AA"),
                          "3": bytes.fromhex("0011223344aa"), "7": b"\x01\x02"},
        "hrStorageType": {"1": "1.3.6.1.2.1.25.2.1.4", "2": "1.3.6.1.2.1.25.2.1.2"},
        "hrStorageAllocationUnits": {"2": 1024}, "hrStorageSize": {"2": 262144},
        "hrStorageUsed": {"2": 65536},
        "hrProcessorLoad": {"1": 10, "2": 30},
    }
    answer = Answer({"sysDescr": b"RouterOS RB951Ui-2HnD\r\n", "sysName": b"",
                     "sysObjectID": "1.3.6.1.4.1.14988.1", "sysUpTime": 12345}, tables)
    data = poller.metrics(answer, poller.Counters(), 60.0, 1_800_000_000.0, 5.0, device)
    assert data["net"] == [
        {"name": "port 1", "up": True, "speed_bps": 100_000_000},
        {"name": "port 1-3", "up": False},
        {"name": "WAN", "up": None, "speed_bps": 30_000_000, "wan": True},
    ]
    assert (data["uptime_s"], data["boot_ts"]) == (123.45, 1_800_000_000 - 123)
    assert (data["cpu_percent"], data["cpu_max_core_percent"], data["cpu_count"]) == (
        20.0, 30.0, 2)
    assert data["mem_total_bytes"] == 256 * 2 ** 20 and data["mem_used_percent"] == 25.0
    inventory = poller.inventory(answer, device, "pc-01", "0.1.0")
    assert inventory["hostname"] == "r1"  # no sysName: the device id
    assert inventory["os"] == {"name": "RouterOS"}
    assert inventory["description"] == "RouterOS RB951Ui-2HnD"
    assert inventory["system"] == {"manufacturer": "MikroTik"}
    assert inventory["macs"] == ["00:11:22:33:44:aa"]
    for channel, payload in (("metrics", data), ("inventory", inventory)):
        env = protocol.envelope(SITE, "r1", 1_800_000_000.0, 1, payload)
        assert [e.message for e in VALIDATORS[channel].iter_errors(env)] == []
