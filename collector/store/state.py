"""What the collector knows about each device now, plus daily roll-ups, in SQLite.

    state worker thread: apply(sample) -> one transaction:
        devices row (status, latest metrics/inventory/probe, boot, reboot counters)
        + status_log / reboots (status history, detected reboots)
        + device_daily (metrics) or link_daily (probe) roll-up of the sample's UTC day
    housekeeping thread: mark_silent(), save_seen_ranges()
    API threads: devices(), device(), sites(), counts_by_site(), daily(), site_link_daily()

One connection guarded by one lock: SQLite has a single writer anyway, every call is
short, and a lock is simpler to reason about than a pool. The store is the only writer
of its tables, so it remembers the rows it wrote (without their JSON) and today's metrics
roll-ups: a batch reads nothing it wrote before and updates only the columns it changed
(a metrics sample: about 75 µs instead of 95-120, bench/collector_stages.py). The SQL is
plain (upserts with ON CONFLICT, no SQLite functions, DOUBLE PRECISION for timestamps
because PostgreSQL's REAL is 4 bytes) so PostgreSQL could take over; only the `?`
placeholders and the PRAGMAs in _open() would change. All SQL of the state store lives
here.

Ordering: samples arrive out of order (backfilled batches keep their original ts), so
every "latest" field is replaced only by a sample with a newer ts, never by arrival.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import math
import multiprocessing
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from collector.ingest import Sample

SCHEMA_VERSION = "1"
ONLINE, OFFLINE = "online", "offline"
STATUSES = (ONLINE, OFFLINE)

# status_reason values: why the device has its current status.
REASON_CONNECTED = "connected"  # an 'online' status message (the agent connected)
REASON_DATA = "data"  # data arrived: first sight of the device, or back after a silence
REASON_STATUS_OFFLINE = "lwt-or-clean"  # an 'offline' status that does not say why
REASON_SHUTDOWN = "shutdown"  # an 'offline' status with reason shutdown: a clean stop
REASON_LOST = "lost"  # an 'offline' status with reason lost: the broker sent the Last Will
OFFLINE_REASONS = (REASON_STATUS_OFFLINE, REASON_SHUTDOWN, REASON_LOST)
REASON_SILENT = "silent"  # mark_silent(): nothing heard for too long

SILENCE_FLOOR_S = 180.0
# Boot times are estimated by the agent as clock - uptime, so the same boot wobbles by a
# second or so, and by more when NTP slews the clock; within this it is the same boot.
BOOT_TOLERANCE_S = 60.0
# boot_ts is sent rounded to whole seconds; a sample can look this much older than it is.
BOOT_ROUNDING_S = 2.0
STATUS_LOG_KEEP = 100  # per device; enough to judge the reboots of a few weeks
RECENT_REBOOTS = 10  # how many device() lists

PERCENT_BUCKETS = 101  # 0..100: value v counts in bucket round(v), so p95 is exact to 1 %
BULK_MMAP_BYTES = 1 << 40  # at most, for usage_between: SQLite maps no more than the file
USAGE_PART_DEVICES = 20_000  # usage_between's least share of a worker process

# RTT histogram: bucket 0 holds rtt < 1 ms; bucket i >= 1 holds
# 10**((i-1)/20) <= rtt < 10**(i/20) ms: 20 buckets per decade (each about 12 % wide),
# up to the protocol's 600 000 ms maximum (bucket 116). Percentiles report the upper edge
# of their bucket (3 significant digits), so "p95 = 112 ms" means 95 % of the round trips
# took under about 112 ms.
RTT_BUCKETS_PER_DECADE = 20
RTT_MAX_MS = 600_000.0
RTT_BUCKETS = 2 + int(RTT_BUCKETS_PER_DECADE * math.log10(RTT_MAX_MS))  # 117


def percent_bucket(value: float) -> int:
    return min(PERCENT_BUCKETS - 1, max(0, int(value + 0.5)))


def rtt_bucket(rtt_ms: float) -> int:
    if rtt_ms < 1.0:
        return 0
    return min(RTT_BUCKETS - 1, 1 + int(RTT_BUCKETS_PER_DECADE * math.log10(rtt_ms)))


def rtt_bucket_upper_ms(index: int) -> float:
    """The upper edge of RTT bucket `index`, rounded to 3 significant digits."""
    edge = 10 ** (index / RTT_BUCKETS_PER_DECADE)
    return float(f"{edge:.3g}")


def percentile_bucket(hist: list[int], p: float) -> int | None:
    """Nearest-rank percentile: the first bucket whose cumulative count reaches p % of n."""
    total = sum(hist)
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100.0 * total))
    running = 0
    for index, count in enumerate(hist):
        running += count
        if running >= rank:
            return index
    return len(hist) - 1  # pragma: no cover - the loop always reaches rank


def utc_day(ts: float) -> str:
    return _day_name(int(ts // 86400))


@functools.lru_cache(maxsize=64)
def _day_name(days_since_epoch: int) -> str:
    # Cached: formatting a date costs as much as a third of a whole sample's update.
    return (dt.date(1970, 1, 1) + dt.timedelta(days=days_since_epoch)).isoformat()


def _day_text(day: str | dt.date) -> str:
    if isinstance(day, dt.date):
        return day.strftime("%Y-%m-%d")
    return dt.date.fromisoformat(day).strftime("%Y-%m-%d")  # ValueError on a bad day


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    # first_seen/last_seen/status_since(mostly) are the collector's clock; *_ts are the
    # device's (sample time). *_json hold the newest sample of their channel by ts.
    """CREATE TABLE IF NOT EXISTS devices (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        last_ts DOUBLE PRECISION NOT NULL,
        interval_s DOUBLE PRECISION,
        interval_ts DOUBLE PRECISION,
        status TEXT NOT NULL,
        status_reason TEXT NOT NULL,
        status_since DOUBLE PRECISION NOT NULL,
        status_ts DOUBLE PRECISION,
        metrics_ts DOUBLE PRECISION,
        metrics_json TEXT,
        probe_ts DOUBLE PRECISION,
        probe_json TEXT,
        inventory_ts DOUBLE PRECISION,
        inventory_json TEXT,
        hostname TEXT,
        role TEXT,
        os_name TEXT,
        boot_ts DOUBLE PRECISION,
        first_boot_ts DOUBLE PRECISION,
        boot_last_ts DOUBLE PRECISION,
        reboots_total INTEGER NOT NULL DEFAULT 0,
        unexpected_reboots_total INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (site, device))""",
    "CREATE INDEX IF NOT EXISTS devices_status ON devices (status, site)",
    """CREATE TABLE IF NOT EXISTS status_log (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        arrived DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (site, device, ts, state))""",
    """CREATE TABLE IF NOT EXISTS reboots (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        boot_ts DOUBLE PRECISION NOT NULL,
        unexpected INTEGER NOT NULL,
        detected DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (site, device, boot_ts))""",
    """CREATE TABLE IF NOT EXISTS device_daily (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        day TEXT NOT NULL,
        samples INTEGER NOT NULL,
        cpu_hist TEXT NOT NULL,
        mem_hist TEXT NOT NULL,
        disk_used_max DOUBLE PRECISION,
        swap_in_samples INTEGER NOT NULL,
        temp_max DOUBLE PRECISION,
        PRIMARY KEY (site, device, day))""",
    """CREATE TABLE IF NOT EXISTS link_daily (
        site TEXT NOT NULL,
        target TEXT NOT NULL,
        day TEXT NOT NULL,
        kind TEXT,
        method TEXT,
        samples INTEGER NOT NULL,
        loss_sum DOUBLE PRECISION NOT NULL,
        loss_samples INTEGER NOT NULL,
        rtt_hist TEXT NOT NULL,
        down INTEGER NOT NULL,
        PRIMARY KEY (site, target, day))""",
    """CREATE TABLE IF NOT EXISTS seen_ranges (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        ranges TEXT NOT NULL,
        PRIMARY KEY (site, device))""",
)

_DEVICE_COLUMNS = (
    "site", "device", "first_seen", "last_seen", "last_ts", "interval_s", "interval_ts",
    "status", "status_reason", "status_since", "status_ts", "metrics_ts", "metrics_json",
    "probe_ts", "probe_json", "inventory_ts", "inventory_json", "hostname", "role", "os_name",
    "boot_ts", "first_boot_ts", "boot_last_ts", "reboots_total", "unexpected_reboots_total",
)
_DEVICE_UPSERT = (
    f"INSERT INTO devices ({', '.join(_DEVICE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _DEVICE_COLUMNS)}) "
    "ON CONFLICT (site, device) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _DEVICE_COLUMNS[2:])
)
_SELECT_DEVICE = f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM devices"
# The newest sample of each channel, as JSON: written, never read back while storing, so
# the store's memory of a device (its cached row) leaves them out.
_JSON_COLUMNS = ("metrics_json", "probe_json", "inventory_json")
_ROW_COLUMNS = tuple(c for c in _DEVICE_COLUMNS if c not in _JSON_COLUMNS)
_SELECT_ROW = f"SELECT {', '.join(_ROW_COLUMNS)} FROM devices WHERE site = ? AND device = ?"
_DAILY_UPSERT = (
    "INSERT INTO device_daily (site, device, day, samples, cpu_hist, mem_hist, "
    "disk_used_max, swap_in_samples, temp_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (site, device, day) DO UPDATE SET samples = excluded.samples, "
    "cpu_hist = excluded.cpu_hist, mem_hist = excluded.mem_hist, "
    "disk_used_max = excluded.disk_used_max, "
    "swap_in_samples = excluded.swap_in_samples, temp_max = excluded.temp_max")
# How many devices' rows, and device-days of metrics roll-ups, the store keeps in memory
# so that a sample costs no read (about 1 KB and 2 KB each): a province's few thousand
# devices fit many times over; past that the oldest entries are read again when needed.
ROWS_CACHED = 100_000
DAYS_CACHED = 20_000


@functools.lru_cache(maxsize=512)
def _update_sql(columns: tuple[str, ...]) -> str:
    """UPDATE of only the columns a batch changed: a quarter of the cost of rewriting all."""
    return (f"UPDATE devices SET {', '.join(f'{c} = ?' for c in columns)} "
            "WHERE site = ? AND device = ?")

# The silence threshold, max(intervals x interval_s, floor), in SQL both engines speak.
_SILENT_WHERE = (
    "status = 'online' AND last_seen < ? - CASE WHEN interval_s IS NOT NULL "
    "AND interval_s * ? > ? THEN interval_s * ? ELSE ? END"
)


class StateStore:
    """Device state and daily roll-ups; every method is safe from any thread."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._db = self._open(str(path))
        # Write-through memory of what the store itself wrote (it is the only writer of
        # these tables): rows without their JSON columns, metrics roll-ups, unexpected boot
        # times. Forgotten whenever a transaction fails, as it may hold the failed changes.
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._days: dict[tuple[str, str, str], list[Any]] = {}
        self._unexpected_boots: dict[tuple[str, str], list[float]] = {}
        # The file, for connections of usage_between's own; None for an in-memory store.
        self._path = None if str(path) == ":memory:" or str(path).startswith("file:") \
            else str(Path(path).resolve())

    # --- connection -------------------------------------------------------------------

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        # Autocommit mode: transactions are the explicit BEGIN/COMMIT of _tx().
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL loses at most the last transactions on power loss, never
        # corrupts; the de-duplicator and retained messages make up for the loss.
        db.execute("PRAGMA synchronous = NORMAL")
        with transaction(db):
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                       "ON CONFLICT (key) DO NOTHING", (SCHEMA_VERSION,))
            (version,) = db.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version != SCHEMA_VERSION:
            db.close()
            raise RuntimeError(f"state file {path} has schema version {version}; this "
                               f"collector reads version {SCHEMA_VERSION}")
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with transaction(self._db):
                    yield self._db
            except BaseException:
                self._forget()
                raise

    def _forget(self) -> None:
        self._rows.clear()
        self._days.clear()
        self._unexpected_boots.clear()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def connection(self) -> tuple[sqlite3.Connection, threading.RLock]:
        """The connection and its lock, for another table in the same file (findings):
        one writer, so no transaction waits on another connection's."""
        return self._db, self._lock

    # --- writing ----------------------------------------------------------------------

    def apply(self, sample: Sample) -> None:
        """Fold one accepted sample into the device's state and its day's roll-up."""
        with self._tx() as db:
            self._apply_all(db, [sample], self._clock())

    def apply_many(self, samples: list[Sample]) -> list[tuple[Sample, Exception]]:
        """apply() for each, in one transaction (a commit costs as much as three samples).
        If one sample fails, the batch is rolled back and applied one by one, so only
        that sample is lost; returns the failures."""
        try:
            with self._tx() as db:
                self._apply_all(db, samples, self._clock())
            return []
        except Exception as exc:  # noqa: BLE001 - isolate the bad sample below
            if len(samples) == 1:
                return [(samples[0], exc)]
        failures = []
        for sample in samples:
            try:
                self.apply(sample)
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                failures.append((sample, exc))
        return failures

    def _apply_all(self, db: sqlite3.Connection, samples: list[Sample], now: float) -> None:
        """Every sample into the rows in memory, then each changed row written once."""
        # (site, device) -> the row as it was before this batch, or None for a new device.
        touched: dict[tuple[str, str], dict[str, Any] | None] = {}
        days: set[tuple[str, str, str]] = set()
        for sample in samples:
            self._apply(db, sample, now, touched, days)
        for key, before in touched.items():
            dev = self._rows[key]
            if before is None:
                db.execute(_DEVICE_UPSERT, tuple(dev.get(c) for c in _DEVICE_COLUMNS))
            else:
                changed = tuple([c for c, value in dev.items() if before.get(c) != value])
                if changed:
                    db.execute(_update_sql(changed), (*(dev[c] for c in changed), *key))
            for column in _JSON_COLUMNS:
                dev.pop(column, None)
        if days:
            db.executemany(_DAILY_UPSERT, [
                (*key, day[0], _dumps(day[1]), _dumps(day[2]), *day[3:])
                for key, day in ((key, self._days[key]) for key in days)])
        _trim(self._rows, ROWS_CACHED)
        _trim(self._days, DAYS_CACHED)
        _trim(self._unexpected_boots, ROWS_CACHED)

    def _apply(self, db: sqlite3.Connection, sample: Sample, now: float,
               touched: dict[tuple[str, str], dict[str, Any] | None],
               days: set[tuple[str, str, str]]) -> None:
        key = (sample.site, sample.device)
        dev = self._rows.get(key)
        if dev is None:
            row = db.execute(_SELECT_ROW, key).fetchone()
            if row is not None:
                dev = self._rows[key] = dict(zip(_ROW_COLUMNS, row))
        if dev is None:
            dev = self._rows[key] = _new_device(sample, now)
            touched[key] = None
        else:
            if key not in touched:
                touched[key] = dict(dev)
            dev["last_ts"] = max(dev["last_ts"], sample.ts)
            # A Last Will is published by the broker, not the device: it is no sign of life.
            if not (sample.channel == "status" and sample.data["state"] == OFFLINE):
                dev["last_seen"] = now
        if sample.channel == "status":
            self._apply_status(db, dev, sample, now)
        else:
            if dev["status"] == OFFLINE and dev["status_reason"] == REASON_SILENT:
                # Silence ended without a reconnect (a short network cut): it is back.
                _set_status(dev, ONLINE, REASON_DATA, now)
            if sample.channel == "metrics":
                self._apply_metrics(db, dev, sample, now)
                days.add(self._roll_up_metrics(db, sample))
            elif sample.channel == "probe":
                self._apply_probe(db, dev, sample)
            elif sample.channel == "inventory":
                _apply_inventory(dev, sample)

    @staticmethod
    def _load(db: sqlite3.Connection, site: str, device: str) -> dict[str, Any] | None:
        row = db.execute(f"{_SELECT_DEVICE} WHERE site = ? AND device = ?",
                         (site, device)).fetchone()
        return None if row is None else dict(zip(_DEVICE_COLUMNS, row))

    def _apply_status(self, db: sqlite3.Connection, dev: dict[str, Any], sample: Sample,
                      now: float) -> None:
        state, ts = sample.data["state"], sample.ts
        interval = sample.data.get("interval_s")
        if interval is not None and ts >= (dev["interval_ts"] or 0.0):
            dev["interval_s"], dev["interval_ts"] = float(interval), ts
        previous = None
        if dev["status_ts"] is not None:
            row = db.execute("SELECT MAX(ts) FROM status_log WHERE site = ? AND device = ? "
                             "AND ts < ?", (dev["site"], dev["device"], dev["status_ts"]))
            previous = row.fetchone()[0]
        self._log_status(db, dev, sample, now)
        offline_reason = {"shutdown": REASON_SHUTDOWN, "lost": REASON_LOST}.get(
            sample.data.get("reason"), REASON_STATUS_OFFLINE)
        if dev["status_ts"] is None or ts > dev["status_ts"]:
            reason = REASON_CONNECTED if state == ONLINE else offline_reason
            _set_status(dev, state, reason, ts)
            dev["status_ts"] = ts
        elif (state == OFFLINE and dev["status_reason"] not in OFFLINE_REASONS
              and (previous is None or ts > previous)):
            # The Last Will of the current connection. The agent builds its Will when it
            # arms it (at start or at the previous disconnect), so its ts is older than
            # the 'online' of the connection it ends, yet newer than every status before
            # that 'online'; a genuinely stale 'offline' is older than those too. Its ts
            # says nothing about when the link died, so the arrival time stands in.
            _set_status(dev, OFFLINE, offline_reason,
                        now if dev["status"] == ONLINE else dev["status_since"])
        # Anything else is an old status arriving late: it must not override a newer one.

    @staticmethod
    def _log_status(db: sqlite3.Connection, dev: dict[str, Any], sample: Sample,
                    now: float) -> None:
        key = (dev["site"], dev["device"])
        db.execute("INSERT INTO status_log (site, device, ts, state, arrived) "
                   "VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, device, ts, state) DO NOTHING",
                   (*key, sample.ts, sample.data["state"], now))
        cutoff = db.execute("SELECT ts FROM status_log WHERE site = ? AND device = ? "
                            "ORDER BY ts DESC LIMIT 1 OFFSET ?", (*key, STATUS_LOG_KEEP))
        row = cutoff.fetchone()
        if row is not None:
            db.execute("DELETE FROM status_log WHERE site = ? AND device = ? AND ts <= ?",
                       (*key, row[0]))

    def _apply_metrics(self, db: sqlite3.Connection, dev: dict[str, Any], sample: Sample,
                       now: float) -> None:
        data, ts = sample.data, sample.ts
        if ts >= (dev["interval_ts"] or 0.0):
            dev["interval_s"], dev["interval_ts"] = float(data["interval_s"]), ts
        if ts >= (dev["metrics_ts"] or 0.0):
            dev["metrics_ts"], dev["metrics_json"] = ts, _dumps(data)
        boot = data.get("boot_ts")
        if boot is not None:
            self._apply_boot(db, dev, float(boot), ts, now)

    def _apply_boot(self, db: sqlite3.Connection, dev: dict[str, Any], boot: float,
                    ts: float, now: float) -> None:
        """Count reboots from the boot time in metrics, whatever order samples arrive in."""
        current = dev["boot_ts"]
        if current is None:
            dev["boot_ts"] = dev["first_boot_ts"] = boot
            dev["boot_last_ts"] = ts
        elif boot > current + BOOT_TOLERANCE_S:
            # A PC cannot have booted before a sample it took in its previous boot; if it
            # seems to have, the clock was stepped and the same boot's estimate moved.
            if boot >= dev["boot_last_ts"] - BOOT_ROUNDING_S:
                self._record_reboot(db, dev, boot, now)
                dev["boot_last_ts"] = ts
            else:
                dev["boot_last_ts"] = max(dev["boot_last_ts"], ts)
            dev["boot_ts"] = boot
        elif boot >= current - BOOT_TOLERANCE_S:
            dev["boot_last_ts"] = max(dev["boot_last_ts"], ts)
        else:
            # Backfill from an earlier boot. The boot in force when the sample was taken is
            # the newest known boot before its ts; a boot_ts clearly after that one is a
            # reboot that happened while the agent could not report (counted late).
            known = sorted([dev["first_boot_ts"], *(r[0] for r in db.execute(
                "SELECT boot_ts FROM reboots WHERE site = ? AND device = ?",
                (dev["site"], dev["device"])))])
            index = bisect.bisect_right(known, ts + BOOT_ROUNDING_S) - 1
            if index >= 0 and known[index] + BOOT_TOLERANCE_S < boot <= ts + BOOT_ROUNDING_S:
                self._record_reboot(db, dev, boot, now)

    def _record_reboot(self, db: sqlite3.Connection, dev: dict[str, Any], boot: float,
                       now: float) -> None:
        key = (dev["site"], dev["device"])
        # Expected only after a clean stop: the agent's 'offline' on shutdown is the
        # newest status before the boot. A Last Will never is, as its ts predates the
        # 'online' of the connection it ends; no status at all means we cannot tell.
        row = db.execute("SELECT state FROM status_log WHERE site = ? AND device = ? "
                         "AND ts < ? ORDER BY ts DESC LIMIT 1", (*key, boot)).fetchone()
        unexpected = 0 if row is not None and row[0] == OFFLINE else 1
        inserted = db.execute(
            "INSERT INTO reboots (site, device, boot_ts, unexpected, detected) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, device, boot_ts) DO NOTHING",
            (*key, boot, unexpected, now)).rowcount
        if inserted:
            dev["reboots_total"] += 1
            dev["unexpected_reboots_total"] += unexpected
            known = self._unexpected_boots.get(key)
            if unexpected and known is not None:
                bisect.insort(known, boot)

    def _roll_up_metrics(self, db: sqlite3.Connection, sample: Sample) -> tuple[str, str, str]:
        """Count the sample in its day's roll-up (in memory; written by _apply_all)."""
        data = sample.data
        key = (sample.site, sample.device, utc_day(sample.ts))
        day = self._days.get(key)
        if day is None:
            row = db.execute("SELECT samples, cpu_hist, mem_hist, disk_used_max, "
                             "swap_in_samples, temp_max FROM device_daily "
                             "WHERE site = ? AND device = ? AND day = ?", key).fetchone()
            day = self._days[key] = (
                [0, [0] * PERCENT_BUCKETS, [0] * PERCENT_BUCKETS, None, 0, None] if row is None
                else [row[0], orjson.loads(row[1]), orjson.loads(row[2]), *row[3:]])
        day[0] += 1
        if data.get("cpu_percent") is not None:
            day[1][percent_bucket(data["cpu_percent"])] += 1
        if data.get("mem_used_percent") is not None:
            day[2][percent_bucket(data["mem_used_percent"])] += 1
        day[3] = _max(day[3], (d.get("used_percent") for d in data.get("disks") or ()))
        if (data.get("swap_in_bytes_per_s") or 0) > 0:
            day[4] += 1
        day[5] = _max(day[5], (t.get("temp_c") for t in data.get("temperatures") or ()))
        return key

    def _apply_probe(self, db: sqlite3.Connection, dev: dict[str, Any], sample: Sample) -> None:
        if sample.ts >= (dev["probe_ts"] or 0.0):
            dev["probe_ts"], dev["probe_json"] = sample.ts, _dumps(sample.data)
        day = utc_day(sample.ts)
        for target in sample.data["targets"]:
            key = (sample.site, target["name"], day)
            row = db.execute("SELECT samples, loss_sum, loss_samples, rtt_hist, down "
                             "FROM link_daily WHERE site = ? AND target = ? AND day = ?",
                             key).fetchone()
            if row is None:
                samples, loss_sum, loss_n, rtt, down = 0, 0.0, 0, [0] * RTT_BUCKETS, 0
            else:
                samples, loss_sum, loss_n, down = row[0], row[1], row[2], row[4]
                rtt = orjson.loads(row[3])
            samples += 1
            if target.get("loss_percent") is not None:
                loss_sum += target["loss_percent"]
                loss_n += 1
            if target.get("rtt_avg_ms") is not None:
                rtt[rtt_bucket(target["rtt_avg_ms"])] += 1
            if _target_down(target):
                down += 1
            db.execute(
                "INSERT INTO link_daily (site, target, day, kind, method, samples, loss_sum, "
                "loss_samples, rtt_hist, down) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (site, target, day) DO UPDATE SET kind = excluded.kind, "
                "method = excluded.method, samples = excluded.samples, "
                "loss_sum = excluded.loss_sum, loss_samples = excluded.loss_samples, "
                "rtt_hist = excluded.rtt_hist, down = excluded.down",
                (*key, target["kind"], target["method"], samples, loss_sum, loss_n,
                 _dumps(rtt), down))

    def mark_silent(self, now: float | None = None,
                    intervals: float = 3.0) -> list[tuple[str, str]]:
        """Online devices not heard from for max(intervals x interval_s, 180 s) go offline."""
        now = self._clock() if now is None else now
        args = (now, intervals, SILENCE_FLOOR_S, intervals, SILENCE_FLOOR_S)
        with self._tx() as db:
            silent = [(site, device) for site, device in db.execute(
                f"SELECT site, device FROM devices WHERE {_SILENT_WHERE} "
                "ORDER BY site, device", args)]
            if silent:
                # Offline since the last message: the best guess of when it went away.
                db.execute(f"UPDATE devices SET status = 'offline', status_reason = ?, "
                           f"status_since = last_seen WHERE {_SILENT_WHERE}",
                           (REASON_SILENT, *args))
                for key in silent:
                    self._rows.pop(key, None)  # read again, as the UPDATE left it
        return silent

    # --- de-duplication ranges --------------------------------------------------------

    def all_seen_ranges(self) -> dict[tuple[str, str], list[tuple[int, int]]]:
        """Every device's seen seq ranges (read once at start: the MQTT thread must not
        wait for the database lock on each new device)."""
        with self._lock:
            rows = self._db.execute("SELECT site, device, ranges FROM seen_ranges").fetchall()
        return {(s, d): [(lo, hi) for lo, hi in orjson.loads(text)] for s, d, text in rows}

    def save_seen_ranges(self, ranges_by_device: dict[tuple[str, str], list[tuple[int, int]]],
                         ) -> None:
        """Store the ranges of the devices given, in one transaction."""
        if not ranges_by_device:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO seen_ranges (site, device, ranges) VALUES (?, ?, ?) "
                "ON CONFLICT (site, device) DO UPDATE SET ranges = excluded.ranges",
                [(site, device, _dumps([[lo, hi] for lo, hi in ranges]))
                 for (site, device), ranges in ranges_by_device.items()])

    # --- queries (plain dicts, ready for JSON) ----------------------------------------

    def devices(self, site: str | None = None, status: str | None = None,
                limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Device summaries ordered by site and device."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        if limit < 1 or offset < 0:
            raise ValueError("limit must be at least 1 and offset at least 0")
        where, args = [], []
        if site is not None:
            where.append("site = ?")
            args.append(site)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = _SELECT_DEVICE + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._lock:
            rows = self._db.execute(f"{sql} ORDER BY site, device LIMIT ? OFFSET ?",
                                    (*args, limit, offset)).fetchall()
        return [_summary(dict(zip(_DEVICE_COLUMNS, row))) for row in rows]

    def device(self, site: str, device: str) -> dict[str, Any] | None:
        """The summary plus the newest metrics, probe and inventory and recent reboots."""
        with self._lock:
            dev = self._load(self._db, site, device)
            if dev is None:
                return None
            reboots = self._db.execute(
                "SELECT boot_ts, unexpected FROM reboots WHERE site = ? AND device = ? "
                "ORDER BY boot_ts DESC LIMIT ?", (site, device, RECENT_REBOOTS)).fetchall()
        out = _summary(dev)
        for name in ("metrics", "probe", "inventory"):
            data = _loads(dev[f"{name}_json"])
            out[name] = None if data is None else {"ts": dev[f"{name}_ts"], **data}
        out["reboots"] = [{"boot_ts": boot, "unexpected": bool(flag)}
                          for boot, flag in reboots]
        return out

    def sites(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT site, COUNT(*), "
                "SUM(CASE WHEN status = 'online' THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN status = 'offline' THEN 1 ELSE 0 END), MAX(last_seen) "
                "FROM devices GROUP BY site ORDER BY site").fetchall()
        return [{"site": site, "devices_total": total, "online": online, "offline": offline,
                 "last_seen": last_seen} for site, total, online, offline, last_seen in rows]

    def unexpected_reboots(self, site: str, device: str, since_ts: float,
                           until_ts: float) -> int:
        """Unexpected reboots whose boot time falls in [since_ts, until_ts] (sample time)."""
        with self._lock:
            boots = self._unexpected_boots.get((site, device))
            if boots is None:
                boots = self._unexpected_boots[(site, device)] = [row[0] for row in (
                    self._db.execute("SELECT boot_ts FROM reboots WHERE site = ? AND "
                                     "device = ? AND unexpected = 1 ORDER BY boot_ts",
                                     (site, device)))]
            return bisect.bisect_right(boots, until_ts) - bisect.bisect_left(boots, since_ts)

    def unreachable(self, older_than: float) -> list[tuple[str, str]]:
        """Offline devices that did not say goodbye (silent, or their Last Will), since
        before `older_than` (collector clock)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT site, device FROM devices WHERE status = 'offline' AND status_reason "
                "IN (?, ?) AND status_since <= ? ORDER BY site, device",
                (REASON_SILENT, REASON_LOST, older_than)).fetchall()
        return [(site, device) for site, device in rows]

    def site_devices(self, site: str) -> list[tuple[str, str, str, str | None]]:
        """(device, status, status_reason, role) of every device of a site."""
        with self._lock:
            rows = self._db.execute("SELECT device, status, status_reason, role FROM devices "
                                    "WHERE site = ?", (site,)).fetchall()
        return [tuple(row) for row in rows]

    def role_of(self, site: str, device: str) -> str | None:
        """The device's role (service-counter, office, ...) as its inventory gave it."""
        with self._lock:
            row = self._db.execute("SELECT role FROM devices WHERE site = ? AND device = ?",
                                   (site, device)).fetchone()
        return row[0] if row else None

    def counts_by_site(self) -> dict[str, dict[str, int]]:
        """{site: {status: devices}} for the cwatch_devices gauge."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT site, status, COUNT(*) FROM devices GROUP BY site, status").fetchall()
        for site, status, count in rows:
            out.setdefault(site, {})[status] = count
        return out

    def disk_history(self, site: str, device: str, since_day: str | dt.date,
                     until_day: str | dt.date) -> list[tuple[str, float]]:
        """(UTC day, fullest partition's peak %) per day with data, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT day, disk_used_max FROM device_daily WHERE site = ? AND device = ? "
                "AND day >= ? AND day <= ? AND disk_used_max IS NOT NULL ORDER BY day",
                (site, device, _day_text(since_day), _day_text(until_day))).fetchall()
        return [(day, float(value)) for day, value in rows]

    def usage_since(self, day: str | dt.date) -> dict[tuple[str, str], dict[str, Any]]:
        """Every device's metrics roll-ups from `day` (UTC) on, merged: samples, CPU and
        memory p95 over the whole period, swapping share, fullest disk."""
        return self.usage_between(day, "9999-12-31")

    def usage_between(self, first_day: str | dt.date, last_day: str | dt.date,
                      high_percent: int = 90, *, workers: int = 1
                      ) -> dict[tuple[str, str], dict[str, Any]]:
        """Each device's roll-ups of the UTC days first_day..last_day merged: days,
        samples, CPU and memory p95, swap-in samples, fullest disk, and `mem_high_samples`:
        samples with memory at high_percent or more (how long the user waited on it).
        Built for a whole province or country at once (the procurement report: a
        country's 3.9 million days): SQLite adds up each device's days and strings its
        histograms together, one row per device, and numpy parses and sums those
        (merge_usage). It reads on a connection of its own, so the collector's writes go
        on meanwhile; `workers` > 1 shares the devices of a big fleet, by site, among
        that many processes (the parsing takes a core's full time)."""
        first, last = _day_text(first_day), _day_text(last_day)
        if self._path is None:  # in memory: only this connection sees the data
            with self._lock:
                return merge_usage(self._db, first, last, high_percent)
        parts = self._site_ranges(workers) if workers > 1 else [(None, None)]
        if len(parts) == 1:
            return _usage_part(self._path, first, last, high_percent, None, None)
        with ProcessPoolExecutor(len(parts) - 1, mp_context=_process_context()) as pool:
            futures = [pool.submit(_usage_part, self._path, first, last, high_percent, *part)
                       for part in parts[1:]]
            merged = _usage_part(self._path, first, last, high_percent, *parts[0])
            for future in futures:  # site ranges in order: the devices stay in order
                merged.update(future.result())
        return merged

    def _site_ranges(self, workers: int) -> list[tuple[str | None, str | None]]:
        """[low, high) site ranges with about as many devices each, one per worker, at
        least USAGE_PART_DEVICES devices each (a process costs a few tenths of a second)."""
        with self._lock:
            sizes = self._db.execute(
                "SELECT site, COUNT(*) FROM devices GROUP BY site ORDER BY site").fetchall()
        total = sum(n for _, n in sizes)
        parts = max(1, min(workers, total // USAGE_PART_DEVICES))
        bounds: list[str | None] = [None]
        running = 0
        for site, n in sizes:
            if running >= total * len(bounds) / parts and len(bounds) < parts:
                bounds.append(site)
            running += n
        bounds.append(None)
        return list(zip(bounds[:-1], bounds[1:]))

    def unexpected_reboots_between(self, since_ts: float,
                                   until_ts: float) -> dict[tuple[str, str], int]:
        """Unexpected reboots per device whose boot time is in [since_ts, until_ts]."""
        with self._lock:
            rows = self._db.execute(
                "SELECT site, device, COUNT(*) FROM reboots WHERE unexpected = 1 "
                "AND boot_ts >= ? AND boot_ts <= ? GROUP BY site, device",
                (since_ts, until_ts)).fetchall()
        return {(site, device): count for site, device, count in rows}

    def link_between(self, first_day: str | dt.date, last_day: str | dt.date,
                     kind: str) -> dict[str, dict[str, Any]]:
        """Per site, its probes of targets of `kind` (e.g. "portal") over the days merged:
        {site: {"rtt_p95_ms", "loss_percent_mean", "samples"}}."""
        with self._lock:
            rows = self._db.execute(
                "SELECT site, samples, loss_sum, loss_samples, rtt_hist FROM link_daily "
                "WHERE kind = ? AND day >= ? AND day <= ?",
                (kind, _day_text(first_day), _day_text(last_day))).fetchall()
        merged: dict[str, dict[str, Any]] = {}
        for site, samples, loss_sum, loss_n, rtt in rows:
            out = merged.setdefault(site, {"samples": 0, "loss_sum": 0.0, "loss_n": 0,
                                           "rtt": [0] * RTT_BUCKETS})
            out["samples"] += samples
            out["loss_sum"] += loss_sum
            out["loss_n"] += loss_n
            out["rtt"] = list(map(operator.add, out["rtt"], orjson.loads(rtt)))
        result = {}
        for site, out in merged.items():
            p95 = percentile_bucket(out["rtt"], 95)
            result[site] = {
                "samples": out["samples"],
                "rtt_p95_ms": None if p95 is None else rtt_bucket_upper_ms(p95),
                "loss_percent_mean": out["loss_sum"] / out["loss_n"] if out["loss_n"] else None}
        return result

    def every_device(self) -> Iterator[dict[str, Any]]:
        """Each device's row with its newest metrics, probe and inventory decoded, in
        site and device order, a few thousand rows at a time (for whole-fleet reports:
        a country's rows together would not fit in memory)."""
        with self._lock:
            cursor = self._db.execute(f"{_SELECT_DEVICE} ORDER BY site, device")
        while True:
            with self._lock:
                rows = cursor.fetchmany(2000)
            if not rows:
                return
            for row in rows:
                dev = dict(zip(_DEVICE_COLUMNS, row))
                metrics = _loads(dev["metrics_json"])
                out = _summary(dev, metrics)
                out.update(metrics=metrics, probe=_loads(dev["probe_json"]),
                           inventory=_loads(dev["inventory_json"]))
                yield out

    def daily(self, site: str, device: str, day: str | dt.date) -> dict[str, Any]:
        """One device's metrics roll-up for one UTC day; samples == 0 when there is none."""
        day = _day_text(day)
        with self._lock:
            row = self._db.execute(
                "SELECT samples, cpu_hist, mem_hist, disk_used_max, swap_in_samples, temp_max "
                "FROM device_daily WHERE site = ? AND device = ? AND day = ?",
                (site, device, day)).fetchone()
        samples, cpu, mem, disk_max, swap_in, temp_max = row or (
            0, None, None, None, 0, None)
        out: dict[str, Any] = {"site": site, "device": device, "day": day, "samples": samples}
        for name, text in (("cpu", cpu), ("mem", mem)):
            hist = orjson.loads(text) if text else [0] * PERCENT_BUCKETS
            used = [i for i, count in enumerate(hist) if count]
            out[f"{name}_samples"] = sum(hist)
            out[f"{name}_p50"] = percentile_bucket(hist, 50)
            out[f"{name}_p95"] = percentile_bucket(hist, 95)
            out[f"{name}_max"] = used[-1] if used else None
            out[f"{name}_hist"] = hist
        out.update(disk_used_max_percent=disk_max, swap_in_samples=swap_in,
                   temp_max_c=temp_max)
        return out

    def site_link_daily(self, site: str, day: str | dt.date) -> list[dict[str, Any]]:
        """Per probe target of a site (all its devices together), one UTC day."""
        day = _day_text(day)
        with self._lock:
            rows = self._db.execute(
                "SELECT target, kind, method, samples, loss_sum, loss_samples, rtt_hist, down "
                "FROM link_daily WHERE site = ? AND day = ? ORDER BY target",
                (site, day)).fetchall()
        out = []
        for target, kind, method, samples, loss_sum, loss_n, rtt_text, down in rows:
            rtt = orjson.loads(rtt_text)
            p50, p95 = percentile_bucket(rtt, 50), percentile_bucket(rtt, 95)
            out.append({
                "site": site, "target": target, "day": day, "kind": kind, "method": method,
                "samples": samples, "loss_percent_sum": loss_sum, "loss_samples": loss_n,
                "loss_percent_mean": loss_sum / loss_n if loss_n else None,
                "rtt_samples": sum(rtt),
                "rtt_p50_ms": None if p50 is None else rtt_bucket_upper_ms(p50),
                "rtt_p95_ms": None if p95 is None else rtt_bucket_upper_ms(p95),
                "rtt_hist": rtt, "down": down,
            })
        return out


def _process_context() -> multiprocessing.context.BaseContext:
    """Fork where that is safe (one thread: the report's command): quick, and a script
    without an `if __name__ == "__main__"` guard still works; else spawn, as a process
    with threads (the collector) must not be forked. A forked worker opens a connection
    of its own; the parent's, inherited, it neither uses nor closes (it ends in
    os._exit), as SQLite asks."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _usage_part(path: str, first: str, last: str, high_percent: int, low: str | None,
                high: str | None) -> dict[tuple[str, str], dict[str, Any]]:
    """usage_between for the sites in [low, high) (None: no bound), on a read-only
    connection of its own, reading through a memory map: the GROUP BY follows the
    devices about a file written day by day, twice as slow through read() calls."""
    db = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True)
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute(f"PRAGMA mmap_size = {BULK_MMAP_BYTES}")
        return merge_usage(db, first, last, high_percent, low, high)
    finally:
        db.close()


def merge_usage(db: sqlite3.Connection, first: str, last: str, high_percent: int,
                low: str | None = None, high: str | None = None
                ) -> dict[tuple[str, str], dict[str, Any]]:
    """The merging of usage_between, for the sites in [low, high)."""
    from collector.store import histograms  # numpy, only where roll-ups are merged

    where, args = "day >= ? AND day <= ?", [first, last]
    if low is not None:
        where, args = where + " AND site >= ?", [*args, low]
    if high is not None:
        where, args = where + " AND site < ?", [*args, high]
    # group_concat: the one SQLite-only function of this file (PostgreSQL: string_agg);
    # the order of the days in it does not matter to a sum.
    cursor = db.execute(
        "SELECT site, device, COUNT(*), SUM(samples), SUM(swap_in_samples), "
        "MAX(disk_used_max), group_concat(cpu_hist, ''), group_concat(mem_hist, '') "
        f"FROM device_daily WHERE {where} GROUP BY site, device ORDER BY site, device", args)
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    while rows := cursor.fetchmany(1000):
        days = [row[2] for row in rows]
        cpu = histograms.sum_days([row[6] for row in rows], days, PERCENT_BUCKETS)
        mem = histograms.sum_days([row[7] for row in rows], days, PERCENT_BUCKETS)
        mem_high = mem[:, high_percent:].sum(axis=1).tolist()
        for row, high_samples, cpu_p95, mem_p95 in zip(
                rows, mem_high, histograms.percentiles(cpu, 95),
                histograms.percentiles(mem, 95)):
            merged[(row[0], row[1])] = {
                "days": row[2], "samples": row[3], "swap_in_samples": row[4],
                "disk_used_max": row[5], "mem_high_samples": high_samples,
                "cpu_p95": cpu_p95, "mem_p95": mem_p95}
    return merged


# --- helpers ------------------------------------------------------------------------------


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _trim(cache: dict[Any, Any], most: int) -> None:
    """Forget the oldest-added entries beyond `most` (a quarter more, so it runs rarely)."""
    if len(cache) > most + most // 4:
        for key in list(itertools.islice(cache, len(cache) - most)):
            del cache[key]


def _new_device(sample: Sample, now: float) -> dict[str, Any]:
    dev: dict[str, Any] = dict.fromkeys(_DEVICE_COLUMNS)
    dev.update(site=sample.site, device=sample.device, first_seen=now, last_seen=now,
               last_ts=sample.ts, reboots_total=0, unexpected_reboots_total=0)
    if sample.channel != "status":  # a status sample sets the status itself, next
        _set_status(dev, ONLINE, REASON_DATA, now)  # data from a device proves it is up
    return dev


def _set_status(dev: dict[str, Any], status: str, reason: str, since: float) -> None:
    if status != dev["status"] or dev["status_since"] is None:
        dev["status_since"] = since
    dev["status"], dev["status_reason"] = status, reason


def _apply_inventory(dev: dict[str, Any], sample: Sample) -> None:
    if sample.ts < (dev["inventory_ts"] or 0.0):
        return
    data = sample.data
    dev["inventory_ts"], dev["inventory_json"] = sample.ts, _dumps(data)
    dev["hostname"] = data["hostname"]
    dev["os_name"] = data["os"]["name"]
    dev["role"] = (data.get("asset") or {}).get("role")


def _target_down(target: dict[str, Any]) -> bool:
    """Nothing came back: received == 0 of some sent; without counts, an error says it."""
    received = target.get("received")
    if received is None:
        return bool(target.get("error"))
    return received == 0 and target.get("sent", 1) > 0


def _max(current: float | None, values: Any) -> float | None:
    for value in values:
        if value is not None and (current is None or value > current):
            current = value
    return current


def _summary(dev: dict[str, Any], metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The device row for the API; `metrics`: its metrics_json already decoded."""
    if metrics is None:
        metrics = _loads(dev["metrics_json"])
    metrics = metrics or {}
    disks = [d["used_percent"] for d in metrics.get("disks") or ()
             if d.get("used_percent") is not None]
    return {
        "site": dev["site"], "device": dev["device"],
        "status": dev["status"], "status_reason": dev["status_reason"],
        "status_since": dev["status_since"],
        "first_seen": dev["first_seen"], "last_seen": dev["last_seen"],
        "last_ts": dev["last_ts"], "interval_s": dev["interval_s"],
        "hostname": dev["hostname"], "role": dev["role"], "os": dev["os_name"],
        "boot_ts": dev["boot_ts"], "reboots_total": dev["reboots_total"],
        "unexpected_reboots_total": dev["unexpected_reboots_total"],
        "metrics_ts": dev["metrics_ts"],
        "cpu_percent": metrics.get("cpu_percent"),
        "mem_used_percent": metrics.get("mem_used_percent"),
        "swap_used_percent": metrics.get("swap_used_percent"),
        "disk_used_percent_max": max(disks) if disks else None,
        "uptime_s": metrics.get("uptime_s"),
    }
