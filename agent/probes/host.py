"""CPU, memory, swap, disk usage, uptime and process count via psutil."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional

log = logging.getLogger(__name__)

# Pseudo and network filesystems: not local disks the user can fill.
SKIP_FSTYPES = frozenset((
    "", "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc",
    "pstore", "ramfs", "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs", "cifs", "nfs",
    "nfs4", "smbfs", "fuse.gvfsd-fuse", "fuse.portal",
))


def _round(value: float, digits: int = 1) -> float:
    return round(float(value), digits)


class HostProbe:
    def __init__(self, psutil_module: Any = None, clock: Callable[[], float] = time.time) -> None:
        if psutil_module is None:
            import psutil as psutil_module
        self._ps = psutil_module
        self._clock = clock
        # psutil's first cpu_percent(None) is measured from import time: prime and drop it.
        self._ps.cpu_percent(None)
        self._ps.cpu_percent(None, percpu=True)
        self._primed = False

    def collect(self) -> Dict[str, Any]:
        ps = self._ps
        out = {}  # type: Dict[str, Any]
        overall = ps.cpu_percent(None)
        per_core = ps.cpu_percent(None, percpu=True)
        if self._primed:
            out["cpu_percent"] = _round(overall)
            if per_core:
                out["cpu_max_core_percent"] = _round(max(per_core))
        self._primed = True
        out["cpu_count"] = ps.cpu_count() or 1
        load = self._load()
        if load is not None:
            out["load_1m"], out["load_5m"], out["load_15m"] = load
        mem = ps.virtual_memory()
        out["mem_total_bytes"] = int(mem.total)
        out["mem_available_bytes"] = int(mem.available)
        out["mem_used_percent"] = _round(mem.percent)
        swap = ps.swap_memory()
        out["swap_total_bytes"] = int(swap.total)
        out["swap_used_bytes"] = int(swap.used)
        out["swap_used_percent"] = _round(swap.percent)
        out["disks"] = self._disks()
        boot = ps.boot_time()
        out["boot_ts"] = _round(boot, 0)
        out["uptime_s"] = _round(max(0.0, self._clock() - boot), 0)
        out["process_count"] = len(ps.pids())
        return out

    def _load(self) -> Optional[List[float]]:
        try:
            return [_round(v, 2) for v in self._ps.getloadavg()]
        except (AttributeError, OSError):
            return None

    def _disks(self) -> List[Dict[str, Any]]:
        disks = []
        seen = set()
        for part in self._ps.disk_partitions(all=False):
            if part.fstype in SKIP_FSTYPES or part.mountpoint in seen:
                continue
            # Windows lists empty card readers and CD drives; they raise on access.
            try:
                usage = self._ps.disk_usage(part.mountpoint)
            except OSError:
                continue
            if usage.total == 0:
                continue
            seen.add(part.mountpoint)
            disks.append({
                "mount": part.mountpoint[:256],
                "fstype": part.fstype[:32],
                "total_bytes": int(usage.total),
                "used_bytes": int(usage.used),
                "free_bytes": int(usage.free),
                "used_percent": _round(usage.percent),
            })
            if len(disks) == 64:
                break
        return disks
