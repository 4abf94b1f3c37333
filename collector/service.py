"""The collector process.

    mosquitto --(QoS 1, persistent session)--> receiver (receiver.py: paho in a child
    process, or in a thread) --> _handle_message (the "MQTT thread" below)
        -> Decoder (ingest.py): validate ---> Rejection -> counter{reason}, rate-limited log
        -> Deduplicator (dedup.py): (site, device, seq) seen? -> counter, dropped
        -> pending deque -> store worker thread, up to 500 samples at a time:
              -> TimeSeriesWriter.submit (store/timeseries.py): lines queued, written in
                 batches by its own thread to VictoriaMetrics / InfluxDB
              -> StateStore.apply_many (store/state.py, SQLite, one transaction)
              -> sinks (rules, tests, the demo)
    housekeeping thread: silent devices -> offline; de-duplication ranges -> state store
    AlertService (alerts/service.py): findings table -> grouped e-mails -> outbox -> SMTP
    ApiServer (api.py): /metrics, /healthz, /api/*, /probe/blob
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.service import AlertService
from collector import partition
from collector.api import ApiServer
from collector.config import CollectorConfig
from collector.dedup import Deduplicator
from collector.ingest import RATE_LIMITED, Decoder, Rejection, Sample
from collector.metrics import (
    FindingsCollector,
    FleetCollector,
    IngestMetrics,
    PrioritiesCollector,
    register_site_names,
)
from collector.ratelimit import DeviceRateLimiter, device_of
from collector.receiver import (
    BROKER_DROPPED_TOPIC,
    MessageId,
    ProcessReceiver,
    Receiver,
    ThreadReceiver,
)
from collector.rules import priority
from collector.rules import spec as rule_spec
from collector.rules.engine import RuleEngine
from collector.store.findings import FindingsStore
from collector.store.state import StateStore
from collector.store.timeseries import TimeSeriesWriter
from cwatch import protocol
from cwatch.admin.accounts import PasswordFile
from cwatch.admin.enrollment import Enroller, TokenStore
from cwatch.config import ConfigError, parse_host_port
from cwatch.logutil import RateLimitedLog

log = logging.getLogger(__name__)

SampleSink = Callable[[Sample], None]
RejectSink = Callable[[Rejection], None]
HOUSEKEEPING_S = 10.0
# One SQLite transaction for up to this many samples: a commit costs as much as three
# samples' updates. The worker looks for work this often when it has none.
STORE_BATCH = 500
STORE_POLL_S = 0.02


class Collector:
    def __init__(self, config: CollectorConfig, *, sinks: list[SampleSink] | None = None,
                 on_reject: RejectSink | None = None) -> None:
        self.config = config
        self._topics = self.subscriptions()  # reads the sites file: fail before anything
        section = config.collector
        # With a partition: this collector's sites, and every site of the province.
        self._own_sites = (partition.own_sites(section.partition, section.sites_file)
                           if section.partition else None)
        self._known_sites = (set(partition.read_sites(Path(section.sites_file)))
                             if section.partition else set())
        self.metrics = IngestMetrics()
        self._decoder = Decoder()
        self._limiter = DeviceRateLimiter(config.collector.device_rate_per_s,
                                          config.collector.device_burst)
        self._dedup = Deduplicator()
        self.state = StateStore(config.collector.state_path)
        # What each device sent before a restart, so its re-sends count as duplicates.
        for (site, device), ranges in self.state.all_seen_ranges().items():
            self._dedup.load(site, device, ranges)
        self.metrics.registry.register(FleetCollector(self.state.counts_by_site))
        tsdb = config.tsdb
        self.tsdb = TimeSeriesWriter(
            tsdb.url, tsdb.org, tsdb.bucket, tsdb.token, registry=self.metrics.registry,
            spool_dir=tsdb.spool_path(config.collector.state_path),
            spool_max_bytes=tsdb.spool_max_bytes) if tsdb.enabled else None
        self.findings: FindingsStore | None = None
        self.engine: RuleEngine | None = None
        if section.rules:
            ruleset = rule_spec.load(Path(section.rules_file) if section.rules_file else None)
            self.findings = FindingsStore(self.state)
            self.engine = RuleEngine(ruleset, self.findings, self.state)
            self.metrics.registry.register(FindingsCollector(
                self.findings.active_counts,
                functools.partial(self.findings.query, state="active", limit=100_000)))
            self.metrics.registry.register(PrioritiesCollector(
                functools.partial(self.priorities, None, 1_000_000)))
        names = partition.site_names(Path(section.sites_file)) if section.sites_file else {}
        register_site_names(self.metrics.registry, names)
        self.alerts: AlertService | None = None
        if config.alerts.enabled and self.findings is not None:
            self.alerts = AlertService(config.alerts, self.state, self.findings,
                                       self.metrics.registry, site_names=names,
                                       priorities=self._top_devices)
        # The rules see each sample right after the state store has it.
        self._sinks = ([self.engine.observe] if self.engine else []) + list(sinks or [])
        self._on_reject = on_reject
        self._reject_log = RateLimitedLog(log)
        # MQTT thread -> store worker. A deque and a polling worker, not a Queue: a
        # Condition per message (and the thread switch it causes) cost more than the
        # decoding itself. Counters instead of task_done, for wait_idle().
        self._pending: collections.deque[Sample] = collections.deque()
        self._handed_over = 0  # written by the MQTT thread only
        self._stored = 0  # written by the store worker only
        # (samples handed over once the message is done, mid, qos): a message is
        # acknowledged to the broker only once its samples are in the state store, so a
        # crash (kill -9, power cut) loses nothing the broker was told we have.
        self._acks: collections.deque[tuple[int, MessageId, int]] = collections.deque()
        self.metrics.state_queue.set_function(lambda: len(self._pending))
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.api: ApiServer | None = None
        self._accepted = {channel: self.metrics.accepted.labels(channel)
                          for channel in protocol.CHANNELS if channel != protocol.BATCH}
        kind: type[ProcessReceiver] | type[ThreadReceiver] = ThreadReceiver
        if config.collector.receiver == "process":
            if os.name == "nt":  # it hands the child a socket by number: POSIX only
                log.warning("receiver = \"process\" is not available on Windows; "
                            "receiving in a thread")
            else:
                kind = ProcessReceiver
        self._receiver: Receiver = kind(config.broker, config.collector.client_id,
                                        self._topics, self._handle_connect,
                                        self._handle_disconnect, self._handle_message)

    def subscriptions(self) -> list[str]:
        section = self.config.collector
        if section.partition:
            return partition.topics(section.partition, section.sites_file)
        if section.shared_group:
            return [f"$share/{section.shared_group}/{protocol.SUBSCRIPTION}"]
        return [protocol.SUBSCRIPTION]

    def start(self, *, serve_http: bool = True) -> None:
        if self.tsdb is not None:
            self.tsdb.start()
        for target, name in ((self._store_worker, "cwatch-store"),
                             (self._housekeeping, "cwatch-housekeeping")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.alerts is not None:
            self.alerts.start()
        if serve_http:
            host, port = parse_host_port(self.config.collector.listen, "listen")
            self.api = ApiServer(self.state, self.metrics.registry, host, port,
                                 health=self.health, findings=self.findings,
                                 priorities=self.priorities if self.engine else None,
                                 alerts=self.alerts,
                                 write_token=self.config.collector.api_token,
                                 read_token=self.config.collector.api_read_token,
                                 enroller=self._enroller(),
                                 enroll_broker_url=self.config.enroll.broker_url,
                                 enroll_ca_pem=self._enroll_ca_pem())
            self.api.start()
            log.info("serving /metrics and /api on http://%s:%d/", host, self.api.port)
        broker = self.config.broker
        self._receiver.start()
        log.info("connecting to %s:%d as %r", broker.address.host, broker.address.port,
                 self.config.collector.client_id)

    def _enroller(self) -> Enroller | None:
        section = self.config.enroll
        if not section.enabled:
            return None
        return Enroller(TokenStore(Path(section.tokens_file)),
                        PasswordFile(Path(section.password_file)),
                        Path(section.broker_pid_file) if section.broker_pid_file else None)

    def _enroll_ca_pem(self) -> str:
        path = self.config.enroll.broker_ca_file
        if not (self.config.enroll.enabled and path):
            return ""
        try:
            return Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"[enroll] broker_ca_file {path}: cannot read: {exc}") from None

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """True once every accepted sample reached the state store (and the TSDB, if on)."""
        deadline = time.monotonic() + timeout
        while self._stored < self._handed_over:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return self.tsdb is None or self.tsdb.flush(max(0.0, deadline - time.monotonic()))

    def priorities(self, site: str | None, limit: int) -> dict[str, Any]:
        assert self.engine is not None and self.findings is not None
        return priority.rank(self.state, self.findings, time.time(),
                             self.engine.rules.priority, site, limit)

    def _top_devices(self, site: str | None, limit: int) -> list[dict[str, Any]]:
        return self.priorities(site, limit)["devices"]

    def health(self) -> dict[str, Any]:
        return {"ok": self._connected.is_set(), "broker_connected": self._connected.is_set(),
                "state_queue": len(self._pending)}

    def stop(self) -> None:
        self._receiver.stop()
        self._stop.set()  # the store worker empties the deque, then ends
        for thread in self._threads:
            thread.join(timeout=30)
        self._persist_dedup()
        if self.alerts is not None:
            self.alerts.stop()
        if self.tsdb is not None:
            self.tsdb.stop(timeout_s=10)
        if self.api is not None:
            self.api.stop()
            self.api = None

    # --- MQTT thread -------------------------------------------------------------------

    def _handle_connect(self, session_present: bool) -> None:
        shown = self._topics[0] if self._own_sites is None else (
            f"{len(self._own_sites)} sites of partition {self.config.collector.partition}")
        log.info("connected; subscribed to %s (session present: %s)", shown, session_present)
        self._connected.set()

    def _handle_disconnect(self, failure: bool, reason: str) -> None:
        self._connected.clear()
        if failure:
            log.warning("disconnected from broker (%s); reconnecting with backoff", reason)
        else:
            log.info("disconnected from broker")

    def _handle_message(self, topic: str, payload: bytes, mid: MessageId, qos: int) -> None:
        if topic == BROKER_DROPPED_TOPIC:
            self._broker_dropped(payload)
            return
        try:
            self._ingest(topic, payload)
        finally:  # rejected, duplicate or queued: acknowledged once the queue is stored
            self._acks.append((self._handed_over, mid, qos))

    def _not_ours(self, site: str, device: str) -> None:
        if site in self._known_sites:
            return  # another collector's: it stores it
        self.metrics.unassigned.labels(site).inc()
        self._reject_log.warning(
            f"unassigned/{site}",
            f"site {site!r} (device {device}) is in no collector's partition: its data "
            f"reaches no collector; add it to sites_file {self.config.collector.sites_file} "
            "on every collector and restart them")

    def _broker_dropped(self, payload: bytes) -> None:
        try:
            self.metrics.broker_dropped.set(int(payload))
        except ValueError:
            log.warning("%s is not a number: %r", BROKER_DROPPED_TOPIC, payload[:40])

    def _ingest(self, topic: str, payload: bytes) -> None:
        self.metrics.received.inc()
        device = device_of(topic)
        if self._own_sites is not None and device is not None and \
                device[0] not in self._own_sites:
            self._not_ours(*device)  # a status of another partition's site
            return
        if device is not None and not self._limiter.allow(*device):
            # Before parsing: a flood costs a dictionary lookup, not a JSON decode.
            self.metrics.rejected.labels(RATE_LIMITED).inc()
            self.metrics.throttled.labels(*device).inc()
            self._reject_log.warning(
                f"{RATE_LIMITED}/{device[0]}/{device[1]}",
                f"rejected {RATE_LIMITED}: {device[0]}/{device[1]} sends more than "
                f"{self._limiter.rate:g} messages/s (burst {self._limiter.burst:g}); its "
                "messages are dropped until it slows down")
            return
        decoded = self._decoder.decode(topic, payload)
        for rejection in decoded.rejections:
            self.metrics.rejected.labels(rejection.reason).inc()
            self._reject_log.warning(rejection.reason, f"rejected {rejection}")
            if self._on_reject is not None:
                self._on_reject(rejection)
        for sample in decoded.samples:
            if not self._dedup.is_new(sample.site, sample.device, sample.seq):
                self.metrics.duplicates.inc()
                continue
            self._accepted[sample.channel].inc()
            self._pending.append(sample)
            self._handed_over += 1

    # --- worker threads ----------------------------------------------------------------

    def _store_worker(self) -> None:
        while True:
            stopping = self._stop.is_set()  # read before draining: nothing is left behind
            batch = self._take_batch()
            if not batch:
                self._ack_stored()
                if stopping:
                    return
                time.sleep(STORE_POLL_S)
                continue
            try:
                if self.tsdb is not None:  # on disk before the batch is acknowledged
                    self.tsdb.submit_many(batch)
                for sample, exc in self.state.apply_many(batch):
                    log.error("state update failed for a %s sample from %s/%s: %s",
                              sample.channel, sample.site, sample.device, exc)
                stored_at = time.time()
                for sample in batch:
                    if not sample.from_batch:
                        self.metrics.delay.observe(max(0.0, stored_at - sample.ts))
                    for sink in self._sinks:
                        sink(sample)
            except Exception:  # a database or sink failure must not stop the worker
                log.exception("storing %d sample(s) failed", len(batch))
            finally:
                self._stored += len(batch)
                self._ack_stored()

    def _ack_stored(self) -> None:
        """PUBACK the messages whose samples have all reached the state store."""
        done = []
        while self._acks and self._acks[0][0] <= self._stored:
            _, mid, qos = self._acks.popleft()
            if qos > 0:
                done.append((mid, qos))
        if done:
            self._receiver.ack(done)

    def _take_batch(self) -> list[Sample]:
        batch: list[Sample] = []
        with contextlib.suppress(IndexError):
            while len(batch) < STORE_BATCH:
                batch.append(self._pending.popleft())
        return batch

    def _housekeeping(self) -> None:
        while not self._stop.wait(HOUSEKEEPING_S):
            try:
                self._persist_dedup()
                now = time.time()
                silent = self.state.mark_silent(
                    now, intervals=self.config.collector.silence_intervals)
                if self.engine is not None:
                    self.engine.check_silence(now)
                if silent:
                    log.info("%d device(s) went silent: %s", len(silent),
                             ", ".join(f"{s}/{d}" for s, d in silent[:10]))
            except Exception:
                log.exception("housekeeping failed; retrying in %g s", HOUSEKEEPING_S)

    def _persist_dedup(self) -> None:
        self.state.save_seen_ranges(self._dedup.take_dirty())
