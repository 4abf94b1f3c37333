"""Several collectors split a province by site: every device lands on exactly one
collector, nothing is lost and nothing counted twice."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from collector_helpers import REPLAY, start_collector, wait_until

from collector import partition
from collector.config import CollectorSection
from cwatch.procs import Mosquitto

SITES = ["an-phuoc", "binh-minh", "hung-thinh", "thien-hung", "tan-an", "dai-phuoc",
         "xa-007", "xa-008"]


def test_owner_is_a_stable_hash_and_spreads_the_sites() -> None:
    owners = [partition.owner(site, 2) for site in SITES]
    assert owners == [partition.owner(site, 2) for site in SITES]  # no per-run salt
    assert set(owners) == {1, 2}
    # Every site has exactly one owner whatever the number of collectors.
    for count in (1, 3, 7):
        assert all(1 <= partition.owner(site, count) <= count for site in SITES)


def test_sites_file_as_a_list_or_the_province_csv(tmp_path: Path) -> None:
    listing = tmp_path / "sites.txt"
    listing.write_text("# Dong Nai\nan-phuoc\n\ntan-an\n")
    assert partition.read_sites(listing) == ["an-phuoc", "tan-an"]
    shared_csv = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / \
        "sites-dong-nai-sample.csv"
    assert partition.read_sites(shared_csv)[:2] == ["an-phuoc", "binh-minh"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("an-phuoc\nTân An\n", "line 2: 'Tân An' is not a site id"),
    ("name,kind\nAn Phước,xã\n", "a CSV needs a 'site' column"),
    ("# nothing\n", "lists no sites"),
])
def test_bad_sites_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "sites.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        partition.read_sites(path)


@pytest.mark.parametrize(("fields", "fragment"), [
    ({"partition": "3/2", "sites_file": "x"}, "partition '3/2' must be K/N"),
    ({"partition": "1/2"}, "partition needs sites_file"),
    ({"partition": "1/2", "sites_file": "x", "shared_group": "g"}, "not both"),
])
def test_bad_partition_settings(fields: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        CollectorSection(**fields)


def test_two_collectors_split_a_simulated_province(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sites_file = tmp_path / "sites.txt"
    sites_file.write_text("\n".join(SITES) + "\n")
    collectors = [start_collector(mosquitto, tmp_path, f"part-{k}", partition=f"{k}/2",
                                  sites_file=str(sites_file), **REPLAY) for k in (1, 2)]
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(f"[fleet]\nsites = {len(SITES)}\ndevices = 80\ninterval_s = 60\n"
                        f"site_names = {SITES!r}\n".replace("'", '"'))
    try:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "cwatch"), "sim", "--broker", mosquitto.url,
             "--scenario", str(scenario), "--start", "30m", "--speed", "600", "--duration",
             "5", "--connections", "3"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        sent = int(re.search(r"\((\d+) envelopes", result.stderr).group(1))
        wait_until(lambda: sum(c.metrics.totals()["accepted"] for c in collectors) >= sent,
                   30, "every message taken in by one of the two collectors")
        for collector in collectors:
            assert collector.wait_idle(20)
        time.sleep(0.5)  # anything extra (a double delivery) would arrive by now
        totals = [c.metrics.totals() for c in collectors]
        assert sum(t["accepted"] for t in totals) == sent
        assert all(t["duplicate"] == 0 and t["rejected"] == 0 for t in totals)
        for k, collector in enumerate(collectors, start=1):
            sites = {d["site"] for d in collector.state.devices(limit=1000)}
            assert sites == {s for s in SITES if partition.owner(s, 2) == k}
        devices = [(d["site"], d["device"]) for c in collectors
                   for d in c.state.devices(limit=1000)]
        assert len(devices) == len(set(devices)) == 80
    finally:
        for collector in collectors:
            collector.stop()


def test_a_site_missing_from_the_sites_file_is_reported_by_every_collector(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    from mqtt_helpers import Publisher
    from samples import envelope

    from cwatch import protocol

    sites_file = tmp_path / "sites.txt"
    sites_file.write_text("\n".join(SITES) + "\n")  # "xa-new" is not in it
    collectors = [start_collector(mosquitto, tmp_path, f"unassigned-{k}", partition=f"{k}/2",
                                  sites_file=str(sites_file)) for k in (1, 2)]
    publisher = Publisher(mosquitto.host, mosquitto.port)
    try:
        for channel in ("status", "metrics"):
            publisher.publish(f"cwatch/v1/xa-new/pc-01/{channel}", protocol.encode(
                envelope(channel, site="xa-new", device="pc-01")))
        # A known site's status reaches both collectors too; only its owner stores it.
        publisher.publish(f"cwatch/v1/{SITES[0]}/pc-01/status", protocol.encode(
            envelope("status", site=SITES[0], device="pc-01")))
        owner = collectors[partition.owner(SITES[0], 2) - 1]
        wait_until(lambda: owner.state.device(SITES[0], "pc-01") is not None, 10,
                   "the owner stored the known site's status")
        for collector in collectors:
            wait_until(lambda c=collector: c.metrics.registry.get_sample_value(
                "cwatch_unassigned_site_messages_total", {"site": "xa-new"}) == 1, 10,
                "the unassigned site counted")
            assert collector.state.device("xa-new", "pc-01") is None
            assert collector.metrics.totals()["rejected"] == 0
        other = collectors[2 - partition.owner(SITES[0], 2)]
        assert other.state.device(SITES[0], "pc-01") is None
    finally:
        publisher.close()
        for collector in collectors:
            collector.stop()
