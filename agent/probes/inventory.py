"""Hardware and software inventory: what the machine is (sent on start, retained)."""

from __future__ import annotations

import platform
import socket
import sys
from typing import Any, Dict

import cwatch


def collect_inventory(asset: Dict[str, Any], psutil_module: Any = None) -> Dict[str, Any]:
    if psutil_module is None:
        import psutil as psutil_module
    ps = psutil_module
    cpu = {"model": (platform.processor() or platform.machine())[:128],
           "cores": ps.cpu_count(logical=False), "threads": ps.cpu_count()}
    try:
        freq = ps.cpu_freq()
    except (AttributeError, OSError, NotImplementedError):
        freq = None
    if freq and freq.max:
        cpu["max_mhz"] = round(float(freq.max), 0)
    inv = {
        "hostname": socket.gethostname()[:253],
        "os": {"name": platform.system()[:64], "version": platform.release()[:64],
               "build": platform.version()[:64], "arch": platform.machine()[:32]},
        "cpu": cpu,
        "ram_bytes": int(ps.virtual_memory().total),
        "asset": {k: v for k, v in asset.items() if v is not None},
        "agent_version": cwatch.__version__,
        "python_version": platform.python_version(),
    }  # type: Dict[str, Any]
    if sys.platform.startswith("linux"):
        inv["os"]["name"] = _linux_pretty_name() or "Linux"
    return inv


def _linux_pretty_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')[:64]
    except OSError:
        pass
    return ""
