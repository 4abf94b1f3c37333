"""Host health via psutil: CPU, memory, swap, disks, I/O rates, sensors, battery, the agent.

Every field respects the schema's range: a value outside it is left out (or null where the
schema requires the key), never clamped, so one odd reading cannot get the whole message
rejected by the collector. Anything the platform cannot give is left out.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from agent.probes import host_io, sensors
from agent.probes.rates import RateTracker
from agent.probes.values import MAX_SAFE_INT, integer, number, ps_errors

log = logging.getLogger(__name__)

# Pseudo and network filesystems: not local disks the user can fill.
SKIP_FSTYPES = frozenset((
    "", "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc",
    "pstore", "ramfs", "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs", "cifs", "nfs",
    "nfs4", "smbfs", "fuse.gvfsd-fuse", "fuse.portal",
))

# The schema's ranges for the top-level numbers.
TS_MIN, TS_MAX = 1262304000.0, 4102444800.0
MAX_UPTIME_S = 3.2e9
MAX_LOAD = 100000.0
MAX_CPU_S = 1e12


class HostProbe:
    """Collects the metrics `data` fields (all but interval_s); keeps state between calls
    for CPU percentages and counter rates, so one instance lives as long as the agent."""

    def __init__(
        self,
        psutil_module: Any = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sys_root: Path = Path("/sys"),
        platform_name: str = sys.platform,
    ) -> None:
        """`clock` is the wall clock (uptime); `monotonic` times the rates, since a wall
        clock that NTP steps would distort them. `sys_root` is read on Linux only."""
        if psutil_module is None:
            import psutil as psutil_module
        self._ps = psutil_module
        self._errors = ps_errors(psutil_module)
        self._clock = clock
        self._monotonic = monotonic
        self._sys_root = sys_root
        self._linux = platform_name.startswith("linux")
        self._windows = platform_name.startswith("win")
        self._rates = RateTracker()
        self._process = None  # type: Any
        # psutil's first cpu_percent(None) is measured from import time: prime and drop it.
        try:
            self._ps.cpu_percent(None)
            self._ps.cpu_percent(None, percpu=True)
        except self._errors as exc:
            log.debug("cpu_percent unavailable: %s", exc)
        self._primed = False

    def collect(self, agent_extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """One sample. `agent_extra` (queue fields from the agent's queue) is merged into
        the `agent` object. Rates appear from the second call on."""
        out = {}  # type: Dict[str, Any]
        self._cpu(out)
        self._memory(out)
        self._swap(out)
        disks = self._disks()
        if disks is not None:
            out["disks"] = disks
        self._boot(out)
        self._set_list(out, "disk_io", self._disk_io)
        self._set_list(out, "net", self._net)
        self._set_list(out, "temperatures", self._temperatures)
        self._set_list(out, "fans", self._fans)
        bat = self._battery()
        if bat is not None:
            out["battery"] = bat
        agent = self._agent()
        agent.update(agent_extra or {})
        if agent:
            out["agent"] = agent
        self._rates.sweep()
        return out

    @staticmethod
    def _set_list(out: Dict[str, Any], key: str, getter: Callable[[], List[Any]]) -> None:
        # Lists with nothing in them (first sample of rates, no sensors) are left out.
        items = getter()
        if items:
            out[key] = items

    # ------------------------------------------------------------------ basics

    def _cpu(self, out: Dict[str, Any]) -> None:
        ps = self._ps
        try:
            overall = ps.cpu_percent(None)
            per_core = ps.cpu_percent(None, percpu=True)
        except self._errors:
            overall, per_core = None, []
        if self._primed:
            pct = number(overall, 0, 100, 1)
            if pct is not None:
                out["cpu_percent"] = pct
            if per_core:
                top = number(max(per_core), 0, 100, 1)
                if top is not None:
                    out["cpu_max_core_percent"] = top
        self._primed = True
        try:
            count = integer(ps.cpu_count(), 1, 4096)  # None when psutil cannot tell
        except self._errors:
            count = None
        if count is not None:
            out["cpu_count"] = count
        load = self._load()
        if load is not None:
            out["load_1m"], out["load_5m"], out["load_15m"] = load

    def _load(self) -> Optional[List[Optional[float]]]:
        try:
            values = self._ps.getloadavg()
        except self._errors:
            return None
        return [number(v, 0, MAX_LOAD, 2) for v in values]

    def _memory(self, out: Dict[str, Any]) -> None:
        try:
            mem = self._ps.virtual_memory()
        except self._errors:
            return
        out["mem_total_bytes"] = integer(mem.total)
        out["mem_available_bytes"] = integer(mem.available)
        out["mem_used_percent"] = number(mem.percent, 0, 100, 1)

    def _swap(self, out: Dict[str, Any]) -> None:
        try:
            swap = self._ps.swap_memory()
        except self._errors:
            return
        now = self._monotonic()
        out["swap_total_bytes"] = integer(swap.total)
        out["swap_used_bytes"] = integer(swap.used)
        out["swap_used_percent"] = number(swap.percent, 0, 100, 1)
        if self._windows:
            return  # psutil always gives sin = sout = 0 on Windows: no data, not "no swapping"
        for field, attr in (("swap_in_bytes_per_s", "sin"), ("swap_out_bytes_per_s", "sout")):
            rate = self._rates.rate(("swap", attr), getattr(swap, attr, None), now)
            if rate is not None:
                out[field] = round(rate, 1)

    def _disks(self) -> Optional[List[Dict[str, Any]]]:
        try:
            parts = self._ps.disk_partitions(all=False)
        except self._errors:
            return None
        disks = []
        seen = set()
        for part in parts:
            if part.fstype in SKIP_FSTYPES or part.mountpoint in seen:
                continue
            # Windows lists empty card readers and CD drives; they raise on access.
            try:
                usage = self._ps.disk_usage(part.mountpoint)
            except self._errors:
                continue
            if usage.total == 0:
                continue
            seen.add(part.mountpoint)
            disks.append({
                "mount": part.mountpoint[:256],
                "fstype": part.fstype[:32],
                "total_bytes": integer(usage.total),
                "used_bytes": integer(usage.used),
                "free_bytes": integer(usage.free),
                "used_percent": number(usage.percent, 0, 100, 1),
            })
            if len(disks) == 64:
                break
        return disks

    def _boot(self, out: Dict[str, Any]) -> None:
        try:
            boot = self._ps.boot_time()
        except self._errors:
            boot = None
        # A PC whose CMOS battery died boots in 2000 or so: such a boot_ts is outside the
        # schema's 2010..2100 and left out, as is a negative uptime from a clock set back.
        boot_ts = number(boot, TS_MIN, TS_MAX, 0)
        if boot_ts is not None:
            out["boot_ts"] = boot_ts
        if boot is not None:
            uptime = number(self._clock() - boot, 0, MAX_UPTIME_S, 0)
            if uptime is not None:
                out["uptime_s"] = uptime
        with contextlib.suppress(*self._errors):
            out["process_count"] = len(self._ps.pids())

    # ------------------------------------------------------------------ I/O rates

    def _disk_io(self) -> List[Dict[str, Any]]:
        try:
            counters = self._ps.disk_io_counters(perdisk=True)
        except self._errors as exc:
            log.debug("disk_io_counters unavailable: %s", exc)
            return []
        now = self._monotonic()
        return host_io.disk_io(counters or {}, self._rates, now, self._linux)

    def _net(self) -> List[Dict[str, Any]]:
        # ValueError: old psutil versions failed to decode localized adapter names on
        # Windows (UnicodeDecodeError).
        try:
            counters = self._ps.net_io_counters(pernic=True)
        except self._errors + (ValueError,) as exc:
            log.debug("net_io_counters unavailable: %s", exc)
            return []
        now = self._monotonic()
        try:
            stats = self._ps.net_if_stats()
        except self._errors + (ValueError,):
            stats = {}  # cannot tell up from down: keep every interface
        return host_io.net_io(counters or {}, stats or {}, self._rates, now)

    # ------------------------------------------------------------------ sensors

    def _temperatures(self) -> List[Dict[str, Any]]:
        # sensors_temperatures does not exist on Windows (AttributeError).
        try:
            raw = self._ps.sensors_temperatures()
        except self._errors:
            return []
        return sensors.temperatures(raw)

    def _fans(self) -> List[Dict[str, Any]]:
        try:
            raw = self._ps.sensors_fans()
        except self._errors:
            return []
        return sensors.fans(raw)

    def _battery(self) -> Optional[Dict[str, Any]]:
        try:
            raw = self._ps.sensors_battery()
        except self._errors:
            return None
        # Wear and cycle count only come from Linux sysfs; Windows leaves them null.
        return sensors.battery(raw, self._sys_root if self._linux else None)

    # ------------------------------------------------------------------ the agent itself

    def _agent(self) -> Dict[str, Any]:
        out = {}  # type: Dict[str, Any]
        try:
            if self._process is None:
                self._process = self._ps.Process()
            rss = self._process.memory_info().rss
            times = self._process.cpu_times()
        except self._errors as exc:
            log.debug("own process info unavailable: %s", exc)
            return out
        out["rss_bytes"] = integer(rss, 0, MAX_SAFE_INT)
        cpu_s = number(times.user + times.system, 0, MAX_CPU_S, 2)
        if cpu_s is not None:
            out["cpu_s"] = cpu_s
        return out
