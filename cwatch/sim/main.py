"""`cwatch sim`: run a simulated fleet against a broker until Ctrl-C or --duration."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from cwatch.mqtt import BrokerConfig
from cwatch.sim import fleet as fleet_module
from cwatch.sim import scenario as scenario_module
from cwatch.sim.publisher import ConnectionPool
from cwatch.sim.runner import FleetRunner, SimClock

log = logging.getLogger(__name__)


def parse_start(value: str, now: float) -> float:
    """"now", a duration ago ("2d", "-6h", "90m"), or an ISO 8601 time (UTC if no zone)."""
    text = value.strip()
    if text == "now":
        return now
    try:
        return now - scenario_module.parse_duration(text.lstrip("-"), "--start")
    except scenario_module.ScenarioError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start {value!r} must be now, a duration ago like 2d or 6h, or "
                         "an ISO time like 2026-11-20T08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    start = moment.timestamp()
    if start > now:
        raise ValueError(f"--start {value!r} is in the future")
    return start


def run(broker_url: str, devices: int | None, sites: int | None, seed: int,
        scenario_path: Path | None, truth_path: Path | None, duration_s: float | None,
        start: str, speed: float, connections: int) -> int:
    scenario = scenario_module.load(scenario_path).with_size(devices, sites)
    now = time.time()
    start_ts = parse_start(start, now)
    fleet = fleet_module.build(scenario, seed, start_ts)
    if truth_path is not None:
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        truth_path.write_text(json.dumps(fleet.truth_document(), ensure_ascii=False, indent=1),
                              encoding="utf-8")
        log.info("ground truth: %d expected findings -> %s", len(fleet.truth), truth_path)
    broker = BrokerConfig(url=broker_url)
    pool = ConnectionPool(broker, min(connections, len(fleet.devices)))
    pool.start()
    runner = FleetRunner(fleet, pool.publish, SimClock(start_ts, speed))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"cwatch sim: {len(fleet.devices)} devices in {len(fleet.sites)} sites, seed {seed}, "
          f"{len(fleet.truth)} faults; sample time from "
          f"{_iso(start_ts)} at {speed:g}x; Ctrl-C stops", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        runner.run(stop, duration_s, progress=_progress)
    runner.finish()
    flushed = pool.flush(600)  # a country-size backlog in paho takes minutes to send
    pool.stop()
    counts = runner.counts
    print(f"cwatch sim: published {counts.messages} messages ({counts.envelopes} envelopes, "
          f"{counts.backfilled} of them backfilled); sample time reached "
          f"{_iso(runner.clock.now())}" + ("" if flushed else
                                           "; WARNING: the broker did not acknowledge all"),
          file=sys.stderr)
    return 0 if flushed else 1


def _progress(runner: FleetRunner) -> None:
    counts = runner.counts
    print(f"  sample time {_iso(runner.clock.now())}: {counts.messages} messages, "
          f"{counts.backfilled} backfilled", file=sys.stderr)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
