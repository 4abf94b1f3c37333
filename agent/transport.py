"""The agent's MQTT connection: Last Will, reconnect with jittered backoff, and
publish-then-wait-for-PUBACK so the queue deletes only what the broker holds."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable, Optional, Tuple

from cwatch.mqtt import BrokerConfig, connect_async, make_client

log = logging.getLogger(__name__)

WillFactory = Callable[[], Tuple[str, bytes]]


class Transport:
    def __init__(self, broker: BrokerConfig, client_id: str, will: WillFactory,
                 on_connected: Callable[[], None]) -> None:
        self._broker = broker
        self._will = will
        self._on_connected = on_connected
        self.connected = threading.Event()
        self.publish_failures_total = 0
        self._client = make_client(broker, client_id, persistent_session=False, will=will())
        # A random first delay spreads a province's agents after a broker restart;
        # paho doubles it on each failure up to the maximum.
        self._client.reconnect_delay_set(
            min_delay=random.randint(1, min(5, broker.reconnect_max_s)),
            max_delay=broker.reconnect_max_s)
        # Only what we publish while connected is queued in paho; the disk queue holds the rest.
        self._client.max_queued_messages_set(1000)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect

    def start(self) -> None:
        connect_async(self._client, self._broker, persistent_session=False)
        self._client.loop_start()

    def stop(self, final: Optional[Tuple[str, bytes]] = None) -> None:
        """Disconnect, first publishing `final` (the clean 'offline' status) if connected."""
        if final is not None and self.connected.is_set():
            self.publish_and_wait(final[0], final[1], retain=True, timeout_s=5)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    def publish_nowait(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queue a message in paho without waiting (safe inside paho's callbacks)."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != 0:
            self.publish_failures_total += 1

    def publish_and_wait(self, topic: str, payload: bytes, retain: bool = False,
                         timeout_s: float = 60.0) -> bool:
        """True once the broker acknowledged (PUBACK); False if the link failed first."""
        if not self.connected.is_set():
            return False
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != 0:
            self.publish_failures_total += 1
            log.debug("publish to %s refused by paho (rc=%s)", topic, info.rc)
            return False
        deadline = time.monotonic() + timeout_s
        while not info.is_published():
            if not self.connected.is_set() or time.monotonic() > deadline:
                self.publish_failures_total += 1
                return False
            try:
                info.wait_for_publish(0.2)
            except (RuntimeError, ValueError):
                self.publish_failures_total += 1
                return False
        return True

    def _handle_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                        properties: Any) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        log.info("connected to %s:%d", self._broker.address.host, self._broker.address.port)
        # Status and inventory go out before anything the forwarder sends.
        self._on_connected()
        self.connected.set()

    def _handle_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                           properties: Any) -> None:
        self.connected.clear()
        # Each Last Will needs a fresh seq, or a second outage would look like a duplicate.
        topic, payload = self._will()
        client.will_set(topic, payload, qos=1, retain=True)
        if reason_code.is_failure:
            log.warning("lost the broker (%s); data goes to the disk queue until it is back",
                        reason_code)
