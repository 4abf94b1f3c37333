"""Moves envelopes from the disk queue to the broker.

    queue (SQLite) --oldest first--> live: one envelope per message on its own topic
                   \\--after an outage--> newest metrics first, then the backlog in
                                          zlib-compressed `batch` messages, paced

Only one message is in flight at a time and each waits for its PUBACK before
the next, so the flush follows the broker's acknowledgements (paho's 65,535
message-id limit is never approached) and a weak link is never flooded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from typing import Callable, List, Optional

from agent.queue import DiskQueue, Item
from agent.transport import Transport
from cwatch import protocol

log = logging.getLogger(__name__)

# More than this many waiting envelopes means we are catching up after an outage.
LIVE_BACKLOG = 3


class Forwarder:
    def __init__(self, queue: DiskQueue, transport: Transport, site: str, device: str, *,
                 batch_max_items: int = 500, batch_max_bytes: int = 1_000_000,
                 flush_rate_bytes_per_s: float = 32_768,
                 clock: Callable[[], float] = time.time) -> None:
        self._queue = queue
        self._transport = transport
        self._site, self._device = site, device
        self._batch_items = batch_max_items
        self._batch_bytes = batch_max_bytes
        self._rate = flush_rate_bytes_per_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cwatch-forwarder", daemon=True)
        self.batches_sent_total = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._queue.added:
            self._queue.added.notify_all()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        newest_first = True  # after an outage (or a start), the current state goes first
        while not self._stop.is_set():
            if not self._transport.connected.wait(1.0):
                newest_first = True
                continue
            if not self._queue.wait_for_items(1.0):
                continue
            if self._queue.count <= LIVE_BACKLOG:
                newest_first = False
                for item in self._queue.oldest(LIVE_BACKLOG, self._batch_bytes):
                    if not self._send_one(item):
                        break
                continue
            newest = self._queue.newest(protocol.METRICS) if newest_first else None
            if newest is not None:
                newest_first = not self._send_one(newest)
            else:
                newest_first = False
                self._send_batch(self._queue.oldest(self._batch_items, self._batch_bytes))

    def _send_one(self, item: Item) -> bool:
        topic = protocol.topic_for(self._site, self._device, item.channel)
        if self._transport.publish_and_wait(topic, item.payload):
            self._queue.delete([item.id])
            return True
        return False

    def _send_batch(self, items: List[Item]) -> bool:
        if not items:
            return True
        payload = self.encode_batch(items)
        if len(payload) > protocol.MAX_PAYLOAD_BYTES and len(items) > 1:
            # Rare (incompressible data): halve until it fits the collector's limit.
            half = len(items) // 2
            return self._send_batch(items[:half]) and self._send_batch(items[half:])
        topic = protocol.topic_for(self._site, self._device, protocol.BATCH)
        started = time.monotonic()
        if not self._transport.publish_and_wait(topic, payload):
            return False
        self._queue.delete([item.id for item in items])
        self.batches_sent_total += 1
        log.info("flushed %d buffered envelopes (%d bytes compressed), %d still queued",
                 len(items), len(payload), self._queue.count)
        # Pace the backlog so a weak link keeps room for everything else.
        pause = len(payload) / self._rate - (time.monotonic() - started)
        if pause > 0:
            self._stop.wait(pause)
        return True

    def encode_batch(self, items: List[Item]) -> bytes:
        """A zlib-compressed batch envelope whose items keep their own ts and seq."""
        entries = []
        for item in items:
            entry = json.loads(item.payload.decode("utf-8"))
            entry["channel"] = item.channel
            entries.append(entry)
        env = protocol.envelope(self._site, self._device, round(self._clock(), 3), None,
                                {"items": entries})
        return zlib.compress(protocol.encode(env), 6)


def queue_stats(queue: DiskQueue, transport: Optional[Transport]) -> dict:
    """The agent's own health, reported in every metrics message."""
    return {
        "queue_size": queue.count,
        "queue_bytes": queue.size_bytes,
        "queue_dropped_total": queue.dropped_total,
        "publish_failures_total": transport.publish_failures_total if transport else 0,
    }
