"""A pool of MQTT connections shared by the simulated devices.

Each device always uses the same connection (a stable hash of site/device), so its
messages stay in order, as one agent's do. paho queues what is published while a
connection is down and sends it on reconnect.
"""

from __future__ import annotations

import logging
import socket
import time
import zlib

import paho.mqtt.client as mqtt

from cwatch import protocol
from cwatch.mqtt import BrokerConfig, connect_async, make_client

log = logging.getLogger(__name__)


class ConnectionPool:
    def __init__(self, broker: BrokerConfig, size: int, client_id_prefix: str = "cwatch-sim"):
        if size < 1:
            raise ValueError("the connection pool needs at least 1 connection")
        self.broker = broker
        self._clients: list[mqtt.Client] = []
        self._last: list[mqtt.MQTTMessageInfo | None] = [None] * size
        for n in range(size):
            client = make_client(broker, f"{client_id_prefix}-{n}", persistent_session=False)
            client.max_queued_messages_set(0)  # unbounded: the simulator must lose nothing
            client.max_inflight_messages_set(1000)
            self._clients.append(client)

    def start(self, timeout_s: float = 15.0) -> None:
        address = self.broker.address
        try:  # one clear line now, rather than every connection retrying in the log
            socket.create_connection((address.host, address.port), timeout=5).close()
        except OSError as exc:
            raise ConnectionError(f"cannot reach the broker at {address.host}:{address.port}: "
                                  f"{exc.strerror or exc}") from None
        for client in self._clients:
            connect_async(client, self.broker, persistent_session=False)
            client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not all(c.is_connected() for c in self._clients):
            if time.monotonic() > deadline:
                self.stop()
                raise ConnectionError(f"cannot connect to the broker at {address.host}:"
                                      f"{address.port} within {timeout_s:g} s")
            time.sleep(0.05)

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        parts = topic.split("/")
        index = zlib.crc32(f"{parts[2]}/{parts[3]}".encode()) % len(self._clients)
        self._last[index] = self._clients[index].publish(topic, payload, qos=protocol.QOS,
                                                         retain=retain)

    def flush(self, timeout_s: float = 60.0) -> bool:
        """Wait until the broker acknowledged everything published so far."""
        deadline = time.monotonic() + timeout_s
        for info in self._last:
            if info is None:
                continue
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                return False
        return True

    def stop(self) -> None:
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
