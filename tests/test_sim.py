"""The fleet simulator: scenario errors, determinism, schema-valid envelopes, faults that
show in the data, the sample-time clock, outages with backfill, and `cwatch sim`
through a real mosquitto into the collector."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from collector_helpers import REPLAY, start_collector, wait_until

from cwatch import protocol
from cwatch.procs import Mosquitto
from cwatch.sim import fleet as fleet_module
from cwatch.sim import scenario as scenario_module
from cwatch.sim.runner import FleetRunner, SimClock

HOUR = 3600.0
START = 1_795_000_000.0  # a fixed sample time: the tests do not depend on today's date


class FakeWall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def simulate(seed: int = 1, hours: float = 3.0, devices: int = 60, sites: int = 6,
             scenario: scenario_module.Scenario | None = None,
             ) -> tuple[fleet_module.Fleet, list[tuple[str, bytes, bool]]]:
    """Run the default scenario from START for `hours` of sample time, capturing output."""
    scenario = (scenario or scenario_module.load()).with_size(devices, sites)
    fleet = fleet_module.build(scenario, seed, START)
    published: list[tuple[str, bytes, bool]] = []
    wall = FakeWall(START + hours * HOUR - 1)
    runner = FleetRunner(fleet, lambda t, p, r: published.append((t, p, r)),
                         SimClock(START, 1e12, wall=wall))
    wall.now += 1  # one second of wall time at this speed: up to now, START + hours
    runner.step()
    return fleet, published


def envelopes(published: list[tuple[str, bytes, bool]]) -> list[tuple[str, dict[str, Any]]]:
    """Every envelope, batch items unpacked, with the channel it belongs to."""
    out = []
    for topic, payload, _ in published:
        channel = topic.rsplit("/", 1)[1]
        if channel == protocol.BATCH:
            for item in json.loads(zlib.decompress(payload))["data"]["items"]:
                out.append((item["channel"], item))
        else:
            out.append((channel, json.loads(payload)))
    return out


def test_every_message_is_valid_protocol_v1() -> None:
    schema = protocol.load_schema()
    validators = {ch: jsonschema.Draft7Validator(protocol.channel_schema(schema, ch))
                  for ch in protocol.CHANNELS}
    _, published = simulate(hours=4)
    channels = set()
    for topic, payload, _ in published:
        channel = topic.rsplit("/", 1)[1]
        raw = zlib.decompress(payload) if channel == protocol.BATCH else payload
        doc = json.loads(raw)
        errors = [e.message for e in validators[channel].iter_errors(doc)]
        assert not errors, (topic, errors[:3])
        assert topic == protocol.topic_for(doc["site"], doc["device"], channel)
        channels.add(channel)
    assert channels == set(protocol.CHANNELS)


def test_same_seed_same_fleet_and_messages_other_seed_differs() -> None:
    fleet_a, published_a = simulate(seed=7, hours=1)
    fleet_b, published_b = simulate(seed=7, hours=1)
    fleet_c, published_c = simulate(seed=8, hours=1)
    assert fleet_a.truth_document() == fleet_b.truth_document()
    assert published_a == published_b
    assert fleet_a.truth_document() != fleet_c.truth_document()
    assert published_a != published_c


def test_truth_names_every_fault_of_the_scenario() -> None:
    fleet, _ = simulate(hours=0.1)
    truth = fleet.truth_document()
    kinds = {fault.kind for fault in fleet.scenario.faults}
    assert {t["fault"] for t in truth["expected"]} == kinds
    for entry in truth["expected"]:
        assert entry["finding"] == fleet_module.FINDINGS[entry["fault"]][0]
        assert entry["why"] and entry["from_ts"] >= START
        if entry["scope"] == "device":
            assert f"{entry['site']}/{entry['device']}" not in truth["healthy_devices"]
    assert len(truth["healthy_devices"]) > len(fleet.devices) // 2


def device_values(published, site: str, device: str, channel: str) -> list[dict[str, Any]]:
    return sorted((env for ch, env in envelopes(published)
                   if ch == channel and env["site"] == site and env["device"] == device),
                  key=lambda env: env["ts"])


def faulted(fleet: fleet_module.Fleet, kind: str) -> tuple[str, str, float]:
    entry = next(t for t in fleet.truth if t["fault"] == kind)
    return entry["site"], entry["device"], entry["from_ts"]


@pytest.mark.parametrize(("kind", "healthy", "sick"), [
    ("disk_full", lambda d: d["disks"][0]["used_percent"] < 96,
     lambda d: d["disks"][0]["used_percent"] >= 98),
    ("high_temperature", lambda d: d["temperatures"][0]["temp_c"] < 85,
     lambda d: d["temperatures"][0]["temp_c"] >= 90),
    ("memory_pressure", lambda d: d["mem_used_percent"] < 96,
     lambda d: d["mem_used_percent"] >= 97 and d["swap_in_bytes_per_s"] > 0),
    ("smart_failure", lambda d: d["smart"][0]["passed"], lambda d: not d["smart"][0]["passed"]),
    ("nvme_wear", lambda d: d["smart"][0]["nvme_percentage_used"] <= 99,
     lambda d: d["smart"][0]["nvme_percentage_used"] > 100),
])
def test_a_device_fault_shows_from_its_start_and_not_before(kind, healthy, sick) -> None:
    fleet, published = simulate(hours=2)
    site, device, start = faulted(fleet, kind)
    values = device_values(published, site, device, protocol.METRICS)
    before = [env["data"] for env in values if env["ts"] < start]
    after = [env["data"] for env in values if env["ts"] >= start]
    assert before and after
    assert all(healthy(d) for d in before)
    assert all(sick(d) for d in after)


def test_sectors_grow_and_reboots_repeat() -> None:
    fleet, published = simulate(hours=6)
    site, device, start = faulted(fleet, "disk_reallocated")
    sectors = [env["data"]["smart"][0]["reallocated_sectors"]
               for env in device_values(published, site, device, protocol.METRICS)
               if env["ts"] >= start]
    assert sectors == sorted(sectors) and sectors[-1] >= sectors[0] + 30
    site, device, start = faulted(fleet, "unexpected_reboots")
    boots = {env["data"]["boot_ts"]
             for env in device_values(published, site, device, protocol.METRICS)}
    assert len(boots) >= 3  # the boot before the fault, then one every 2 h
    statuses = [env["data"]["state"]
                for env in device_values(published, site, device, protocol.STATUS)]
    assert statuses == ["online"]  # never a clean "offline" before those reboots


def test_silent_device_stops_for_good() -> None:
    fleet, published = simulate(hours=2)
    site, device, start = faulted(fleet, "silent")
    times = [env["ts"] for ch, env in envelopes(published)
             if env["site"] == site and env["device"] == device]
    assert times and max(times) < start


def test_outage_sends_offline_then_the_backlog_in_order_with_original_times() -> None:
    fleet, published = simulate(hours=2)
    entry = next(t for t in fleet.truth if t["fault"] == "outage")
    site, begin, end = entry["site"], entry["from_ts"], entry["until_ts"]
    device = next(d.id for d in fleet.devices if d.site == site)
    topics = [(t, json.loads(p) if not t.endswith("/batch") else None)
              for t, p, _ in published if t.split("/")[2:4] == [site, device]]
    states = [env["data"]["state"] for t, env in topics if t.endswith("/status")]
    assert states == ["online", "offline", "online"]
    batches = [json.loads(zlib.decompress(p)) for t, p, _ in published
               if t == protocol.topic_for(site, device, protocol.BATCH)]
    assert len(batches) == 1
    items = batches[0]["data"]["items"]
    times = [item["ts"] for item in items]
    assert times == sorted(times) and begin <= times[0] and times[-1] < end
    assert {item["channel"] for item in items} >= {"metrics", "probe"}
    assert batches[0]["ts"] >= end  # sent when the link is back
    seqs = [item["seq"] for item in items]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_slow_link_and_slow_portal_show_in_the_probes() -> None:
    fleet, published = simulate(hours=2.5)
    slow = next(t for t in fleet.truth if t["fault"] == "slow_link")
    portal = next(t for t in fleet.truth if t["fault"] == "portal_slow")

    def portal_targets(site: str, lo: float, hi: float) -> list[dict[str, Any]]:
        return [next(t for t in env["data"]["targets"] if t["name"] == "portal")
                for ch, env in envelopes(published)
                if ch == "probe" and env["site"] == site and lo <= env["ts"] < hi]

    during_slow = portal_targets(slow["site"], slow["from_ts"], portal["from_ts"])
    assert during_slow and all(t.get("rtt_avg_ms") is None or t["rtt_avg_ms"] > 400
                               for t in during_slow)
    healthy_site = next(s for s in fleet.sites
                        if s not in (slow["site"], *(t["site"] for t in fleet.truth)))
    normal = portal_targets(healthy_site, START, portal["from_ts"])
    assert normal and all(t["http_ttfb_ms"] < 1000 for t in normal)
    during_portal = portal_targets(healthy_site, portal["from_ts"], portal["until_ts"])
    assert during_portal and all(t["http_ttfb_ms"] > 4000 for t in during_portal)


def test_clock_runs_fast_but_never_past_now() -> None:
    wall = FakeWall(START + 10 * HOUR)
    clock = SimClock(START, speed=3600, wall=wall)
    wall.now += 2  # two seconds of wall time: two hours of sample time
    assert clock.now() == pytest.approx(START + 2 * HOUR)
    wall.now += 100  # would be 102 h, but now is only START + 10 h + 102 s
    assert clock.now() == wall.now


@pytest.mark.parametrize(("text", "fragment"), [
    ("[fleet]\nsites = 0\n", "[fleet] sites must be a whole number from 1"),
    ("[fleet]\ndevice = 3\n", "[fleet] unknown key 'device'"),
    ("[fleet]\nsites = 9\ndevices = 5\n", "9 sites need at least as many devices"),
    ("[fleet]\ninterval_s = \"fast\"\n", "[fleet] interval_s 'fast' must be a duration"),
    ("[roles]\nmanager = 1.0\n", "[roles] unknown role 'manager'"),
    ("[[faults]]\nkind = \"fire\"\n", "[[faults]] #1: kind 'fire' is not one of"),
    ("[[faults]]\nkind = \"outage\"\n", "an outage needs a duration"),
    ("[[faults]]\nkind = \"disk_full\"\ntarget = \"an-phuoc\"\n",
     "target 'an-phuoc' must be \"site/device\""),
    ("[[faults]]\nkind = \"disk_full\"\nstart = \"-5m\"\n", "start '-5m' must be a duration"),
    ("[fleet\n", "not valid TOML"),
])
def test_scenario_mistakes_are_one_line_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    with pytest.raises(scenario_module.ScenarioError) as caught:
        scenario_module.load(path)
    message = str(caught.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_a_named_target_gets_the_fault(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text('[fleet]\nsites = 2\ndevices = 10\nsite_names = ["an-phuoc", "tan-an"]\n'
                    '[[faults]]\nkind = "disk_full"\ntarget = "tan-an/pc-01"\n'
                    '[[faults]]\nkind = "slow_link"\ntarget = "an-phuoc"\n')
    fleet = fleet_module.build(scenario_module.load(path), 3, START)
    assert [(t["site"], t["device"]) for t in fleet.truth] == [("tan-an", "pc-01"),
                                                               ("an-phuoc", None)]


def run_sim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "cwatch"), "sim", *args],
                          capture_output=True, text=True, timeout=120)


def test_cwatch_sim_through_mosquitto_into_the_collector(mosquitto: Mosquitto,
                                                         tmp_path: Path) -> None:
    collector = start_collector(mosquitto, tmp_path, "sim-collector", **REPLAY)
    truth_path = tmp_path / "truth.json"
    try:
        result = run_sim("--broker", mosquitto.url, "--devices", "40", "--sites", "4",
                         "--seed", "5", "--start", "3h", "--speed", "2000", "--duration", "8",
                         "--truth", str(truth_path), "--connections", "4")
        assert result.returncode == 0, result.stderr
        published = re.search(r"published (\d+) messages \((\d+) envelopes, (\d+) of them "
                              r"backfilled\)", result.stderr)
        assert published, result.stderr
        envelopes_sent, backfilled = int(published.group(2)), int(published.group(3))
        assert backfilled > 0  # the default scenario's outage ended within the replay
        deadline_ok = collector.wait_idle(30)
        assert deadline_ok
        wait_until(lambda: collector.metrics.totals()["accepted"] == envelopes_sent)
        totals = collector.metrics.totals()
        assert totals["rejected"] == 0 and totals["duplicate"] == 0
        assert len(collector.state.devices(limit=1000)) == 40
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        assert truth["devices"] == 40 and len(truth["sites"]) == 4
        # A clean stop: every device that was still publishing said "offline". The
        # silent one said nothing; silence is judged on the wall clock, so only an hour
        # later does the collector call it offline.
        silent = {f"{t['site']}/{t['device']}" for t in truth["expected"]
                  if t["fault"] == "silent"}
        assert len(silent) == 1

        def offline() -> set[str]:
            return {f"{d['site']}/{d['device']}"
                    for d in collector.state.devices(status="offline", limit=1000)}

        assert len(offline()) == 39 and not silent & offline()
        assert collector.state.mark_silent(now=time.time() + HOUR) == [
            tuple(name.split("/")) for name in silent]
        assert len(offline()) == 40
    finally:
        collector.stop()


@pytest.mark.parametrize(("args", "fragment"), [
    (["--start", "tomorrow"], "--start 'tomorrow' must be now, a duration ago"),
    (["--start", "2999-01-01T00:00"], "is in the future"),
    (["--devices", "0"], "must be at least 1"),
    (["--devices", "3", "--sites", "5"], "5 sites need at least as many devices"),
    (["--scenario", "/nonexistent.toml"], "cannot read"),
])
def test_cwatch_sim_bad_arguments(args: list[str], fragment: str) -> None:
    result = run_sim("--broker", "mqtt://127.0.0.1:1", *args)
    assert result.returncode == 2
    assert fragment in result.stderr.strip().splitlines()[-1]


def test_cwatch_sim_without_a_broker_says_so_in_one_line() -> None:
    result = run_sim("--broker", "mqtt://127.0.0.1:1", "--duration", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "cwatch sim: error: cannot reach the broker at 127.0.0.1:1: Connection refused"]
