"""Where a polled device's envelopes go: its own seq, disk queue and forwarder.

A polled router is a device of its own on the wire, so it gets what the agent's own PC
has, under <data_dir>/polled/<device>/: a SeqCounter (never reused across restarts), a
DiskQueue and a Forwarder sharing the agent's one MQTT connection. `metrics` and `probe`
go through the queue (kept on disk while the broker is away, backfilled in batches with
their original ts); `status` and `inventory` are retained and go straight to the broker,
again on every reconnect, like the agent's own.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import cwatch
from agent.config import QueueSection
from agent.forwarder import Forwarder
from agent.queue import DiskQueue
from agent.seq import SeqCounter
from agent.transport import Transport
from cwatch import protocol

log = logging.getLogger(__name__)

Message = Tuple[str, Dict[str, Any]]  # (topic, envelope)
RETAINED = (protocol.STATUS, protocol.INVENTORY)  # in the order they are published


def device_dir(data_dir: Path, device: str) -> Path:
    return data_dir / "polled" / device


class _Envelopes:
    """Envelopes for one polled device, numbered by its own persistent counter."""

    def __init__(self, site: str, device: str, data_dir: Path, interval_s: float) -> None:
        self.site, self.device, self.interval_s = site, device, interval_s
        self._seq = SeqCounter(device_dir(data_dir, device) / "seq")

    def message(self, channel: str, data: Dict[str, Any], ts: float) -> Message:
        env = protocol.envelope(self.site, self.device, round(ts, 3), self._seq.next(), data)
        return protocol.topic_for(self.site, self.device, channel), env

    def status_data(self, state: str, reason: Optional[str]) -> Dict[str, Any]:
        data = {"state": state, "agent_version": cwatch.__version__,
                "interval_s": self.interval_s}  # type: Dict[str, Any]
        if reason is not None:
            data["reason"] = reason
        return data


class DevicePublisher(_Envelopes):
    """Publishes one polled device's envelopes over the agent's transport."""

    def __init__(self, site: str, device: str, data_dir: Path, interval_s: float,
                 transport: Transport, queue: QueueSection) -> None:
        super().__init__(site, device, data_dir, interval_s)
        self._transport = transport
        self.queue = DiskQueue(device_dir(data_dir, device) / "queue.db",
                               max_bytes=int(queue.max_mb * 1024 * 1024),
                               max_age_s=queue.max_age_days * 86400)
        self._forwarder = Forwarder(self.queue, transport, site, device,
                                    batch_max_items=queue.batch_max_items,
                                    flush_rate_bytes_per_s=queue.flush_rate_bytes_per_s)
        self._lock = threading.Lock()
        self._retained = {}  # type: Dict[str, Tuple[Dict[str, Any], float]]
        self._dirty: Set[str] = set()

    def start(self) -> None:
        self._forwarder.start()

    def send(self, channel: str, data: Dict[str, Any], ts: float) -> None:
        """metrics or probe: into the disk queue; the forwarder sends it when it can."""
        _topic, env = self.message(channel, data, ts)
        self.queue.put(channel, protocol.encode(env))

    def set_status(self, state: str, reason: Optional[str], ts: float) -> None:
        self._set_retained(protocol.STATUS, self.status_data(state, reason), ts)

    def set_inventory(self, data: Dict[str, Any], ts: float) -> None:
        self._set_retained(protocol.INVENTORY, data, ts)

    def _set_retained(self, channel: str, data: Dict[str, Any], ts: float) -> None:
        with self._lock:
            self._retained[channel] = (data, ts)
            self._dirty.add(channel)
            self._flush_locked()

    def flush(self) -> None:
        """Publish retained values that changed while the broker was away."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._transport.connected.is_set():
            return  # on_connected() publishes the current values
        for channel in RETAINED:
            if channel in self._dirty:
                self._publish_retained(channel)

    def _publish_retained(self, channel: str) -> None:
        data, ts = self._retained[channel]
        # The sample time stays the one of the change; a fresh seq, or the collector would
        # drop a republished envelope as a duplicate.
        topic, env = self.message(channel, data, ts)
        self._transport.publish_nowait(topic, protocol.encode(env), retain=True)
        self._dirty.discard(channel)

    def on_connected(self) -> None:
        """Called in paho's thread on every (re)connect: status, then inventory while the
        device is online (an unreachable device gets nothing but its 'offline')."""
        with self._lock:
            status = self._retained.get(protocol.STATUS)
            online = status is not None and status[0]["state"] == "online"
            for channel in RETAINED:
                if channel in self._retained and (channel == protocol.STATUS or online):
                    self._publish_retained(channel)
            self._dirty.clear()

    def stop(self, goodbye: bool = True) -> None:
        """Stop forwarding; with `goodbye`, a device reported online is reported 'offline'
        with reason 'shutdown' (nobody watches it now: not a failure of the device)."""
        self._forwarder.stop()
        with self._lock:
            status = self._retained.get(protocol.STATUS)
            online = status is not None and status[0]["state"] == "online"
        if goodbye and online and self._transport.connected.is_set():
            topic, env = self.message(protocol.STATUS,
                                      self.status_data("offline", "shutdown"),
                                      time.time())
            if not self._transport.publish_and_wait(topic, protocol.encode(env), retain=True,
                                                    timeout_s=5):
                log.info("%s: could not say goodbye to the broker", self.device)
        self.queue.close()


class CollectingPublisher(_Envelopes):
    """Keeps the envelopes in a list (for `cwatch agent --once --print`)."""

    def __init__(self, site: str, device: str, data_dir: Path, interval_s: float) -> None:
        super().__init__(site, device, data_dir, interval_s)
        self.messages: List[Message] = []

    def send(self, channel: str, data: Dict[str, Any], ts: float) -> None:
        self.messages.append(self.message(channel, data, ts))

    def set_status(self, state: str, reason: Optional[str], ts: float) -> None:
        self.messages.append(self.message(protocol.STATUS, self.status_data(state, reason),
                                          ts))

    def set_inventory(self, data: Dict[str, Any], ts: float) -> None:
        self.messages.append(self.message(protocol.INVENTORY, data, ts))

    def flush(self) -> None:
        pass
