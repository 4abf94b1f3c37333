"""Samples -> line protocol -> a real VictoriaMetrics: names, labels, escaping, numbers
only, backfill at the samples' own time, outages, the queue bound, the mapping doc."""

from __future__ import annotations

import copy
import http.server
import random
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import samples
from prometheus_client import CollectorRegistry

from collector.ingest import Decoder, Sample
from collector.store import timeseries
from collector.store.timeseries import TimeSeriesWriter, to_lines
from cwatch import protocol
from cwatch.procs import free_port
from cwatch.tsdb_proc import VictoriaMetrics

ROOT = Path(__file__).resolve().parents[1]
SITE, DEVICE = samples.SITE, samples.DEVICE
DAY = 86_400.0
DECODER = Decoder()
NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

# --- helpers --------------------------------------------------------------------------


def decode(channel: str, env: dict[str, Any] | None = None, ts: float | None = None
           ) -> list[Sample]:
    """Real samples: the envelope goes through the collector's decoder."""
    env = env if env is not None else samples.envelope(channel, ts=ts)
    decoded = DECODER.decode(samples.topic(channel), protocol.encode(env))
    assert not decoded.rejections, decoded.rejections
    return decoded.samples


def one(channel: str, data: dict[str, Any] | None = None, ts: float | None = None) -> Sample:
    env = samples.envelope(channel, ts=ts)
    if data is not None:
        env["data"] = data
    [sample] = decode(channel, env)
    return sample


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` unless backslash-escaped (escapes kept)."""
    parts, current, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if text[i] == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(text[i])
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\([ ,=\\])", r"\1", text)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float], int]:
    """(measurement, tags, fields, ts_ms); fails on anything but numeric fields."""
    assert "\n" not in line and '"' not in line.split(" ")[-2], line
    sections = _split(line, " ")
    assert len(sections) == 3, line
    head, body, stamp = sections
    measurement, *tag_parts = _split(head, ",")
    tags = {}
    for part in tag_parts:
        key, value = _split(part, "=")
        assert key and value, line
        assert _unescape(key) not in tags, f"label {key} twice: {line}"
        tags[_unescape(key)] = _unescape(value)
    fields = {}
    for part in _split(body, ","):
        key, value = part.split("=")
        assert NUMBER.fullmatch(value), f"field {key}={value} is not a plain number: {line}"
        fields[key] = float(value)
    assert fields, line
    return measurement, tags, fields, int(stamp)


def points(lines: list[str]) -> dict[tuple[str, frozenset], tuple[float, int]]:
    """{(metric name, labels as VictoriaMetrics stores them): (value, ts_ms)}."""
    out = {}
    for line in lines:
        measurement, tags, fields, stamp = parse_line(line)
        for key, value in fields.items():
            out[(f"{measurement}_{key}", frozenset(tags.items()))] = (value, stamp)
    return out


def value(lines: list[str], metric: str, **labels: str) -> float:
    found = [v for (name, tags), (v, _) in points(lines).items()
             if name == metric and set(labels.items()) <= tags]
    assert len(found) == 1, f"{metric} {labels}: {found}"
    return found[0]


def names(lines: list[str]) -> set[str]:
    return {name for name, _ in points(lines)}


def full_samples(ts: float | None = None) -> list[Sample]:
    """Every channel (batch included), plus an NVMe disk and failed probes, so that every
    mapped field has a value somewhere."""
    out = [s for ch in ("metrics", "probe", "inventory", "status", "batch")
           for s in decode(ch, ts=ts)]
    data = samples.metrics_data()
    data["smart"].append({"device": "/dev/nvme0", "model": "Samsung SSD 970", "protocol": "nvme",
                          "passed": False, "temperature_c": 41.0, "nvme_percentage_used": 3,
                          "nvme_available_spare_percent": 100, "nvme_media_errors": 0,
                          "nvme_critical_warning": 0})
    out.append(one("metrics", data, ts=None if ts is None else ts + 1))
    return out


def counter(writer: TimeSeriesWriter, name: str, **labels: str) -> float:
    return writer.registry.get_sample_value(name, labels) or 0.0


def new_writer(url: str, **kwargs: Any) -> TimeSeriesWriter:
    kwargs.setdefault("flush_interval_s", 0.05)
    kwargs.setdefault("retry_initial_s", 0.1)
    kwargs.setdefault("retry_max_s", 0.5)
    return TimeSeriesWriter(url, "cwatch", "cwatch", "", CollectorRegistry(), **kwargs)


def stored(vm: VictoriaMetrics) -> dict[tuple[str, frozenset], list[tuple[float, int]]]:
    """{(metric, labels): [(value, ts_ms), ...]} of everything VictoriaMetrics holds."""
    out = {}
    for series in vm.export():
        labels = dict(series["metric"])
        name = labels.pop("__name__")
        out[(name, frozenset(labels.items()))] = sorted(
            zip(series["values"], series["timestamps"], strict=True), key=lambda p: p[1])
    return out


# --- to_lines -------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["metrics", "probe", "inventory", "status", "batch"])
def test_every_channel_gives_numeric_lines_at_the_sample_time(channel: str) -> None:
    decoded = decode(channel, ts=1_795_737_464.184)
    assert decoded
    for sample in decoded:
        lines = to_lines(sample)
        assert lines, sample.channel
        for line in lines:
            measurement, tags, fields, stamp = parse_line(line)
            assert measurement.startswith("cwatch_")
            assert (tags["site"], tags["device"]) == (SITE, DEVICE)
            assert stamp == round(sample.ts * 1000)  # milliseconds, sub-second kept
    if channel == "metrics":
        assert to_lines(decoded[0])[0].endswith(" 1795737464184")


def test_values_labels_and_conversions() -> None:
    metrics = to_lines(one("metrics"))
    assert value(metrics, "cwatch_host_cpu_percent") == 37.5
    assert value(metrics, "cwatch_host_mem_total_bytes") == 4_294_967_296
    assert value(metrics, "cwatch_host_boot_ts") == 1_790_000_000
    assert value(metrics, "cwatch_disk_used_percent", mount="C:\\", fstype="NTFS") == 80.0
    assert value(metrics, "cwatch_diskio_busy_percent", disk="PhysicalDrive0") == 35.0
    assert value(metrics, "cwatch_net_rx_drops_per_s", iface="Ethernet") == 0.1
    assert value(metrics, "cwatch_temp_c", sensor="coretemp", label="Package id 0") == 61.0
    assert value(metrics, "cwatch_fan_rpm", sensor="dell_smm", label="CPU fan") == 2100
    assert value(metrics, "cwatch_battery_plugged") == 1
    assert value(metrics, "cwatch_smart_passed", disk="/dev/sda", protocol="ata",
                 model="ST500DM002-1BD142") == 1
    assert value(metrics, "cwatch_agent_rss_bytes") == 24_000_000

    probe = to_lines(one("probe"))
    assert value(probe, "cwatch_probe_rtt_avg_ms", target="portal", kind="portal",
                 method="http") == 48.2
    assert value(probe, "cwatch_probe_up", target="portal") == 1
    assert value(probe, "cwatch_throughput_mbit_per_s") == 5.0
    assert value(probe, "cwatch_throughput_up") == 1

    inventory = to_lines(one("inventory"))
    assert value(inventory, "cwatch_inventory_ram_bytes") == 4_294_967_296
    assert value(inventory, "cwatch_inventory_cpu_cores") == 2
    assert value(inventory, "cwatch_inventory_cpu_threads") == 4
    assert value(inventory, "cwatch_inventory_tpm_version") == 1.2
    assert value(inventory, "cwatch_inventory_uefi") == 0
    assert value(inventory, "cwatch_inventory_secure_boot") == 0
    assert value(inventory, "cwatch_inventory_bios_date_ts") == 1_401_926_400  # 2014-06-05
    assert value(inventory, "cwatch_inventory_info", os_name="Windows", os_version="10",
                 cpu_model="Intel(R) Core(TM) i3-4150 CPU @ 3.50GHz", bios_date="2014-06-05",
                 role="service-counter", location="Bộ phận một cửa, quầy 2") == 1
    # The numbers do not carry the text labels: an OS upgrade does not split their series.
    [(_, ram_labels)] = [k for k in points(inventory) if k[0] == "cwatch_inventory_ram_bytes"]
    assert dict(ram_labels) == {"site": SITE, "device": DEVICE}

    assert value(to_lines(one("status")), "cwatch_status_online") == 1
    offline = to_lines(one("status", {"state": "offline"}))
    assert points(offline) == {
        ("cwatch_status_online", frozenset({("site", SITE), ("device", DEVICE)})):
            (0.0, parse_line(offline[0])[3])}


def test_failures_and_odd_values() -> None:
    data = samples.probe_data()
    data["targets"][0].update(error="timeout", received=0, loss_percent=100.0,
                              rtt_avg_ms=None, http_status=None)
    data["throughput"].update(error="refused", mbit_per_s=None, bytes=None)
    probe = to_lines(one("probe", data))
    assert value(probe, "cwatch_probe_up") == 0
    assert value(probe, "cwatch_probe_loss_percent") == 100.0
    assert {"cwatch_probe_rtt_avg_ms", "cwatch_probe_http_status", "cwatch_throughput_bytes",
            "cwatch_throughput_mbit_per_s"}.isdisjoint(names(probe))
    assert value(probe, "cwatch_throughput_up") == 0

    inv = samples.inventory_data()
    for version, expected in (("2.0", 2.0), ("2.0, 0, 1.38", 2.0), ("1.2", 1.2), ("2", 2.0),
                              ("unknown", None), (None, None)):
        inv["tpm"]["version"] = version
        inv["firmware"], inv["secure_boot"] = "uefi", True
        lines = to_lines(one("inventory", inv))
        assert value(lines, "cwatch_inventory_uefi") == 1
        assert value(lines, "cwatch_inventory_secure_boot") == 1
        if expected is None:
            assert "cwatch_inventory_tpm_version" not in names(lines)
        else:
            assert value(lines, "cwatch_inventory_tpm_version") == expected


def test_none_and_missing_values_write_nothing() -> None:
    lines = to_lines(one("metrics"))
    # The sample SATA disk has no NVMe values (null): no series for them.
    assert not {n for n in names(lines) if n.startswith("cwatch_smart_nvme")}
    data = {"interval_s": 60, "cpu_percent": None, "battery": None,
            "disks": [{"mount": "/", "total_bytes": None, "used_bytes": None,
                       "used_percent": None}],
            "temperatures": [{"sensor": "acpitz", "temp_c": 40.0}]}
    lines = to_lines(one("metrics", data))
    assert names(lines) == {"cwatch_host_interval_s", "cwatch_temp_c"}
    # A label that is absent is left out, not written empty.
    assert value(lines, "cwatch_temp_c", sensor="acpitz") == 40.0
    assert "label=" not in lines[1]
    minimal = to_lines(one("inventory", {"hostname": "PC1", "os": {"name": "Windows"}}))
    assert names(minimal) == {"cwatch_inventory_info"}


def test_items_with_equal_labels_get_an_index() -> None:
    data = {"interval_s": 60, "temperatures": [
        {"sensor": "acpitz", "temp_c": 40.0}, {"sensor": "acpitz", "temp_c": 45.0},
        {"sensor": "acpitz", "temp_c": 50.0}, {"sensor": "coretemp", "temp_c": 60.0}]}
    temps = {tags: v for (name, tags), (v, _) in points(to_lines(one("metrics", data))).items()
             if name == "cwatch_temp_c"}
    base = {("site", SITE), ("device", DEVICE)}
    assert temps == {
        frozenset(base | {("sensor", "acpitz")}): 40.0,
        frozenset(base | {("sensor", "acpitz"), ("index", "2")}): 45.0,
        frozenset(base | {("sensor", "acpitz"), ("index", "3")}): 50.0,
        frozenset(base | {("sensor", "coretemp")}): 60.0}


HARD_LABELS = ["C:\\", "/mnt/my disk", "/srv/a,b=c", "/mnt/ổ đĩa dữ liệu (Ủy ban xã)",
               "\\\\server\\share ", "x\\", "=", ","]


def test_escaping_of_label_values() -> None:
    data = {"interval_s": 60, "disks": [
        {"mount": mount, "fstype": "ext4", "total_bytes": 1, "used_bytes": 1,
         "used_percent": float(i)} for i, mount in enumerate(HARD_LABELS)]}
    lines = to_lines(one("metrics", data))
    assert len(lines) == 1 + len(HARD_LABELS)
    got = {dict(tags)["mount"]: v for (name, tags), (v, _) in points(lines).items()
           if name == "cwatch_disk_used_percent"}
    assert got == {mount: float(i) for i, mount in enumerate(HARD_LABELS)}
    assert ",mount=C:\\\\,fstype=ext4 " in lines[1]
    assert ",mount=/srv/a\\,b\\=c,fstype" in lines[3]
    assert ",mount=/mnt/ổ\\ đĩa\\ dữ\\ liệu\\ (Ủy\\ ban\\ xã)," in lines[4]  # UTF-8 kept
    # A newline or tab would end or break the line: it becomes an (escaped) space.
    text = timeseries.escape_tag("a\nb\tc\rd")
    assert text == "a\\ b\\ c\\ d" and "\n" not in text


def _set_every_leaf(data: Any, make: Any) -> None:
    if isinstance(data, dict):
        for key, item in data.items():
            if isinstance(item, dict | list):
                _set_every_leaf(item, make)
            else:
                data[key] = make()
    elif isinstance(data, list):
        for i, item in enumerate(data):
            if isinstance(item, dict | list):
                _set_every_leaf(item, make)
            else:
                data[i] = make()


@pytest.mark.parametrize("channel", ["metrics", "probe", "inventory", "status"])
def test_no_string_field_ever(channel: str) -> None:
    """Even with text in every field (not valid protocol, but the code must not care),
    fields stay numbers: text becomes a label or nothing."""
    data = samples.DATA[channel]()
    _set_every_leaf(data, lambda: 'text "quoted", a=b')
    sample = Sample(SITE, DEVICE, channel, time.time(), 1, data)
    for line in to_lines(sample):
        parse_line(line)  # asserts every field value is a plain number
    for line in to_lines(one(channel)):
        parse_line(line)
    _set_every_leaf(data, lambda: float("nan"))
    for line in to_lines(Sample(SITE, DEVICE, channel, time.time(), 1, data)):
        assert "nan" not in line.split(" ")[1]


# --- to_lines against a plain reading of GROUPS ---------------------------------------
# to_lines runs from a plan compiled out of GROUPS (for speed); the reference below is
# the straightforward reading of the table it replaced. Both must give the same bytes
# for the fixtures and for odd data: text or bools in number fields, NaN and infinities,
# null or missing objects and lists, items that are not objects, duplicate labels.


def _reference_get(obj: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _reference_items(data: dict[str, Any], base: str) -> list[Any]:
    if not base:
        return [data]
    if base.endswith("[]"):
        items = data.get(base[:-2])
        return items if isinstance(items, list) else []
    item = data.get(base)
    return [item] if isinstance(item, dict) else []


def reference_to_lines(sample: Sample) -> list[str]:
    def escape(text: str) -> str:
        return text.translate(timeseries._ESCAPE_TAG)

    groups = timeseries.GROUPS.get(sample.channel)
    if not groups or not isinstance(sample.data, dict):
        return []
    stamp = f" {round(sample.ts * 1000)}"
    common = f",site={escape(sample.site)},device={escape(sample.device)}"
    out: list[str] = []
    for group in groups:
        seen: dict[str, int] = {}
        for item in _reference_items(sample.data, group.base):
            if not isinstance(item, dict):
                continue
            values = []
            for field in group.fields:
                value = field.convert(_reference_get(item, field.parts) if field.parts else None)
                if value is not None:
                    values.append(f"{field.key}={value}")
            if not values:
                continue
            tags = common
            for key, parts in group.tags:
                value = _reference_get(item, parts)
                if isinstance(value, str) and value:
                    tags += f",{key}={escape(value)}"
            if group.base.endswith("[]"):
                count = seen[tags] = seen.get(tags, 0) + 1
                if count > 1:
                    tags += f",{timeseries.INDEX_LABEL}={count}"
            out.append(f"{group.measurement}{tags} {','.join(values)}{stamp}")
    return out


def _outcome(convert: Any, sample: Sample) -> tuple[str, Any]:
    try:
        return "lines", convert(sample)
    except Exception as exc:  # e.g. an int too long to print: the same for both
        return "error", type(exc).__name__


ODD_VALUES: list[Any] = [
    None, 0, 1, -7, 60, 2**53 + 1, 10**30, -(10**20), True, False, 0.0, -0.0, 0.1, -2.5,
    1e-320, 1.7976931348623157e308, 1e16, 123456789.125, float("nan"), float("inf"),
    float("-inf"), "", "60", "2.0", "2.0, 0, 1.38", "uefi", "bios", "online", "offline",
    "2014-06-05", "2014-02-30", "C:\\", "a b,c=d", "x\\", "tab\there", "new\nline\r",
    "Bộ phận một cửa", "=", ",", {}, [], {"x": 1}, [1, 2.5], [{}], [None]]


def _odd(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(ODD_VALUES))


def _mutate(data: Any, rng: random.Random) -> Any:
    """A copy of `data` with leaves replaced by odd values, keys dropped, list items
    duplicated (equal labels), non-objects put in lists, whole objects replaced."""
    if isinstance(data, dict):
        out = {}
        for key, item in data.items():
            roll = rng.random()
            if roll < 0.08:
                continue  # missing
            if roll < 0.25:
                out[key] = _odd(rng)
            else:
                out[key] = _mutate(item, rng)
        return out
    if isinstance(data, list):
        out_list = [_mutate(item, rng) for item in data]
        for _ in range(rng.randrange(3)):
            if out_list and rng.random() < 0.6:  # a twin: often the same labels
                twin = copy.deepcopy(rng.choice(out_list))
                out_list.insert(rng.randrange(len(out_list) + 1),
                                _mutate(twin, rng) if rng.random() < 0.5 else twin)
            else:
                out_list.insert(rng.randrange(len(out_list) + 1), _odd(rng))
        return out_list
    return _odd(rng) if rng.random() < 0.3 else data


SITES = [SITE, "site-001", "a b", "x,y=z\\", "xã Ổ", ""]
STAMPS = [1_795_737_464.184, 1_795_737_464.0005, 1_795_737_464.0015, 0.0, 12.5]


def test_to_lines_gives_the_same_bytes_as_the_plain_reading_of_the_table() -> None:
    base = full_samples(ts=1_795_737_464.184)
    hand_made = [
        Sample(SITE, DEVICE, "probe", 1.0, 1, {"throughput": {}}),  # up=1, no other field
        Sample(SITE, DEVICE, "probe", 1.0, 1, {"targets": [{}, {"name": "a"}, {}],
                                              "throughput": None}),
        Sample(SITE, DEVICE, "inventory", 1.0, 1, {"os": None, "cpu": {"model": None},
                                                  "tpm": "2.0", "bios": {"date": 5}}),
        Sample(SITE, DEVICE, "metrics", 1.0, 1, {"disks": {"mount": "/"}, "agent": [],
                                                "battery": {}, "net": "eth0"}),
        Sample(SITE, DEVICE, "metrics", 1.0, 1, {"temperatures": [
            {"sensor": "acpitz", "temp_c": 40.0}, {"sensor": "acpitz", "temp_c": None},
            {"sensor": "acpitz", "temp_c": 45.0}, "acpitz", None,
            {"sensor": "acpitz", "label": "", "temp_c": 50.0}]}),
        Sample(SITE, DEVICE, "metrics", 1.0, 1, []),  # not an object
        Sample(SITE, DEVICE, "nonsense", 1.0, 1, {"cpu_percent": 1.0}),
    ]
    checked = 0
    for sample in base + hand_made:
        assert _outcome(to_lines, sample) == _outcome(reference_to_lines, sample), sample
        checked += 1
    for seed in range(40):
        rng = random.Random(seed)
        for sample in base:
            for _ in range(6):
                odd = Sample(rng.choice(SITES), rng.choice(SITES), sample.channel,
                             rng.choice(STAMPS), 1, _mutate(sample.data, rng))
                assert _outcome(to_lines, odd) == _outcome(reference_to_lines, odd), \
                    f"seed {seed}: {odd}"
                checked += 1
    assert checked > 1000


# --- the mapping document -------------------------------------------------------------


def _doc() -> str:
    return (ROOT / "docs" / "metrics-mapping.md").read_text(encoding="utf-8")


def _doc_rows() -> list[tuple[str, str, str, str]]:
    """(channel, field, metric cell, labels cell) of every table row of the document."""
    rows, channel = [], None
    for line in _doc().splitlines():
        heading = re.fullmatch(r"#### `(\w+)`", line)
        if heading:
            channel = heading.group(1)
        elif channel and line.startswith("| ") and not line.startswith(("| field", "|---")):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows.append((channel, cells[0].strip("`"), cells[1], cells[2]))
        elif line.startswith("## "):
            channel = None
    return rows


def test_doc_tables_are_generated_from_the_code() -> None:
    doc = _doc()
    generated = doc[doc.index(timeseries.BEGIN):doc.index(timeseries.END) + len(timeseries.END)]
    assert generated == timeseries.render(), "run: python -m collector.store.timeseries"


def test_doc_names_exactly_what_to_lines_writes() -> None:
    documented = set()
    for _channel, _field, metric, labels in _doc_rows():
        if re.fullmatch(r"`cwatch_\w+`", metric):
            documented.add((metric.strip("`"),
                            frozenset(label.strip("`") for label in labels.split(", "))))
    written = set()
    for sample in full_samples():
        for name, tags in points(to_lines(sample)):
            written.add((name, frozenset(key for key, _ in tags)))
    assert written == documented


def test_doc_lists_every_protocol_field() -> None:
    from cwatch.protocol.tables import fields

    schema = protocol.load_schema()
    by_channel: dict[str, set[str]] = {}
    for channel, field, _, _ in _doc_rows():
        by_channel.setdefault(channel, set()).add(field)
    for channel in ("metrics", "probe", "inventory", "status"):
        data = schema["definitions"][f"{channel}_data"]
        paths = [row[0] for row in fields(schema, data)]
        leaves = {p for p in paths if not any(o.startswith((p + ".", p + "[]."))
                                              for o in paths)}
        assert leaves <= by_channel[channel], f"{channel}: {leaves - by_channel[channel]}"
        assert by_channel[channel] - leaves <= {"—"}
    # A label row names a label that the metric rows it points to really list.
    metric_labels = {metric.strip("`"): labels.replace("`", "").split(", ")
                     for _, _, metric, labels in _doc_rows()
                     if re.fullmatch(r"`cwatch_\w+`", metric)}
    for _channel, field, cell, _ in _doc_rows():
        match = re.fullmatch(r"label `(\w+)` of (.+)", cell)
        if match:
            label, targets = match.groups()
            for target in re.findall(r"`(cwatch_\w+?(?:_\*)?)`", targets):
                metrics = ([m for m in metric_labels if m.startswith(target[:-1])]
                           if target.endswith("*") else [target])
                assert metrics, f"{field}: {target}"
                for metric in metrics:
                    assert label in metric_labels[metric], f"{field}: {metric}"


# --- against a real VictoriaMetrics ---------------------------------------------------


def test_backfilled_samples_land_at_their_own_time(
        victoria_metrics: VictoriaMetrics, writers: list[TimeSeriesWriter]) -> None:
    vm = victoria_metrics
    writer = new_writer(vm.url)
    writers.append(writer)
    writer.start()
    t0 = round(time.time() - 3 * DAY, 3) + 0.123
    all_samples = full_samples(ts=t0)
    for k in range(3):  # a minute apart, as an agent's offline queue sends them
        data = samples.metrics_data()
        data["cpu_percent"] = 10.0 + k
        all_samples.append(one("metrics", data, ts=t0 + 600 + 60 * k))
    for sample in all_samples:
        writer.submit(sample)
    assert writer.flush(10)
    expected_lines = [line for sample in all_samples for line in to_lines(sample)]
    assert counter(writer, "cwatch_tsdb_lines_written_total") == len(expected_lines)
    assert counter(writer, "cwatch_tsdb_write_errors_total", reason="unreachable") == 0

    # PromQL at the original time, with exactly the documented names and labels.
    [series] = vm.query(f'cwatch_host_cpu_percent{{site="{SITE}"}}', time=t0)
    assert series["metric"] == {"__name__": "cwatch_host_cpu_percent", "site": SITE,
                                "device": DEVICE}
    assert series["value"] == [pytest.approx(t0), "37.5"]
    [series] = vm.query_range(f'cwatch_host_cpu_percent{{device="{DEVICE}"}}',
                              t0 + 600, t0 + 720, 60)
    assert [(round(ts - t0), float(v)) for ts, v in series["values"]] == [
        (600, 10.0), (660, 11.0), (720, 12.0)]
    [info] = vm.query('cwatch_inventory_info{location="Bộ phận một cửa, quầy 2"}', time=t0)
    assert info["metric"]["cpu_model"] == "Intel(R) Core(TM) i3-4150 CPU @ 3.50GHz"
    [disk] = vm.query('cwatch_disk_used_percent{mount="C:\\\\"}', time=t0)
    assert disk["value"][1] == "80"
    assert vm.query("cwatch_host_cpu_percent") == []  # nothing at "now": it is backfill

    # Everything stored equals everything to_lines produced: names, labels, values, times.
    expected: dict[tuple[str, frozenset], list[tuple[float, int]]] = {}
    for key, point in ((key, point) for line in expected_lines
                       for key, point in points([line]).items()):
        expected.setdefault(key, []).append(point)
    assert stored(vm) == {key: sorted(set(v), key=lambda p: p[1]) for key, v in expected.items()}
    assert set(vm.metric_names()) == {name for name, _ in expected}


def test_writer_survives_the_database_being_down(
        tmp_path: Path, writers: list[TimeSeriesWriter]) -> None:
    vm = VictoriaMetrics(tmp_path / "vm").start()
    try:
        writer = new_writer(vm.url)
        writers.append(writer)
        writer.start()
        t0 = time.time() - DAY
        writer.submit(one("status", ts=t0))
        assert writer.flush(10)

        vm.stop()
        offline = [one("status", {"state": "online", "interval_s": 60}, ts=t0 + 60 * (k + 1))
                   for k in range(50)] + full_samples(ts=t0 + 3600)
        for sample in offline:
            writer.submit(sample)
        lines = sum(len(to_lines(s)) for s in offline)
        deadline = time.monotonic() + 10
        while counter(writer, "cwatch_tsdb_write_errors_total", reason="unreachable") < 2:
            assert time.monotonic() < deadline, "no write error counted"
            time.sleep(0.05)
        assert not writer.flush(0.3)
        assert counter(writer, "cwatch_tsdb_queue_lines") == lines

        vm.start()  # same port, same data folder
        assert writer.flush(15)
        assert counter(writer, "cwatch_tsdb_queue_lines") == 0
        assert counter(writer, "cwatch_tsdb_lines_written_total") == 1 + lines
        assert sum(counter(writer, "cwatch_tsdb_lines_dropped_total", reason=r)
                   for r in timeseries.DROP_REASONS) == 0
        [series] = vm.export('{__name__="cwatch_status_online"}')
        assert len(series["timestamps"]) == 1 + 50 + 1  # before, during, full_samples'
        fields = sum(len(parse_line(line)[2]) for s in [one("status"), *offline]
                     for line in to_lines(s))
        assert sum(len(v) for v in stored(vm).values()) == fields
    finally:
        vm.stop()


def test_queue_bound_drops_the_oldest_and_counts(
        victoria_metrics: VictoriaMetrics, writers: list[TimeSeriesWriter]) -> None:
    writer = new_writer(victoria_metrics.url, max_queue_lines=5)
    writers.append(writer)
    t0 = time.time() - 2 * DAY
    for k in range(8):  # one line each; the writer is not started yet
        writer.submit(one("status", {"state": "online"}, ts=t0 + k))
    assert counter(writer, "cwatch_tsdb_queue_lines") == 5
    assert counter(writer, "cwatch_tsdb_lines_dropped_total", reason="queue_full") == 3
    writer.submit(one("metrics", ts=t0 + 10))  # 9 lines > 5: drops everything older, itself too
    assert counter(writer, "cwatch_tsdb_queue_lines") == 0
    assert counter(writer, "cwatch_tsdb_lines_dropped_total", reason="queue_full") == 3 + 5 + 9
    for k in range(8, 11):
        writer.submit(one("status", {"state": "online"}, ts=t0 + k))
    writer.start()
    assert writer.flush(10)
    [series] = victoria_metrics.export('{__name__="cwatch_status_online"}')
    assert [round(ts / 1000 - t0) for ts in series["timestamps"]] == [8, 9, 10]


def test_a_refused_batch_is_dropped_and_counted(
        victoria_metrics: VictoriaMetrics, writers: list[TimeSeriesWriter]) -> None:
    # A wrong path: VictoriaMetrics answers 400, as InfluxDB does for bad data.
    writer = new_writer(victoria_metrics.url + "/wrong")
    writers.append(writer)
    writer.start()
    sample = one("metrics")
    writer.submit(sample)
    assert writer.flush(5)  # not stuck retrying
    assert counter(writer, "cwatch_tsdb_write_errors_total", reason="rejected") == 1
    assert counter(writer, "cwatch_tsdb_lines_dropped_total", reason="rejected") == len(
        to_lines(sample))
    assert counter(writer, "cwatch_tsdb_lines_written_total") == 0


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """503 for the first `failures` writes, then 204; keeps the bodies."""

    failures = 2
    bodies: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        cls = type(self)
        if cls.failures > 0:
            cls.failures -= 1
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"busy")
            return
        cls.bodies.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_server_errors_are_retried_with_the_batch_kept(
        writers: list[TimeSeriesWriter]) -> None:
    handler = type("Handler", (_FlakyHandler,), {"failures": 2, "bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        writer = new_writer(f"http://127.0.0.1:{server.server_port}")
        writers.append(writer)
        writer.start()
        sample = one("metrics")
        writer.submit(sample)
        assert writer.flush(10)
        assert counter(writer, "cwatch_tsdb_write_errors_total", reason="http_error") == 2
        assert handler.bodies == ["\n".join(to_lines(sample))]
        assert writer.registry.get_sample_value("cwatch_tsdb_write_seconds_count") == 3
    finally:
        server.shutdown()
        server.server_close()


def test_submit_is_cheap_while_the_database_is_down(writers: list[TimeSeriesWriter]) -> None:
    writer = new_writer(f"http://127.0.0.1:{free_port()}", batch_size=50)
    writers.append(writer)
    writer.start()
    batch = decode("batch")
    started = time.perf_counter()
    for _ in range(500):
        for sample in batch:
            writer.submit(sample)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"1500 submits took {elapsed:.2f} s"
    assert counter(writer, "cwatch_tsdb_queue_lines") == 500 * sum(
        len(to_lines(s)) for s in batch)


def test_stop_writes_what_is_queued_then_refuses(
        victoria_metrics: VictoriaMetrics, writers: list[TimeSeriesWriter]) -> None:
    writer = new_writer(victoria_metrics.url, flush_interval_s=30)
    writer.start()
    sample = one("metrics", ts=time.time() - DAY)
    writer.submit(sample)
    writer.stop(timeout_s=5)
    assert counter(writer, "cwatch_tsdb_lines_written_total") == len(to_lines(sample))
    assert len(victoria_metrics.export('{__name__="cwatch_host_cpu_percent"}')) == 1
    writer.submit(sample)
    assert counter(writer, "cwatch_tsdb_lines_dropped_total", reason="shutdown") == len(
        to_lines(sample))

    # Database down and the writer in a long backoff: stop() still keeps to its timeout.
    down = new_writer(f"http://127.0.0.1:{free_port()}", retry_initial_s=20, retry_max_s=30)
    down.start()
    down.submit(copy.deepcopy(sample))
    deadline = time.monotonic() + 5
    while not counter(down, "cwatch_tsdb_write_errors_total", reason="unreachable"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    down.stop(timeout_s=0.5)
    assert time.monotonic() - started < 1.4
    assert counter(down, "cwatch_tsdb_write_errors_total", reason="unreachable") == 2
    assert counter(down, "cwatch_tsdb_lines_dropped_total", reason="shutdown") == len(
        to_lines(sample))
