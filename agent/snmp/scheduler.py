"""Polls the configured routers and switches: one asyncio loop in one thread, one task per
device, so a device that times out never delays the others.

    every interval_s, per device, at the same time:
      ping (agent.probes.connectivity, in a daemon thread) --> probe   (kind "device")
      SNMP GET + GETBULK walks (session.py)  --poller.py--> metrics, inventory
    answers SNMP or ping --> status online (retained)
    answers neither, 2 polls in a row --> status offline/lost (retained), then silence

Without pysnmp (or on Python < 3.10) every device is pinged only, after one WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import cwatch
from agent.config import AgentConfig, PolledDeviceSection
from agent.probes.connectivity import Target, probe_echo
from agent.snmp import poller
from agent.snmp.publisher import CollectingPublisher, DevicePublisher, Message
from agent.snmp.session import Answer, SnmpError, SnmpSession, unavailable_reason
from agent.transport import Transport
from cwatch import protocol

log = logging.getLogger(__name__)

LOST_AFTER = 2  # polls in a row without any answer before the device is reported offline
ERROR_LOG_EVERY_S = 600.0  # unexpected exceptions in a device's poll: one traceback per 10 min
PING_SPACING_S = 0.2


class PolledDevice:
    """One router or switch: its poll, and what each poll's outcome means on the wire."""

    def __init__(self, config: PolledDeviceSection, agent: AgentConfig, publisher: Any,
                 session: Optional[SnmpSession], clock: Callable[[], float] = time.time
                 ) -> None:
        self.config = config
        self.name = config.device
        self.interval_s = config.interval_s or agent.agent.interval_s
        self._polled_by = agent.agent.device
        self._inventory_every_s = agent.agent.inventory_interval_s
        self.publisher = publisher
        self.session = session
        self._clock = clock
        self._target = Target("lan", "device", config.host, "icmp")
        self._counters = poller.Counters()
        self.state = None  # type: Optional[str]  # None (not yet known), online, offline
        self._misses = 0
        self._snmp_error = None  # type: Optional[str]  # the one last logged
        self._snmp_error_at = float("-inf")
        self._inventory = None  # type: Optional[Dict[str, Any]]
        self._inventory_at = float("-inf")
        self._wan_checked = False
        self._last_exception_log = float("-inf")
        # SNMP must be done well within the interval, whatever the timeouts say.
        self._snmp_deadline_s = max(5.0, min(self.interval_s * 0.8, 120.0))

    # --- one poll ----------------------------------------------------------------------

    def ping(self) -> Dict[str, Any]:
        packet_timeout = min(1.0, self.config.timeout_s)
        return probe_echo(self._target, packet_timeout, PING_SPACING_S)

    async def poll(self, loop: asyncio.AbstractEventLoop) -> None:
        ts = self._clock()
        pinged = _in_daemon_thread(loop, self.ping)
        answer, error, read_at = None, None, time.monotonic()
        if self.session is not None:
            try:
                answer = await asyncio.wait_for(self.session.read(), self._snmp_deadline_s)
                read_at = time.monotonic()
            except SnmpError as exc:
                error = str(exc)
            except asyncio.TimeoutError:
                error = f"the SNMP poll took longer than {self._snmp_deadline_s:g} s"
        ping = await pinged
        self.handle(ts, read_at, answer, error, ping)

    def handle(self, ts: float, now_mono: float, answer: Optional[Answer],
               error: Optional[str], ping: Dict[str, Any]) -> None:
        """Turn one poll's outcome into envelopes."""
        publisher = self.publisher
        probe = {"targets": [ping]}
        if answer is None and not ping.get("received"):
            self._misses += 1
            if self._misses < LOST_AFTER:
                if self.state != "offline":
                    publisher.send(protocol.PROBE, probe, ts)
            elif self.state != "offline":
                log.warning("%s (%s) answers neither SNMP nor ping (%s): reported offline",
                            self.name, self.config.host, ping.get("error") or "no reply")
                self.state = "offline"
                self._inventory = None  # sent again when it is back
                publisher.set_status("offline", "lost", ts)
            publisher.flush()
            return
        self._misses = 0
        if self.state != "online":
            if self.state == "offline":
                log.info("%s (%s) answers again: reported online", self.name, self.config.host)
            self.state = "online"
            publisher.set_status("online", None, ts)
        if answer is not None:
            self._snmp_answered(answer, ts, now_mono)
        elif self.session is not None:
            self._snmp_failed(error or "no SNMP answer")
        else:  # ping only
            self._maybe_inventory(
                poller.ping_inventory(self.config, self._polled_by, cwatch.__version__), ts)
        publisher.send(protocol.PROBE, probe, ts)
        publisher.flush()

    def _snmp_failed(self, error: str) -> None:
        """One WARNING when SNMP stops answering; another only for a different error, and
        then at most every ERROR_LOG_EVERY_S (a text that varies must not flood the log)."""
        now = time.monotonic()
        if self._snmp_error is None or (error != self._snmp_error and
                                        now - self._snmp_error_at >= ERROR_LOG_EVERY_S):
            log.warning("%s (%s): %s; publishing ping results only", self.name,
                        self.config.host, error)
            self._snmp_error, self._snmp_error_at = error, now

    def _snmp_answered(self, answer: Answer, ts: float, now_mono: float) -> None:
        if self._snmp_error is not None:
            log.info("%s (%s) answers SNMP again", self.name, self.config.host)
            self._snmp_error = None
        wan = self.config.wan_interface
        if wan and not self._wan_checked:
            self._wan_checked = True
            if not poller.wan_found(answer, wan):
                names = sorted(filter(None, (poller.text(r.get("ifName") or r.get("ifDescr"), 64)
                                             for r in poller.rows(answer.tables).values())))
                log.warning("%s: wan_interface %r is not among its interfaces (%s)",
                            self.name, wan, ", ".join(names) or "none")
        self._maybe_inventory(
            poller.inventory(answer, self.config, self._polled_by, cwatch.__version__), ts)
        self.publisher.send(protocol.METRICS, poller.metrics(
            answer, self._counters, self.interval_s, ts, now_mono, self.config), ts)

    def _maybe_inventory(self, data: Dict[str, Any], ts: float) -> None:
        """On the first answer, when it changes, and every inventory_interval_s."""
        now = time.monotonic()
        if data != self._inventory or now - self._inventory_at >= self._inventory_every_s:
            self._inventory, self._inventory_at = data, now
            self.publisher.set_inventory(data, ts)

    def log_exception(self) -> None:
        now = time.monotonic()
        if now - self._last_exception_log >= ERROR_LOG_EVERY_S:
            self._last_exception_log = now
            log.exception("%s: poll failed; trying again every %g s (next traceback in "
                          "%g min at the earliest)", self.name, self.interval_s,
                          ERROR_LOG_EVERY_S / 60)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def _in_daemon_thread(loop: asyncio.AbstractEventLoop, job: Callable[[], Any]
                      ) -> asyncio.Future:
    """Run a blocking job in a daemon thread (which, unlike an executor's, never holds
    up the agent's exit) and await its result in the loop."""
    future = loop.create_future()

    def deliver(result: Any, exc: Optional[BaseException]) -> None:
        if future.done():  # cancelled: the agent is stopping
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def work() -> None:
        result, error = None, None  # type: Any, Optional[BaseException]
        try:
            result = job()
        except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=work, name="cwatch-snmp-ping", daemon=True).start()
    return future


def build_devices(config: AgentConfig, make_publisher: Callable[[PolledDeviceSection,
                                                                  float], Any],
                  clock: Callable[[], float] = time.time) -> List[PolledDevice]:
    """A PolledDevice per [[polled]] table; SNMP ones fall back to ping when SNMP cannot
    be used on this PC, after one WARNING that says why."""
    wants_snmp = [d.device for d in config.polled if d.snmp != "none"]
    reason = unavailable_reason() if wants_snmp else None
    if reason is not None:
        log.warning("SNMP polling is not available here: %s. Pinging %s only; for SNMP "
                    "install commune-watch[snmp] on Python 3.10 or newer",
                    reason, ", ".join(wants_snmp))
    devices = []
    for section in config.polled:
        interval = section.interval_s or config.agent.interval_s
        session = SnmpSession(section) if section.snmp != "none" and reason is None else None
        devices.append(PolledDevice(section, config, make_publisher(section, interval),
                                    session, clock))
    return devices


class Scheduler:
    """Polls every device on its own schedule in one background thread."""

    def __init__(self, config: AgentConfig, transport: Transport,
                 clock: Callable[[], float] = time.time) -> None:
        site, data_dir = config.agent.site, Path(config.agent.data_dir)
        self.devices = build_devices(config, lambda section, interval: DevicePublisher(
            site, section.device, data_dir, interval, transport, config.queue), clock)
        self._thread = threading.Thread(target=self._run, name="cwatch-snmp", daemon=True)
        self._loop = None  # type: Optional[asyncio.AbstractEventLoop]
        self._tasks = []  # type: List[asyncio.Task]
        self._started = threading.Event()

    def start(self) -> None:
        for device in self.devices:
            device.publisher.start()
        self._thread.start()
        self._started.wait(10)

    def on_connected(self) -> None:
        """In paho's thread, on every (re)connect of the agent."""
        for device in self.devices:
            try:
                device.publisher.on_connected()
            except Exception:  # noqa: BLE001 - the agent's own connect must go on
                log.exception("%s: republishing status and inventory failed", device.name)

    def stop(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(self._cancel)
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        for device in self.devices:
            device.publisher.stop(goodbye=True)

    def _cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._tasks = [loop.create_task(self._device_loop(d)) for d in self.devices]
            self._started.set()
            loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
        finally:
            for device in self.devices:
                device.close()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _device_loop(self, device: PolledDevice) -> None:
        loop = asyncio.get_running_loop()
        # A random phase spreads the devices (and the agent's own work) over the interval.
        next_run = loop.time() + random.uniform(0.2, min(device.interval_s, 10.0))
        while True:
            await asyncio.sleep(max(0.0, next_run - loop.time()))
            try:
                await device.poll(loop)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad poll must not end the schedule
                device.log_exception()
            # Fixed rate: a slow poll does not shift the schedule; a very slow one skips.
            next_run += device.interval_s
            if next_run < loop.time():
                next_run = loop.time() + device.interval_s


def poll_once(config: AgentConfig, clock: Callable[[], float] = time.time) -> List[Message]:
    """Poll every device once, concurrently, and return the envelopes (for --once)."""
    site, data_dir = config.agent.site, Path(config.agent.data_dir)
    devices = build_devices(config, lambda section, interval: CollectingPublisher(
        site, section.device, data_dir, interval), clock)

    async def all_devices() -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(d.poll(loop) for d in devices))
        finally:
            for device in devices:
                device.close()

    asyncio.run(all_devices())
    return [m for d in devices for m in d.publisher.messages]
