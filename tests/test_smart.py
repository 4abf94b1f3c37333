"""The SMART probe on real smartctl JSON outputs (see shared/fixtures/smartctl/SOURCE.md).

No test needs a real smartctl: the probe takes a fake runner, `which` and clock.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from jsonschema import Draft7Validator

from agent.probes import smart
from agent.probes.smart import SmartProbe, parse_inventory_disk, parse_scan, parse_smartctl
from cwatch import protocol

# shared/ sits beside the repository, locally and in CI alike.
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "smartctl"
SMARTCTL = "/usr/sbin/smartctl"
SCHEMA = protocol.load_schema()
METRICS_VALIDATOR = Draft7Validator(protocol.channel_schema(SCHEMA, "metrics"))
DISKS_VALIDATOR = Draft7Validator(
    dict(SCHEMA, **{"$ref": "#/definitions/inventory_data/properties/disks"}))

REPORTS = ["smart-ata.json", "smart-ata-full.json", "smart-ata-failed-scrutiny.json",
           "smart-fail2.json", "smart-nvme.json", "smart-nvme-failed.json", "smart-sat.json",
           "smart-scsi.json"]
SCANS = ["smartctl_scan_simple.json", "smartctl_scan_nvme.json"]

NO_NVME = {"nvme_percentage_used": None, "nvme_available_spare_percent": None,
           "nvme_media_errors": None, "nvme_critical_warning": None}
NO_ATA = {"reallocated_sectors": None, "pending_sectors": None, "offline_uncorrectable": None,
          "reported_uncorrectable": None, "command_timeouts": None}

# Every value below was read from the fixture file by hand.
EXPECTED = {
    "smart-ata.json": dict(
        device="/dev/sdb", model="WDC WD140EDFZ-11A0VA0", serial="9RK1XXXX", protocol="ata",
        passed=True, reallocated_sectors=0, pending_sectors=0, offline_uncorrectable=0,
        reported_uncorrectable=None, command_timeouts=None, power_on_hours=1730,
        temperature_c=32, **NO_NVME),
    "smart-ata-full.json": dict(
        device="/dev/sda", model="Samsung SSD 860 EVO 500GB", serial="S3YZNB0KB00864E",
        protocol="ata", passed=True, reallocated_sectors=0, pending_sectors=None,
        offline_uncorrectable=None, reported_uncorrectable=0, command_timeouts=None,
        power_on_hours=14551, temperature_c=36, **NO_NVME),
    "smart-ata-failed-scrutiny.json": dict(
        device="/dev/sda", model="Samsung SSD 840 Series", serial="S14LNEACC02756X",
        protocol="ata", passed=True, reallocated_sectors=0, pending_sectors=None,
        offline_uncorrectable=None, reported_uncorrectable=0, command_timeouts=None,
        power_on_hours=19497, temperature_c=33, **NO_NVME),
    "smart-fail2.json": dict(
        device="/dev/sdc", model="Hitachi HDS721050DLE630", serial="MSK423Y20S3HBC",
        protocol="ata", passed=False, reallocated_sectors=1975, pending_sectors=8,
        offline_uncorrectable=0, reported_uncorrectable=None, command_timeouts=None,
        power_on_hours=65592, temperature_c=25, **NO_NVME),
    "smart-nvme.json": dict(
        device="/dev/testfoobarpass", model="INTEL SSDPEKNW010T8", serial="BTNH93710FS91P0B",
        protocol="nvme", passed=True, power_on_hours=2401, temperature_c=36,
        nvme_percentage_used=0, nvme_available_spare_percent=100, nvme_media_errors=0,
        nvme_critical_warning=0, **NO_ATA),
    "smart-nvme-failed.json": dict(
        device="/dev/nvme0", model="Samsung SSD 970 EVO 500GB", serial="S466NX0M776250H",
        protocol="nvme", passed=True, power_on_hours=12798, temperature_c=35,
        nvme_percentage_used=3, nvme_available_spare_percent=99, nvme_media_errors=7,
        nvme_critical_warning=0, **NO_ATA),
    # -jA output: attributes and temperature only. Attribute 9's raw value packs more than
    # hours (167031278144165); smartctl decodes it as "2725 (151 234 0)".
    "smart-sat.json": dict(
        device="/dev/sdc", model=None, serial=None, protocol="ata", passed=None,
        reallocated_sectors=0, pending_sectors=0, offline_uncorrectable=0,
        reported_uncorrectable=0, command_timeouts=0, power_on_hours=2725, temperature_c=29,
        **NO_NVME),
    "smart-scsi.json": dict(
        device="/dev/sdg", model="SEAGATE ST4000NM0043", serial="Z1Z5DWJK0000XXXXXXXX",
        protocol="scsi", passed=True, reallocated_sectors=56, pending_sectors=None,
        offline_uncorrectable=None, reported_uncorrectable=0, command_timeouts=None,
        power_on_hours=43549, temperature_c=34, **NO_NVME),
}

EXPECTED_DISKS = {
    "smart-ata.json": ("WDC WD140EDFZ-11A0VA0", 14000519643136, "hdd"),
    "smart-ata-full.json": ("Samsung SSD 860 EVO 500GB", 500107862016, "ssd"),
    "smart-ata-failed-scrutiny.json": ("Samsung SSD 840 Series", 500107862016, "ssd"),
    "smart-fail2.json": ("Hitachi HDS721050DLE630", 500107862016, "hdd"),
    "smart-nvme.json": ("INTEL SSDPEKNW010T8", 1024209543168, "nvme"),
    "smart-nvme-failed.json": ("Samsung SSD 970 EVO 500GB", 500107862016, "nvme"),
    "smart-sat.json": (None, None, "unknown"),
    "smart-scsi.json": ("SEAGATE ST4000NM0043", 4000787030016, "hdd"),
}


def text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def load(name: str) -> Dict[str, Any]:
    return json.loads(text(name))


def metrics_errors(items: List[Dict[str, Any]]) -> List[str]:
    env = protocol.envelope("an-phuoc", "pc-ketoan-01", time.time(), 1,
                            {"interval_s": 60, "smart": items})
    return [e.message for e in METRICS_VALIDATOR.iter_errors(env)]


def exit_status(report: Dict[str, Any]) -> int:
    return int(report.get("smartctl", {}).get("exit_status", 0))


class FakeSmartctl:
    """Answers smartctl command lines from a table; records every call."""

    def __init__(self, scan: Tuple[int, str], disks: Dict[str, Tuple[int, str]]) -> None:
        self.scan = scan
        self.disks = disks
        self.calls = []  # type: List[List[str]]

    def __call__(self, argv: List[str]) -> Tuple[int, str]:
        self.calls.append(list(argv))
        if "--scan-open" in argv:
            return self.scan
        return self.disks[argv[-1]]

    @property
    def disk_calls(self) -> List[List[str]]:
        return [c for c in self.calls if "--all" in c]


def scan_of(*devices: Dict[str, Any]) -> Tuple[int, str]:
    return 0, json.dumps({"smartctl": {"version": [7, 3], "exit_status": 0},
                          "devices": list(devices)})


def open_failure(name: str, why: str) -> Tuple[int, str]:
    """What smartctl prints when it cannot open a device: exit 2, a message, no data."""
    return 2, json.dumps({"smartctl": {"version": [7, 3], "exit_status": 2, "messages": [
        {"string": f"Smartctl open device: {name} failed: {why}", "severity": "error"}]}})


def make_probe(fake: Callable[[List[str]], Tuple[int, str]],
               clock: Optional[Callable[[], float]] = None, **kw: Any) -> SmartProbe:
    return SmartProbe(runner=fake, which=lambda name: SMARTCTL if name == "smartctl" else None,
                      clock=clock or (lambda: 1000.0), **kw)


# ---------------------------------------------------------------------------- fixtures

def test_fixture_folder_is_beside_the_repository() -> None:
    missing = [n for n in REPORTS + SCANS + ["SOURCE.md"] if not (FIXTURES / n).is_file()]
    assert missing == [], f"fixtures missing from {FIXTURES}"


@pytest.mark.parametrize("name", REPORTS)
def test_report_parses_to_the_values_in_the_file(name: str) -> None:
    assert parse_smartctl(load(name)) == EXPECTED[name]


@pytest.mark.parametrize("name", REPORTS)
def test_inventory_disk_from_report(name: str) -> None:
    model, size, kind = EXPECTED_DISKS[name]
    disk = parse_inventory_disk(load(name))
    assert disk == {"model": model, "serial": EXPECTED[name]["serial"], "size_bytes": size,
                    "kind": kind}


def test_failing_drive_is_reported_failing() -> None:
    item = parse_smartctl(load("smart-fail2.json"))
    assert item["passed"] is False
    assert item["reallocated_sectors"] == 1975
    assert item["pending_sectors"] == 8


def test_nvme_wear_and_media_errors() -> None:
    item = parse_smartctl(load("smart-nvme-failed.json"))
    assert (item["nvme_percentage_used"], item["nvme_media_errors"]) == (3, 7)
    assert item["nvme_available_spare_percent"] == 99


def test_nvme_size_falls_back_to_total_capacity() -> None:
    report = load("smart-nvme-failed.json")
    del report["user_capacity"]
    assert parse_inventory_disk(report)["size_bytes"] == 500107862016  # nvme_total_capacity


def test_partial_sat_output_parses_without_error() -> None:
    report = load("smart-sat.json")
    assert "smart_status" not in report and "model_name" not in report  # really partial
    item = parse_smartctl(report)
    assert item["passed"] is None and item["model"] is None
    assert item["power_on_hours"] == 2725
    assert metrics_errors([item]) == []


def test_every_parsed_item_validates_against_the_schema() -> None:
    items = [parse_smartctl(load(name)) for name in REPORTS]
    assert len(items) == len(REPORTS)
    assert metrics_errors(items) == []
    disks = [parse_inventory_disk(load(name)) for name in REPORTS]
    assert list(DISKS_VALIDATOR.iter_errors(disks)) == []


def test_schema_check_rejects_a_bad_item() -> None:
    # Proves the validation above can fail: the same item with one field out of range.
    item = parse_smartctl(load("smart-nvme.json"))
    item["temperature_c"] = 300
    assert metrics_errors([item]) != []


def test_scan_outputs_yield_their_devices() -> None:
    simple = parse_scan(load("smartctl_scan_simple.json"))
    assert [d["name"] for d in simple] == [f"/dev/sd{c}" for c in "abcdefg"]
    assert {d["type"] for d in simple} == {"scsi"}
    assert parse_scan(load("smartctl_scan_nvme.json")) == [
        {"name": "/dev/nvme0", "type": "nvme", "open_error": None}]


def test_scan_skips_duplicates_and_option_like_names() -> None:
    scan = {"devices": [{"name": "/dev/pd0", "type": "ata"}, {"name": "/dev/pd0", "type": "ata"},
                        {"name": "--all", "type": "sat"}, {"name": "/dev/pd1", "type": "-x"},
                        {"name": 5}, "junk", {"name": "/dev/sdb", "type": "sat",
                                              "open_error": "Permission denied"}]}
    assert parse_scan(scan) == [
        {"name": "/dev/pd0", "type": "ata", "open_error": None},
        {"name": "/dev/pd1", "type": None, "open_error": None},
        {"name": "/dev/sdb", "type": "sat", "open_error": "Permission denied"}]
    assert parse_scan(None) == [] and parse_scan({"devices": "x"}) == []


# ---------------------------------------------------------------------------- odd input

@pytest.mark.parametrize("report", [
    None, [], "text", {}, {"device": 5, "smart_status": "yes"},
    {"ata_smart_attributes": {"table": [None, {"id": "5"}, {"id": 5, "raw": None},
                                        {"id": 197, "raw": {"value": "8"}}]}},
    {"nvme_smart_health_information_log": [1, 2]}, {"temperature": {"current": "hot"}},
])
def test_odd_reports_give_nulls_not_exceptions(report: Any) -> None:
    item = parse_smartctl(report, device="/dev/sda")
    assert item["device"] == "/dev/sda"
    assert item["passed"] is None and item["reallocated_sectors"] is None
    assert item["pending_sectors"] is None and item["temperature_c"] is None
    assert metrics_errors([item]) == []
    assert parse_inventory_disk(report)["kind"] == "unknown"


def test_values_outside_the_schema_ranges_become_null() -> None:
    report = load("smart-nvme-failed.json")
    log = report["nvme_smart_health_information_log"]
    log["available_spare"] = 150
    log["percentage_used"] = 256
    log["critical_warning"] = -1
    log["media_errors"] = True
    report["temperature"]["current"] = 255
    report["power_on_time"]["hours"] = 20000000
    item = parse_smartctl(report)
    assert [item[k] for k in ("nvme_available_spare_percent", "nvme_percentage_used",
                              "nvme_critical_warning", "nvme_media_errors", "temperature_c",
                              "power_on_hours")] == [None] * 6
    assert item["model"] == "Samsung SSD 970 EVO 500GB"  # the rest is kept
    assert metrics_errors([item]) == []


def test_command_timeouts_use_the_low_16_bits() -> None:
    report = load("smart-sat.json")
    attr = next(a for a in report["ata_smart_attributes"]["table"] if a["id"] == 188)
    attr["raw"] = {"value": (3 << 32) | (2 << 16) | 5, "string": "3 2 5"}
    assert parse_smartctl(report)["command_timeouts"] == 5


def test_failing_exit_bit_without_smart_status_means_failed() -> None:
    report = load("smart-fail2.json")
    del report["smart_status"]
    assert report["smartctl"]["exit_status"] & 0x08  # 216: smartctl said DISK FAILING
    assert parse_smartctl(report)["passed"] is False
    report["smartctl"]["exit_status"] = 0
    assert parse_smartctl(report)["passed"] is None


def test_device_name_from_argv_when_report_has_none() -> None:
    report = load("smart-ata.json")
    del report["device"]
    assert parse_smartctl(report)["device"] == "/dev/sdb"  # argv: smartctl -j -a /dev/sdb
    assert parse_smartctl(report)["protocol"] == "ata"  # from the attribute table


def test_old_scsi_output_model_from_vendor_and_product() -> None:
    report = load("smart-scsi.json")
    del report["model_name"]
    assert parse_smartctl(report)["model"] == "SEAGATE ST4000NM0043"


def test_scsi_pending_defects_when_present() -> None:
    report = load("smart-scsi.json")
    report["scsi_pending_defects"] = {"count": 4}
    report["scsi_error_counter_log"]["read"]["total_uncorrected_errors"] = 2
    report["scsi_error_counter_log"]["write"]["total_uncorrected_errors"] = 1
    item = parse_smartctl(report)
    assert (item["pending_sectors"], item["reported_uncorrectable"]) == (4, 3)


# ---------------------------------------------------------------------------- probe

def fixture_disks() -> FakeSmartctl:
    """The simple scan's seven devices: four answer with real reports, three cannot open."""
    disks = {}
    for dev, name in (("/dev/sda", "smart-ata-full.json"), ("/dev/sdb", "smart-ata.json"),
                      ("/dev/sdc", "smart-fail2.json"), ("/dev/sdg", "smart-scsi.json")):
        disks[dev] = (exit_status(load(name)), text(name))
    for dev in ("/dev/sdd", "/dev/sde", "/dev/sdf"):
        disks[dev] = open_failure(dev, "No such device or address")
    return FakeSmartctl((0, text("smartctl_scan_simple.json")), disks)


def test_probe_reads_every_device_the_scan_finds() -> None:
    fake = fixture_disks()
    items, note = make_probe(fake).collect()
    assert fake.calls[0] == [SMARTCTL, "--scan-open", "--json"]
    assert fake.disk_calls[0] == [SMARTCTL, "--all", "--json", "-d", "scsi", "/dev/sda"]
    assert len(fake.disk_calls) == 7
    assert [i["device"] for i in items] == ["/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdg"]
    # /dev/sdc exits with 216 (disk-health bits 3, 4, 6, 7): still read, and failing.
    assert exit_status(load("smart-fail2.json")) == 216
    assert items[2]["passed"] is False and items[2]["reallocated_sectors"] == 1975
    assert note is not None and "/dev/sdd" in note and "root" not in note
    assert metrics_errors(items) == []


def test_probe_inventory_disks_come_from_the_last_run() -> None:
    probe = make_probe(fixture_disks())
    assert probe.inventory_disks() == []
    probe.collect()
    assert [d["kind"] for d in probe.inventory_disks()] == ["ssd", "hdd", "hdd", "hdd"]


def test_device_type_from_scan_is_optional() -> None:
    fake = FakeSmartctl(scan_of({"name": "/dev/pd0"}),
                        {"/dev/pd0": (0, text("smart-nvme.json"))})
    items, note = make_probe(fake).collect()
    assert fake.disk_calls == [[SMARTCTL, "--all", "--json", "/dev/pd0"]]
    assert note is None and items[0]["nvme_percentage_used"] == 0


def test_missing_smartctl_gives_a_note_and_runs_nothing() -> None:
    fake = fixture_disks()
    probe = SmartProbe(runner=fake, which=lambda name: None, clock=lambda: 0.0)
    assert probe.collect() == ([], "smartctl not found; install smartmontools >= 7")
    assert fake.calls == []


def test_smartctl_found_outside_path() -> None:
    fallback = smart.FALLBACK_PATHS[0]
    fake = fixture_disks()
    probe = SmartProbe(runner=fake, which=lambda name: name if name == fallback else None)
    items, _ = probe.collect()
    assert fake.calls[0][0] == fallback and len(items) == 4


def test_scan_open_errors_for_lack_of_rights_give_a_note() -> None:
    fake = FakeSmartctl(scan_of(
        {"name": "/dev/sda", "type": "sat", "open_error": "Permission denied"},
        {"name": "/dev/nvme0", "type": "nvme", "open_error": "Permission denied"}), {})
    items, note = make_probe(fake).collect()
    assert items == [] and note == smart.NO_RIGHTS_NOTE
    assert "root" in note and "administrator" in note
    assert fake.disk_calls == []


@pytest.mark.parametrize("why", ["Permission denied", "/dev/sda: access denied",
                                 "Operation not permitted"])
def test_device_open_failure_for_lack_of_rights_gives_a_note(why: str) -> None:
    fake = FakeSmartctl(scan_of({"name": "/dev/sda", "type": "sat"}),
                        {"/dev/sda": open_failure("/dev/sda", why)})
    assert make_probe(fake).collect() == ([], smart.NO_RIGHTS_NOTE)


def test_empty_card_reader_is_skipped_quietly() -> None:
    fake = FakeSmartctl(scan_of(
        {"name": "/dev/sdb", "type": "scsi", "open_error": "No medium found"},
        {"name": "/dev/nvme0", "type": "nvme"}),
        {"/dev/nvme0": (0, text("smart-nvme-failed.json"))})
    items, note = make_probe(fake).collect()
    assert [i["device"] for i in items] == ["/dev/nvme0"] and note is None
    assert len(fake.disk_calls) == 1


def test_smartctl_6_without_json_gives_a_note() -> None:
    fake = FakeSmartctl((1, "smartctl 6.6 2016-05-31\n=======> UNRECOGNIZED OPTION: json\n"), {})
    items, note = make_probe(fake).collect()
    assert items == [] and note == smart.TOO_OLD_NOTE


@pytest.mark.parametrize("exc", [OSError("exec format error"),
                                 subprocess.TimeoutExpired(["smartctl"], 60)])
def test_runner_errors_become_notes(exc: Exception) -> None:
    def runner(argv: List[str]) -> Tuple[int, str]:
        raise exc

    items, note = make_probe(runner).collect()
    assert items == [] and note is not None and type(exc).__name__ in note


def test_disk_timeout_skips_only_that_disk() -> None:
    fake = fixture_disks()

    def runner(argv: List[str]) -> Tuple[int, str]:
        if argv[-1] == "/dev/sdb":
            raise subprocess.TimeoutExpired(argv, 60)
        return fake(argv)

    items, note = make_probe(runner).collect()
    assert [i["device"] for i in items] == ["/dev/sda", "/dev/sdc", "/dev/sdg"]
    assert note is not None and "/dev/sdb: TimeoutExpired" in note


def test_text_after_the_json_is_tolerated() -> None:
    fake = FakeSmartctl(scan_of({"name": "/dev/sda", "type": "sat"}),
                        {"/dev/sda": (0, text("smart-ata.json") + "\nSmartctl: trailing line\n")})
    items, note = make_probe(fake).collect()
    assert note is None and items[0]["model"] == "WDC WD140EDFZ-11A0VA0"


def test_at_most_32_disks() -> None:
    devices = [{"name": f"/dev/sd{i}", "type": "sat"} for i in range(40)]
    disks = {d["name"]: (0, text("smart-ata.json")) for d in devices}
    fake = FakeSmartctl(scan_of(*devices), disks)
    items, note = make_probe(fake).collect()
    assert len(items) == 32 and len(fake.disk_calls) == 32 and note is None
    assert [c[-1] for c in fake.disk_calls] == [f"/dev/sd{i}" for i in range(32)]
    assert metrics_errors(items) == []


def test_cache_honours_min_interval() -> None:
    now = [5000.0]
    fake = fixture_disks()
    probe = make_probe(fake, clock=lambda: now[0], min_interval_s=600)
    first = probe.collect()
    assert len(fake.calls) == 8  # one scan + seven disks
    first[0][0]["passed"] = "tampered"  # the caller's copy, not the cache
    now[0] += 599
    second = probe.collect()
    assert len(fake.calls) == 8
    assert second[0][0]["passed"] is True and second[0] == [dict(i) for i in probe.collect()[0]]
    assert second[1] == first[1]
    now[0] += 1
    probe.collect()
    assert len(fake.calls) == 16


def test_cache_default_is_an_hour_and_a_clock_going_back_reruns() -> None:
    now = [100.0]
    fake = fixture_disks()
    probe = make_probe(fake, clock=lambda: now[0])
    probe.collect()
    now[0] += 3599
    probe.collect()
    assert len(fake.calls) == 8
    now[0] = 50.0
    probe.collect()
    assert len(fake.calls) == 16


def test_missing_smartctl_is_not_cached() -> None:
    found = [None]  # type: List[Optional[str]]
    fake = fixture_disks()
    probe = SmartProbe(runner=fake, which=lambda name: found[0], clock=lambda: 0.0)
    assert probe.collect()[1] == smart.NOT_FOUND_NOTE
    found[0] = SMARTCTL  # installed meanwhile
    items, _ = probe.collect()
    assert len(items) == 4


def test_failed_scan_for_lack_of_rights_gives_a_note() -> None:
    fake = FakeSmartctl((2, json.dumps({"smartctl": {"exit_status": 2, "messages": [
        {"string": "/dev/csmi0,0: access denied", "severity": "error"}]}})), {})
    assert make_probe(fake).collect() == ([], smart.NO_RIGHTS_NOTE)
    other = FakeSmartctl((2, json.dumps({"smartctl": {"exit_status": 2, "messages": [
        {"string": "scan_smart_devices: glob failed", "severity": "error"}]}})), {})
    items, note = make_probe(other).collect()
    assert items == [] and note is not None and "glob failed" in note
