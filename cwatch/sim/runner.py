"""Run a fleet: the sample-time clock, each device's schedule, and publishing.

Sample time starts at `start_ts` and runs `speed` times faster than the wall clock,
but never past now: a replay of two days at speed 1000 takes about three minutes and
then goes on in real time. Every device keeps its own schedule (interval with
jitter), so a whole commune never publishes in the same second.

Connections: a Python process cannot hold a connection per device at country scale,
so devices share a pool of MQTT connections (device -> connection by a stable hash).
Only with one connection per device does each device get its own Last Will; with a
pool, the simulator publishes the retained "offline" itself where an agent's broker
would have (outage start, clean stop).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from cwatch import protocol
from cwatch.sim import model
from cwatch.sim.fleet import Device, Fleet

log = logging.getLogger(__name__)

BATCH_ITEMS = 500  # a backlog batch: well under the protocol's 1000 items and 4 MiB
THROUGHPUT_EVERY = 12  # probes; one throughput test an hour at the default 300 s

Publish = Callable[[str, bytes, bool], None]  # topic, payload, retain


class SimClock:
    """Sample time: start_ts advancing `speed` times faster than the wall, capped at now."""

    def __init__(self, start_ts: float, speed: float,
                 wall: Callable[[], float] = time.time) -> None:
        self.start_ts, self.speed, self._wall = start_ts, speed, wall
        self._wall0 = wall()

    def now(self) -> float:
        wall = self._wall()
        return min(wall, self.start_ts + (wall - self._wall0) * self.speed)


@dataclasses.dataclass
class DeviceState:
    device: Device
    seq: int = 0
    started: bool = False
    gone: bool = False  # silent for good
    backlog: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    probes: int = 0


@dataclasses.dataclass
class Counts:
    envelopes: int = 0  # every envelope produced (batch items counted one by one)
    messages: int = 0  # MQTT messages published
    backfilled: int = 0  # envelopes sent late inside a batch
    dropped_silent: int = 0  # not produced: the device was silent


class FleetRunner:
    def __init__(self, fleet: Fleet, publish: Publish, clock: SimClock,
                 on_envelope: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.fleet = fleet
        self._publish = publish
        self.clock = clock
        self._on_envelope = on_envelope
        self.counts = Counts()
        self._states = [DeviceState(d) for d in fleet.devices]
        scenario = fleet.scenario
        self._every = {protocol.METRICS: scenario.interval_s,
                       protocol.PROBE: scenario.probe_interval_s,
                       protocol.INVENTORY: scenario.inventory_interval_s}
        self._jitter = scenario.jitter
        # (due ts, device index, channel); first dues spread over one interval.
        self._queue: list[tuple[float, int, str]] = []
        for index, state in enumerate(self._states):
            spread = _fraction(fleet.seed, state.device, "start")
            for channel, every in self._every.items():
                # The first message of any channel brings status and inventory with it
                # (as an agent's connect does), so the inventory's own turn is a day later.
                first = fleet.start_ts + spread * min(every, scenario.interval_s) + (
                    every if channel == protocol.INVENTORY else 0.0)
                self._queue.append((first, index, channel))
        heapq.heapify(self._queue)

    # --- one step ----------------------------------------------------------------------

    def step(self) -> float:
        """Produce everything due up to the clock's now; returns the next due time."""
        now = self.clock.now()
        while self._queue and self._queue[0][0] <= now:
            due, index, channel = heapq.heappop(self._queue)
            self._emit(self._states[index], channel, due)
            every = self._every[channel]
            jitter = 1 + self._jitter * (2 * _fraction(self.fleet.seed, self._states[
                index].device, f"{channel}/{due:.3f}") - 1)
            heapq.heappush(self._queue, (due + every * jitter, index, channel))
        return self._queue[0][0] if self._queue else float("inf")

    def _emit(self, state: DeviceState, channel: str, ts: float) -> None:
        device, fleet = state.device, self.fleet
        if state.gone or device.fault("silent", ts):
            state.gone = True
            self.counts.dropped_silent += 1
            return
        outage = fleet.site_fault(device.site, "outage", ts)
        if not state.started:
            state.started = True
            self._send(device, protocol.STATUS, self._envelope(state, ts, model.status(
                device, "online", fleet.scenario.interval_s)), retain=True)
            if channel != protocol.INVENTORY:
                self._emit(state, protocol.INVENTORY, ts)
        if channel == protocol.METRICS:
            data = model.metrics(fleet, device, ts, state.seq + 1)
        elif channel == protocol.PROBE:
            state.probes += 1
            data = model.probe(fleet, device, ts, state.seq + 1,
                               with_throughput=state.probes % THROUGHPUT_EVERY == 1)
        else:
            data = model.inventory(fleet, device)
        env = self._envelope(state, ts, data)
        if outage is not None:
            if not state.backlog:  # the link just dropped: the broker fires the Last Will
                self._send(device, protocol.STATUS, self._envelope(
                    state, ts, model.status(device, "offline", fleet.scenario.interval_s,
                                            "lost")), retain=True)
            state.backlog.append(dict(env, channel=channel))
            self.counts.envelopes += 1
            return
        if state.backlog:
            self._flush_backlog(state, ts)
        self._send(device, channel, env, retain=channel == protocol.INVENTORY)

    def _flush_backlog(self, state: DeviceState, ts: float) -> None:
        """Back online: status first, then the backlog in order, as the agent does."""
        device = state.device
        self._send(device, protocol.STATUS, self._envelope(
            state, ts, model.status(device, "online", self.fleet.scenario.interval_s)),
            retain=True)
        items, state.backlog = state.backlog, []
        topic = protocol.topic_for(device.site, device.id, protocol.BATCH)
        for start in range(0, len(items), BATCH_ITEMS):
            chunk = items[start:start + BATCH_ITEMS]
            batch = {"v": protocol.VERSION, "site": device.site, "device": device.id,
                     "ts": ts, "channel": protocol.BATCH, "data": {"items": chunk}}
            self._publish(topic, zlib.compress(protocol.encode(batch)), False)
            self.counts.messages += 1
            self.counts.backfilled += len(chunk)
            if self._on_envelope is not None:
                for item in chunk:
                    self._on_envelope(protocol.topic_for(device.site, device.id,
                                                         item["channel"]), item)

    def _envelope(self, state: DeviceState, ts: float, data: dict[str, Any]) -> dict[str, Any]:
        state.seq += 1
        return protocol.envelope(state.device.site, state.device.id, round(ts, 3), state.seq,
                                 data)

    def _send(self, device: Device, channel: str, env: dict[str, Any], *,
              retain: bool) -> None:
        topic = protocol.topic_for(device.site, device.id, channel)
        self._publish(topic, protocol.encode(env), retain)
        self.counts.messages += 1
        self.counts.envelopes += 1
        if self._on_envelope is not None:
            self._on_envelope(topic, env)

    # --- running -----------------------------------------------------------------------

    def run(self, stop: threading.Event, duration_s: float | None = None,
            progress: Callable[[FleetRunner], None] | None = None,
            progress_every_s: float = 5.0) -> None:
        """Step until `stop` is set or `duration_s` of wall time has passed."""
        began = time.monotonic()
        last_progress = began
        while not stop.is_set():
            if duration_s is not None and time.monotonic() - began >= duration_s:
                break
            next_due = self.step()
            if progress is not None and time.monotonic() - last_progress >= progress_every_s:
                last_progress = time.monotonic()
                progress(self)
            # Sleep until the next due sample time is reached on the (fast) clock.
            wait = (next_due - self.clock.now()) / max(1.0, self.clock.speed)
            stop.wait(min(0.5, max(0.0, wait)))

    def finish(self) -> None:
        """A clean stop: every running device says "offline", as agents do."""
        ts = self.clock.now()
        for state in self._states:
            if state.started and not state.gone and not state.backlog:
                self._send(state.device, protocol.STATUS, self._envelope(
                    state, ts, model.status(state.device, "offline",
                                            self.fleet.scenario.interval_s, "shutdown")),
                    retain=True)


def _fraction(seed: int, device: Device, what: str) -> float:
    """A stable number in [0, 1) per (seed, device, what)."""
    return zlib.crc32(f"{seed}/{device.site}/{device.id}/{what}".encode()) / 2**32
