"""Cost of the two ways of watching a commune's router: the OpenWrt shell agent on the
router itself, and the SNMP poller in a PC's agent.

OpenWrt agent (agent/openwrt/cwatch-agent) against the fake router root of the tests
(tests/fixtures/openwrt), under BusyBox sh with only BusyBox applets and mosquitto_pub on
the PATH (as on a router) and under dash with the system's tools, for comparison:

* `--once` rounds (one envelope per channel printed, no broker): wall and CPU time
  (user+system of the shell and every process it started, from wait4), probes off and
  on (two loopback targets, one echo each); processes started per round (strace) and
  the largest single process (GNU time);
* a live run against a private mosquitto at INTERVAL=5 PROBE_INTERVAL=5 (metrics and a
  probe every round, pings of two loopback targets with the default five echoes), ended
  with SIGTERM: CPU of the whole process tree per round in steady state (between the
  first and the last round, from /proc), the run's total from wait4, resident memory
  of the agent's processes (sampled), messages and processes per round (a third agent
  under strace), scaled to the default 60 s intervals.

SNMP poller (agent/snmp, pysnmp 7) against a private net-snmp snmpd on loopback
(tests/snmp_helpers.py, serving this machine's interfaces): one device over v2c and
v3 authPriv, and 10 and 50 devices polled at once (all the same snmpd); cold
(`poll_once`, a new SNMP engine per call, as `cwatch agent --once`) and warm (devices
and engines kept from one poll to the next, as the agent's scheduler does). Wall time,
CPU of this process (time.process_time, ping threads included), snmpd's CPU, the SNMP
read alone, and the RSS of a fresh process that polls 1, 10 and 50 devices.

    .venv/bin/python bench/router_agents.py [--rounds 20] [--live-seconds 60] [--json]

Progress on stderr, a Markdown table (or JSON) on stdout. Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import paho.mqtt.client as mqtt
import psutil

from cwatch.procs import Mosquitto

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from openwrt_helpers import Ticker, agent_env, command, fake_root  # noqa: E402
from snmp_helpers import Snmpd  # noqa: E402

SITE = "bench"
# Two probe targets, as the agent's default (the broker and 1.1.1.1), both on loopback.
TARGETS = "collector:collector:127.0.0.1 dns:dns:127.0.0.2"
SHELLS = ("busybox sh", "dash")
CLK_TCK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
STRACE = shutil.which("strace")
STRACE_ARGS = ["-f", "-ttt", "-qq", "-e", "trace=clone,clone3,fork,vfork,execve",
               "-e", "signal=none"]
SAMPLE_DELAY_S = 0.3  # after a round's last message: the agent is asleep by then


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def summary(values: List[float]) -> Dict[str, float]:
    """Mean and p95 (nearest rank) of a list of samples."""
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))  # ceil(0.95 n)
    return {"mean": statistics.fmean(ordered), "p95": ordered[rank - 1], "n": len(ordered)}


# --- processes: CPU of a process tree, strace output ------------------------------------


def proc_stat(pid: int) -> Optional[List[str]]:
    """The fields of /proc/PID/stat after the command name (state is [0])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def group_members(pgid: int) -> List[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields is not None and int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


def group_cpu_s(pgid: int, exclude: int) -> float:
    """CPU seconds of a process group so far: utime+stime+cutime+cstime of every live
    member. A process's CPU moves into its parent's cutime when the parent reaps it, so
    nothing is counted twice and nothing that ended (and was reaped) is lost."""
    ticks = 0
    for pid in group_members(pgid):
        fields = proc_stat(pid)
        if pid != exclude and fields is not None:
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / CLK_TCK


def memory_kb(pid: int) -> Tuple[str, int, int]:
    """(command name, RSS, PSS in kB), or ("", 0, 0) when gone or a zombie. PSS shares
    each page among the processes that map it (BusyBox's and libmosquitto's code): the
    sum over processes is what they use together; the sum of RSS counts shared pages
    once per process."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return "", 0, 0
    rss = pss = 0
    for line in text.splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return (name, rss, pss) if rss else ("", 0, 0)


def agent_under(pid: int, argv: List[str], timeout_s: float = 5.0) -> int:
    """The agent's shell, a child of a wrapper (GNU time, strace), once it has exec'd ARGV:
    strace first forks a short-lived helper of its own (with strace's own command line),
    which must not get our SIGTERM."""
    wanted = ("\0".join(argv) + "\0").encode()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{child}/cmdline").read_bytes() == wanted:
                        return int(child)
        time.sleep(0.005)
    raise RuntimeError(f"process {pid} did not start {' '.join(argv)}")


def wait_rusage(proc: subprocess.Popen, timeout_s: float) -> Any:
    """Reap PROC with a blocking wait4 (its rusage covers every descendant it reaped);
    SIGKILL to PROC (and its process group, when it leads one) after timeout_s."""

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage


CLONE_RE = re.compile(r"^(\d+)\s+([\d.]+)\s+(clone3?|v?fork)\((.*)")
EXEC_RE = re.compile(r'^(\d+)\s+([\d.]+)\s+execve\("([^"]*)"(.*)')
RESUMED_RE = re.compile(r"^(\d+)\s+([\d.]+)\s+<\.\.\. execve resumed>(.*)")


def strace_events(path: Path) -> Tuple[List[float], List[Tuple[float, str]]]:
    """From `strace -f -ttt -e trace=clone,...,execve` output: the times of the process
    creations (threads left out) and (time, program) of the successful execs."""
    forks, execs = [], []
    pending: Dict[str, Tuple[float, str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = CLONE_RE.match(line)
        if m:
            if "CLONE_THREAD" not in m.group(4):
                forks.append(float(m.group(2)))
            continue
        m = EXEC_RE.match(line)
        if m:
            ts, prog = float(m.group(2)), os.path.basename(m.group(3))
            if m.group(4).rstrip().endswith("<unfinished ...>"):
                pending[m.group(1)] = (ts, prog)
            elif re.search(r"= 0$", m.group(4).rstrip()):
                execs.append((ts, prog))
            continue
        m = RESUMED_RE.match(line)
        if m and m.group(1) in pending:
            ts, prog = pending.pop(m.group(1))
            if re.search(r"= 0$", m.group(3).rstrip()):
                execs.append((ts, prog))
    return forks, execs


# --- OpenWrt agent: --once ----------------------------------------------------------------


def once_env(shell: str, workdir: Path, root: Path, probes: bool) -> Dict[str, str]:
    return agent_env(shell, workdir, root, SITE=SITE, DEBUG="", TARGETS=TARGETS,
                     PROBE_INTERVAL=60 if probes else 0, PING_COUNT=1, PING_TIMEOUT=1)


def run_once(shell: str, env: Dict[str, str], wrapper: List[str], out_dir: Path
             ) -> Tuple[float, float, str]:
    """One `--once` under an optional wrapper: (wall s, CPU s of the tree, stdout)."""
    stderr = out_dir / "once.err"
    with stderr.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(wrapper + command(shell, "--once"), env=env,
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        out = proc.stdout.read().decode()
        proc.stdout.close()
        usage = wait_rusage(proc, 60)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{shell} --once failed: {stderr.read_text()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, out


def bench_once(workdir: Path, root: Path, rounds: int) -> List[Dict[str, Any]]:
    results = []
    for shell in SHELLS:
        for probes in (False, True):
            label = f"{shell}, probes {'on' if probes else 'off'}"
            progress(f"openwrt --once: {label}, {rounds} rounds")
            home = workdir / shell.replace(" ", "-")
            home.mkdir(exist_ok=True)
            env = once_env(shell, home, root, probes)
            run_once(shell, env, [], workdir)  # warm the page cache
            walls, cpus = [], []
            for _ in range(rounds):
                wall, cpu, out = run_once(shell, env, [], workdir)
                walls.append(wall)
                cpus.append(cpu)
            lines = out.splitlines()
            row: Dict[str, Any] = {
                "shell": shell, "probes": probes, "wall_ms": scaled(summary(walls), 1e3),
                "cpu_ms": scaled(summary(cpus), 1e3), "messages": len(lines),
                "bytes": {ln.split(" ", 1)[0].rsplit("/", 1)[1]: len(ln.split(" ", 1)[1])
                          for ln in lines}}
            if GNU_TIME:
                rss_file = workdir / "once.rss"
                run_once(shell, env, [GNU_TIME, "-f", "%M", "-o", str(rss_file)], workdir)
                row["max_process_rss_kb"] = int(rss_file.read_text().split()[-1])
            if STRACE:
                trace = workdir / "once.strace"
                run_once(shell, env, [STRACE, *STRACE_ARGS, "-o", str(trace)], workdir)
                forks, execs = strace_events(trace)
                row["processes"] = len(forks) + 1  # + the shell itself
                row["execs"] = len(execs)
                row["programs"] = count_programs(p for _, p in execs)
            results.append(row)
    return results


def scaled(stats: Dict[str, float], factor: float) -> Dict[str, float]:
    return {k: (v * factor if k != "n" else v) for k, v in stats.items()}


def count_programs(programs: Any) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for prog in programs:
        counts[prog] = counts.get(prog, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# --- OpenWrt agent: live ------------------------------------------------------------------


class LiveAgent:
    """The agent as a service: its own process group, under GNU time (for the largest
    process) or strace (for the processes started), stopped with SIGTERM."""

    def __init__(self, label: str, shell: str, workdir: Path, root: Path, broker: Mosquitto,
                 wrapper: str) -> None:
        self.label, self.shell, self.wrapper = label, shell, wrapper
        self.device = "router-" + re.sub(r"[^a-z0-9]+", "-", label).strip("-")
        workdir.mkdir(parents=True)
        self.workdir = workdir
        env = agent_env(shell, workdir, root, SITE=SITE, DEVICE=self.device, DEBUG="",
                        BROKER_HOST=broker.host, BROKER_PORT=broker.port, INTERVAL=5,
                        PROBE_INTERVAL=5, TARGETS=TARGETS, PING_COUNT=5)
        self.rss_file = workdir / "time.out"
        self.trace = workdir / "strace.out"
        prefix: List[str] = []
        if wrapper == "time" and GNU_TIME:
            prefix = [GNU_TIME, "-f", "%M", "-o", str(self.rss_file)]
        elif wrapper == "strace":
            prefix = [STRACE, *STRACE_ARGS, "-o", str(self.trace)]
        self._log = (workdir / "agent.log").open("wb")
        self.proc = subprocess.Popen(prefix + command(shell), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.agent_pid = agent_under(self.proc.pid, command(shell)) if prefix else self.proc.pid
        self.wrapper_pid = self.proc.pid if prefix else -1
        self.stopping = False
        self.cpu_marks: List[Tuple[float, float]] = []  # (time, group CPU s) after a round
        self.round_ends: List[float] = []  # arrival of each round's last message (probe)
        self.rss_total: List[int] = []
        self.pss_total: List[int] = []
        self.rss_by_name: Dict[str, int] = {}
        self.usage: Any = None
        self.exit_status: Optional[int] = None
        self.left_running: List[str] = []
        self.terminated_at = self.stop_s = 0.0

    def round_done(self, at: float) -> None:
        """Called SAMPLE_DELAY_S after a round's probe arrived at the broker."""
        if self.stopping:
            return
        self.round_ends.append(at)
        if self.wrapper != "strace":
            self.cpu_marks.append((at, group_cpu_s(self.proc.pid, self.wrapper_pid)))

    def sample_rss(self) -> None:
        rss_sum = pss_sum = 0
        for pid in group_members(self.proc.pid):
            if pid == self.wrapper_pid:
                continue
            name, rss, pss = memory_kb(pid)
            rss_sum += rss
            pss_sum += pss
            if name:
                self.rss_by_name[name] = max(self.rss_by_name.get(name, 0), rss)
        if rss_sum:
            self.rss_total.append(rss_sum)
            self.pss_total.append(pss_sum)

    def terminate(self) -> None:
        """SIGTERM, as procd sends on `service cwatch stop`."""
        self.stopping = True
        self.terminated_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.agent_pid, signal.SIGTERM)

    def reap(self) -> None:
        """Wait for the wrapper (SIGKILL to the group after 20 s: exit status -9)."""
        self.usage = wait_rusage(self.proc, 20)
        self.stop_s = time.monotonic() - self.terminated_at
        self.exit_status = self.proc.returncode
        # Anything of the agent's still running after it exited (it should wait for its
        # status connection to close): noted, given 5 s to end by itself, then killed.
        self.left_running = sorted(filter(None, (memory_kb(pid)[0] for pid in
                                                 group_members(self.proc.pid))))
        deadline = time.monotonic() + 5
        while group_members(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            self.proc.wait(10)
        self._log.close()

    def steady(self) -> Dict[str, Any]:
        """Per round between the first and the last completed round."""
        out: Dict[str, Any] = {"rounds": len(self.round_ends)}
        if len(self.cpu_marks) >= 2:
            (t0, c0), (t1, c1) = self.cpu_marks[0], self.cpu_marks[-1]
            out["cpu_ms_per_round"] = 1e3 * (c1 - c0) / (len(self.cpu_marks) - 1)
        if self.wrapper == "strace" and len(self.round_ends) >= 2:
            t0, t1 = self.round_ends[0], self.round_ends[-1]
            n = len(self.round_ends) - 1
            forks, execs = strace_events(self.trace)
            out["processes_per_round"] = sum(t0 <= t < t1 for t in forks) / n
            out["execs_per_round"] = sum(t0 <= t < t1 for t, _ in execs) / n
            out["programs_per_round"] = {
                p: round(c / n, 2) for p, c in
                count_programs(p for t, p in execs if t0 <= t < t1).items()}
        return out


class Listener:
    """Counts the agents' messages per device and channel, and marks the end of rounds."""

    def __init__(self, broker: Mosquitto, on_round: Callable[[str, float], None]) -> None:
        self.on_round = on_round
        self.count: Dict[Tuple[str, str], int] = {}
        self.largest: Dict[Tuple[str, str], int] = {}
        self.statuses: Dict[str, List[str]] = {}  # device -> "online", "offline/shutdown" ...
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-listen")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"cwatch/v1/{SITE}/+/+", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        _, _, _, device, channel = message.topic.split("/")
        key = (device, channel)
        self.count[key] = self.count.get(key, 0) + 1
        self.largest[key] = max(self.largest.get(key, 0), len(message.payload))
        if channel == "status":
            with contextlib.suppress(ValueError, KeyError, TypeError):
                data = json.loads(message.payload)["data"]
                self.statuses.setdefault(device, []).append(
                    "/".join(filter(None, (data["state"], data.get("reason")))))
        elif channel == "probe":
            at = time.time() + SAMPLE_DELAY_S
            threading.Timer(SAMPLE_DELAY_S, self.on_round, (device, at)).start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def bench_live(workdir: Path, root: Path, seconds: float) -> List[Dict[str, Any]]:
    broker = Mosquitto(workdir / "broker").start()
    ticker = Ticker(root, {("wan", "rx_bytes"): 250_000, ("wan", "tx_bytes"): 40_000,
                           ("br-lan", "rx_bytes"): 40_000, ("br-lan", "tx_bytes"): 250_000},
                    period_s=1.0).start()
    agents: Dict[str, LiveAgent] = {}
    listener = Listener(broker, lambda device, at: agents[device].round_done(at))
    plan = [("busybox sh", "busybox sh", "time"), ("dash", "dash", "time")]
    if STRACE:
        plan.append(("busybox sh strace", "busybox sh", "strace"))
    try:
        for label, shell, wrapper in plan:
            agent = LiveAgent(label, shell, workdir / f"live-{len(agents)}", root, broker,
                              wrapper)
            agents[agent.device] = agent
        progress(f"openwrt live: {', '.join(a.label for a in agents.values())} "
                 f"for {seconds:g} s (INTERVAL=5 PROBE_INTERVAL=5)")
        end = time.monotonic() + seconds
        shown = None
        while time.monotonic() < end:
            for agent in agents.values():
                if agent.wrapper != "strace":
                    agent.sample_rss()
            time.sleep(0.2)
            left = int(max(0.0, end - time.monotonic()))
            if left != shown and left % 5 == 0:
                print(f"\r  {left:4d} s left", end="", file=sys.stderr, flush=True)
                shown = left
        print(file=sys.stderr)
        for agent in agents.values():
            agent.terminate()
        for agent in agents.values():
            agent.reap()
        time.sleep(0.5)  # the shutdown status reaches the listener
    except BaseException:
        for agent in agents.values():
            if agent.usage is None:
                agent.kill()
        raise
    finally:
        listener.stop()
        ticker.stop()
        broker.stop()
    results = []
    for agent in agents.values():
        row: Dict[str, Any] = {"label": agent.label, "shell": agent.shell,
                               "exit_status": agent.exit_status, "stop_s": agent.stop_s,
                               "left_running": agent.left_running, **agent.steady()}
        row["messages"] = {ch: n for (dev, ch), n in sorted(listener.count.items())
                           if dev == agent.device}
        row["largest_bytes"] = {ch: n for (dev, ch), n in sorted(listener.largest.items())
                                if dev == agent.device}
        row["statuses"] = listener.statuses.get(agent.device, [])
        if agent.wrapper != "strace":
            row["total_cpu_s"] = agent.usage.ru_utime + agent.usage.ru_stime
            if agent.rss_total:
                # The least: between rounds (the shell, the status connection, a sleep);
                # the most: during a round (pings, awk, mosquitto_pub, watchdogs).
                row["rss_kb_min"], row["rss_kb_max"] = min(agent.rss_total), max(agent.rss_total)
                row["pss_kb_min"], row["pss_kb_max"] = min(agent.pss_total), max(agent.pss_total)
                row["rss_kb_by_process"] = agent.rss_by_name
            if agent.rss_file.exists():
                row["max_process_rss_kb"] = int(agent.rss_file.read_text().split()[-1])
        results.append(row)
    return results


# --- SNMP poller ----------------------------------------------------------------------------


def snmp_config(workdir: Path, snmpd: Snmpd, devices: int, v3: bool, name: str) -> Any:
    from agent import config as agent_config

    text = (f'[agent]\nsite = "{SITE}"\ndevice = "pc-01"\ndata_dir = "{workdir}/data-{name}"\n'
            "[probes]\nenabled = false\n[smart]\nenabled = false\n")
    for i in range(devices):
        text += (f'[[polled]]\ndevice = "router-{i:03d}"\nhost = "{snmpd.host}"\n'
                 f"port = {snmpd.port}\n")
        if v3:
            text += (f'snmp = "3"\nuser = "{snmpd.user}"\nauth_protocol = "sha"\n'
                     f'auth_password = "{snmpd.auth_password}"\npriv_protocol = "aes"\n'
                     f'priv_password = "{snmpd.priv_password}"\n')
        else:
            text += f'community = "{snmpd.community}"\n'
    path = workdir / f"{name}.toml"
    path.write_text(text)
    return agent_config.load(path, {})


class SnmpdCpu:
    """snmpd's own CPU, and its `pass` scripts' (a test device's, not a router's)."""

    def __init__(self, snmpd: Snmpd) -> None:
        self.proc = psutil.Process(snmpd.proc.pid)

    def now(self) -> Tuple[float, float]:
        t = self.proc.cpu_times()
        return t.user + t.system, t.children_user + t.children_system


def bench_snmp_cold(config: Any, rounds: int, snmpd_cpu: SnmpdCpu, warm_up: bool
                    ) -> Dict[str, Any]:
    """poll_once: a new engine (and, for v3, engine discovery and keys) every call."""
    from agent.snmp.scheduler import poll_once

    if warm_up:
        poll_once(config)  # the first in this process: pysnmp's lazy imports, excluded
    walls, cpus = [], []
    own0, pass0 = snmpd_cpu.now()
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        messages = poll_once(config)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    own1, pass1 = snmpd_cpu.now()
    devices = len(config.polled)
    return {"devices": devices, "mode": "cold", "wall_ms": scaled(summary(walls), 1e3),
            "cpu_ms": scaled(summary(cpus), 1e3),
            "cpu_ms_per_device": 1e3 * statistics.fmean(cpus) / devices,
            "snmpd_cpu_ms_per_poll": 1e3 * (own1 - own0) / (rounds * devices),
            "snmpd_pass_cpu_ms_per_poll": 1e3 * (pass1 - pass0) / (rounds * devices),
            "messages_per_device": len(messages) / devices}


def bench_snmp_warm(config: Any, rounds: int, snmpd_cpu: SnmpdCpu,
                    read_rounds: int = 0) -> Dict[str, Any]:
    """As the scheduler polls: devices and their engines kept; the first round (engine
    set-up, inventory) is left out. With read_rounds, also the SNMP reads alone."""
    from agent.snmp.publisher import CollectingPublisher
    from agent.snmp.scheduler import build_devices

    data_dir = Path(config.agent.data_dir)
    devices = build_devices(config, lambda section, interval: CollectingPublisher(
        SITE, section.device, data_dir, interval))
    out: Dict[str, Any] = {"devices": len(devices), "mode": "warm"}

    async def run() -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(d.poll(loop) for d in devices))
            sent0 = sum(len(d.publisher.messages) for d in devices)
            walls, cpus = [], []
            own0, pass0 = snmpd_cpu.now()
            for _ in range(rounds):
                wall, cpu = time.perf_counter(), time.process_time()
                await asyncio.gather(*(d.poll(loop) for d in devices))
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            own1, pass1 = snmpd_cpu.now()
            sent = sum(len(d.publisher.messages) for d in devices) - sent0
            polls = rounds * len(devices)
            out.update(wall_ms=scaled(summary(walls), 1e3), cpu_ms=scaled(summary(cpus), 1e3),
                       cpu_ms_per_device=1e3 * statistics.fmean(cpus) / len(devices),
                       snmpd_cpu_ms_per_poll=1e3 * (own1 - own0) / polls,
                       snmpd_pass_cpu_ms_per_poll=1e3 * (pass1 - pass0) / polls,
                       messages_per_device=sent / polls)
            if read_rounds:
                out["read"] = await snmp_reads(devices[0].session, read_rounds)
        finally:
            for device in devices:
                device.close()

    asyncio.run(run())
    return out


async def snmp_reads(session: Any, rounds: int) -> Dict[str, Any]:
    """The SNMP part of a poll alone (no ping, no envelopes), with its requests counted."""
    counts = {"requests": 0, "varbinds": 0}

    def counted(method: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            status, var_binds = await method(*args, **kwargs)
            counts["requests"] += 1
            counts["varbinds"] += len(var_binds)
            return status, var_binds
        return wrapper

    session._get, session._bulk = counted(session._get), counted(session._bulk)
    walls, cpus = [], []
    answer = None
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        answer = await session.read()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    names = sorted(v.decode(errors="replace") if isinstance(v, bytes) else str(v)
                   for v in (answer.tables.get("ifName") or answer.tables["ifDescr"]).values())
    return {"wall_ms": scaled(summary(walls), 1e3), "cpu_ms": scaled(summary(cpus), 1e3),
            "requests": counts["requests"] / rounds, "varbinds": counts["varbinds"] / rounds,
            "interfaces": names}


def bench_snmp(workdir: Path, rounds: int) -> Dict[str, Any]:
    from agent.snmp.session import unavailable_reason

    rss0 = psutil.Process().memory_info().rss
    started = time.perf_counter()
    reason = unavailable_reason()  # imports pysnmp
    out: Dict[str, Any] = {"import_ms": 1e3 * (time.perf_counter() - started),
                           "import_rss_mb": (psutil.Process().memory_info().rss - rss0) / 1e6,
                           "rss_before_mb": rss0 / 1e6}
    if reason is not None:
        progress(f"SNMP skipped: {reason}")
        out["skipped"] = reason
        return out
    snmpd = Snmpd(workdir / "snmpd").start()
    snmpd_cpu = SnmpdCpu(snmpd)
    runs = []
    small = max(3, rounds // 4)
    try:
        plan = [
            ("v2c", 1, False, "cold", rounds), ("v2c", 1, False, "warm", rounds),
            ("v3 authPriv", 1, True, "cold", max(3, rounds // 2)),
            ("v3 authPriv", 1, True, "warm", max(3, rounds // 2)),
            ("v2c", 10, False, "cold", max(2, rounds // 8)), ("v2c", 10, False, "warm", small),
            ("v2c", 50, False, "cold", max(2, rounds // 8)), ("v2c", 50, False, "warm", small),
        ]
        for version, devices, v3, mode, n in plan:
            progress(f"snmp: {devices} device(s), {version}, {mode}, {n} rounds")
            config = snmp_config(workdir, snmpd, devices, v3, f"{version[:2]}-{devices}-{mode}")
            if mode == "cold":
                run = bench_snmp_cold(config, n, snmpd_cpu, warm_up=not runs)
            else:
                run = bench_snmp_warm(config, n, snmpd_cpu,
                                      read_rounds=rounds if devices == 1 else 0)
            run.update(version=version, rounds=n)
            runs.append(run)
        out["runs"] = runs
        out["memory"] = []
        for devices in (1, 10, 50):
            progress(f"snmp: memory of a fresh process polling {devices} device(s)")
            out["memory"].append(snmp_memory_child(workdir, snmpd, devices))
    finally:
        snmpd.stop()
    return out


def snmp_memory_child(workdir: Path, snmpd: Snmpd, devices: int) -> Dict[str, Any]:
    """Run snmp_memory in a fresh interpreter (this one's heap has seen everything)."""
    args = [sys.executable, __file__, "--snmp-memory", str(workdir), snmpd.host,
            str(snmpd.port), snmpd.community, str(devices)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed: {result.stderr[-800:]}")
    return json.loads(result.stdout.splitlines()[-1])


def snmp_memory(workdir: str, host: str, port: str, community: str, devices: str) -> None:
    """In a fresh interpreter: RSS with the agent's modules, with pysnmp, and with the
    devices built and polled twice (as the scheduler keeps them). Prints one JSON line."""
    import gc

    import agent.service  # noqa: F401 - the agent's own modules, as `cwatch agent` has them
    from agent.snmp.session import unavailable_reason

    def rss_mb() -> float:
        gc.collect()
        return psutil.Process().memory_info().rss / 1e6

    n = int(devices)
    out: Dict[str, Any] = {"devices": n, "rss_agent_mb": rss_mb()}
    started = time.perf_counter()
    if unavailable_reason() is not None:
        raise SystemExit("pysnmp unavailable")
    out["import_ms"] = 1e3 * (time.perf_counter() - started)
    out["rss_pysnmp_mb"] = rss_mb()
    fake = argparse.Namespace(host=host, port=int(port), community=community)
    folder = Path(tempfile.mkdtemp(prefix="mem-", dir=workdir))
    config = snmp_config(folder, fake, n, False, "mem")  # type: ignore[arg-type]
    from agent.snmp.publisher import CollectingPublisher
    from agent.snmp.scheduler import build_devices

    kept = build_devices(config, lambda section, interval: CollectingPublisher(
        SITE, section.device, folder, interval))

    async def two_rounds() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(2):
            await asyncio.gather(*(d.poll(loop) for d in kept))
        out["rss_polled_mb"] = rss_mb()
        for device in kept:
            device.close()

    asyncio.run(two_rounds())
    out["per_device_mb"] = (out["rss_polled_mb"] - out["rss_pysnmp_mb"]) / n
    print(json.dumps(out))


# --- output -----------------------------------------------------------------------------------


def ms(stats: Dict[str, float]) -> str:
    return f"{stats['mean']:.1f} / {stats['p95']:.1f}"


def print_tables(result: Dict[str, Any]) -> None:
    machine = result["machine"]
    print(f"\nMeasured {result['date']} on this machine ({machine['cores']} cores, "
          f"{machine['cpu']}, Python {machine['python']}, {machine['busybox']}, "
          f"{machine['mosquitto_pub']}, {machine['snmpd']}).\n")
    print("OpenWrt agent, one `--once` round (fake router root, 9 interfaces):\n")
    print("| shell | probes | wall ms mean / p95 | CPU ms mean / p95 | processes | execs "
          "| largest process kB | messages (bytes) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["openwrt_once"]:
        sizes = ", ".join(f"{ch} {n}" for ch, n in r["bytes"].items())
        print(f"| {r['shell']} | {'2 targets x 1 echo' if r['probes'] else 'off'} "
              f"| {ms(r['wall_ms'])} | {ms(r['cpu_ms'])} | {r.get('processes', '')} "
              f"| {r.get('execs', '')} | {r.get('max_process_rss_kb', '')} "
              f"| {r['messages']} ({sizes}) |")
    for r in result["openwrt_once"]:
        if "programs" in r:
            print(f"\nPrograms run by one round ({r['shell']}, probes "
                  f"{'on' if r['probes'] else 'off'}): "
                  + ", ".join(f"{p} {n}" for p, n in r["programs"].items()))
    live = result["openwrt_live"]
    print(f"\nOpenWrt agent, live for {result['live_seconds']:g} s (INTERVAL=5 "
          "PROBE_INTERVAL=5, 2 targets x 5 echoes), stopped with SIGTERM:\n")
    print("| shell | rounds | CPU ms per round (steady) | CPU-s per hour at 60 s | run total "
          "CPU s | all its processes, RSS kB min / max | PSS kB min / max | largest process "
          "kB | exit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in live:
        if "total_cpu_s" not in r:
            continue
        per_round = r.get("cpu_ms_per_round")
        steady = f"{per_round:.1f}" if per_round is not None else ""
        per_hour = f"{60 * per_round / 1e3:.2f}" if per_round is not None else ""
        print(f"| {r['shell']} | {r['rounds']} | "
              f"{steady} | {per_hour} | {r['total_cpu_s']:.2f} | "
              f"{r.get('rss_kb_min', 0)} / {r.get('rss_kb_max', 0)} | "
              f"{r.get('pss_kb_min', 0)} / {r.get('pss_kb_max', 0)} | "
              f"{r.get('max_process_rss_kb', '')} | {r['exit_status']} |")
    for r in live:
        print(f"\n{r['label']}: messages {r['messages']}, largest bytes {r['largest_bytes']}, "
              f"status {' -> '.join(r['statuses'])}, exit {r['exit_status']} "
              f"{r['stop_s']:.2f} s after SIGTERM"
              + (f"; still running when it exited: {r['left_running']}"
                 if r["left_running"] else ""))
        if "rss_kb_by_process" in r:
            print(f"  largest RSS sampled per program (kB): {r['rss_kb_by_process']}")
        if "processes_per_round" in r:
            print(f"  per round: {r['processes_per_round']:.1f} processes started, "
                  f"{r['execs_per_round']:.1f} programs run: {r['programs_per_round']}")
    snmp = result["snmp"]
    if "skipped" in snmp:
        print(f"\nSNMP skipped: {snmp['skipped']}")
        return
    print(f"\nSNMP poller (importing pysnmp: {snmp['import_ms']:.0f} ms in this process, "
          f"{snmp['memory'][0]['import_ms']:.0f} ms in a fresh one):")
    print("\n| SNMP | devices | mode | rounds | round wall ms mean / p95 | round CPU ms mean "
          "/ p95 | CPU ms per device-poll | snmpd CPU ms per poll (+ pass scripts) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in snmp["runs"]:
        print(f"| {r['version']} | {r['devices']} | {r['mode']} | {r['rounds']} "
              f"| {ms(r['wall_ms'])} | {ms(r['cpu_ms'])} | {r['cpu_ms_per_device']:.1f} "
              f"| {r['snmpd_cpu_ms_per_poll']:.1f} (+{r['snmpd_pass_cpu_ms_per_poll']:.1f}) |")
    if snmp.get("memory"):
        print("\nMemory of a fresh process (RSS MB) that imports the agent, then pysnmp, then "
              "polls N v2c devices twice (devices kept):\n")
        print("| devices | agent's modules loaded | + pysnmp | + devices polled | per device |")
        print("|---|---|---|---|---|")
        for m in snmp["memory"]:
            print(f"| {m['devices']} | {m['rss_agent_mb']:.1f} | {m['rss_pysnmp_mb']:.1f} "
                  f"| {m['rss_polled_mb']:.1f} | {m['per_device_mb']:.2f} |")
    for r in snmp["runs"]:
        if "read" in r:
            rd = r["read"]
            print(f"\nSNMP read alone ({r['version']}, warm): wall {ms(rd['wall_ms'])} ms, "
                  f"CPU {ms(rd['cpu_ms'])} ms, {rd['requests']:.0f} requests, "
                  f"{rd['varbinds']:.0f} values; interfaces served: "
                  f"{len(rd['interfaces'])} ({', '.join(rd['interfaces'])})")


def machine_info() -> Dict[str, Any]:
    def first_line(args: List[str]) -> str:
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=10)
        except OSError:
            return "?"
        return ((out.stdout or out.stderr).strip().splitlines() or ["?"])[0]

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pub = first_line(["sh", "-c", "mosquitto_pub --help | sed -n 2p"])
    return {"cores": psutil.cpu_count(), "cpu": cpu, "python": sys.version.split()[0],
            "busybox": " ".join(first_line(["busybox"]).split()[:2]),
            "mosquitto_pub": " ".join(pub.split()[:3]),
            "snmpd": "net-snmp " + first_line(["sh", "-c", "snmpd -v | sed -n 2p"]).split()[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Needs busybox, dash, mosquitto, mosquitto_pub and snmpd (make setup); "
               "strace and GNU time (/usr/bin/time) are optional. A run takes about "
               "60 s + 5 x ROUNDS s with the defaults (about 3 minutes).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20,
                        help="--once runs per case and single-device SNMP polls (default 20; "
                             "fewer for v3 and for 10 and 50 devices)")
    parser.add_argument("--live-seconds", type=float, default=60.0,
                        help="length of the live OpenWrt run (default 60)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--snmp-memory", nargs=5, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.snmp_memory:
        snmp_memory(*args.snmp_memory)
        return 0
    if args.rounds < 2 or args.live_seconds < 15:
        parser.error("--rounds must be at least 2 and --live-seconds at least 15")
    started = time.monotonic()
    result: Dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
                              "rounds": args.rounds, "live_seconds": args.live_seconds}
    with tempfile.TemporaryDirectory(prefix="cwatch-bench-router-") as tmp:
        workdir = Path(tmp)
        root = fake_root(workdir)
        result["openwrt_once"] = bench_once(workdir, root, args.rounds)
        result["openwrt_live"] = bench_live(workdir, root, args.live_seconds)
        result["snmp"] = bench_snmp(workdir, args.rounds)
    result["bench_seconds"] = time.monotonic() - started
    progress(f"done in {result['bench_seconds']:.0f} s")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_tables(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
