"""Windows inventory from the registry (winreg) and one PowerShell/WMI call.

Works from Windows 7 (PowerShell 2.0) to 11. The registry reader and the command runner
are injectable, so everything here is tested on Linux with fakes; `winreg` is imported
only when the real reader runs.
"""

from __future__ import annotations

import base64
import logging
import ntpath
import os
import re
import subprocess
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from agent.probes.inventory_common import (
    bios_date,
    cpu_model,
    firmware_string,
    iso_date,
    tpm_version,
)
from agent.probes.values import integer, text

log = logging.getLogger(__name__)

# (key under HKEY_LOCAL_MACHINE, value name) -> the value, or None when missing.
RegistryReader = Callable[[str, str], Any]
CommandRunner = Callable[[List[str]], Tuple[int, str]]

CPU_KEY = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
BIOS_KEY = r"HARDWARE\DESCRIPTION\System\BIOS"
CONTROL_KEY = r"SYSTEM\CurrentControlSet\Control"
SECURE_BOOT_KEY = r"SYSTEM\CurrentControlSet\Control\SecureBoot\State"
CURRENT_VERSION_KEY = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion"

WINDOWS_11_FIRST_BUILD = 22000
POWERSHELL_TIMEOUT_S = 120.0  # a first PowerShell start on a Windows 7 HDD PC is slow

# One PowerShell 2.0-compatible script, printing key=value lines (see parse_wmi_output).
# -ErrorAction Stop turns WMI's non-terminating errors (access denied, no such namespace)
# into exceptions, so "could not ask" (tpm_error) is told apart from "no TPM" (tpm=absent).
WMI_SCRIPT = r"""
function Line($k, $v) { $k + '=' + (($v -as [string]) -replace '[\r\n]+', ' ') }
try {
  $b = Get-WmiObject -Class Win32_BIOS -ErrorAction Stop | Select-Object -First 1
  Line 'serial' $b.SerialNumber
  Line 'bios_vendor' $b.Manufacturer
  Line 'bios_version' $b.SMBIOSBIOSVersion
  Line 'bios_date' $b.ReleaseDate
} catch { Line 'bios_error' $_.Exception.Message }
try {
  $c = Get-WmiObject -Class Win32_ComputerSystem -ErrorAction Stop | Select-Object -First 1
  Line 'manufacturer' $c.Manufacturer
  Line 'model' $c.Model
} catch { Line 'system_error' $_.Exception.Message }
try {
  $ns = 'root\cimv2\Security\MicrosoftTpm'
  $t = @(Get-WmiObject -Namespace $ns -Class Win32_Tpm -ErrorAction Stop)
  if ($t.Count -gt 0 -and $t[0]) { Line 'tpm' 'present'; Line 'tpm_spec' $t[0].SpecVersion }
  else { Line 'tpm' 'absent' }
} catch { Line 'tpm_error' $_.Exception.Message }
"""

_CIM_DATE = re.compile(r"^\s*(\d{4})(\d{2})(\d{2})")


# ---------------------------------------------------------------------------- parsing

def parse_wmi_output(output: str) -> Dict[str, Any]:
    """Parse WMI_SCRIPT's key=value lines. Missing or unusable values are None; `tpm` is
    {"present", "version"} or None when WMI could not be asked (no rights, no provider)."""
    values = {}  # type: Dict[str, str]
    for line in output.replace("\ufeff", "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.strip().lower(), value.strip())
    tpm = None  # type: Optional[Dict[str, Any]]
    state = values.get("tpm")
    if state == "present":
        tpm = {"present": True, "version": tpm_version(values.get("tpm_spec"))}
    elif state == "absent":
        tpm = {"present": False, "version": None}
    return {
        "serial": firmware_string(values.get("serial"), 64),
        "manufacturer": firmware_string(values.get("manufacturer"), 128),
        "model": firmware_string(values.get("model"), 128),
        "bios_vendor": firmware_string(values.get("bios_vendor"), 128),
        "bios_version": firmware_string(values.get("bios_version"), 128),
        "bios_date": cim_date(values.get("bios_date")),
        "tpm": tpm,
    }


def cim_date(value: Any) -> Optional[str]:
    """WMI's CIM datetime ("20170912000000.000000+000") as YYYY-MM-DD, else None."""
    match = _CIM_DATE.match(value) if isinstance(value, str) else None
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    return iso_date(year, month, day)


def _reg_str(reg: RegistryReader, key: str, name: str) -> Optional[str]:
    value = reg(key, name)
    if isinstance(value, list):  # REG_MULTI_SZ (SystemBiosVersion and the like)
        value = " ".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else None


def _reg_int(reg: RegistryReader, key: str, name: str) -> Optional[int]:
    return integer(reg(key, name), 0, 2 ** 32 - 1)  # DWORDs


def windows_os(reg: RegistryReader) -> Dict[str, Optional[str]]:
    """{"name", "version", "build"} from HKLM\\...\\Windows NT\\CurrentVersion.

    ProductName still says "Windows 10" on Windows 11 (Microsoft never changed it), so
    the name comes from the build number: 22000 and later is Windows 11.
    """
    name = text(_reg_str(reg, CURRENT_VERSION_KEY, "ProductName"), 64)
    build = text(_reg_str(reg, CURRENT_VERSION_KEY, "CurrentBuild")
                 or _reg_str(reg, CURRENT_VERSION_KEY, "CurrentBuildNumber"), 64)
    build_number = int(build) if build and build.isdigit() else None
    if name and build_number is not None and build_number >= WINDOWS_11_FIRST_BUILD:
        name = name.replace("Windows 10", "Windows 11")
    # DisplayVersion ("22H2") since 20H2; ReleaseId ("1909") before; Windows 7 has neither,
    # only CurrentVersion ("6.1") and CSDVersion ("Service Pack 1").
    version = (_reg_str(reg, CURRENT_VERSION_KEY, "DisplayVersion")
               or _reg_str(reg, CURRENT_VERSION_KEY, "ReleaseId"))
    if not version:
        parts = [_reg_str(reg, CURRENT_VERSION_KEY, "CurrentVersion"),
                 _reg_str(reg, CURRENT_VERSION_KEY, "CSDVersion")]
        version = " ".join(p for p in parts if p)
    ubr = _reg_int(reg, CURRENT_VERSION_KEY, "UBR")  # the monthly update level, Windows 10+
    if build and ubr is not None:
        build = f"{build}.{ubr}"
    return {"name": name, "version": text(version, 64), "build": text(build, 64)}


def firmware_type(reg: RegistryReader) -> Optional[str]:
    """PEFirmwareType: 1 = legacy BIOS, 2 = UEFI."""
    return {1: "bios", 2: "uefi"}.get(_reg_int(reg, CONTROL_KEY, "PEFirmwareType") or 0)


def secure_boot(reg: RegistryReader, firmware: Optional[str]) -> Optional[bool]:
    enabled = _reg_int(reg, SECURE_BOOT_KEY, "UEFISecureBootEnabled")
    if enabled is not None:
        return enabled == 1
    # Secure Boot is a UEFI feature: off by construction in legacy BIOS mode.
    return False if firmware == "bios" else None


# ---------------------------------------------------------------------------- running

def read_hklm(key: str, name: str) -> Any:
    """A value under HKEY_LOCAL_MACHINE, or None when the key or value is missing."""
    import winreg  # Windows only: imported here so the module loads everywhere

    # KEY_WOW64_64KEY: a 32-bit Python on 64-bit Windows would otherwise read the
    # redirected 32-bit view of SOFTWARE (ignored on 32-bit Windows).
    access = winreg.KEY_READ | getattr(winreg, "KEY_WOW64_64KEY", 0)
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key, 0, access) as handle:
            value, _kind = winreg.QueryValueEx(handle, name)
    except OSError:
        return None
    return value


def powershell_path(
    environ: Mapping[str, str] = os.environ, exists: Callable[[str], bool] = os.path.exists,
) -> str:
    """The native 64-bit powershell.exe when there is one, else whatever PATH finds."""
    root = environ.get("SystemRoot") or r"C:\Windows"
    # A 32-bit Python on 64-bit Windows sees System32 redirected to SysWOW64; Sysnative
    # reaches the 64-bit PowerShell, whose WMI providers (Win32_Tpm) are the native ones.
    for folder in ("Sysnative", "System32"):
        path = ntpath.join(root, folder, "WindowsPowerShell", "v1.0", "powershell.exe")
        if exists(path):
            return path
    return "powershell.exe"


def wmi_command(powershell: str) -> List[str]:
    # -EncodedCommand (base64 of UTF-16LE) avoids every quoting problem of the command
    # line, and PowerShell 2.0 knows it.
    encoded = base64.b64encode(WMI_SCRIPT.encode("utf-16-le")).decode("ascii")
    return [powershell, "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded]


def _run_powershell(argv: List[str]) -> Tuple[int, str]:
    from agent.probes.smart import run_command  # no console window, no shell

    return run_command(argv, timeout_s=POWERSHELL_TIMEOUT_S)


def query_wmi(runner: CommandRunner, powershell: Optional[str] = None) -> Dict[str, Any]:
    """Run WMI_SCRIPT and parse it; all None when PowerShell cannot be run."""
    try:
        _code, output = runner(wmi_command(powershell or powershell_path()))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.info("PowerShell/WMI inventory query failed: %s", exc)
        output = ""
    return parse_wmi_output(output)


def collect_windows(
    registry_reader: Optional[RegistryReader] = None,
    command_runner: Optional[CommandRunner] = None,
    powershell: Optional[str] = None,
) -> Dict[str, Any]:
    """The Windows-specific inventory parts, keyed as in inventory `data` (plus os and
    cpu_model for collect_inventory to place). Disks come from SMART, not from here."""
    reg = registry_reader if registry_reader is not None else read_hklm
    wmi = query_wmi(command_runner if command_runner is not None else _run_powershell,
                    powershell)

    def bios_str(name: str, limit: int) -> Optional[str]:
        return firmware_string(_reg_str(reg, BIOS_KEY, name), limit)

    firmware = firmware_type(reg)
    return {
        "os": windows_os(reg),
        "cpu_model": cpu_model(_reg_str(reg, CPU_KEY, "ProcessorNameString")),
        # The BIOS key holds SMBIOS as Windows read it at boot; WMI (same source) fills
        # in where the key lacks a value, and the board's maker stands in on assembled PCs.
        "system": {
            "manufacturer": (bios_str("SystemManufacturer", 128) or wmi["manufacturer"]
                             or bios_str("BaseBoardManufacturer", 128)),
            "model": (bios_str("SystemProductName", 128) or wmi["model"]
                      or bios_str("BaseBoardProduct", 128)),
            "serial": wmi["serial"],
        },
        "bios": {
            "vendor": bios_str("BIOSVendor", 128) or wmi["bios_vendor"],
            "version": bios_str("BIOSVersion", 128) or wmi["bios_version"],
            "date": bios_date(_reg_str(reg, BIOS_KEY, "BIOSReleaseDate")) or wmi["bios_date"],
        },
        "firmware": firmware,
        "secure_boot": secure_boot(reg, firmware),
        "tpm": wmi["tpm"],
    }
