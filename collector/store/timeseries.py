"""Samples -> InfluxDB line protocol -> VictoriaMetrics (or InfluxDB 2.x), in batches.

    store worker: TimeSeriesWriter.submit_many(batch) -> to_lines(sample) -> the spool
                 on disk (store/spool.py: one write per batch, before the batch's MQTT
                 messages are acknowledged), bounded in bytes (full: the oldest
                 segments are dropped and counted); in memory without a spool folder
    writer thread: up to batch_size lines, oldest first -> SYNCHRONOUS write API -> 204
                 -> only then removed from the spool
                 connection refused, timeout, 5xx: keep the batch, retry with backoff
                 4xx (the data was refused): log, drop that batch (counted), go on

Only numbers are written: VictoriaMetrics stores a string field as a series of 0,
so text either becomes a label (a tag) or is not stored here at all. The mapping of
every protocol field to its metric and labels is the table GROUPS below; the document
docs/metrics-mapping.md is generated from it (`python -m collector.store.timeseries`)
and a test checks that the document, the code and VictoriaMetrics agree.

VictoriaMetrics names a metric `<measurement>_<field>`, e.g. `cwatch_host` +
`cpu_percent` -> `cwatch_host_cpu_percent`; every tag becomes a label.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import logging
import math
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from collector.ingest import Sample
from collector.store.spool import DEFAULT_MAX_BYTES, MemoryQueue, Spool, SpoolError, Taken
from cwatch import protocol
from cwatch.config import ConfigError
from cwatch.logutil import RateLimitedLog

log = logging.getLogger(__name__)

# --- values ---------------------------------------------------------------------------
# A converter turns a protocol value into the text of a line-protocol field value, or
# None to leave the field out. Numbers are written without the `i` suffix, so InfluxDB
# types every field as a float and a JSON 60 followed by a 60.5 is never a type conflict.


def _number(value: Any) -> str | None:
    kind = type(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else None
    if kind is int:
        return str(value)
    if kind is bool:
        return "1" if value else "0"
    return None  # None, and text: never a string field


def _up(error: Any) -> str | None:
    return "0" if error else "1"


_VERSION = re.compile(r"\s*(\d{1,4}(?:\.\d{1,4})?)")


def _version(value: Any) -> str | None:
    match = _VERSION.match(value) if isinstance(value, str) else None
    return repr(float(match.group(1))) if match else None


def _uefi(value: Any) -> str | None:
    return {"uefi": "1", "bios": "0"}.get(value) if isinstance(value, str) else None


def _online(value: Any) -> str | None:
    return {"online": "1", "offline": "0"}.get(value) if isinstance(value, str) else None


def _date_ts(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return str(calendar.timegm(day.timetuple()))


def _one(_: Any) -> str | None:
    return "1"


# --- the mapping ----------------------------------------------------------------------


class Field:
    """One line-protocol field: metric `<measurement>_<key>` from protocol field `source`,
    relative to its group's base. `source` defaults to `key` for a plain number; a field
    with another converter and no source is a constant (the info metric's 1)."""

    __slots__ = ("key", "source", "parts", "convert", "note")

    def __init__(self, key: str, source: str | None = None,
                 convert: Callable[[Any], str | None] = _number, note: str = "") -> None:
        self.key = key
        self.source = key if source is None and convert is _number else source
        self.parts = tuple(self.source.split(".")) if self.source else ()
        self.convert = convert
        self.note = note


class Group:
    """One line per sample (base "" or an object) or per list item (base "name[]")."""

    __slots__ = ("measurement", "base", "tags", "fields")

    def __init__(self, measurement: str, base: str, tags: tuple[tuple[str, str], ...],
                 fields: tuple[Field, ...]) -> None:
        assert re.fullmatch(r"cwatch_[a-z_]+", measurement), measurement
        self.measurement = measurement
        self.base = base
        self.tags = tuple((key, tuple(source.split("."))) for key, source in tags)
        self.fields = fields

    def path(self, source: str) -> str:
        """The protocol path (as in docs/protocol.md) of a source relative to the base."""
        return f"{self.base}.{source}" if self.base else source

    def metric(self, field: Field) -> str:
        return f"{self.measurement}_{field.key}"

    def labels(self) -> list[str]:
        return ["site", "device", *(key for key, _ in self.tags)]


def _fields(*names: str) -> tuple[Field, ...]:
    return tuple(Field(name) for name in names)


_BOOL = "1 = true, 0 = false"
_ERROR_UP = "1 when `error` is null or absent, else 0"

GROUPS: dict[str, tuple[Group, ...]] = {
    protocol.METRICS: (
        Group("cwatch_host", "", (), _fields(
            "interval_s", "cpu_percent", "cpu_max_core_percent", "cpu_count",
            "load_1m", "load_5m", "load_15m", "mem_total_bytes", "mem_available_bytes",
            "mem_used_percent", "swap_total_bytes", "swap_used_bytes", "swap_used_percent",
            "swap_in_bytes_per_s", "swap_out_bytes_per_s", "uptime_s", "boot_ts",
            "process_count", "conntrack_count", "conntrack_max")),
        Group("cwatch_disk", "disks[]", (("mount", "mount"), ("fstype", "fstype")),
              _fields("total_bytes", "used_bytes", "free_bytes", "used_percent")),
        Group("cwatch_diskio", "disk_io[]", (("disk", "name"),), _fields(
            "read_bytes_per_s", "write_bytes_per_s", "read_ops_per_s", "write_ops_per_s",
            "busy_percent")),
        Group("cwatch_net", "net[]", (("iface", "name"),), (
            *_fields("rx_bytes_per_s", "tx_bytes_per_s", "rx_errors_per_s", "tx_errors_per_s",
                     "rx_drops_per_s", "tx_drops_per_s", "speed_bps"),
            Field("up", note="1 = link up, 0 = down"), Field("wan", note=_BOOL))),
        Group("cwatch_temp", "temperatures[]", (("sensor", "sensor"), ("label", "label")), (
            Field("c", "temp_c"), Field("high_c"), Field("critical_c"))),
        Group("cwatch_fan", "fans[]", (("sensor", "sensor"), ("label", "label")),
              _fields("rpm")),
        Group("cwatch_battery", "battery", (), (
            Field("charge_percent"), Field("plugged", note=_BOOL), Field("wear_percent"),
            Field("cycle_count"))),
        Group("cwatch_smart", "smart[]",
              (("disk", "device"), ("protocol", "protocol"), ("model", "model")), (
                  Field("passed", note="1 = the disk says it is healthy, 0 = failing"),
                  *_fields("reallocated_sectors", "pending_sectors", "offline_uncorrectable",
                           "reported_uncorrectable", "command_timeouts", "power_on_hours",
                           "temperature_c", "nvme_percentage_used",
                           "nvme_available_spare_percent", "nvme_media_errors",
                           "nvme_critical_warning"))),
        Group("cwatch_agent", "agent", (), _fields(
            "queue_size", "queue_bytes", "queue_dropped_total", "publish_failures_total",
            "rss_bytes", "cpu_s")),
    ),
    protocol.PROBE: (
        Group("cwatch_probe", "targets[]",
              (("target", "name"), ("kind", "kind"), ("method", "method")), (
                  *_fields("sent", "received", "loss_percent", "rtt_avg_ms", "rtt_min_ms",
                           "rtt_max_ms", "jitter_ms", "dns_ms", "http_ttfb_ms",
                           "http_status"),
                  Field("up", "error", _up, _ERROR_UP))),
        Group("cwatch_throughput", "throughput", (), (
            *_fields("mbit_per_s", "bytes", "duration_s"),
            Field("up", "error", _up, _ERROR_UP))),
    ),
    protocol.INVENTORY: (
        Group("cwatch_inventory", "", (), (
            Field("ram_bytes"),
            Field("cpu_cores", "cpu.cores"), Field("cpu_threads", "cpu.threads"),
            Field("cpu_max_mhz", "cpu.max_mhz"),
            Field("tpm_present", "tpm.present", note=_BOOL),
            Field("tpm_version", "tpm.version", _version,
                  "the leading number of the text, e.g. 2.0 or 1.2; absent if none"),
            Field("uefi", "firmware", _uefi, "1 = uefi, 0 = bios"),
            Field("secure_boot", note=_BOOL),
            Field("bios_date_ts", "bios.date", _date_ts, "Unix s of the date (00:00 UTC)"),
            Field("purchase_date_ts", "asset.purchase_date", _date_ts,
                  "Unix s of the date (00:00 UTC)"),
        )),
        # The text facts, as labels of a constant 1 (the Prometheus "info" pattern):
        # join with `* on(site, device) group_left(os_name) cwatch_inventory_info`.
        Group("cwatch_inventory", "", (
            ("hostname", "hostname"), ("os_name", "os.name"), ("os_version", "os.version"),
            ("os_build", "os.build"), ("os_arch", "os.arch"), ("cpu_model", "cpu.model"),
            ("system_manufacturer", "system.manufacturer"), ("system_model", "system.model"),
            ("bios_date", "bios.date"), ("role", "asset.role"), ("asset_tag", "asset.tag"),
            ("location", "asset.location"), ("agent_version", "agent_version"),
            ("polled_by", "polled_by")), (
            Field("info", None, _one, "always 1; the text facts are its labels"),)),
        Group("cwatch_inventory_disk", "disks[]", (("model", "model"), ("kind", "kind")),
              _fields("size_bytes")),
    ),
    protocol.STATUS: (
        Group("cwatch_status", "", (), (
            Field("online", "state", _online, "1 = online, 0 = offline"),
            Field("interval_s"))),
    ),
}

# Protocol fields that are not written, and why (the document lists them too).
NOT_STORED: dict[str, dict[str, str]] = {
    protocol.METRICS: {
        "smart[].serial": "text; not a label, so a series survives a serial misread",
        "smart_note": "text",
    },
    protocol.PROBE: {
        "targets[].host": "text; the target's `name` is the label",
        "throughput.url": "text",
    },
    protocol.INVENTORY: {
        "disks[].serial": "text; not a label, so a series survives a serial misread",
        "system.serial": "text",
        "bios.vendor": "text",
        "bios.version": "text",
        "macs": "text",
        "python_version": "text",
        "description": "text; long and free-form (SNMP sysDescr)",
    },
    protocol.STATUS: {
        "agent_version": "text; see the `agent_version` label of `cwatch_inventory_info`",
        "reason": "text; kept as the device's status reason in the state store",
    },
}
# A label that tells apart list items whose labels would otherwise be equal (two
# temperature readings of one sensor without a label): the 2nd gets index="2", ...
INDEX_LABEL = "index"

# --- line protocol --------------------------------------------------------------------

_ESCAPE_TAG = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ",
                             "\n": "\\ ", "\r": "\\ ", "\t": "\\ "})


# str.translate() is slow, a failed dict lookup for every character it leaves alone,
# so it only runs on a text that holds one of the table's characters: most have none.
_TO_ESCAPE = re.compile("[" + re.escape("".join(map(chr, _ESCAPE_TAG))) + "]").search


def escape_tag(text: str) -> str:
    """A tag key or value for line protocol: \\ , = and space escaped; a newline, carriage
    return or tab (which would break the line) becomes an escaped space. UTF-8 stays."""
    return text.translate(_ESCAPE_TAG) if _TO_ESCAPE(text) else text


def _get(obj: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


# to_lines() runs for every sample, so GROUPS is compiled once, at import, into what its
# loop needs. Per group: the key of its object or list (None: the sample's data itself),
# whether it is a list, its fields and its tags. The fields up to the first one that is
# not a plain number at a key of the item (in the metrics channel: all of them) become
# ("key=", item key) pairs, read with dict.get and converted inline exactly as _number
# does; the rest stay ("key=", path, converter). A tag is (",key=", item key or None,
# path): nested tags (inventory) are read by path. Field order is the table's.
_Numbers = tuple[tuple[str, str], ...]
_Others = tuple[tuple[str, tuple[str, ...], Callable[[Any], str | None]], ...]
_Tags = tuple[tuple[str, str | None, tuple[str, ...]], ...]
_Plan = tuple[str, str | None, bool, _Numbers, _Others, _Tags]


def _plan(group: Group) -> _Plan:
    fields = list(group.fields)
    numbers = []
    while fields and fields[0].convert is _number and len(fields[0].parts) == 1:
        field = fields.pop(0)
        numbers.append((f"{field.key}=", field.parts[0]))
    others = tuple((f"{field.key}=", field.parts, field.convert) for field in fields)
    tags = tuple((f",{key}=", parts[0] if len(parts) == 1 else None, parts)
                 for key, parts in group.tags)
    base = group.base.removesuffix("[]") or None
    return (group.measurement, base, group.base.endswith("[]"), tuple(numbers), others,
            tags)


_PLANS: dict[str, tuple[_Plan, ...]] = {
    channel: tuple(_plan(group) for group in groups) for channel, groups in GROUPS.items()}

# The labels of list items and objects (mounts, interfaces, sensors, disk models) are
# few across a fleet, and some always need escaping (C:\\): each is escaped once. Not
# site and device names: thousands of them, each seen once a minute, would only churn
# a cache this size.
_escape_label = functools.lru_cache(maxsize=1024)(escape_tag)


def to_lines(sample: Sample) -> list[str]:
    """InfluxDB line protocol for one sample: numbers only, labels site and device on
    every line, the sample's own time in milliseconds. Fields that are None are left
    out, and so is a line with no field left."""
    plans = _PLANS.get(sample.channel)
    data = sample.data
    if not plans or not isinstance(data, dict):
        return []
    stamp = f" {round(sample.ts * 1000)}"
    common = f",site={escape_tag(sample.site)},device={escape_tag(sample.device)}"
    out: list[str] = []
    for measurement, base, is_list, numbers, others, tags in plans:
        if base is None:
            items: Any = (data,)
        else:
            items = data.get(base)
            if items is None:
                continue
            if is_list:
                if not isinstance(items, list):
                    continue
            elif isinstance(items, dict):
                items = (items,)
            else:
                continue
        # Items whose labels are equal get an index label, from the 2nd on.
        seen: dict[str, int] | None = {} if len(items) > 1 else None
        for item in items:
            if not isinstance(item, dict):
                continue
            values = []
            for label, key in numbers:  # _number, inline
                value = item.get(key)
                if value is None:
                    continue
                kind = type(value)
                if kind is float:
                    if value - value == 0.0:  # finite: not nan, inf or -inf
                        values.append(f"{label}{value!r}")
                elif kind is int:
                    values.append(f"{label}{value}")
                elif kind is bool:
                    values.append(label + ("1" if value else "0"))
            for label, parts, convert in others:
                text = convert(_get(item, parts) if parts else None)
                if text is not None:
                    values.append(label + text)
            if not values:
                continue
            line_tags = common
            for label, key, parts in tags:
                value = item.get(key) if key is not None else _get(item, parts)
                if isinstance(value, str) and value:
                    line_tags += label + _escape_label(value)
            if seen is not None:
                count = seen[line_tags] = seen.get(line_tags, 0) + 1
                if count > 1:
                    line_tags += f",{INDEX_LABEL}={count}"
            out.append(f"{measurement}{line_tags} {','.join(values)}{stamp}")
    return out


# --- the document ---------------------------------------------------------------------

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "metrics-mapping.md"
BEGIN = "<!-- BEGIN GENERATED MAPPING: python -m collector.store.timeseries -->"
END = "<!-- END GENERATED MAPPING -->"
NOT_STORED_CELL = "not stored"


def _leaves(channel: str) -> list[str]:
    """Every protocol field of a channel that holds a value (not an object or a list
    of objects), in the order of the schema."""
    from cwatch.protocol.tables import _resolve, fields  # docs only

    schema = protocol.load_schema()
    data = _resolve(schema, schema["definitions"][channel]["properties"]["data"])
    paths = [row[0] for row in fields(schema, data)]
    return [path for path in paths
            if not any(other.startswith((path + ".", path + "[].")) for other in paths)]


def _metrics_of(group: Group, groups: tuple[Group, ...]) -> str:
    """`cwatch_disk_*`, or the metric names when another group shares the measurement."""
    if sum(other.measurement == group.measurement for other in groups) == 1:
        return f"`{group.measurement}_*`"
    return ", ".join(f"`{group.metric(field)}`" for field in group.fields)


def mapping_rows(channel: str) -> Iterator[tuple[str, str, str, str]]:
    """(protocol field, what it becomes, labels, notes) rows of one channel, as Markdown
    cells: a metric row names the metric and all its labels; a label row says which
    metrics the field is a label of; a field not stored says why. Every protocol field
    that holds a value has a row (KeyError otherwise)."""
    groups = GROUPS[channel]
    not_stored = NOT_STORED.get(channel, {})
    for path in _leaves(channel):
        rows = []
        for group in groups:
            labels = ", ".join(f"`{label}`" for label in group.labels())
            for field in group.fields:
                if field.source and group.path(field.source) == path:
                    rows.append((f"`{path}`", f"`{group.metric(field)}`", labels, field.note))
            for key, parts in group.tags:
                if group.path(".".join(parts)) == path:
                    rows.append((f"`{path}`", f"label `{key}` of {_metrics_of(group, groups)}",
                                 "", "left out when absent or empty"))
        if not rows:
            if path not in not_stored:
                raise KeyError(f"{channel} field {path} is neither mapped nor in NOT_STORED")
            rows.append((f"`{path}`", NOT_STORED_CELL, "", not_stored[path]))
        yield from rows
    for group in groups:
        labels = ", ".join(f"`{label}`" for label in group.labels())
        for field in group.fields:
            if not field.source:
                yield "—", f"`{group.metric(field)}`", labels, field.note


def render() -> str:
    out = [BEGIN, ""]
    for channel in GROUPS:
        out += [f"#### `{channel}`", "", "| field | metric | labels | notes |",
                "|---|---|---|---|"]
        out += ["| {} | {} | {} | {} |".format(*row) for row in mapping_rows(channel)]
        out.append("")
    out.append(END)
    return "\n".join(out)


def rewrite(doc_path: Path = DOC_PATH) -> bool:
    """Replace the generated part of the document; True when it changed."""
    text = doc_path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + render() + text[end:]
    if new != text:
        doc_path.write_text(new, encoding="utf-8")
    return new != text


# --- the writer -----------------------------------------------------------------------

# HTTP statuses that mean "not now" rather than "never": the batch is kept and retried.
# Any other 4xx means the data (or the request) was refused: the batch is dropped so
# that one bad line cannot block the stream.
RETRY_STATUSES = frozenset({401, 403, 404, 408, 425, 429})
DROP_REASONS = ("queue_full", "rejected", "shutdown", "spool_error")
ERROR_REASONS = ("unreachable", "http_error", "rejected")


class TimeSeriesWriter:
    """Queues lines on submit_many() (never waits for the network) and writes them from
    its own thread in batches with the SYNCHRONOUS write API of influxdb-client.

    With spool_dir the queue is on disk (collector/store/spool.py): lines are there when
    submit_many() returns, survive a kill and a restart, and are bounded by
    spool_max_bytes. Without it the queue is in memory, bounded by max_queue_lines."""

    def __init__(self, url: str, org: str, bucket: str, token: str = "",
                 registry: CollectorRegistry | None = None, *, batch_size: int = 5000,
                 flush_interval_s: float = 1.0, max_queue_lines: int = 2_000_000,
                 retry_initial_s: float = 0.5, retry_max_s: float = 30.0,
                 timeout_s: float = 30.0, spool_dir: str | Path | None = None,
                 spool_max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if batch_size < 1 or max_queue_lines < 1:
            raise ValueError("batch_size and max_queue_lines must be at least 1")
        self.url, self.org, self.bucket = url, org, bucket
        self._token = token
        self._batch_size = batch_size
        self._flush_interval = flush_interval_s
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._timeout_s = timeout_s
        self._cond = threading.Condition()
        self._flushers = 0  # flush() calls waiting: do not sit on a partial batch
        self._kicks = 0  # bumped by flush(): cut one backoff wait short
        self._stopping = False
        self._stop_deadline = math.inf
        self._thread: threading.Thread | None = None
        self._client: InfluxDBClient | None = None
        self._write_api: Any = None
        self._submit_log = RateLimitedLog(log, every_s=30.0)
        self._write_log = RateLimitedLog(log, every_s=30.0)

        self.registry = registry if registry is not None else CollectorRegistry()
        self.written = Counter(
            "cwatch_tsdb_lines_written", "Lines written to the time-series database",
            registry=self.registry)
        self.dropped = Counter(
            "cwatch_tsdb_lines_dropped",
            "Lines never written: queue_full (the queue or spool was full: oldest dropped), "
            "rejected (the database refused the batch with a 4xx), shutdown (still queued "
            "at stop, without a spool), spool_error (the spool could not be written or "
            "read)", ["reason"], registry=self.registry)
        self.errors = Counter(
            "cwatch_tsdb_write_errors",
            "Failed write requests: unreachable and http_error are retried, rejected is "
            "dropped", ["reason"], registry=self.registry)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for reason in ERROR_REASONS:
            self.errors.labels(reason)
        self._queue: Spool | MemoryQueue
        if spool_dir is None:
            self._queue = MemoryQueue(max_queue_lines, self._lost)
        else:
            try:
                self._queue = Spool(spool_dir, spool_max_bytes, self._lost)
            except SpoolError as exc:  # one line at start, as a config error is
                raise ConfigError(f"[tsdb] spool_dir: {exc}") from None
        self.queue_lines = Gauge(
            "cwatch_tsdb_queue_lines",
            "Lines waiting to be written (queued or spooled, and in flight)",
            registry=self.registry)
        self.queue_lines.set_function(lambda: self._queue.pending)
        self.spool_bytes = Gauge(
            "cwatch_tsdb_spool_bytes",
            "Bytes of the on-disk spool of lines waiting to be written (compressed; "
            "0 without a spool)", registry=self.registry)
        self.spool_bytes.set_function(lambda: self._queue.nbytes)
        self.write_seconds = Histogram(
            "cwatch_tsdb_write_seconds", "Duration of one write request (one batch)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry)

    @property
    def spool_dir(self) -> Path | None:
        return self._queue.path if isinstance(self._queue, Spool) else None

    # --- any thread --------------------------------------------------------------------

    def submit(self, sample: Sample) -> None:
        """Queue one sample's lines (see submit_many)."""
        self.submit_many((sample,))

    def submit_many(self, samples: Iterable[Sample]) -> None:
        """Queue the samples' lines; with a spool they are in the OS's hands (one
        write) when this returns. A full queue or spool drops the oldest lines."""
        chunks: list[tuple[int, str]] = []
        for sample in samples:
            try:
                lines = to_lines(sample)
            except Exception:  # a converter bug must not break the store worker
                if self._submit_log.warning("convert", "cannot convert a sample to lines"):
                    log.exception("%s sample from %s/%s", sample.channel, sample.site,
                                  sample.device)
                continue
            if lines:
                chunks.append((len(lines), "\n".join(lines)))
        if not chunks:
            return
        before = self._queue.waiting
        if self._stopping or not self._queue.append(chunks):
            self.dropped.labels("shutdown").inc(sum(count for count, _ in chunks))
            return
        if self._queue.waiting >= self._batch_size > before:
            with self._cond:
                self._cond.notify_all()  # a batch just filled up: no need to wait

    @property
    def queued_lines(self) -> int:
        """Lines not written yet (queued or spooled, and in flight)."""
        return self._queue.pending

    def start(self) -> None:
        if self._thread is not None:
            return
        self._queue.open()  # again, after a stop()
        self._client = InfluxDBClient(url=self.url, token=self._token or None, org=self.org,
                                      timeout=int(self._timeout_s * 1000))
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        with self._cond:
            self._stopping = False
            self._stop_deadline = math.inf
        self._thread = threading.Thread(target=self._run, name="cwatch-tsdb", daemon=True)
        self._thread.start()
        log.info("writing time series to %s (bucket %s)%s", self.url, self.bucket,
                 f", spool {self.spool_dir}" if self.spool_dir else "")

    def flush(self, timeout_s: float) -> bool:
        """Write what is queued now, without waiting for a full batch (and retry at once
        if the writer is backing off); True once nothing is left to write."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flushers += 1
            self._kicks += 1
            self._cond.notify_all()
            try:
                while self._queue.pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._thread is None:
                        return False
                    self._cond.wait(min(remaining, 0.5))
                return True
            finally:
                self._flushers -= 1

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what can be written within timeout_s, then stop. Without a spool the
        rest is counted as dropped (reason shutdown); with one it stays there for the
        next start (and a failed write is not retried: nothing is lost by leaving)."""
        thread = self._thread
        with self._cond:
            self._stopping = True
            self._stop_deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout_s + 1.0)
            if thread.is_alive():  # a write request outlived the deadline
                log.warning("time-series writer still busy after %g s; leaving it", timeout_s)
                return
        self._thread = None
        left = self._queue.close()
        with self._cond:
            self._cond.notify_all()
        if left and self._queue.durable:
            log.info("%d time-series lines stay in the spool %s for the next start", left,
                     self.spool_dir)
        elif left:
            self.dropped.labels("shutdown").inc(left)
            log.warning("%d time-series lines not written at stop", left)
        if self._client is not None:
            self._client.close()
            self._client = None

    def _lost(self, reason: str, lines: int, message: str) -> None:
        """The queue dropped lines for good (or found a damaged spool file)."""
        if lines:
            self.dropped.labels(reason).inc(lines)
        if reason == "queue_full":  # may happen at every batch while full
            self._submit_log.warning(reason, message)
        else:
            log.warning("%s", message)

    # --- writer thread -----------------------------------------------------------------

    def _take(self) -> Taken | None | bool:
        """Wait for a full batch (or flush_interval, a flush() or stop), then take up to
        batch_size lines, whole samples only. None: stop now; False: nothing yet."""
        queue = self._queue
        with self._cond:
            deadline = time.monotonic() + self._flush_interval
            while not (self._stopping or queue.waiting >= self._batch_size
                       or (self._flushers and queue.waiting)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if queue.waiting:
                        break
                    remaining = self._flush_interval  # idle: wait for the first line
                    deadline = time.monotonic() + remaining
                self._cond.wait(remaining)
            if self._stopping and (not queue.waiting or self._past_stop_deadline()):
                return None
        # Outside the lock: reading the spool is disk I/O.
        taken = queue.take(self._batch_size)
        if taken is None:  # lines counted but none readable (a skipped bad segment)
            with self._cond:
                self._cond.wait(0.05)  # do not spin
            return False
        return taken

    def _run(self) -> None:
        backoff = self._retry_initial
        failures = 0
        batch: Taken | None = None
        while True:
            if batch is None:
                taken = self._take()
                if taken is None:
                    return
                if taken is False:
                    continue
                batch = taken
            outcome = self._write(batch)
            if outcome != "retry":
                if failures and outcome == "ok":
                    log.info("time-series writes resumed after %d failed attempts", failures)
                self._queue.done(batch)
                with self._cond:
                    self._cond.notify_all()
                batch, backoff, failures = None, self._retry_initial, 0
                continue
            failures += 1
            with self._cond:
                # Back off; a flush() or a stop() cuts the wait short (one retry at once),
                # and nothing waits past the stop deadline.
                kicks, stopping = self._kicks, self._stopping
                wait_until = time.monotonic() + backoff * random.uniform(0.8, 1.2)
                while (self._kicks == kicks and self._stopping == stopping
                       and not (self._stopping and self._queue.durable)):
                    remaining = min(wait_until, self._stop_deadline) - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping and self._queue.durable:
                    self._queue.release(batch)  # it stays in the spool: no retry at stop
                    self._cond.notify_all()
                    return
                if self._past_stop_deadline():
                    self.dropped.labels("shutdown").inc(self._queue.release(batch))
                    self._cond.notify_all()
                    return
            backoff = min(backoff * 2, self._retry_max)

    def _past_stop_deadline(self) -> bool:
        return self._stopping and time.monotonic() >= self._stop_deadline

    def _write(self, batch: Taken) -> str:
        """'ok', 'retry' (batch kept) or 'dropped'."""
        lines = batch.lines
        started = time.perf_counter()
        try:
            self._write_api.write(bucket=self.bucket, org=self.org, record=batch.body,
                                  write_precision=WritePrecision.MS)
        except ApiException as exc:
            self.write_seconds.observe(time.perf_counter() - started)
            status = exc.status or 0
            body = exc.body or exc.reason or ""
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            body = str(body).strip().replace("\n", " ")[:300]
            if 400 <= status < 500 and status not in RETRY_STATUSES:
                self.errors.labels("rejected").inc()
                self.dropped.labels("rejected").inc(lines)
                self._write_log.warning(
                    "rejected", f"time-series database refused a batch of {lines} lines "
                                f"(HTTP {status}: {body}); dropped it. First line: "
                                f"{_first_line(batch.body)[:300]}")
                return "dropped"
            self.errors.labels("http_error").inc()
            self._write_log.warning(
                "http_error", f"time-series write to {self.url} failed (HTTP {status}: "
                              f"{body}); {self.queued_lines} lines waiting, retrying")
            return "retry"
        except Exception as exc:  # connection refused, timeout, reset, DNS, ...
            self.write_seconds.observe(time.perf_counter() - started)
            self.errors.labels("unreachable").inc()
            self._write_log.warning(
                "unreachable", f"time-series database {self.url} unreachable "
                               f"({type(exc).__name__}: {str(exc)[:200]}); "
                               f"{self.queued_lines} lines waiting, retrying with backoff")
            return "retry"
        self.write_seconds.observe(time.perf_counter() - started)
        self.written.inc(lines)
        return "ok"


def _first_line(body: bytes) -> str:
    return body.partition(b"\n")[0].decode("utf-8", "replace")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOC_PATH
    print("{} {}".format(target, "updated" if rewrite(target) else "already up to date"))
