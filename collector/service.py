"""The collector process: MQTT in, decode and validate, hand samples on.

    mosquitto --(QoS 1, persistent session)--> on_message
        -> Decoder (collector/ingest.py) -> Sample        -> sinks (storage, rules)
                                         -> Rejection     -> counter{reason} + rate-limited log
    /metrics <- prometheus registry (collector/metrics.py)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import start_http_server

from collector.config import CollectorConfig
from collector.ingest import Decoder, Rejection, Sample
from collector.metrics import IngestMetrics
from cwatch import protocol
from cwatch.config import parse_host_port
from cwatch.logutil import RateLimitedLog
from cwatch.mqtt import connect_async, make_client

log = logging.getLogger(__name__)

SampleSink = Callable[[Sample], None]
RejectSink = Callable[[Rejection], None]


class Collector:
    def __init__(self, config: CollectorConfig, *, sinks: list[SampleSink] | None = None,
                 on_reject: RejectSink | None = None) -> None:
        self.config = config
        self.metrics = IngestMetrics()
        self._decoder = Decoder()
        self._sinks = list(sinks or [])
        self._on_reject = on_reject
        self._reject_log = RateLimitedLog(log)
        self._connected = threading.Event()
        self._http = None
        broker = config.broker
        self._client = make_client(broker, config.collector.client_id, persistent_session=True)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    @property
    def subscription(self) -> str:
        group = self.config.collector.shared_group
        return f"$share/{group}/{protocol.SUBSCRIPTION}" if group else protocol.SUBSCRIPTION

    def start(self, *, serve_http: bool = True) -> None:
        if serve_http:
            host, port = parse_host_port(self.config.collector.listen, "listen")
            self._http = start_http_server(port, addr=host, registry=self.metrics.registry)
            log.info("serving /metrics on http://%s:%d/metrics", host, port)
        broker = self.config.broker
        connect_async(self._client, broker, persistent_session=True)
        self._client.loop_start()
        log.info("connecting to %s:%d as %r", broker.address.host, broker.address.port,
                 self.config.collector.client_id)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._http = None

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        client.subscribe(self.subscription, qos=protocol.QOS)
        log.info("connected; subscribed to %s (session present: %s)", self.subscription,
                 flags.session_present)
        self._connected.set()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if reason_code.is_failure:
            log.warning("disconnected from broker (%s); reconnecting with backoff", reason_code)
        else:
            log.info("disconnected from broker")

    def _handle_message(self, client, userdata, message) -> None:
        self.metrics.received.inc()
        decoded = self._decoder.decode(message.topic, message.payload)
        for rejection in decoded.rejections:
            self.metrics.rejected.labels(rejection.reason).inc()
            self._reject_log.warning(rejection.reason, f"rejected {rejection}")
            if self._on_reject is not None:
                self._on_reject(rejection)
        for sample in decoded.samples:
            self.metrics.accepted.labels(sample.channel).inc()
            for sink in self._sinks:
                try:
                    sink(sample)
                except Exception:  # a sink's bug must not stop ingest; it is logged in full
                    log.exception("sink %r failed on a sample from %s/%s", sink, sample.site,
                                  sample.device)
