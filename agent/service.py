"""The agent: collect on schedules, queue on disk, forward over MQTT.

    HostProbe + SmartProbe --every interval_s-------> envelope(seq) -\\
    ConnectivityProbe -----every probe_interval_s--> envelope(seq) --> DiskQueue -> Forwarder
    inventory -------------on connect and daily----> retained, straight to the broker
    status ----------------"online" on connect; Last Will "offline" (retained)
    [[polled]] routers ----SNMP/ping, agent.snmp----> each its own device: seq, queue, forwarder
"""

from __future__ import annotations

import json
import logging
import random
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

import cwatch
from agent.config import AgentConfig
from agent.forwarder import Forwarder, queue_stats
from agent.probes.connectivity import ConnectivityProbe, Target, blob_url, default_targets
from agent.probes.host import HostProbe
from agent.probes.inventory import collect_inventory
from agent.probes.smart import SmartProbe
from agent.queue import DiskQueue
from agent.seq import SeqCounter
from agent.snmp.scheduler import Scheduler, poll_once
from agent.transport import Transport
from cwatch import protocol

log = logging.getLogger(__name__)

Message = Tuple[str, Dict[str, Any]]  # (topic, envelope)
COLLECTOR_HTTP_PORT = 9555


def _target_name(host: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", host.lower()).strip("-._")[:64]
    return name or "host"


def build_targets(config: AgentConfig) -> List[Target]:
    probes = config.probes
    collector = probes.collector_host or config.broker.address.host
    targets = default_targets(collector, probes.portal_url or None,
                              gateway=probes.gateway or None,
                              public_dns=probes.public_dns or None)
    targets += [Target(_target_name(host), "custom", host, "icmp") for host in probes.extra_hosts]
    return targets


class Agent:
    def __init__(self, config: AgentConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        data_dir = Path(config.agent.data_dir)
        self._seq = SeqCounter(data_dir / "seq")
        self.queue = DiskQueue(data_dir / "queue.db",
                               max_bytes=int(config.queue.max_mb * 1024 * 1024),
                               max_age_s=config.queue.max_age_days * 86400)
        self._host = HostProbe(clock=clock)
        self._smart = SmartProbe(min_interval_s=config.smart.interval_s) \
            if config.smart.enabled else None
        probes = config.probes
        collector_host = probes.collector_host or config.broker.address.host
        throughput_url = probes.throughput_url or blob_url(
            f"http://{collector_host}:{COLLECTOR_HTTP_PORT}", probes.throughput_bytes)
        self._connectivity = ConnectivityProbe(
            build_targets(config), timeout_s=probes.timeout_s, throughput_url=throughput_url,
            throughput_max_bytes=probes.throughput_bytes) if probes.enabled else None
        self._last_throughput = float("-inf")
        self._inventory_data = None  # type: Optional[Dict[str, Any]]
        self._transport = None  # type: Optional[Transport]
        self._polled = None  # type: Optional[Scheduler]
        self._stop = threading.Event()

    # --- envelopes ---------------------------------------------------------------------

    def message(self, channel: str, data: Dict[str, Any]) -> Message:
        section = self.config.agent
        env = protocol.envelope(section.site, section.device, round(self._clock(), 3),
                                self._seq.next(), data)
        return protocol.topic_for(section.site, section.device, channel), env

    def status(self, state: str, reason: Optional[str] = None) -> Message:
        data = {"state": state, "agent_version": cwatch.__version__,
                "interval_s": self.config.agent.interval_s}  # type: Dict[str, Any]
        if reason is not None:  # "shutdown" (clean stop) or "lost" (the Last Will)
            data["reason"] = reason
        return self.message(protocol.STATUS, data)

    def inventory(self) -> Message:
        asset = {k: getattr(self.config.asset, k)
                 for k in ("tag", "role", "purchase_date", "location")}
        smart_disks = None
        if self._smart is not None:
            self._smart.collect()  # cached; fills the disk list the inventory needs
            smart_disks = self._smart.inventory_disks()
        self._inventory_data = collect_inventory(asset, smart_disks=smart_disks)
        return self.message(protocol.INVENTORY, self._inventory_data)

    def metrics(self) -> Message:
        data = {"interval_s": self.config.agent.interval_s}  # type: Dict[str, Any]
        data.update(self._host.collect(agent_extra=queue_stats(self.queue, self._transport)))
        if self._smart is not None:
            items, note = self._smart.collect()
            if items:
                data["smart"] = items
            if note:
                data["smart_note"] = note[:300]
        return self.message(protocol.METRICS, data)

    def probe(self) -> Optional[Message]:
        if self._connectivity is None:
            return None
        interval = self.config.probes.throughput_interval_s
        now = time.monotonic()
        throughput = bool(interval) and now - self._last_throughput >= interval
        if throughput:
            self._last_throughput = now
        return self.message(protocol.PROBE, self._connectivity.collect(throughput=throughput))

    # --- running -----------------------------------------------------------------------

    def once(self, out: TextIO = sys.stdout) -> List[Message]:
        """One round without a broker, printed as JSON lines for troubleshooting."""
        self._host.collect()  # rates and CPU percent need a first sample to compare with
        time.sleep(1.0)
        messages = [self.status("online"), self.inventory(), self.metrics()]
        probe = self.probe()
        if probe is not None:
            messages.append(probe)
        if self.config.polled:
            messages += poll_once(self.config, self._clock)
        for topic, env in messages:
            out.write(json.dumps({"topic": topic, "payload": env}, ensure_ascii=False) + "\n")
        out.flush()
        return messages

    def _enqueue(self, message: Message) -> None:
        topic, env = message
        self.queue.put(protocol.parse_topic(topic).channel, protocol.encode(env))

    def _on_connected(self) -> None:
        # Runs in paho's thread: publish without waiting. Retained, so a collector that
        # starts later still learns the device's state and hardware. The cached inventory
        # goes in a fresh envelope: a re-used seq would be dropped as a duplicate.
        assert self._transport is not None
        inventory = (self.message(protocol.INVENTORY, self._inventory_data)
                     if self._inventory_data is not None else self.inventory())
        for topic, env in (self.status("online"), inventory):
            self._transport.publish_nowait(topic, protocol.encode(env), retain=True)
        if self._polled is not None:
            self._polled.on_connected()

    def _refresh_inventory(self) -> None:
        topic, env = self.inventory()
        if self._transport is not None and self._transport.connected.is_set():
            self._transport.publish_nowait(topic, protocol.encode(env), retain=True)

    def _every(self, interval_s: float, job: Callable[[], None], name: str,
               first_delay_s: float) -> threading.Thread:
        def loop() -> None:
            next_run = time.monotonic() + first_delay_s
            while not self._stop.wait(max(0.0, next_run - time.monotonic())):
                try:
                    job()
                except Exception:  # one failed round must not end the schedule
                    log.exception("%s failed; trying again in %g s", name, interval_s)
                # Fixed rate, not fixed delay: slow rounds do not make the schedule drift.
                next_run += interval_s
                if next_run < time.monotonic():
                    next_run = time.monotonic() + interval_s
        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        """Collect and publish until stop(); survives any number of broker outages."""
        section = self.config.agent
        self.inventory()
        # Unique on the broker: every commune may have its own "pc-01" (and a second
        # client with the same id would throw the first off the broker).
        transport = Transport(self.config.broker, f"{section.site}/{section.device}",
                              will=lambda: self._encoded(self.status("offline", "lost")),
                              on_connected=self._on_connected)
        self._transport = transport
        forwarder = Forwarder(self.queue, transport, section.site, section.device,
                              batch_max_items=self.config.queue.batch_max_items,
                              flush_rate_bytes_per_s=self.config.queue.flush_rate_bytes_per_s)
        if self.config.polled:
            # Before the transport starts: its first connect republishes their state too.
            self._polled = Scheduler(self.config, transport, self._clock)
        transport.start()
        forwarder.start()
        if self._polled is not None:
            self._polled.start()
        self._host.collect()  # prime rates so the first message already has them
        # A random phase spreads a commune's PCs over the interval instead of one second.
        jobs = [self._every(section.interval_s, lambda: self._enqueue(self.metrics()),
                            "cwatch-metrics", random.uniform(1.0, min(section.interval_s, 15.0)))]
        if self._connectivity is not None:
            jobs.append(self._every(section.probe_interval_s, self._probe_job, "cwatch-probe",
                                    random.uniform(1.0, min(section.probe_interval_s, 20.0))))
        jobs.append(self._every(section.inventory_interval_s, self._refresh_inventory,
                                "cwatch-inventory", section.inventory_interval_s))
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            for job in jobs:
                job.join(timeout=30)
            if self._polled is not None:
                self._polled.stop()  # says goodbye for the devices while still connected
            forwarder.stop()
            transport.stop(final=self._encoded(self.status("offline", "shutdown")))
            self.queue.close()

    def _probe_job(self) -> None:
        message = self.probe()
        if message is not None:
            self._enqueue(message)

    @staticmethod
    def _encoded(message: Message) -> Tuple[str, bytes]:
        return message[0], protocol.encode(message[1])

    def stop(self) -> None:
        self._stop.set()


def run_from_args(config: AgentConfig, once: bool) -> int:
    agent = Agent(config)
    if once:
        agent.once()
        return 0
    signal.signal(signal.SIGTERM, lambda signum, frame: agent.stop())
    log.info("agent %s/%s: metrics every %g s, probes every %g s, queue in %s",
             config.agent.site, config.agent.device, config.agent.interval_s,
             config.agent.probe_interval_s, config.agent.data_dir)
    for polled in config.polled:
        log.info("polling %s at %s (%s) every %g s", polled.device, polled.host,
                 "ping only" if polled.snmp == "none" else "SNMP v" + polled.snmp,
                 polled.interval_s or config.agent.interval_s)
    try:
        agent.run()
    except KeyboardInterrupt:
        agent.stop()
    return 0
