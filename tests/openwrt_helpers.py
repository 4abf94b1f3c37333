"""Run the OpenWrt agent (agent/openwrt/cwatch-agent) against a copy of the fake router
root in tests/fixtures/openwrt, under dash or BusyBox sh, and make the fake router's
counters move while it runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AGENT = REPO / "agent" / "openwrt" / "cwatch-agent"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "openwrt"
SHELLS = ["dash", "busybox sh"]
SITE, DEVICE = "an-phuoc", "router-01"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def fake_root(tmp_path: Path) -> Path:
    """A private copy of the fixture tree (tests change its counters)."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURE, root, symlinks=True)
    return root


def busybox_path(tmp_path: Path) -> str:
    """A PATH with BusyBox applets and mosquitto_pub only, as on a router."""
    bindir = tmp_path / "bb-bin"
    if not bindir.exists():
        bindir.mkdir()
        listing = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in listing:
            (bindir / applet).symlink_to(BUSYBOX)
        (bindir / "busybox").symlink_to(BUSYBOX)
        mosquitto_pub = shutil.which("mosquitto_pub")
        assert mosquitto_pub, "mosquitto_pub not installed (Debian package mosquitto-clients)"
        (bindir / "mosquitto_pub").symlink_to(mosquitto_pub)
    return str(bindir)


def command(shell: str, *args: str) -> list[str]:
    if shell == "dash":
        return ["dash", str(AGENT), *args]
    return [BUSYBOX, "sh", str(AGENT), *args]


def agent_env(shell: str, tmp_path: Path, root: Path, **settings: object) -> dict[str, str]:
    """The agent's settings; nothing inherited from the test's environment. Under BusyBox
    sh the PATH holds BusyBox applets only; under dash the system's tools (gawk, GNU
    coreutils) are used, so both kinds of awk and tools are exercised."""
    path = busybox_path(tmp_path) if shell != "dash" else os.environ.get(
        "PATH", "/usr/local/bin:/usr/bin:/bin")
    env = {"PATH": path, "HOME": str(tmp_path), "ROOT": str(root), "SITE": SITE,
           "DEVICE": DEVICE, "STATE_DIR": str(tmp_path / "state"),
           "RUN_DIR": str(tmp_path / "run"), "PING": "busybox ping", "PING_COUNT": "1",
           "TARGETS": "lo:custom:127.0.0.1", "DEBUG": "1"}
    env.update({key: str(value) for key, value in settings.items()})
    return env


def run_once(shell: str, env: dict[str, str], *args: str) -> dict[str, tuple[str, dict]]:
    """`--once` output as {channel: (topic, envelope)}."""
    result = subprocess.run(command(shell, "--once", *args), env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    out = {}
    for line in result.stdout.splitlines():
        topic, payload = line.split(" ", 1)
        out[topic.rsplit("/", 1)[1]] = (topic, json.loads(payload))
    return out


class AgentProcess:
    """The agent as a long-running process in its own process group."""

    def __init__(self, shell: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._log_fh = log.open("ab")
        self.proc = subprocess.Popen(command(shell), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log_fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pgid = self.proc.pid

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, as procd sends it on `service cwatch stop`; the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def power_cut(self) -> None:
        """SIGKILL to the agent and every process it started, at once."""
        os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait(10)

    def group_members(self) -> list[str]:
        """Processes still in the agent's process group (zombies included)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.pgid:
                found.append(text.split(" ", 1)[1][:60])
        return found

    def cleanup(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        try:
            self.proc.wait(10)
        finally:
            self._log_fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Ticker:
    """Moves the fake router's counters with the wall clock: per-interface statistics
    at given rates per second, the CPU times (a quarter busy) and the uptime."""

    def __init__(self, root: Path, rates: dict[tuple[str, str], float],
                 period_s: float = 0.1) -> None:
        self.root = root
        self.rates = rates
        self.period_s = period_s
        self._base = {key: int(self._path(key).read_text()) for key in rates}
        self._uptime = float((root / "proc/uptime").read_text().split()[0])
        self._stat = (root / "proc/stat").read_text().splitlines()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _path(self, key: tuple[str, str]) -> Path:
        iface, counter = key
        return self.root / "sys/class/net" / iface / "statistics" / counter

    @staticmethod
    def _write(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def tick(self) -> None:
        elapsed = time.monotonic() - self._t0
        for key, rate in self.rates.items():
            self._write(self._path(key), f"{self._base[key] + int(rate * elapsed)}\n")
        self._write(self.root / "proc/uptime",
                    f"{self._uptime + elapsed:.2f} {4 * (self._uptime + elapsed) * 0.9:.2f}\n")
        # 4 CPUs at 100 jiffies/s: a quarter of it busy (user+system), the rest idle.
        jiffies = int(400 * elapsed)
        lines = []
        for line in self._stat:
            if line.startswith("cpu "):
                f = line.split()
                f[1] = str(int(f[1]) + jiffies // 8)
                f[3] = str(int(f[3]) + jiffies // 8)
                f[4] = str(int(f[4]) + jiffies - 2 * (jiffies // 8))
                line = " ".join(f)
            lines.append(line)
        self._write(self.root / "proc/stat", "\n".join(lines) + "\n")

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.tick()

    def start(self) -> Ticker:
        self.tick()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def queued(run_dir: Path) -> dict[int, tuple[str, float]]:
    """The agent's backlog on disk: {seq: (channel, ts)}."""
    out = {}
    for path in (run_dir / "queue").glob("*.*"):
        try:
            env = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed or being written this instant
        out[env["seq"]] = (env["channel"], env["ts"])
    return out


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s:g} s"
        time.sleep(interval_s)
