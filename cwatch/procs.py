"""Start and stop the servers the demo and the tests need (mosquitto, ...) as
child processes on free loopback ports with throw-away configs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional


class ServerNotFound(RuntimeError):
    """A server binary is not installed; the message says how to install it."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float,
                  proc: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            name = proc.args[0] if isinstance(proc.args, list) else proc.args
            raise RuntimeError(
                f"{name} exited with status {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:g} s")


def find_binary(name: str, debian_package: str, extra_dirs: List[str]) -> str:
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    raise ServerNotFound(
        f"{name} not found: install it with `sudo apt-get install {debian_package}`")


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a child's log file, for an error message ("" if unreadable)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def end_process(proc: subprocess.Popen, kill: bool = False, grace_s: float = 10.0) -> None:
    """SIGTERM (or SIGKILL), wait up to grace_s, then SIGKILL if it is still there."""
    if proc.poll() is None:
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Mosquitto:
    """A private mosquitto on a free loopback port; never touches a system broker."""

    def __init__(self, workdir: Path, port: Optional[int] = None, extra_conf: str = "",
                 anonymous: bool = True) -> None:
        self.workdir = workdir
        # False: extra_conf brings the accounts (password_file, acl_file).
        self.anonymous = anonymous
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.proc = None  # type: Optional[subprocess.Popen]
        self.binary = find_binary("mosquitto", "mosquitto", ["/usr/sbin", "/usr/local/sbin"])

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> Mosquitto:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if self.anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            # Save sessions often: a broker killed without warning then still knows the
            # collector's subscription and keeps messages for it while it reconnects.
            "autosave_interval 1\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
            # As root, mosquitto would switch to user "mosquitto", which cannot write
            # to our private folder: persistence and log would fail silently.
            + ("user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else "")
            + f"{self.extra_conf}\n")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.host, self.port, 10.0, self.proc)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        end_process(self.proc, kill)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None
