"""The shipped broker config, ACL and `cwatch admin` accounts on a real mosquitto:
a device publishes only as itself and reads nothing, strangers are refused, TLS works
with the test CA, and a removed device can no longer log in."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import samples
import tomllib
from collector_helpers import start_collector, wait_until

from collector.config import EnrollSection
from cwatch import cli
from cwatch.admin.accounts import PasswordFile, check_password, hash_password
from cwatch.procs import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "mosquitto"
NOT_AUTHORISED = 0x87
ACCEPTED = (0x00, 0x10)  # success, and success with "no matching subscribers"


@dataclass
class SecureBroker:
    broker: Mosquitto
    tls_port: int
    ca_file: Path
    passwords: dict[str, str]  # account -> password, as `cwatch admin` printed them
    password_file: Path
    acl_file: Path


def admin(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["admin", *args])
    return code, out.getvalue(), err.getvalue()


def _printed_password(text: str) -> str:
    found = re.search(r'^password = "([^"]+)"$', text, re.M)
    assert found, text
    return found.group(1)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    tmp = tmp_path_factory.mktemp("secure-broker")
    subprocess.run([str(ROOT / "scripts" / "dev-ca.sh"), str(tmp / "certs")], check=True,
                   capture_output=True)
    acl, passwd = tmp / "cwatch.acl", tmp / "cwatch.passwd"
    acl.write_text((DEPLOY / "cwatch.acl").read_text())
    files = ["--password-file", str(passwd), "--acl-file", str(acl)]
    passwords = {}
    code, out, _ = admin("add-service", "cwatch-collector", "--password-file", str(passwd))
    assert code == 0
    passwords["cwatch-collector"] = _printed_password(out)
    for device, extra in (("pc-01", []), ("pc-02", []), ("pc-server", ["--polls", "router-01"])):
        code, out, err = admin("add-device", "an-phuoc", device, *extra, *files,
                               "--broker-url", "mqtts://127.0.0.1:8883",
                               "--ca-file", str(tmp / "certs" / "ca.crt"))
        assert code == 0, err
        assert f'username = "an-phuoc/{device}"' in out and "systemctl reload" in err
        passwords[f"an-phuoc/{device}"] = _printed_password(out)
    # The shipped settings, with this test's files and ports.
    tls_port = free_port()
    conf = (DEPLOY / "cwatch.conf").read_text()
    assert "max_queued_messages 2000000" in conf  # a province's traffic during a restart
    conf = conf.replace("/etc/mosquitto/certs/", f"{tmp}/certs/")
    conf = conf.replace("/etc/mosquitto/", f"{tmp}/")
    conf = conf.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
    conf = re.sub(r"^listener 1883 .*$", "", conf, flags=re.M)  # the fixture's own instead
    broker = Mosquitto(tmp / "broker", extra_conf=conf, anonymous=False).start()
    yield SecureBroker(broker, tls_port, tmp / "certs" / "ca.crt", passwords, passwd, acl)
    broker.stop()


class Client:
    """A paho MQTT 5 client that records what the broker answered."""

    def __init__(self, secure: SecureBroker, user: str | None, password: str | None = None,
                 *, tls: bool = False, ca_file: Path | None = None) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"t-{(user or 'anon').replace('/', '-')}-{time.time()}",
                                  protocol=mqtt.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password if password is not None
                                        else secure.passwords[user])
        if tls:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            self.client.tls_set_context(context)
        self.connack = threading.Event()
        self.reason: mqtt.ReasonCode | None = None
        self.received: list[str] = []
        self.acks: dict[int, int] = {}
        self.suback: list[int] = []
        self.client.on_connect = self._on_connect
        self.disconnected = threading.Event()
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc.value)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.suback.extend(
            r.value for r in rcs)
        self.client.on_message = lambda c, u, msg: self.received.append(msg.topic)
        port = secure.tls_port if tls else secure.broker.port
        try:
            self.client.connect("127.0.0.1", port)
        except (ssl.SSLError, OSError) as exc:
            self.reason, self.error = None, exc
            self.connack.set()
            return
        self.error = None
        self.client.loop_start()
        self.connack.wait(10)

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.reason = reason
        self.connack.set()

    @property
    def accepted(self) -> bool:
        return self.reason is not None and not self.reason.is_failure

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        wait_until(lambda: info.mid in self.acks, 10, f"PUBACK for {topic}")
        return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def envelope(device: str) -> bytes:
    env = samples.envelope("metrics", seq=int(time.time() * 1000), site="an-phuoc",
                           device=device)
    return json.dumps(env).encode()


def test_a_device_publishes_only_as_itself_and_reads_nothing(secure: SecureBroker) -> None:
    collector = Client(secure, "cwatch-collector")
    assert collector.accepted
    collector.client.subscribe("$share/cwatch/cwatch/v1/#", qos=1)
    wait_until(lambda: collector.suback, 10, "collector SUBACK")
    assert collector.suback == [1]
    spy = Client(secure, "an-phuoc/pc-02")
    spy.client.subscribe("cwatch/v1/#", qos=1)
    # Mosquitto 2.0 grants a wildcard subscription and checks the ACL on each message
    # it would deliver: the spy is subscribed, and gets nothing (asserted below).
    wait_until(lambda: spy.suback, 10, "spy SUBACK")
    pc1 = Client(secure, "an-phuoc/pc-01")
    try:
        assert pc1.publish("cwatch/v1/an-phuoc/pc-01/metrics", envelope("pc-01")) in ACCEPTED
        # As another PC, or as a device of another commune: the broker refuses it.
        assert pc1.publish("cwatch/v1/an-phuoc/pc-02/metrics", envelope("pc-02")) \
            == NOT_AUTHORISED
        assert pc1.publish("cwatch/v1/binh-minh/pc-01/metrics", envelope("pc-01")) \
            == NOT_AUTHORISED
        # A PC that polls a router may publish for it, and only for it.
        server = Client(secure, "an-phuoc/pc-server")
        assert server.publish("cwatch/v1/an-phuoc/router-01/metrics",
                              envelope("router-01")) in ACCEPTED
        assert server.publish("cwatch/v1/an-phuoc/router-02/metrics", envelope("router-02")) \
            == NOT_AUTHORISED
        server.close()
        wait_until(lambda: len(collector.received) >= 2, 10, "the allowed messages")
        time.sleep(0.5)
        assert sorted(collector.received) == ["cwatch/v1/an-phuoc/pc-01/metrics",
                                              "cwatch/v1/an-phuoc/router-01/metrics"]
        assert spy.received == []
    finally:
        for client in (pc1, spy, collector):
            client.close()


def test_only_the_collector_reads_the_brokers_drop_count(secure: SecureBroker) -> None:
    topic = "$SYS/broker/publish/messages/dropped"
    readers = {name: Client(secure, name) for name in ("cwatch-collector", "an-phuoc/pc-01")}
    try:
        for client in readers.values():
            client.client.subscribe(topic, qos=0)
        # Mosquitto refreshes $SYS every sys_interval (10 s by default).
        wait_until(lambda: readers["cwatch-collector"].received, 15, "the drop count")
        assert readers["an-phuoc/pc-01"].received == []
    finally:
        for client in readers.values():
            client.close()


def test_strangers_are_refused(secure: SecureBroker) -> None:
    anonymous = Client(secure, None)
    wrong = Client(secure, "an-phuoc/pc-01", "not-the-password")
    unknown = Client(secure, "an-phuoc/pc-99", "whatever")
    for client in (anonymous, wrong, unknown):
        assert client.reason is not None and client.reason.is_failure, client.reason
        client.close()


def test_tls_with_the_test_ca(secure: SecureBroker) -> None:
    trusted = Client(secure, "an-phuoc/pc-01", tls=True, ca_file=secure.ca_file)
    assert trusted.accepted
    assert trusted.publish("cwatch/v1/an-phuoc/pc-01/metrics", envelope("pc-01")) in ACCEPTED
    trusted.close()
    # Without the CA, the broker's certificate is not trusted: no connection at all.
    untrusted = Client(secure, "an-phuoc/pc-01", tls=True)
    assert isinstance(untrusted.error, ssl.SSLCertVerificationError), untrusted.error


def test_the_agent_connects_over_tls_with_the_printed_config(secure: SecureBroker,
                                                             tmp_path: Path) -> None:
    """The snippet `cwatch admin add-device` prints is a working agent config."""
    code, out, _ = admin("add-device", "an-phuoc", "pc-03", "--password-file",
                         str(secure.password_file), "--acl-file", str(secure.acl_file),
                         "--broker-url", f"mqtts://127.0.0.1:{secure.tls_port}",
                         "--ca-file", str(secure.ca_file))
    assert code == 0
    secure.broker.proc.send_signal(signal.SIGHUP)  # as `systemctl reload mosquitto`
    # Only what the test needs on top: a private data folder, a fast interval.
    text = out.replace('device = "pc-03"\n', f'device = "pc-03"\ndata_dir = "{tmp_path}/data"\n'
                       'interval_s = 1\n')
    config = tmp_path / "agent.toml"
    config.write_text(text + "\n[probes]\nenabled = false\n\n[smart]\nenabled = false\n",
                      encoding="utf-8")
    watcher = Client(secure, "cwatch-collector")
    watcher.client.subscribe("cwatch/v1/an-phuoc/pc-03/#", qos=1)
    wait_until(lambda: watcher.suback, 10, "SUBACK")
    agent = subprocess.Popen([str(ROOT / ".venv" / "bin" / "cwatch"), "agent", "--config",
                              str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: "cwatch/v1/an-phuoc/pc-03/metrics" in watcher.received, 30,
                   "the agent's metrics over TLS")
        assert "cwatch/v1/an-phuoc/pc-03/status" in watcher.received
    finally:
        agent.terminate()
        agent.wait(15)
        watcher.close()


def test_a_removed_device_can_no_longer_log_in(secure: SecureBroker) -> None:
    files = ["--password-file", str(secure.password_file), "--acl-file", str(secure.acl_file)]
    url = ["--broker-url", f"mqtts://127.0.0.1:{secure.tls_port}"]
    code, _, _ = admin("add-device", "an-phuoc", "pc-old", *files, *url)
    assert code == 0
    code, out, _ = admin("add-device", "an-phuoc", "pc-old", *files, *url)  # a new password
    password = _printed_password(out)
    secure.broker.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    before = Client(secure, "an-phuoc/pc-old", password)
    assert before.accepted
    code, _, err = admin("remove-device", "an-phuoc", "pc-old", *files)
    assert code == 0 and "removed an-phuoc/pc-old" in err
    secure.broker.proc.send_signal(signal.SIGHUP)
    # Mosquitto 2 checks connected clients again on reload: it is thrown off at once.
    assert before.disconnected.wait(10)
    before.close()
    after = Client(secure, "an-phuoc/pc-old", password)
    assert not after.accepted
    after.close()
    code, _, err = admin("remove-device", "an-phuoc", "pc-old", *files)
    assert code == 1 and "nothing removed" in err
    code, out, _ = admin("list", *files)
    assert "an-phuoc/pc-server  polls router-01" in out and "pc-old" not in out


@pytest.mark.parametrize("args, fragment", [
    (["add-device", "An Phuoc", "pc-01"], "site 'An Phuoc' must match"),
    (["add-device", "an-phuoc", "pc-01", "--polls", "Router#1"], "device 'Router#1' must"),
    (["add-device", "an-phuoc", "pc-01", "--acl-file", "/nonexistent/cwatch.acl"],
     "/nonexistent/cwatch.acl: not found"),
    (["add-device", "an-phuoc", "pc-01", "--broker-url", ""], "add-device needs --broker-url"),
    (["add-device", "an-phuoc", "pc-01", "--broker-url", "http://broker:1883"],
     "--broker-url: "),
])
def test_admin_mistakes_are_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    acl = tmp_path / "cwatch.acl"
    acl.write_text((DEPLOY / "cwatch.acl").read_text())
    defaults = ["--password-file", str(tmp_path / "passwd")]
    if "--broker-url" not in args:
        defaults += ["--broker-url", "mqtts://127.0.0.1:8883"]
    if "--acl-file" not in args:
        defaults += ["--acl-file", str(acl)]
    code, out, err = admin(*args, *defaults)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert out == "" and not (tmp_path / "passwd").exists()  # nothing half made


def test_password_hashes_are_mosquittos_and_never_the_password(tmp_path: Path) -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("$7$101$") and "s3cret" not in stored
    assert check_password("s3cret", stored) and not check_password("s3creT", stored)
    passwords = PasswordFile(tmp_path / "passwd")
    assert passwords.set("an-phuoc/pc-01", "one") is True
    assert passwords.set("an-phuoc/pc-01", "two") is False
    assert check_password("two", passwords.users()["an-phuoc/pc-01"])
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o640


def test_zero_touch_enrollment(secure: SecureBroker, tmp_path: Path) -> None:
    """A one-time token from `cwatch admin enroll-token` gets a new PC its own account
    through the collector, which reloads the broker; the agent then publishes over TLS."""
    tokens = tmp_path / "enroll-tokens.db"
    code, out, err = admin("enroll-token", "an-phuoc", "--uses", "2", "--tokens-file",
                           str(tokens), "--note", "an-phuoc IT")
    assert code == 0 and "2 device(s) of an-phuoc" in err
    token = out.strip()
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(str(secure.broker.proc.pid))
    collector = start_collector(
        secure.broker, tmp_path, "enroll-collector", serve_http=True,
        login=("cwatch-collector", secure.passwords["cwatch-collector"]),
        enroll=EnrollSection(enabled=True, tokens_file=str(tokens),
                             password_file=str(secure.password_file),
                             broker_pid_file=str(pid_file),
                             broker_url=f"mqtts://127.0.0.1:{secure.tls_port}",
                             broker_ca_file=str(secure.ca_file)))
    url = f"http://127.0.0.1:{collector.api.port}"
    cwatch = str(ROOT / ".venv" / "bin" / "cwatch")

    def enroll(device: str, config: Path, with_token: str = token,
               site: str = "an-phuoc") -> subprocess.CompletedProcess:
        return subprocess.run([cwatch, "agent", "--enroll", url, "--site", site, "--device",
                               device, "--config", str(config)], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "CWATCH_ENROLL_TOKEN": with_token})

    try:
        config = tmp_path / "pc-new" / "agent.toml"
        done = enroll("pc-new", config)
        assert done.returncode == 0, done.stderr
        assert "enrolled as an-phuoc/pc-new" in done.stdout
        assert config.stat().st_mode & 0o777 == 0o600
        written = tomllib.loads(config.read_text())
        assert written["broker"]["username"] == "an-phuoc/pc-new"
        assert check_password(written["broker"]["password"],
                              PasswordFile(secure.password_file).users()["an-phuoc/pc-new"])
        # Refusals, each one line: taken device, wrong site, unknown token, used up.
        for args, expected in (
                (("pc-new", tmp_path / "again.toml"), "an-phuoc/pc-new already has an account; to "
                 "enroll this device again, remove it first (cwatch admin remove-device)"),
                (("pc-x", tmp_path / "x.toml", token, "binh-minh"),
                 "this enrollment token is for site 'an-phuoc', not 'binh-minh'"),
                (("pc-y", tmp_path / "y.toml", "not-a-token"), "unknown enrollment token")):
            refused = enroll(*args)
            assert refused.returncode == 2
            assert refused.stderr.strip() == f"cwatch agent: error: enrollment refused: {expected}"
        assert enroll("pc-second", tmp_path / "second.toml").returncode == 0
        used_up = enroll("pc-third", tmp_path / "third.toml")
        assert "this enrollment token is used up" in used_up.stderr
        code, listed, _ = admin("tokens", "--tokens-file", str(tokens))
        assert "an-phuoc  0 device(s) left" in listed and "an-phuoc IT" in listed
        # The enrolled agent, with nothing but the written config, reaches the collector.
        text = config.read_text().replace('device = "pc-new"\n', 'device = "pc-new"\n'
                                          f'data_dir = "{tmp_path}/data"\ninterval_s = 1\n')
        config.write_text(text + "\n[probes]\nenabled = false\n\n[smart]\nenabled = false\n")
        agent = subprocess.Popen([cwatch, "agent", "--config", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: collector.state.device("an-phuoc", "pc-new") is not None, 30,
                       "the enrolled agent's data in the collector")
        finally:
            agent.terminate()
            agent.wait(15)
    finally:
        collector.stop()
