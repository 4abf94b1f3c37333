"""Inventory: Linux from fixture /sys, /proc and /etc trees; Windows from a fake registry and
a fake PowerShell runner (the parsers are the real code); everything validated against the
schema."""

from __future__ import annotations

import base64
import subprocess
import time
from collections import namedtuple
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from jsonschema import Draft7Validator

from agent.probes import inventory_linux, inventory_windows
from agent.probes.inventory import collect_inventory, mac_addresses
from agent.probes.inventory_common import bios_date, firmware_string, mac_address, tpm_version
from agent.probes.inventory_windows import (
    BIOS_KEY,
    CONTROL_KEY,
    CPU_KEY,
    CURRENT_VERSION_KEY,
    SECURE_BOOT_KEY,
    WMI_SCRIPT,
    cim_date,
    parse_wmi_output,
    powershell_path,
    windows_os,
)
from cwatch import protocol

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = protocol.load_schema()
INVENTORY = Draft7Validator(protocol.channel_schema(SCHEMA, "inventory"))

Addr = namedtuple("Addr", "family address netmask broadcast ptp")
NicStats = namedtuple("NicStats", "isup duplex speed mtu flags")
Freq = namedtuple("Freq", "current min max")
Mem = namedtuple("Mem", "total available percent")


class FakePsutil:
    """The psutil functions collect_inventory uses, with fixed answers."""

    AF_LINK = 17

    def __init__(self, addrs: Optional[Dict[str, List[Addr]]] = None) -> None:
        self.addrs = addrs if addrs is not None else {
            "lo": [Addr(17, "00:00:00:00:00:00", None, None, None)],
            "enp0s31f6": [Addr(2, "192.168.1.23", "255.255.255.0", None, None),
                          Addr(17, "18:DB:F2:4A:0B:7C", None, "ff:ff:ff:ff:ff:ff", None)],
        }

    def cpu_count(self, logical: bool = True) -> int:
        return 4

    def cpu_freq(self) -> Freq:
        return Freq(current=800.0, min=800.0, max=3800.0)

    def virtual_memory(self) -> Mem:
        return Mem(total=8 << 30, available=4 << 30, percent=50.0)

    def net_if_addrs(self) -> Dict[str, List[Addr]]:
        return self.addrs

    def net_if_stats(self) -> Dict[str, NicStats]:
        return {"lo": NicStats(True, 0, 0, 65536, "up,loopback,running")}


def validate(data: Dict[str, Any]) -> None:
    env = protocol.envelope("an-phuoc", "pc-01", time.time(), 7, data)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in INVENTORY.iter_errors(env)]
    assert errors == []


def linux_roots(machine: str) -> Dict[str, Path]:
    return {"sys_root": FIXTURES / f"sys-{machine}", "proc_root": FIXTURES / f"proc-{machine}",
            "etc_root": FIXTURES / f"etc-{machine}"}


# ---------------------------------------------------------------------------- Linux

def test_dell_optiplex_tree() -> None:
    assert inventory_linux.collect_linux(**linux_roots("dell-optiplex")) == {
        "os_name": "Ubuntu 22.04.4 LTS",
        "cpu_model": "Intel(R) Core(TM) i5-7500 CPU @ 3.40GHz",
        "system": {"manufacturer": "Dell Inc.", "model": "OptiPlex 7050", "serial": "5XJ8KH2"},
        "bios": {"vendor": "Dell Inc.", "version": "1.8.3", "date": "2017-09-12"},
        "firmware": "uefi",
        "secure_boot": True,
        "tpm": {"present": True, "version": "2.0"},
        # loop0 skipped; model padding stripped; SATA has no serial in sysfs.
        "disks": [
            {"model": "SAMSUNG MZVLB256HAHQ-000H1", "serial": "S41GNX0M312345",
             "size_bytes": 500118192 * 512, "kind": "nvme"},
            {"model": "ST500DM002-1BD142", "serial": None, "size_bytes": 976773168 * 512,
             "kind": "hdd"},
        ],
    }


def test_legacy_bios_white_box_tree() -> None:
    assert inventory_linux.collect_linux(**linux_roots("legacy-bios")) == {
        "os_name": "Linux Mint 21.3",
        "cpu_model": "Intel(R) Core(TM)2 Duo CPU E7500 @ 2.93GHz",  # padding squeezed
        # "To be filled by O.E.M." is no value: the board's maker and name stand in.
        "system": {"manufacturer": "ASUSTeK Computer INC.", "model": "P5G41T-M LX",
                   "serial": None},
        "bios": {"vendor": "American Megatrends Inc.", "version": "0402", "date": "2010-07-13"},
        "firmware": "bios",
        "secure_boot": False,
        "tpm": {"present": False, "version": None},
        # sdb (USB stick, removable), sdc (empty card reader), sr0, ram0, zram0, dm-0 skipped.
        "disks": [{"model": "WDC WD1600AAJS-60M0A0", "serial": None,
                   "size_bytes": 312581808 * 512, "kind": "hdd"}],
    }


def test_collect_inventory_on_the_dell_tree_validates() -> None:
    inv = collect_inventory({"tag": "UBND-042", "role": "service-counter", "location": None},
                            psutil_module=FakePsutil(), platform_name="linux",
                            **linux_roots("dell-optiplex"))
    validate(inv)
    assert inv["os"]["name"] == "Ubuntu 22.04.4 LTS"
    assert inv["cpu"] == {"model": "Intel(R) Core(TM) i5-7500 CPU @ 3.40GHz", "cores": 4,
                          "threads": 4, "max_mhz": 3800.0}
    assert inv["ram_bytes"] == 8 << 30
    assert [d["kind"] for d in inv["disks"]] == ["nvme", "hdd"]
    assert inv["macs"] == ["18:db:f2:4a:0b:7c"]
    assert inv["asset"] == {"tag": "UBND-042", "role": "service-counter"}


def test_smart_disks_replace_the_platform_disks() -> None:
    smart = [{"model": "ST500DM002-1BD142", "serial": "Z3T8ABCD", "size_bytes": 500107862016,
              "kind": "hdd", "extra": "dropped"}]
    inv = collect_inventory({}, psutil_module=FakePsutil(), smart_disks=smart,
                            platform_name="linux", **linux_roots("dell-optiplex"))
    assert inv["disks"] == [{"model": "ST500DM002-1BD142", "serial": "Z3T8ABCD",
                             "size_bytes": 500107862016, "kind": "hdd"}]
    validate(inv)
    # An empty SMART list (smartctl missing) falls back to what the OS knows.
    inv = collect_inventory({}, psutil_module=FakePsutil(), smart_disks=[],
                            platform_name="linux", **linux_roots("dell-optiplex"))
    assert len(inv["disks"]) == 2


def test_missing_sysfs_gives_no_keys_rather_than_guesses(tmp_path: Path) -> None:
    inv = collect_inventory({}, psutil_module=FakePsutil({}), platform_name="linux",
                            sys_root=tmp_path / "none", proc_root=tmp_path / "none",
                            etc_root=tmp_path / "none")
    validate(inv)
    assert inv["os"]["name"] == "Linux"
    for key in ("system", "bios", "firmware", "secure_boot", "tpm", "disks", "macs"):
        assert key not in inv


def _write(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def test_tpm_version_without_tpm_version_major(tmp_path: Path) -> None:
    tpm = tmp_path / "class" / "tpm" / "tpm0"
    tpm.mkdir(parents=True)
    assert inventory_linux.tpm_info(tmp_path) == {"present": True, "version": None}
    # Kernels before 5.6, TPM 1.2 chip: the caps file says so.
    _write(tpm / "device" / "caps",
           "Manufacturer: 0x49465800\nTCG version: 1.2\nFirmware version: 3.17\n")
    assert inventory_linux.tpm_info(tmp_path) == {"present": True, "version": "1.2"}
    (tpm / "device" / "caps").unlink()
    _write(tpm / "device" / "description", "TPM 2.0 Device\n")
    assert inventory_linux.tpm_info(tmp_path) == {"present": True, "version": "2.0"}
    _write(tpm / "tpm_version_major", "1\n")
    assert inventory_linux.tpm_info(tmp_path) == {"present": True, "version": "1.2"}


def test_secure_boot_variable(tmp_path: Path) -> None:
    var = tmp_path / "firmware" / "efi" / "efivars" / inventory_linux.SECURE_BOOT_VAR
    (tmp_path / "firmware" / "efi").mkdir(parents=True)
    assert inventory_linux.secure_boot(tmp_path, "uefi") is None  # efivarfs not mounted
    _write(var, b"\x06\x00\x00\x00\x00")
    assert inventory_linux.secure_boot(tmp_path, "uefi") is False
    _write(var, b"\x06\x00\x00\x00")  # truncated: no data byte
    assert inventory_linux.secure_boot(tmp_path, "uefi") is None
    assert inventory_linux.firmware_type(tmp_path) == "uefi"
    assert inventory_linux.firmware_type(tmp_path / "nothing") is None


@pytest.mark.parametrize("raw, expected", [
    ("09/12/2017", "2017-09-12"), ("9/1/2017", "2017-09-01"), (" 12/31/2099\n", "2099-12-31"),
    ("13/45/2009", None), ("02/30/2015", None), ("00/00/0000", None), ("01/01/1900", None),
    ("09/12/17", None), ("2017-09-12", None), ("", None), (None, None), ("garbage", None),
])
def test_bios_date(raw: Optional[str], expected: Optional[str]) -> None:
    assert bios_date(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("Dell Inc.", "Dell Inc."), ("  LENOVO ", "LENOVO"), ("To Be Filled By O.E.M.", None),
    ("Default string", None), ("System Product Name", None), ("0", None),
    ("00000000000", None), ("..........", None), ("FFFFFFFF", None), ("", None),
    ("0402", "0402"), ("A12", "A12"), (None, None),
])
def test_firmware_placeholders(raw: Optional[str], expected: Optional[str]) -> None:
    assert firmware_string(raw, 128) == expected


def test_tpm_version_texts() -> None:
    assert tpm_version("2.0, 0, 1.38") == "2.0"
    assert tpm_version("1.2, 2, 3") == "1.2"
    assert tpm_version("TCG version: 1.2") == "1.2"
    assert tpm_version("TPM 2.0 Device") == "2.0"
    assert tpm_version("Not Supported") is None
    assert tpm_version(None) is None


def test_mac_addresses_normalised_deduplicated_and_loopback_skipped() -> None:
    assert mac_address("00-1A-2B-3C-4D-5E") == "00:1a:2b:3c:4d:5e"  # psutil on Windows
    assert mac_address("00:00:00:00:00:00") is None
    assert mac_address("00:1a:2b:3c:4d") is None
    assert mac_address(None) is None

    class WindowsLike(FakePsutil):
        AF_LINK = -1

    ps = WindowsLike({
        "Loopback Pseudo-Interface 1": [Addr(-1, "00-00-00-00-00-01", None, None, None)],
        "Ethernet": [Addr(-1, "00-1A-2B-3C-4D-5E", None, None, None),
                     Addr(2, "10.0.0.5", None, None, None)],
        "Ethernet 2": [Addr(-1, "00-1A-2B-3C-4D-5E", None, None, None)],  # a team/bridge
        "Wi-Fi": [Addr(-1, "A4-34-D9-00-11-22", None, None, None)],
        "Teredo": [Addr(-1, "00-00-00-00-00-00", None, None, None)],
    })
    assert mac_addresses(ps) == ["00:1a:2b:3c:4d:5e", "a4:34:d9:00:11:22"]
    many = FakePsutil({f"eth{i:02d}": [Addr(17, f"02:00:00:00:00:{i:02x}", None, None, None)]
                       for i in range(1, 80)})
    assert len(mac_addresses(many)) == 64


# ---------------------------------------------------------------------------- Windows

# A Windows 11 office PC's registry, as a fake reader sees it (values written by hand).
REG_WIN11 = {
    CPU_KEY: {"ProcessorNameString": "Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz"},
    BIOS_KEY: {"BIOSVendor": "Dell Inc.", "BIOSVersion": "1.22.0", "BIOSReleaseDate": "03/14/2023",
               "SystemManufacturer": "Dell Inc.", "SystemProductName": "OptiPlex 5060",
               "BaseBoardManufacturer": "Dell Inc.", "BaseBoardProduct": "0654JC"},
    CONTROL_KEY: {"PEFirmwareType": 2},
    SECURE_BOOT_KEY: {"UEFISecureBootEnabled": 1},
    CURRENT_VERSION_KEY: {"ProductName": "Windows 10 Pro", "DisplayVersion": "23H2",
                          "ReleaseId": "2009", "CurrentBuild": "22631",
                          "CurrentBuildNumber": "22631", "UBR": 3880, "CurrentVersion": "6.3"},
}
# A Windows 7 PC booted in legacy BIOS mode: no BIOS key values, no SecureBoot key.
REG_WIN7 = {
    CPU_KEY: {"ProcessorNameString": "Pentium(R) Dual-Core  CPU      E5700  @ 3.00GHz"},
    CONTROL_KEY: {"PEFirmwareType": 1},
    CURRENT_VERSION_KEY: {"ProductName": "Windows 7 Professional", "CurrentVersion": "6.1",
                          "CSDVersion": "Service Pack 1", "CurrentBuild": "7601",
                          "CurrentBuildNumber": "7601"},
}

# EXAMPLE output of WMI_SCRIPT, written by hand (not captured on a real PC): what PowerShell
# prints on a Windows 11 PC with a TPM 2.0 (CRLF line ends, as PowerShell writes them).
WMI_EXAMPLE_WIN11 = (
    "serial=5XJ8KH2\r\nbios_vendor=Dell Inc.\r\nbios_version=1.22.0\r\n"
    "bios_date=20230314000000.000000+000\r\nmanufacturer=Dell Inc.\r\nmodel=OptiPlex 5060\r\n"
    "tpm=present\r\ntpm_spec=2.0, 0, 1.38\r\n"
)
# EXAMPLE for an HP Compaq dc7900 on Windows 7 (PowerShell 2.0), TPM 1.2, written by hand.
WMI_EXAMPLE_WIN7 = (
    "\ufeffserial=CZC0123XYZ\r\nbios_vendor=Hewlett-Packard\r\nbios_version=786G2 v01.17\r\n"
    "bios_date=20100823000000.000000+000\r\nmanufacturer=Hewlett-Packard\r\n"
    "model=HP Compaq dc7900 Small Form Factor\r\ntpm=present\r\ntpm_spec=1.2, 2, 3\r\n"
)
# EXAMPLE: an unprivileged run; Win32_Tpm needs administrator rights.
WMI_EXAMPLE_NO_RIGHTS = (
    "serial=To be filled by O.E.M.\r\nbios_vendor=American Megatrends Inc.\r\n"
    "bios_version=0402\r\nbios_date=\r\nmanufacturer=System manufacturer\r\n"
    "model=System Product Name\r\ntpm_error=Access denied \r\n"
)


def reader(registry: Dict[str, Dict[str, Any]]) -> inventory_windows.RegistryReader:
    return lambda key, name: registry.get(key, {}).get(name)


class Runner:
    """A PowerShell stand-in: records the command line and prints a fixed text."""

    def __init__(self, output: str = "", error: Optional[Exception] = None) -> None:
        self.output, self.error = output, error
        self.calls = []  # type: List[List[str]]

    def __call__(self, argv: List[str]) -> Tuple[int, str]:
        self.calls.append(argv)
        if self.error is not None:
            raise self.error
        return 0, self.output


def test_parse_wmi_output_examples() -> None:
    assert parse_wmi_output(WMI_EXAMPLE_WIN11) == {
        "serial": "5XJ8KH2", "manufacturer": "Dell Inc.", "model": "OptiPlex 5060",
        "bios_vendor": "Dell Inc.", "bios_version": "1.22.0", "bios_date": "2023-03-14",
        "tpm": {"present": True, "version": "2.0"}}
    assert parse_wmi_output(WMI_EXAMPLE_WIN7)["tpm"] == {"present": True, "version": "1.2"}
    assert parse_wmi_output("tpm=absent\r\n")["tpm"] == {"present": False, "version": None}
    # Could not ask (no rights): unknown, not "absent"; placeholders are no values.
    assert parse_wmi_output(WMI_EXAMPLE_NO_RIGHTS) == {
        "serial": None, "manufacturer": None, "model": None,
        "bios_vendor": "American Megatrends Inc.", "bios_version": "0402", "bios_date": None,
        "tpm": None}
    assert parse_wmi_output("") == {k: None for k in parse_wmi_output(WMI_EXAMPLE_WIN11)}


def test_cim_dates() -> None:
    assert cim_date("20100823000000.000000+000") == "2010-08-23"
    assert cim_date("00000000000000.000000+000") is None
    assert cim_date("2010") is None


def test_windows_11_is_named_from_the_build_number() -> None:
    assert windows_os(reader(REG_WIN11)) == {
        "name": "Windows 11 Pro", "version": "23H2", "build": "22631.3880"}
    win10 = dict(REG_WIN11[CURRENT_VERSION_KEY], CurrentBuild="19045", UBR=4291)
    assert windows_os(reader({CURRENT_VERSION_KEY: win10})) == {
        "name": "Windows 10 Pro", "version": "23H2", "build": "19045.4291"}
    assert windows_os(reader(REG_WIN7)) == {
        "name": "Windows 7 Professional", "version": "6.1 Service Pack 1", "build": "7601"}
    assert windows_os(reader({})) == {"name": None, "version": None, "build": None}


def test_collect_windows_11() -> None:
    runner = Runner(WMI_EXAMPLE_WIN11)
    found = inventory_windows.collect_windows(reader(REG_WIN11), runner, powershell="ps.exe")
    assert found == {
        "os": {"name": "Windows 11 Pro", "version": "23H2", "build": "22631.3880"},
        "cpu_model": "Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz",
        "system": {"manufacturer": "Dell Inc.", "model": "OptiPlex 5060", "serial": "5XJ8KH2"},
        "bios": {"vendor": "Dell Inc.", "version": "1.22.0", "date": "2023-03-14"},
        "firmware": "uefi", "secure_boot": True, "tpm": {"present": True, "version": "2.0"},
    }
    # One PowerShell call; the script travels base64-encoded, so no quoting can break it.
    [argv] = runner.calls
    assert argv[:4] == ["ps.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert base64.b64decode(argv[4]).decode("utf-16-le") == WMI_SCRIPT


def test_collect_windows_7_falls_back_to_wmi() -> None:
    found = inventory_windows.collect_windows(reader(REG_WIN7), Runner(WMI_EXAMPLE_WIN7))
    assert found["cpu_model"] == "Pentium(R) Dual-Core CPU E5700 @ 3.00GHz"
    assert found["system"] == {"manufacturer": "Hewlett-Packard",
                               "model": "HP Compaq dc7900 Small Form Factor",
                               "serial": "CZC0123XYZ"}
    assert found["bios"] == {"vendor": "Hewlett-Packard", "version": "786G2 v01.17",
                             "date": "2010-08-23"}
    assert (found["firmware"], found["secure_boot"]) == ("bios", False)
    assert found["tpm"] == {"present": True, "version": "1.2"}


@pytest.mark.parametrize("error", [OSError("not found"),
                                   subprocess.TimeoutExpired(["powershell.exe"], 120)])
def test_powershell_failure_leaves_wmi_fields_unknown(error: Exception) -> None:
    found = inventory_windows.collect_windows(reader(REG_WIN11), Runner(error=error))
    assert found["system"]["serial"] is None and found["tpm"] is None
    assert found["bios"]["vendor"] == "Dell Inc."  # the registry part is unaffected


def test_powershell_path_prefers_the_native_64_bit_one() -> None:
    env = {"SystemRoot": r"C:\Windows"}
    native = r"C:\Windows\Sysnative\WindowsPowerShell\v1.0\powershell.exe"
    system32 = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
    assert powershell_path(env, lambda p: p in (native, system32)) == native
    assert powershell_path(env, lambda p: p == system32) == system32
    assert powershell_path({}, lambda p: False) == "powershell.exe"


def test_collect_inventory_windows_validates() -> None:
    smart = [{"model": "ST1000DM010-2EP102", "serial": "ZN1ABCDE", "size_bytes": 1000204886016,
              "kind": "hdd"}]
    inv = collect_inventory({"tag": "PC-07"}, psutil_module=FakePsutil(), smart_disks=smart,
                            platform_name="win32", registry_reader=reader(REG_WIN11),
                            command_runner=Runner(WMI_EXAMPLE_WIN11))
    validate(inv)
    assert inv["os"]["name"] == "Windows 11 Pro" and inv["os"]["build"] == "22631.3880"
    assert inv["tpm"] == {"present": True, "version": "2.0"} and inv["disks"] == smart
    # Without SMART, Windows has no disk list of its own.
    inv = collect_inventory({}, psutil_module=FakePsutil(), platform_name="win32",
                            registry_reader=reader(REG_WIN7), command_runner=Runner(""))
    validate(inv)
    assert "disks" not in inv and "tpm" not in inv
    assert inv["os"]["name"] == "Windows 7 Professional"
