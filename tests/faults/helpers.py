"""Real agents, a real collector process and the counting the fault tests share.

Nothing here replaces a part under test: agents run the agent's own code (disk queue,
forwarder, MQTT transport), the collector is the collector, the broker, the
time-series database and the mail server are real servers. The helpers only record
what was produced and count what arrived.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from collector_helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families

from agent.config import AgentConfig, AgentSection, ProbesSection, QueueSection, SmartSection
from agent.service import Agent, Message
from agent.transport import Transport
from cwatch.mqtt import BrokerConfig
from cwatch.procs import end_process, free_port, log_tail
from cwatch.tsdb_proc import VictoriaMetrics

Key = tuple[str, str]  # (site, device)
REPO = Path(__file__).resolve().parents[2]


def finish_all(*steps: Callable[[], object]) -> None:
    """Run every clean-up step even if one fails, then raise the first failure."""
    errors = []
    for step in steps:
        try:
            step()
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            errors.append(exc)
    if errors:
        raise errors[0]


def settle(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.2) -> bool:
    """Wait for the condition, but let the test count what is missing if it never holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


# --- agents -----------------------------------------------------------------------------


def agent_config(data_dir: Path, broker_url: str, site: str, device: str, *,
                 max_mb: float = 50.0, batch_max_items: int = 500,
                 flush_rate_bytes_per_s: float = 32_768.0) -> AgentConfig:
    """An agent at 1 s, probes and SMART off, reconnecting within a second."""
    return AgentConfig(
        agent=AgentSection(site=site, device=device, interval_s=1, data_dir=str(data_dir)),
        broker=BrokerConfig(url=broker_url, reconnect_max_s=1, keepalive_s=5),
        probes=ProbesSection(enabled=False, gateway="", public_dns=""),
        smart=SmartSection(enabled=False),
        queue=QueueSection(max_mb=max_mb, batch_max_items=batch_max_items,
                           flush_rate_bytes_per_s=flush_rate_bytes_per_s))


class FleetAgent(Agent):
    """The real agent, noting each metrics envelope once it is in its disk queue.

    hold() makes it stop producing (what it already queued still goes out), so a test
    can wait until the queue is empty and compare what was produced with what arrived.
    """

    def __init__(self, config: AgentConfig, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, clock)
        self.key: Key = (config.agent.site, config.agent.device)
        self._produced: dict[int, float] = {}  # seq -> ts, metrics only
        self._lock = threading.Lock()
        self._holding = threading.Event()
        self._runner: threading.Thread | None = None

    def _enqueue(self, message: Message) -> None:
        if self._holding.is_set():
            return
        _, env = message
        super()._enqueue(message)
        with self._lock:
            self._produced[env["seq"]] = env["ts"]

    @property
    def produced(self) -> dict[int, float]:
        with self._lock:
            return dict(self._produced)

    def start(self) -> FleetAgent:
        self._runner = threading.Thread(target=self.run, name=f"agent-{self.key[1]}",
                                        daemon=True)
        self._runner.start()
        return self

    def hold(self) -> None:
        self._holding.set()

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._transport.connected.is_set()

    def finish(self) -> None:
        self.stop()
        if self._runner is not None:
            self._runner.join(timeout=30)
            assert not self._runner.is_alive(), f"agent {self.key} did not stop"
            self._runner = None


class RecordingTransport(Transport):
    """The agent's MQTT transport, noting each message the broker acknowledged (PUBACK):
    from then on the agent has forgotten it. Install with
    monkeypatch.setattr(agent.service, "Transport", RecordingTransport)."""

    acked: list[tuple[str, bytes]] = []  # every instance's, in order

    def publish_and_wait(self, topic: str, payload: bytes, retain: bool = False,
                         timeout_s: float = 60.0) -> bool:
        ok = super().publish_and_wait(topic, payload, retain, timeout_s)
        if ok:
            RecordingTransport.acked.append((topic, payload))
        return ok


def envelope_seqs(topic: str, payload: bytes) -> list[int]:
    """The seqs one agent message carries: one, or a batch's items'."""
    if topic.endswith("/batch"):
        return [item["seq"] for item in json.loads(zlib.decompress(payload))["data"]["items"]]
    return [json.loads(payload)["seq"]]


def fill_offline(config: AgentConfig, count: int, step_s: float) -> dict[int, float]:
    """What an agent cut off for count x step_s seconds has on its disk: the real
    agent's envelopes, made with a clock that runs step_s per message and ends now."""
    clock = [time.time() - count * step_s]

    def now() -> float:
        return clock[0]

    agent = FleetAgent(config, clock=now)
    for _ in range(count):
        clock[0] += step_s
        agent._enqueue(agent.metrics())
    agent.queue.close()
    return agent.produced


class Fleet:
    """Several agents; each starts with an optional offline backlog."""

    def __init__(self, agents: list[FleetAgent], backlog: dict[Key, dict[int, float]]) -> None:
        self.agents = agents
        self.backlog = backlog

    @classmethod
    def make(cls, workdir: Path, broker_url: str, keys: Iterable[Key], *,
             backlog: int = 0, backlog_step_s: float = 60.0, **queue: Any) -> Fleet:
        agents, filled = [], {}
        for site, device in keys:
            config = agent_config(workdir / f"{site}-{device}", broker_url, site, device,
                                  **queue)
            if backlog:
                filled[(site, device)] = fill_offline(config, backlog, backlog_step_s)
            agents.append(FleetAgent(config))
        return cls(agents, filled)

    def start(self) -> Fleet:
        for agent in self.agents:
            agent.start()
        return self

    def produced(self) -> dict[Key, dict[int, float]]:
        """Every metrics envelope put in a disk queue: the backlog and the live ones."""
        return {agent.key: {**self.backlog.get(agent.key, {}), **agent.produced}
                for agent in self.agents}

    def queued(self) -> int:
        return sum(agent.queue.count for agent in self.agents)

    def dropped(self) -> int:
        return sum(agent.queue.dropped_total for agent in self.agents)

    def hold_and_drain(self, timeout_s: float) -> float:
        for agent in self.agents:
            agent.hold()
        time.sleep(0.3)  # a round that began before hold() still lands in the queue
        return wait_until(lambda: self.queued() == 0, timeout_s,
                          "the agents' disk queues did not empty")

    def finish(self) -> None:
        for agent in self.agents:
            agent.stop()
        finish_all(*(agent.finish for agent in self.agents))


def total(produced: dict[Key, dict[int, float]]) -> int:
    return sum(len(seqs) for seqs in produced.values())


def received_metrics(received: Any) -> dict[Key, dict[int, float]]:
    """seq -> ts of the metrics a tests/agent_helpers.Received sink got, per device."""
    out: dict[Key, dict[int, float]] = {}
    for (site, device, seq), sample in list(received.by_key.items()):
        if sample.channel == "metrics":
            out.setdefault((site, device), {})[seq] = sample.ts
    return out


def covered(produced: dict[Key, dict[int, float]], got: dict[Key, dict[int, float]]) -> bool:
    """Every produced seq is among those received."""
    return all(set(seqs) <= set(got.get(key, {})) for key, seqs in produced.items())


# --- the collector ----------------------------------------------------------------------


class DedupSpy:
    """Wraps the collector's de-duplicator to count what it drops, per (site, device, seq)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dropped: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()

    def is_new(self, site: str, device: str, seq: int) -> bool:
        new = bool(self.inner.is_new(site, device, seq))
        if not new:
            with self._lock:
                self.dropped[(site, device, seq)] += 1
        return new

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def count(self, produced: dict[Key, dict[int, float]]) -> int:
        """Duplicates dropped among the given envelopes (not status or inventory)."""
        with self._lock:
            return sum(n for (site, device, seq), n in self.dropped.items()
                       if seq in produced.get((site, device), {}))


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def registry_value(registry: Any, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


class CollectorProcess:
    """`cwatch collector --config FILE` as a child process, to be killed with SIGKILL.

    Its state file, client id and port stay the same across restarts, so the broker
    keeps its persistent session and the restarted collector reads the de-duplication
    ranges the killed one saved.
    """

    def __init__(self, workdir: Path, broker_url: str, client_id: str, *,
                 tsdb_url: str | None = None, extra_toml: str = "",
                 journal: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # With a journal: tests/faults/collector_journal.py, the same collector noting
        # every sample it stored.
        self.journal_path = workdir / f"{client_id}.journal" if journal else None
        self.state_path = workdir / f"{client_id}.db"
        self.log_path = workdir / f"{client_id}.log"
        self.config_path = workdir / f"{client_id}.toml"
        self.config_path.write_text(f"""
[collector]
client_id = "{client_id}"
listen = "127.0.0.1:{self.port}"
state_path = "{self.state_path}"
[broker]
url = "{broker_url}"
reconnect_max_s = 1
keepalive_s = 5
[tsdb]
enabled = {"true" if tsdb_url else "false"}
url = "{tsdb_url or "http://127.0.0.1:1"}"
{extra_toml}
""", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> CollectorProcess:
        command = [sys.executable, "-m", "cwatch", "collector", "--config",
                   str(self.config_path)]
        if self.journal_path is not None:
            command = [sys.executable, str(Path(__file__).with_name("collector_journal.py")),
                       str(self.config_path), str(self.journal_path)]
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO)
        self.starts += 1
        wait_until(self.healthy, timeout_s, f"collector not healthy; see {self.log_path}",
                   poll_s=0.1)
        return self

    def healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, (
            f"collector exited with {self.proc and self.proc.returncode}: "
            f"{self.log_tail()}")
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return bool(json.loads(response.read())["broker_connected"])
        except (OSError, urllib.error.HTTPError):
            return False

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing flushed, the de-duplication ranges not saved."""
        if self.proc is not None:
            end_process(self.proc, kill=True)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, kill=False, grace_s=20)
            self.proc = None

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return scrape(self.url + "/metrics")

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


class Stored(NamedTuple):
    site: str
    device: str
    channel: str
    seq: int
    ts: float
    stored_at: float  # the collector's wall clock


def read_journal(path: Path) -> list[Stored]:
    """The journal of tests/faults/collector_journal.py, in the order stored."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        site, device, channel, seq, ts, stored_at = line.split()
        out.append(Stored(site, device, channel, int(seq), float(ts), float(stored_at)))
    return out


def produced_keys(produced: dict[Key, dict[int, float]]) -> set[tuple[str, str, int, float]]:
    """(site, device, seq, ts) of every produced envelope."""
    return {(site, device, seq, ts) for (site, device), seqs in produced.items()
            for seq, ts in seqs.items()}


def stored_keys(journal: Path, channel: str = "metrics") -> Counter[tuple[str, str, int, float]]:
    """(site, device, seq, ts) of what the journal says the state store got, counted."""
    if not journal.exists():
        return Counter()
    return Counter((e.site, e.device, e.seq, e.ts) for e in read_journal(journal)
                   if e.channel == channel)


def daily_samples(state_path: Path) -> dict[Key, int]:
    """Metrics samples counted in the state store's daily roll-ups, per device."""
    db = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT site, device, SUM(samples) FROM device_daily "
                          "GROUP BY site, device").fetchall()
    finally:
        db.close()
    return {(site, device): int(n) for site, device, n in rows}


# --- the time-series database -----------------------------------------------------------


def vm_points(vm: VictoriaMetrics, metric: str, site_regex: str) -> dict[Key, list[int]]:
    """Every stored timestamp (ms) of one metric, per device, duplicates included."""
    out: dict[Key, list[int]] = defaultdict(list)
    # (an export without an end stops at the current second: the newest points would
    # be left out)
    for row in vm.export(f'{metric}{{site=~"{site_regex}"}}', end=time.time() + 600):
        labels = row["metric"]
        out[(labels["site"], labels["device"])].extend(int(t) for t in row["timestamps"])
    return dict(out)


def vm_all_points(vm: VictoriaMetrics, site_regex: str) -> int:
    """Every stored value of every series of these sites."""
    return sum(len(row["timestamps"])
               for row in vm.export(f'{{__name__=~"cwatch_.+",site=~"{site_regex}"}}',
                                    end=time.time() + 600))


def ms(ts: float) -> int:
    return round(ts * 1000)


def compare_vm(produced: dict[Key, dict[int, float]],
               stored: dict[Key, list[int]]) -> tuple[int, int, int]:
    """(found, missing, duplicates) of the produced timestamps among the stored ones."""
    found = missing = duplicates = 0
    for key, seqs in produced.items():
        stamps = Counter(stored.get(key, []))
        for ts in seqs.values():
            if stamps[ms(ts)]:
                found += 1
            else:
                missing += 1
        duplicates += sum(n - 1 for n in stamps.values() if n > 1)
    return found, missing, duplicates
