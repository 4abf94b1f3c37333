"""Where the collector's MQTT messages come from: paho in a thread of this process, or
paho in a child process of its own.

    receiver = "process" (default)               receiver = "thread"
    child: paho loop -> (topic, payload, mid)    paho loop thread of the collector
           batches -> pipe -> collector            -> on_message
    collector: PUBACK list -> pipe -> child      collector: client.ack()

Receiving costs paho about 170 µs a message in Python, as much as validating and
storing it; under one GIL the two cannot overlap. In a child process they run on two
cores (docs/benchmarks.md, "Collector throughput"). Either way the collector only
acknowledges a message once its samples are stored, and the broker re-sends what was
not acknowledged when a receiver (or the collector) dies.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cwatch import logutil, protocol
from cwatch.mqtt import BrokerConfig, connect_async, make_client

log = logging.getLogger(__name__)

# Mosquitto's count of messages it dropped since it started (queues full), in $SYS.
BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
SUBSCRIBE_CHUNK = 200  # topic filters per SUBSCRIBE packet
# MQTT 5 Receive Maximum: at most this many messages delivered and not yet acknowledged.
# Acknowledgements wait for the state store, so this bounds the memory a backlog can
# take in the collector (a decoded sample is about 10 KB of Python objects) while
# keeping four store batches in flight.
RECEIVE_MAXIMUM = 2000
# The child sends what arrived at most this long after the first message of a batch.
FORWARD_DELAY_S = 0.002
FORWARD_BATCH = 1000
RESTART_DELAY_S = 1.0

# (topic, payload, message id, qos). The id is (connection number, MQTT packet id): a
# packet id is only meaningful on the connection it came in on, so an acknowledgement
# that arrives after a reconnect is not sent (it could name another message there; the
# broker re-sends the original if it kept the session).
MessageId = tuple[int, int]
OnMessage = Callable[[str, bytes, MessageId, int], None]
OnConnect = Callable[[bool], None]  # session present
OnDisconnect = Callable[[bool, str], None]  # failure, reason


class Receiver(Protocol):
    def start(self) -> None: ...

    def ack(self, acks: Sequence[tuple[MessageId, int]]) -> None: ...

    def stop(self) -> None: ...


def _subscribe(client: Any, topics: Sequence[str], done: Callable[[], None]) -> None:
    """Subscribe, then call done() once the broker confirmed every SUBSCRIBE packet: from
    then on a message published by anyone reaches us (before, it could slip past)."""
    pending: set[int] = set()

    def subscribed(client, userdata, mid, reason_codes, properties) -> None:
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            log.warning("the broker refused %d topic filter(s): %s (check its ACL)",
                        len(refused), refused[0])
        pending.discard(mid)
        if not pending:
            done()

    client.on_subscribe = subscribed  # SUBACKs come on paho's loop thread, after this
    for start in range(0, len(topics), SUBSCRIBE_CHUNK):
        chunk = topics[start:start + SUBSCRIBE_CHUNK]
        pending.add(client.subscribe([(topic, protocol.QOS) for topic in chunk])[1])
    # What the broker dropped (its queue for us full): data lost that only it can count.
    pending.add(client.subscribe(BROKER_DROPPED_TOPIC, qos=0)[1])


def _client(broker: BrokerConfig, client_id: str) -> Any:
    client = make_client(broker, client_id, persistent_session=True)
    client.manual_ack_set(True)
    return client


def _ack(client: Any, connection: int, acks: Sequence[tuple[MessageId, int]]) -> None:
    for (number, mid), qos in acks:
        if number == connection:
            client.ack(mid, qos)


def _connect(client: Any, broker: BrokerConfig) -> None:
    connect_async(client, broker, persistent_session=True, receive_maximum=RECEIVE_MAXIMUM)
    client.loop_start()


class ThreadReceiver:
    """paho's loop thread calls the collector directly."""

    def __init__(self, broker: BrokerConfig, client_id: str, topics: Sequence[str],
                 on_connect: OnConnect, on_disconnect: OnDisconnect,
                 on_message: OnMessage) -> None:
        self._broker = broker
        self._client = _client(broker, client_id)
        self._connection = 0

        def connected(client, userdata, flags, reason_code, properties) -> None:
            if reason_code.is_failure:
                log.error("broker refused the connection: %s", reason_code)
                return
            self._connection += 1
            present = bool(flags.session_present)
            _subscribe(client, topics, lambda: on_connect(present))

        def disconnected(client, userdata, flags, reason_code, properties) -> None:
            on_disconnect(bool(reason_code.is_failure), str(reason_code))

        self._client.on_connect = connected
        self._client.on_disconnect = disconnected
        self._client.on_message = lambda client, userdata, message: on_message(
            message.topic, message.payload, (self._connection, message.mid), message.qos)

    def start(self) -> None:
        _connect(self._client, self._broker)

    def ack(self, acks: Sequence[tuple[MessageId, int]]) -> None:
        _ack(self._client, self._connection, acks)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class ProcessReceiver:
    """paho in a child process (`python -m collector.receiver`); batches of messages and
    of acknowledgements cross a socket pair.

    The child ends when told to or when the socket closes (the collector died: the
    broker then re-sends what was not acknowledged). If the child dies, it is started
    again.
    """

    def __init__(self, broker: BrokerConfig, client_id: str, topics: Sequence[str],
                 on_connect: OnConnect, on_disconnect: OnDisconnect,
                 on_message: OnMessage) -> None:
        self._settings = (broker, client_id, list(topics),
                          logging.getLogger().getEffectiveLevel())
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_message = on_message
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._reader = threading.Thread(target=self._read, name="cwatch-receiver-pipe",
                                        daemon=True)
        self._reader.start()

    def _spawn(self) -> None:
        # A new interpreter running this module only: not multiprocessing's spawn, which
        # re-imports the collector's main module (and all it imported) in the child.
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.receiver", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()  # only the child holds it now: its death closes the socket
        conn = multiprocessing.connection.Connection(ours.detach())
        conn.send_bytes(pickle.dumps(self._settings, protocol=pickle.HIGHEST_PROTOCOL))
        self._process, self._conn = process, conn
        log.info("MQTT receiver process started (pid %d)", process.pid)

    def ack(self, acks: Sequence[tuple[MessageId, int]]) -> None:
        if acks:
            self._send(("ack", list(acks)))

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            conn = self._conn
            if conn is None:
                return
            # OSError: the child is gone, and _read starts it again.
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def _read(self) -> None:
        while True:
            conn = self._conn
            if conn is None:  # stop() closed it
                return
            try:
                kind, *rest = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                self._restart()
                continue
            try:
                self._dispatch(kind, rest)
            except Exception:  # a collector bug must not stop the pipe
                log.exception("handling %r from the receiver process failed", kind)

    def _dispatch(self, kind: str, rest: list[Any]) -> None:
        if kind == "messages":
            on_message = self._on_message
            for topic, payload, mid, qos in rest[0]:
                on_message(topic, payload, mid, qos)
        elif kind == "connect":
            self._on_connect(rest[0])
        elif kind == "disconnect":
            self._on_disconnect(rest[0], rest[1])

    def _restart(self) -> None:
        assert self._process is not None
        try:
            code: int | None = self._process.wait(5)
        except subprocess.TimeoutExpired:  # it closed the socket but lives on: end it
            self._process.kill()
            code = self._process.wait()
        log.error("the MQTT receiver process ended (exit code %s); starting it again in "
                  "%g s", code, RESTART_DELAY_S)
        self._on_disconnect(True, "receiver process ended")
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
        if self._stopping.wait(RESTART_DELAY_S):
            return  # stop() came meanwhile: _read sees it on the closed socket and ends
        with self._send_lock:
            self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        self._send(("stop",))
        if self._process is not None:
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                log.warning("the MQTT receiver process did not stop; killing it")
                self._process.kill()
                self._process.wait()
        if self._reader is not None:
            self._reader.join(5)
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def child_main(conn: multiprocessing.connection.Connection) -> None:
    """The receiver process: paho's loop, a forwarder thread, and this thread for acks."""
    # Ctrl-C and systemd's SIGTERM reach every process of the group: the collector
    # decides when this one stops (after it stored what it has), or its death does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        broker, client_id, topics, log_level = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return
    logutil.setup(logging.getLevelName(log_level).lower())
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        try:
            with send_lock:
                conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:  # the collector is gone: the main thread sees it and ends
            pass

    arrived: collections.deque[tuple[str, bytes, MessageId, int]] = collections.deque()
    wake = threading.Event()
    client = _client(broker, client_id)
    connection = [0]

    def connected(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        connection[0] += 1
        present = bool(flags.session_present)
        _subscribe(client, topics, lambda: send(("connect", present)))

    def disconnected(client, userdata, flags, reason_code, properties) -> None:
        send(("disconnect", bool(reason_code.is_failure), str(reason_code)))

    def message(client, userdata, msg) -> None:
        arrived.append((msg.topic, msg.payload, (connection[0], msg.mid), msg.qos))
        if not wake.is_set():
            wake.set()

    def forward() -> None:
        while True:
            wake.wait()
            wake.clear()
            time.sleep(FORWARD_DELAY_S)  # let a few more arrive: one pipe write per batch
            while arrived:
                batch = []
                while arrived and len(batch) < FORWARD_BATCH:
                    batch.append(arrived.popleft())
                send(("messages", batch))

    client.on_connect = connected
    client.on_disconnect = disconnected
    client.on_message = message
    threading.Thread(target=forward, name="cwatch-forward", daemon=True).start()
    _connect(client, broker)
    try:
        while True:
            kind, *rest = pickle.loads(conn.recv_bytes())
            if kind == "ack":
                _ack(client, connection[0], rest[0])
            elif kind == "stop":
                break
    except (EOFError, OSError):
        pass  # the collector is gone
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    child_main(multiprocessing.connection.Connection(int(sys.argv[1])))
