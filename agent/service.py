"""The agent's main loop: collect, wrap in envelopes, publish.

    HostProbe / inventory -> envelope(seq) -> paho (QoS 1; status+inventory retained)
    Last Will: retained status "offline"; "online" on every (re)connect.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, TextIO, Tuple

import cwatch
from agent.config import AgentConfig
from agent.probes.host import HostProbe
from agent.probes.inventory import collect_inventory
from agent.seq import SeqCounter
from cwatch import protocol
from cwatch.mqtt import connect_async, make_client

log = logging.getLogger(__name__)

Message = Tuple[str, Dict[str, Any]]  # (topic, envelope)


class Agent:
    def __init__(self, config: AgentConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        section = config.agent
        self._seq = SeqCounter(Path(section.data_dir) / "seq")
        self._host = HostProbe(clock=clock)
        self._stop = threading.Event()

    def message(self, channel: str, data: Dict[str, Any]) -> Message:
        section = self.config.agent
        env = protocol.envelope(section.site, section.device, round(self._clock(), 3),
                                self._seq.next(), data)
        return protocol.topic_for(section.site, section.device, channel), env

    def status(self, state: str) -> Message:
        return self.message(protocol.STATUS, {
            "state": state, "agent_version": cwatch.__version__,
            "interval_s": self.config.agent.interval_s})

    def inventory(self) -> Message:
        asset = {k: getattr(self.config.asset, k)
                 for k in ("tag", "role", "purchase_date", "location")}
        return self.message(protocol.INVENTORY, collect_inventory(asset))

    def metrics(self) -> Message:
        data = {"interval_s": self.config.agent.interval_s}  # type: Dict[str, Any]
        data.update(self._host.collect())
        return self.message(protocol.METRICS, data)

    def once(self, out: TextIO = sys.stdout) -> List[Message]:
        """One round without a broker, printed as JSON lines for troubleshooting."""
        messages = [self.status("online"), self.inventory(), self.metrics()]
        for topic, env in messages:
            out.write(json.dumps({"topic": topic, "payload": env}, ensure_ascii=False) + "\n")
        out.flush()
        return messages

    def run(self) -> None:
        """Publish until stop() is called; paho reconnects by itself."""
        section = self.config.agent
        will_topic, will_env = self.status("offline")
        client = make_client(self.config.broker, section.device, persistent_session=False,
                             will=(will_topic, protocol.encode(will_env)))

        def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
            if reason_code.is_failure:
                log.error("broker refused the connection: %s", reason_code)
                return
            log.info("connected to broker; publishing status and inventory")
            for topic, env in (self.status("online"), self.inventory()):
                client.publish(topic, protocol.encode(env), qos=protocol.QOS, retain=True)

        def on_disconnect(client: Any, userdata: Any, flags: Any, reason_code: Any,
                          properties: Any) -> None:
            if reason_code.is_failure:
                log.warning("disconnected from broker (%s); reconnecting with backoff",
                            reason_code)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        connect_async(client, self.config.broker, persistent_session=False)
        client.loop_start()
        try:
            # Jitter the phase so a whole commune does not publish in the same second.
            self._stop.wait(random.uniform(0, min(section.interval_s, 10.0)))
            while not self._stop.is_set():
                started = time.monotonic()
                topic, env = self.metrics()
                info = client.publish(topic, protocol.encode(env), qos=protocol.QOS)
                if info.rc != 0:
                    log.warning("metrics seq %d not queued for publish (rc=%s)", env["seq"],
                                info.rc)
                elapsed = time.monotonic() - started
                self._stop.wait(max(0.0, section.interval_s - elapsed))
        finally:
            if client.is_connected():
                # A clean stop says so itself; the Last Will covers crashes only.
                topic, env = self.status("offline")
                info = client.publish(topic, protocol.encode(env), qos=protocol.QOS, retain=True)
                info.wait_for_publish(5)
            client.disconnect()
            client.loop_stop()

    def stop(self) -> None:
        self._stop.set()


def run_from_args(config: AgentConfig, once: bool) -> int:
    agent = Agent(config)
    if once:
        agent.once()
        return 0
    signal.signal(signal.SIGTERM, lambda signum, frame: agent.stop())
    log.info("agent %s/%s publishing every %g s", config.agent.site, config.agent.device,
             config.agent.interval_s)
    try:
        agent.run()
    except KeyboardInterrupt:
        agent.stop()
    return 0
