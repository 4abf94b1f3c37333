"""HostProbe: counter rates, disk/net filtering, sensors, battery, the agent's own health.

psutil is replaced by a small fake object passed in (no monkeypatching), so counters and
clocks are deterministic; one test runs the real probe on this machine against the schema.
"""

from __future__ import annotations

import time
from collections import namedtuple
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from jsonschema import Draft7Validator

from agent.probes import host_io, sensors
from agent.probes.host import HostProbe
from agent.probes.inventory import collect_inventory
from agent.probes.rates import RateTracker
from cwatch import protocol

FIXTURES = Path(__file__).parent / "fixtures"
DELL_SYS = FIXTURES / "sys-dell-optiplex"
SCHEMA = protocol.load_schema()
METRICS = Draft7Validator(protocol.channel_schema(SCHEMA, "metrics"))
INVENTORY = Draft7Validator(protocol.channel_schema(SCHEMA, "inventory"))

# The shapes psutil returns (same field names, so the probe cannot tell the difference).
DiskIO = namedtuple("DiskIO", "read_count write_count read_bytes write_bytes read_time "
                              "write_time busy_time")
WinDiskIO = namedtuple("WinDiskIO", "read_count write_count read_bytes write_bytes read_time "
                                    "write_time")  # no busy_time outside Linux/FreeBSD
NetIO = namedtuple("NetIO", "bytes_sent bytes_recv packets_sent packets_recv errin errout "
                            "dropin dropout")
NicStats = namedtuple("NicStats", "isup duplex speed mtu flags")
Temp = namedtuple("Temp", "label current high critical")
Fan = namedtuple("Fan", "label current")
Battery = namedtuple("Battery", "percent secsleft power_plugged")
Mem = namedtuple("Mem", "total available percent")
Swap = namedtuple("Swap", "total used free percent sin sout")
CpuTimes = namedtuple("CpuTimes", "user system")
MemInfo = namedtuple("MemInfo", "rss vms")


class FakeProcess:
    def memory_info(self) -> MemInfo:
        return MemInfo(rss=31457280, vms=0)

    def cpu_times(self) -> CpuTimes:
        return CpuTimes(user=1.5, system=0.25)


class FakePsutil:
    """Just enough of psutil for HostProbe; tests change the attributes between samples."""

    def __init__(self) -> None:
        self.disks = {}  # type: Dict[str, Any]
        self.nics = {}  # type: Dict[str, Any]
        self.nic_stats = {}  # type: Dict[str, Any]
        self.temps = {}  # type: Dict[str, List[Any]]
        self.fan_readings = {}  # type: Dict[str, List[Any]]
        self.battery = None  # type: Optional[Battery]
        self.swap = Swap(total=2 << 30, used=1 << 30, free=1 << 30, percent=50.0, sin=0, sout=0)
        self.boot = 1795000000.0

    def cpu_percent(self, interval: Any = None, percpu: bool = False) -> Any:
        return [10.0, 90.0] if percpu else 50.0

    def cpu_count(self, logical: bool = True) -> int:
        return 2

    def getloadavg(self) -> Any:
        return (0.5, 0.25, 0.125)

    def virtual_memory(self) -> Mem:
        return Mem(total=2 << 30, available=1 << 29, percent=75.0)

    def swap_memory(self) -> Swap:
        return self.swap

    def disk_partitions(self, all: bool = False) -> List[Any]:
        return []

    def boot_time(self) -> float:
        return self.boot

    def pids(self) -> List[int]:
        return [1, 2, 3]

    def disk_io_counters(self, perdisk: bool = False) -> Dict[str, Any]:
        return dict(self.disks)

    def net_io_counters(self, pernic: bool = False) -> Dict[str, Any]:
        return dict(self.nics)

    def net_if_stats(self) -> Dict[str, Any]:
        return dict(self.nic_stats)

    def sensors_temperatures(self) -> Dict[str, List[Any]]:
        return self.temps

    def sensors_fans(self) -> Dict[str, List[Any]]:
        return self.fan_readings

    def sensors_battery(self) -> Optional[Battery]:
        return self.battery

    def Process(self) -> FakeProcess:  # noqa: N802 (psutil's name)
        return FakeProcess()


class WindowsPsutil(FakePsutil):
    """psutil on Windows has no sensors_temperatures / sensors_fans at all."""

    @property
    def sensors_temperatures(self) -> Any:
        raise AttributeError("sensors_temperatures")

    @property
    def sensors_fans(self) -> Any:
        raise AttributeError("sensors_fans")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def disk(read_bytes: int, write_bytes: int = 0, busy_ms: int = 0, ops: int = 0) -> DiskIO:
    return DiskIO(read_count=ops, write_count=ops, read_bytes=read_bytes,
                  write_bytes=write_bytes, read_time=0, write_time=0, busy_time=busy_ms)


def nic(rx: int, tx: int = 0, errin: int = 0, dropin: int = 0) -> NetIO:
    return NetIO(bytes_sent=tx, bytes_recv=rx, packets_sent=0, packets_recv=0, errin=errin,
                 errout=0, dropin=dropin, dropout=0)


def up(flags: str = "up,broadcast,running,multicast") -> NicStats:
    return NicStats(isup=True, duplex=0, speed=1000, mtu=1500, flags=flags)


def make_probe(ps: FakePsutil, platform_name: str = "linux",
               sys_root: Path = DELL_SYS) -> Tuple[HostProbe, Clock]:
    mono = Clock(1000.0)
    probe = HostProbe(psutil_module=ps, clock=Clock(1795003600.0), monotonic=mono,
                      sys_root=sys_root, platform_name=platform_name)
    return probe, mono


def validate_metrics(data: Dict[str, Any]) -> None:
    env = protocol.envelope("an-phuoc", "pc-01", time.time(), 1, {"interval_s": 60, **data})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in METRICS.iter_errors(env)]
    assert errors == []


# ---------------------------------------------------------------------------- RateTracker

def test_first_sample_gives_no_rate_then_delta_over_elapsed() -> None:
    rates = RateTracker()
    assert rates.rate("k", 1000, now=10.0) is None
    assert rates.rate("k", 1600, now=13.0) == 200.0


def test_counter_going_backwards_gives_no_rate_for_that_round_only() -> None:
    rates = RateTracker()
    rates.rate("k", 5000, now=0.0)
    assert rates.rate("k", 100, now=10.0) is None  # reboot / wrap / driver reset
    assert rates.rate("k", 600, now=20.0) == 50.0  # measured from the reset value


def test_no_rate_when_the_clock_did_not_advance() -> None:
    rates = RateTracker()
    rates.rate("k", 0, now=5.0)
    assert rates.rate("k", 10, now=5.0) is None
    assert rates.rate("k", 20, now=4.0) is None


def test_unreadable_counter_restarts_the_series() -> None:
    rates = RateTracker()
    rates.rate("k", 10, now=0.0)
    assert rates.rate("k", None, now=1.0) is None
    assert rates.rate("k", float("nan"), now=2.0) is None
    assert rates.rate("k", 20, now=3.0) is None  # first sample again
    assert rates.rate("k", 30, now=4.0) == 10.0


def test_rate_beyond_the_schema_maximum_is_dropped() -> None:
    rates = RateTracker()
    rates.rate("k", 0, now=0.0)
    assert rates.rate("k", 2 * 10 ** 15, now=1.0) is None


def test_sweep_forgets_counters_not_read_since_the_last_sweep() -> None:
    rates = RateTracker()
    rates.rate("usb", 1, now=0.0)
    rates.rate("sda", 1, now=0.0)
    rates.sweep()
    rates.rate("sda", 2, now=1.0)
    rates.sweep()
    assert len(rates) == 1
    assert rates.rate("usb", 5, now=2.0) is None  # came back: starts afresh


# ---------------------------------------------------------------------------- HostProbe rates

def test_disk_rates_use_the_injected_monotonic_clock() -> None:
    ps = FakePsutil()
    ps.disks = {"sda": disk(read_bytes=1000, write_bytes=0, busy_ms=0, ops=0)}
    probe, mono = make_probe(ps)
    first = probe.collect()
    assert "disk_io" not in first  # first sample: no rate, nothing to report
    mono.t += 10.0
    ps.disks = {"sda": disk(read_bytes=41000, write_bytes=20480, busy_ms=2500, ops=50)}
    second = probe.collect()
    assert second["disk_io"] == [{
        "name": "sda", "read_bytes_per_s": 4000.0, "write_bytes_per_s": 2048.0,
        "read_ops_per_s": 5.0, "write_ops_per_s": 5.0, "busy_percent": 25.0}]
    validate_metrics(second)


def test_disk_counter_reset_gives_no_negative_rate() -> None:
    ps = FakePsutil()
    ps.disks = {"sda": disk(read_bytes=10 ** 9, write_bytes=10 ** 8, busy_ms=90000, ops=500)}
    probe, mono = make_probe(ps)
    probe.collect()
    mono.t += 60.0
    # Every counter went backwards (the disk driver was reset): no rate at all this round.
    ps.disks = {"sda": disk(read_bytes=6000, write_bytes=0, busy_ms=600, ops=3)}
    assert "disk_io" not in probe.collect()
    mono.t += 60.0
    ps.disks = {"sda": disk(read_bytes=66000, write_bytes=12000, busy_ms=6600, ops=63)}
    item = probe.collect()["disk_io"][0]
    assert item == {"name": "sda", "read_bytes_per_s": 1000.0, "write_bytes_per_s": 200.0,
                    "read_ops_per_s": 1.0, "write_ops_per_s": 1.0, "busy_percent": 10.0}
    mono.t += 60.0
    # Only the write counter went backwards: only its field is missing this round.
    ps.disks = {"sda": disk(read_bytes=126000, write_bytes=3000, busy_ms=12600, ops=123)}
    item = probe.collect()["disk_io"][0]
    assert "write_bytes_per_s" not in item and item["read_bytes_per_s"] == 1000.0


def test_swap_rates_on_linux_but_not_on_windows() -> None:
    for platform_name, expect in (("linux", True), ("win32", False)):
        ps = FakePsutil() if platform_name == "linux" else WindowsPsutil()
        probe, mono = make_probe(ps, platform_name)
        assert "swap_in_bytes_per_s" not in probe.collect()
        mono.t += 4.0
        ps.swap = ps.swap._replace(sin=8192, sout=4096)
        data = probe.collect()
        if expect:
            assert data["swap_in_bytes_per_s"] == 2048.0
            assert data["swap_out_bytes_per_s"] == 1024.0
        else:
            # psutil's sin/sout are always 0 on Windows: absent, not a fake "0 swapping".
            assert "swap_in_bytes_per_s" not in data and "swap_out_bytes_per_s" not in data


def test_linux_disk_filter_keeps_whole_physical_disks_only() -> None:
    names = ["sda", "sda1", "sda2", "nvme0n1", "nvme0n1p1", "mmcblk0", "mmcblk0p1", "loop0",
             "loop12", "ram0", "zram0", "dm-0", "dm-1", "md0", "sr0", "sdb1", "vda"]
    rates = RateTracker()
    host_io.disk_io({n: disk(100, ops=1) for n in names}, rates, 0.0, linux=True)
    items = host_io.disk_io({n: disk(200, ops=2) for n in names}, rates, 1.0, linux=True)
    # sdb1 stays: its whole disk is not listed, so its I/O is counted nowhere else.
    assert [i["name"] for i in items] == ["mmcblk0", "nvme0n1", "sda", "sdb1", "vda"]


def test_disk_never_used_is_skipped_and_list_capped_at_64() -> None:
    counters = {f"sd{i:03d}": disk(100, ops=1) for i in range(70)}
    counters["sdzz"] = disk(0)  # an empty card reader
    rates = RateTracker()
    host_io.disk_io(counters, rates, 0.0, linux=True)
    items = host_io.disk_io(counters, rates, 1.0, linux=True)
    assert len(items) == 64 and "sdzz" not in [i["name"] for i in items]


def test_windows_busy_is_read_plus_write_time_capped_at_100() -> None:
    ps = WindowsPsutil()
    ps.disks = {"PhysicalDrive0": WinDiskIO(10, 10, 1000, 1000, 0, 0)}
    probe, mono = make_probe(ps, "win32")
    probe.collect()
    mono.t += 10.0
    # 15 s of summed request times in 10 s: several requests in flight, i.e. fully busy.
    ps.disks = {"PhysicalDrive0": WinDiskIO(20, 20, 2000, 2000, 9000, 6000)}
    data = probe.collect()
    assert data["disk_io"][0]["busy_percent"] == 100.0
    assert "temperatures" not in data and "fans" not in data
    validate_metrics(data)


def test_net_skips_loopback_down_and_idle_interfaces() -> None:
    ps = FakePsutil()
    long_name = "Intel(R) Ethernet Connection (2) I219-LM - VirtualBox NDIS Light-Weight Filter"
    ps.nics = {"lo": nic(500), "Loopback Pseudo-Interface 1": nic(500), "eth0": nic(1000),
               "wlan0": nic(700), "docker0": nic(0), "lo-named-but-not": nic(10),
               long_name: nic(100)}
    ps.nic_stats = {"lo": up("up,loopback,running"), "eth0": up(),
                    "wlan0": NicStats(False, 0, 0, 1500, "broadcast,multicast"),
                    "docker0": up(), "lo-named-but-not": up(), long_name: up()}
    probe, mono = make_probe(ps)
    assert "net" not in probe.collect()
    mono.t += 2.0
    ps.nics = dict(ps.nics, eth0=nic(3000, tx=1000, errin=1, dropin=3),
                   **{long_name: nic(300), "lo-named-but-not": nic(10)})
    items = probe.collect()["net"]
    assert [i["name"] for i in items] == [long_name[:64], "eth0", "lo-named-but-not"]
    assert items[1] == {"name": "eth0", "rx_bytes_per_s": 1000.0, "tx_bytes_per_s": 500.0,
                        "rx_errors_per_s": 0.5, "tx_errors_per_s": 0.0,
                        "rx_drops_per_s": 1.5, "tx_drops_per_s": 0.0}


def test_net_keeps_interfaces_psutil_has_no_stats_for_and_caps_at_64() -> None:
    counters = {f"eth{i}": nic(i + 1) for i in range(80)}
    rates = RateTracker()
    host_io.net_io(counters, {}, rates, 0.0)
    counters = {f"eth{i}": nic(i + 2) for i in range(80)}
    assert len(host_io.net_io(counters, {}, rates, 1.0)) == 64


# ---------------------------------------------------------------------------- sensors

def test_temperatures_outside_the_schema_range_are_dropped() -> None:
    raw = {
        "coretemp": [Temp("Package id 0", 54.0, 84.0, 100.0), Temp("Core 0", 51.04, 84.0, 100.0)],
        "acpitz": [Temp("", 27.8, None, 119.0), Temp("", -273.2, 0.0, 0.0)],
        "nvme": [Temp("Composite", 255.0, 84.85, 84.85), Temp("Sensor 1", 41.86, 65261.85, 0)],
    }
    assert sensors.temperatures(raw) == [
        {"sensor": "acpitz", "temp_c": 27.8, "high_c": None, "critical_c": 119.0},
        {"sensor": "coretemp", "temp_c": 54.0, "label": "Package id 0", "high_c": 84.0,
         "critical_c": 100.0},
        {"sensor": "coretemp", "temp_c": 51.0, "label": "Core 0", "high_c": 84.0,
         "critical_c": 100.0},
        {"sensor": "nvme", "temp_c": 41.9, "label": "Sensor 1", "high_c": None,
         "critical_c": None},
    ]


def test_temperatures_capped_at_64_and_fans_at_32() -> None:
    temps = {"coretemp": [Temp(f"Core {i}", 40.0, None, None) for i in range(100)]}
    fan_readings = {"dell_smm": [Fan(f"fan{i}", 1200) for i in range(40)] + [Fan("x", 10 ** 6)]}
    assert len(sensors.temperatures(temps)) == 64
    assert len(sensors.fans(fan_readings)) == 32
    assert sensors.fans({"it8728": [Fan("", 0), Fan("cpu", 10 ** 6)]}) == [
        {"sensor": "it8728", "rpm": 0.0}]


def test_sensors_and_battery_from_the_probe_validate() -> None:
    ps = FakePsutil()
    ps.temps = {"coretemp": [Temp("Package id 0", 61.0, 80.0, 100.0)]}
    ps.fan_readings = {"dell_smm": [Fan("Processor Fan", 2100)]}
    ps.battery = Battery(percent=87.3, secsleft=-2, power_plugged=True)
    probe, _ = make_probe(ps)
    data = probe.collect()
    assert data["temperatures"][0]["temp_c"] == 61.0
    assert data["fans"] == [{"sensor": "dell_smm", "label": "Processor Fan", "rpm": 2100.0}]
    # BAT0 in the fixture: energy_full 38 Wh of 42 Wh design, 312 cycles.
    assert data["battery"] == {"charge_percent": 87.3, "plugged": True, "wear_percent": 9.5,
                               "cycle_count": 312}
    validate_metrics(data)


def test_battery_on_windows_has_no_wear_and_desktops_have_no_key() -> None:
    ps = WindowsPsutil()
    ps.battery = Battery(percent=40, secsleft=3600, power_plugged=None)
    probe, _ = make_probe(ps, "win32")
    assert probe.collect()["battery"] == {"charge_percent": 40.0, "plugged": None,
                                          "wear_percent": None, "cycle_count": None}
    probe, _ = make_probe(FakePsutil())
    assert "battery" not in probe.collect()


def test_battery_wear_from_charge_files_and_over_design_is_dropped(tmp_path: Path) -> None:
    bat = tmp_path / "class" / "power_supply" / "BAT1"
    bat.mkdir(parents=True)
    (bat / "charge_full").write_text("3000000\n")
    (bat / "charge_full_design").write_text("4000000\n")
    assert sensors.linux_battery_health(tmp_path) == (25.0, None)
    (bat / "charge_full").write_text("4100000\n")  # more than designed: not a negative wear
    assert sensors.linux_battery_health(tmp_path) == (None, None)
    assert sensors.linux_battery_health(tmp_path / "missing") == (None, None)


# ---------------------------------------------------------------------------- the rest

def test_agent_health_and_extra_fields_are_merged() -> None:
    probe, _ = make_probe(FakePsutil())
    data = probe.collect(agent_extra={"queue_size": 3, "queue_bytes": 4096})
    assert data["agent"] == {"rss_bytes": 31457280, "cpu_s": 1.75, "queue_size": 3,
                             "queue_bytes": 4096}


def test_cpu_percent_from_the_second_sample_and_basic_fields() -> None:
    probe, _ = make_probe(FakePsutil())
    first = probe.collect()
    assert "cpu_percent" not in first
    second = probe.collect()
    assert second["cpu_percent"] == 50.0 and second["cpu_max_core_percent"] == 90.0
    assert second["uptime_s"] == 3600.0 and second["boot_ts"] == 1795000000.0
    assert second["process_count"] == 3 and second["cpu_count"] == 2
    validate_metrics(second)


def test_boot_time_before_2010_is_left_out() -> None:
    ps = FakePsutil()
    ps.boot = 946684800.0  # 2000-01-01: the CMOS battery died
    probe, _ = make_probe(ps)
    data = probe.collect()
    assert "boot_ts" not in data
    validate_metrics(data)


# ---------------------------------------------------------------------------- this machine

def test_real_probe_and_inventory_validate_against_the_schema() -> None:
    probe = HostProbe()
    probe.collect()
    time.sleep(0.3)
    data = probe.collect(agent_extra={"queue_size": 0, "queue_dropped_total": 0,
                                      "publish_failures_total": 0})
    env = protocol.envelope("an-phuoc", "pc-01", time.time(), 1, {"interval_s": 60, **data})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in METRICS.iter_errors(env)]
    assert errors == []
    size = len(protocol.encode(env))
    print(f"real metrics envelope: {size} bytes")
    assert size <= 2048
    assert "cpu_percent" in data and "agent" in data

    inv = collect_inventory({"tag": "PC-01", "role": "office", "purchase_date": None})
    inv_env = protocol.envelope("an-phuoc", "pc-01", time.time(), 2, inv)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in INVENTORY.iter_errors(inv_env)]
    assert errors == []
    assert inv["asset"] == {"tag": "PC-01", "role": "office"}


@pytest.mark.parametrize("platform_name", ["linux", "win32", "darwin"])
def test_probe_never_raises_when_psutil_lacks_everything(platform_name: str) -> None:
    class Empty:
        """A psutil where every function is missing (AttributeError on each call)."""

    probe = HostProbe(psutil_module=Empty(), platform_name=platform_name)
    assert probe.collect() == {}
    assert probe.collect(agent_extra={"queue_size": 1}) == {"agent": {"queue_size": 1}}
