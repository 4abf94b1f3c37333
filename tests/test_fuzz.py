"""Bad input (issue 11, item 4): property-based tests of the envelope decoder and of the
config loaders. Nothing may crash; every rejection must say why, on one line.

Decoder. Whatever the topic and payload, `Decoder.decode` returns; every rejection has
a reason from the closed set and a one-line detail that names the field for schema,
version, identity and clock errors; accepted samples match the topic (invariants:
fuzz_strategies.check_decoded). For mutated envelopes the verdict must agree with a
reference validator, jsonschema's Draft7Validator on the protocol schema (not the
collector's fastjsonschema), as follows:

    reference                               decoder
    --------------------------------------  -------------------------------------------
    "v" present and != 1                    unsupported_version, field envelope.v
    schema error(s)                         schema, field = the path of one of them
                                            (for required / additionalProperties: the
                                            missing or unknown key)
    valid; site or device != the topic's    identity_mismatch    (collector-only check)
    valid; ts > clock + 600 s               ts_in_future         (collector-only check)
    valid                                   accepted: one Sample, data as sent
    batch: error outside the items' own     one rejection for the whole batch (the list,
      channel schema ("shell")              each item an object with a known channel)
    batch: error inside an item             that item rejected, each other judged alone

Collector-only checks the reference cannot judge are tested on their own: payload and
decompressed size (too_large), zlib and UTF-8 (bad_encoding), JSON syntax (bad_json),
nesting (too_deep), NaN / Infinity / overflow (non_finite). One deliberate change to the
reference: "pattern" uses ECMA-262 "$" (end of string only), as JSON Schema specifies
and fastjsonschema implements; plain jsonschema (Python's re) would accept "portal\\n".

Config loaders (agent, collector incl. [alerts], rules): hypothesis-made files -
random bytes, broken TOML, valid TOML with random keys, values and types - either load
or raise the loader's own error (ConfigError, RuleError) with one line naming the file.

Known bugs (fuzz_strategies.KNOWN_BUGS, none open) would be tolerated by the properties
only with a strict-xfail reproducer; the ten found so far are fixed, and their
reproducers are regression tests at the end of this file.

Deterministic (derandomize) and about 30 s in all; CWATCH_FUZZ_SCALE=10 runs ten times
as many examples, CWATCH_FUZZ_RANDOM=1 a fresh random search each run.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
import samples
import tomllib
from fuzz_strategies import (
    NOW,
    SCHEMA,
    SEQ_MAX,
    TS_MIN,
    Accept,
    Reject,
    bomb,
    boundary_values,
    broken_toml,
    channels,
    check_decoded,
    compare,
    compressed_batches,
    config_shape,
    deep_payloads,
    encode_json,
    envelope,
    ids,
    jsonish_payloads,
    known_bug,
    mutated_config,
    mutated_envelopes,
    one_line,
    reference,
    schema_node,
    toml_dumps,
    toml_keys,
    toml_values,
    topics,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from schema_mutations import mutations

from agent import config as agent_config
from agent.config import AgentConfig
from collector import config as collector_config
from collector import ingest
from collector.config import CollectorConfig
from collector.ingest import Decoder
from collector.rules import spec as rules_spec
from collector.rules.priority import Weights
from cwatch import protocol
from cwatch.config import ConfigError

SCALE = float(os.environ.get("CWATCH_FUZZ_SCALE", "1"))


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max(1, round(max_examples * SCALE)),
        deadline=None,
        derandomize=os.environ.get("CWATCH_FUZZ_RANDOM") != "1",
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.large_base_example],
    )


DECODER = Decoder(clock=lambda: NOW)
BATCH_TOPIC = samples.topic(protocol.BATCH)


def decode(topic: str, payload: bytes) -> ingest.Decoded | None:
    """Decode and check the invariants; None when a known bug struck (see KNOWN_BUGS)."""
    try:
        decoded = DECODER.decode(topic, payload)
    except Exception as exc:
        bug = known_bug(exc)
        if bug is None:
            raise
        event(f"known bug: {bug}")
        return None
    check_decoded(topic, payload, decoded)
    event("accepted" if decoded.samples and not decoded.rejections else
          "rejected: " + ",".join(sorted({r.reason for r in decoded.rejections})))
    return decoded


def reasons(decoded: ingest.Decoded) -> list[str]:
    return [r.reason for r in decoded.rejections]


# ------------------------------------------------------------------------ the decoder

payloads = st.one_of(
    st.binary(max_size=512),
    st.binary(max_size=64).map(lambda b: b"x" + b),  # looks compressed
    st.binary(max_size=64).map(lambda b: b"{" + b),
    st.builds(zlib.compress, st.binary(max_size=256)),
)


@fuzz(800)
@given(topics, payloads)
def test_any_topic_and_bytes(topic: str, payload: bytes) -> None:
    decode(topic, payload)


@fuzz(700)
@given(jsonish_payloads())
def test_jsonish_payloads(case: tuple[str, bytes]) -> None:
    """Random JSON values, NaN / Infinity / 1e309 / 40-digit literals, lone surrogates,
    repeated keys, BOM, UTF-16, stray bytes, cut short: alone or inside an envelope."""
    decode(*case)


@fuzz(200)
@given(deep_payloads())
def test_deep_nesting(case: tuple[str, bytes, int]) -> None:
    topic, payload, depth = case
    decoded = decode(topic, payload)
    if decoded is None:
        return
    if depth >= 1030:  # beyond the parser's limit (1 024) wherever it is
        assert reasons(decoded) == [ingest.TOO_DEEP]
    elif depth <= 64:
        assert ingest.TOO_DEEP not in reasons(decoded)


def _payload(channel: str, raw: bytes, compress: bool) -> bytes:
    # A batch over the plain size limit travels compressed, as an agent sends it.
    if channel == protocol.BATCH and (compress or len(raw) > protocol.MAX_PAYLOAD_BYTES):
        return zlib.compress(raw)
    return raw


def _expected(channel: str, doc: Any, raw: bytes, payload: bytes) -> list[Accept | Reject]:
    too_large = Reject(frozenset({ingest.TOO_LARGE}), None)
    if len(payload) > protocol.MAX_PAYLOAD_BYTES:
        return [too_large]
    if payload is not raw and len(raw) > protocol.MAX_BATCH_DECOMPRESSED_BYTES:
        return [too_large]
    return reference(protocol.parse_topic(samples.topic(channel)), doc)


@fuzz(900)
@given(mutated_envelopes(), st.booleans(), st.booleans(), st.booleans())
def test_mutated_envelopes_agree_with_the_reference_validator(
        case: tuple[str, Any], ascii_only: bool, compact: bool, compress: bool) -> None:
    """Valid envelopes (samples.py) with up to three mutations: a key dropped, a random
    or boundary value (limits read from the schema), a type changed, a key added, the
    identity or ts or v changed. See the module docstring for the verdict mapping."""
    channel, doc = case
    raw = encode_json(doc, ascii_only, compact)
    payload = _payload(channel, raw, compress)
    decoded = decode(samples.topic(channel), payload)
    if decoded is not None:
        compare(_expected(channel, doc, raw, payload), decoded)


OPTIONAL = {ch: sorted(set(SCHEMA["definitions"][f"{ch}_data"]["properties"])
                       - set(SCHEMA["definitions"][f"{ch}_data"].get("required", ())))
            for ch in protocol.BATCHABLE_CHANNELS + (protocol.STATUS,)}


@fuzz(300)
@given(channels, ids, ids, st.integers(0, SEQ_MAX),
       st.floats(TS_MIN + 200, NOW + protocol.MAX_FUTURE_SKEW_S), st.data())
def test_valid_envelopes_are_accepted(channel: str, site: str, device: str, seq: int,
                                      ts: float, data: st.DataObject) -> None:
    """Any ids, seq in 0..2^53-1, ts from 2010 to the clock's limit, optional fields
    left out, `channel` left out: valid by construction, so accepted as sent."""
    if channel == protocol.BATCH:
        seq = min(seq, SEQ_MAX - 3)  # its items are numbered seq + 0, 1, 2
    doc = envelope(channel, seq=seq, ts=ts)
    units = doc["data"]["items"] if channel == protocol.BATCH else [doc]
    for unit in [doc, *units]:
        unit["site"], unit["device"] = site, device
    for unit in units:
        ch = unit["channel"]
        present = [key for key in OPTIONAL[ch] if key in unit["data"]]
        for key in data.draw(st.lists(st.sampled_from(present), unique=True)):
            del unit["data"][key]
        if channel != protocol.BATCH and data.draw(st.booleans()):
            del unit["channel"]
    topic = protocol.topic_for(site, device, channel)
    expected = reference(protocol.parse_topic(topic), doc)
    assert all(isinstance(o, Accept) for o in expected), expected
    decoded = decode(topic, protocol.encode(doc))
    assert decoded is not None and decoded.rejections == []
    compare(expected, decoded)


ITEM_MUTATIONS = {
    ch: [m.doc for m in mutations(SCHEMA, ch, envelope(ch))
         if m.path != "envelope.channel"]  # a wrong channel breaks the shell: whole batch
    for ch in protocol.BATCHABLE_CHANNELS}
ITEM_BREAKS = ("good", "good", "schema", "identity", "future", "version")


@st.composite
def batches_with_bad_items(draw: Any) -> tuple[dict[str, Any], list[bool]]:
    items, bad = [], []
    for index in range(draw(st.integers(1, 12))):
        channel = draw(st.sampled_from(protocol.BATCHABLE_CHANNELS))
        how = draw(st.sampled_from(ITEM_BREAKS))
        if how == "schema":  # one schema rule broken (tests/schema_mutations.py)
            item = copy.deepcopy(draw(st.sampled_from(ITEM_MUTATIONS[channel])))
        else:
            item = envelope(channel, seq=1000 + index, ts=NOW - 60 * (index + 1))
        if how == "identity":
            item[draw(st.sampled_from(["site", "device"]))] = "someone-else"
        elif how == "future":
            item["ts"] = NOW + protocol.MAX_FUTURE_SKEW_S + 1
        elif how == "version":
            item["v"] = draw(st.sampled_from([2, 0, "1", None]))
        items.append(item)
        bad.append(how != "good")
    doc = envelope(protocol.BATCH)
    doc["data"]["items"] = items
    return doc, bad


@fuzz(300)
@given(batches_with_bad_items(), st.booleans())
def test_bad_batch_items_cost_only_themselves(case: tuple[dict[str, Any], list[bool]],
                                              compress: bool) -> None:
    doc, bad = case
    raw = protocol.encode(doc)
    decoded = decode(BATCH_TOPIC, _payload(protocol.BATCH, raw, compress))
    assert decoded is not None
    items = doc["data"]["items"]
    good = [(item["channel"], item["seq"]) for item, b in zip(items, bad) if not b]
    assert [(s.channel, s.seq) for s in decoded.samples] == good
    bad_paths = [f"envelope.data.items[{i}]" for i, b in enumerate(bad) if b]
    assert len(decoded.rejections) == len(bad_paths)
    for rejection, path in zip(decoded.rejections, bad_paths):
        assert rejection.field is not None and rejection.field.startswith(path + "."), \
            (rejection, path)
    compare(reference(protocol.parse_topic(BATCH_TOPIC), doc), decoded)


@fuzz(300)
@given(compressed_batches())
def test_compressed_batches(case: tuple[dict[str, Any], bytes, bytes, str]) -> None:
    """zlib batches: intact (judged like plain JSON), cut short, with a byte flipped, with
    bytes after the stream, with a preset dictionary, raw deflate behind an 'x'."""
    doc, raw, payload, how = case
    decoded = decode(BATCH_TOPIC, payload)
    if decoded is None:
        return
    if how == "intact":
        compare(_expected(protocol.BATCH, doc, raw, payload), decoded)
    elif how in ("truncate", "fdict"):
        assert reasons(decoded) == [ingest.BAD_ENCODING]
    elif how == "trailing" and reasons(decoded) != [ingest.BAD_ENCODING]:
        # Bytes after the end of the zlib stream are ignored today (inflater.unused_data
        # is not checked); refusing them as bad_encoding would be fine too.
        compare(_expected(protocol.BATCH, doc, raw, zlib.compress(raw)), decoded)


@fuzz(100)
@given(st.sampled_from([c for c in protocol.CHANNELS if c != protocol.BATCH]), st.data())
def test_zlib_is_refused_outside_batch(channel: str, data: st.DataObject) -> None:
    doc = data.draw(mutated_envelopes(max_mutations=1))[1]
    decoded = decode(samples.topic(channel), zlib.compress(protocol.encode(doc)))
    assert decoded is not None and reasons(decoded) == [ingest.BAD_ENCODING]


LIMIT = protocol.MAX_BATCH_DECOMPRESSED_BYTES


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT, LIMIT + 1, 2 * LIMIT, 16 * LIMIT])
def test_decompression_bombs_stop_at_the_limit(size: int) -> None:
    payload = bomb(size)
    assert len(payload) < protocol.MAX_PAYLOAD_BYTES  # small on the wire
    tracemalloc.start()
    try:
        decoded = DECODER.decode(BATCH_TOPIC, payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    check_decoded(BATCH_TOPIC, payload, decoded)
    # Inside the limit it is parsed (and fails the schema: it is no envelope).
    assert reasons(decoded) == [ingest.TOO_LARGE if size > LIMIT else ingest.SCHEMA]
    if size > LIMIT:  # inflating stopped at the limit (parsing 4 MiB costs more: orjson)
        assert peak < 3 * LIMIT, f"inflating used {peak} bytes"
    # Anywhere but batch, compressed data is refused before inflating.
    assert reasons(DECODER.decode(samples.topic("metrics"), payload)) == [ingest.BAD_ENCODING]


@fuzz(60)
@given(topics, st.binary(max_size=64), st.integers(1, 4096))
def test_oversize_payloads(topic: str, head: bytes, extra: int) -> None:
    payload = head + b" " * (protocol.MAX_PAYLOAD_BYTES - len(head) + extra)
    decoded = decode(topic, payload)
    assert decoded is not None
    if reasons(decoded) != [ingest.BAD_TOPIC]:
        assert reasons(decoded) == [ingest.TOO_LARGE]


def test_reference_accepts_the_samples_and_follows_ecma_patterns() -> None:
    for channel in protocol.CHANNELS:
        doc = envelope(channel)
        expected = reference(protocol.parse_topic(samples.topic(channel)), doc)
        assert all(isinstance(o, Accept) for o in expected), expected
        decoded = DECODER.decode(samples.topic(channel), protocol.encode(doc))
        compare(expected, decoded)
    # Why the reference's "pattern" is not plain jsonschema's: Python's "$".
    doc = envelope("probe")
    doc["data"]["targets"][0]["name"] = "portal\n"
    plain = Draft7Validator(protocol.channel_schema(SCHEMA, "probe"))
    assert plain.is_valid(doc)
    (verdict,) = reference(protocol.parse_topic(samples.topic("probe")), doc)
    assert verdict == Reject(frozenset({"schema"}),
                             frozenset({"envelope.data.targets[0].name"}))
    compare([verdict], DECODER.decode(samples.topic("probe"), protocol.encode(doc)))


# ------------------------------------------------------------ the fast schema check
# Each of the decoder's validators runs msgspec's check (collector/fastcheck.py) first and
# fastjsonschema only when that check says no. Differential properties against
# fastjsonschema itself: the check never accepts what fastjsonschema rejects, and it
# rejects what fastjsonschema accepts only for an integer written as a float (4.0).

TRICKY = [None, True, False, 0, 1, -1, 0.0, -0.0, 1.0, 4.0, 1.5, 2**53 - 1, 2**53, 2**53 + 1,
          float(2**53), 2**63, 2**64, 2**64 + 1, -2**63 - 1, 1e15, 1e15 + 0.125, 1e300, -1e300,
          "", "a", "a\n", "\n", "é" * 300, [], [None], [1] * 65, {}, {"x": 1}]


def _floats_as_ints(value: Any) -> Any:
    """The same document for fastjsonschema (4.0 is an integer there, and == 4)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floats_as_ints(item) for item in value]
    return value


def _full_accepts(validator: Any, doc: Any) -> bool:
    try:
        validator.full(doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def check_fast_agrees(channel: str, doc: Any) -> str:
    """Check the fast verdict on doc and, for a batch, on each item the decoder would
    judge with its channel's validator; returns what was seen (for hypothesis' events)."""
    units = [(channel, doc)]
    data = doc.get("data") if isinstance(doc, dict) else None
    items = data.get("items") if isinstance(data, dict) else None
    if channel == protocol.BATCH and isinstance(items, list):
        units += [(item["channel"], item) for item in items if isinstance(item, dict)
                  and item.get("channel") in protocol.BATCHABLE_CHANNELS]
    seen = []
    for ch, unit in units:
        validator = DECODER._validators[ch]
        full, fast = _full_accepts(validator, unit), validator.fast(unit)
        assert full or not fast, f"fast check accepts what fastjsonschema rejects: {unit!r}"
        assert validator.fast(_floats_as_ints(unit)) == full, \
            f"fast check rejects what fastjsonschema accepts: {unit!r}"
        seen.append("fast" if fast else "full accepts" if full else "rejected")
    return ",".join(sorted(set(seen)))


@fuzz(900)
@given(mutated_envelopes())
def test_fast_check_agrees_with_fastjsonschema(case: tuple[str, Any]) -> None:
    event(check_fast_agrees(*case))


@fuzz(200)
@given(mutated_envelopes(max_mutations=6), st.data())
def test_fast_check_agrees_on_integers_written_as_floats(case: tuple[str, Any],
                                                          data: st.DataObject) -> None:
    """Every int of a (mutated) envelope may be sent as a float: fastjsonschema accepts
    4.0 as an integer, the fast check does not and must leave the verdict to it."""
    channel, doc = case
    as_floats = data.draw(st.booleans())

    def floated(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: floated(item) for key, item in value.items()}
        if isinstance(value, list):
            return [floated(item) for item in value]
        if (type(value) is int and abs(value) < 2**53 and as_floats
                and data.draw(st.booleans())):
            return float(value)
        return value

    event(check_fast_agrees(channel, floated(doc)))


def _walk(value: Any, keys: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield keys
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _walk(child, (*keys, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, (*keys, index))


@pytest.mark.parametrize("channel", protocol.CHANNELS)
def test_fast_check_agrees_at_every_field_and_limit(channel: str) -> None:
    """Exhaustive next to the samples: every field (batch items too) set in turn to its
    schema limits and just past them (fuzz_strategies.boundary_values) and to TRICKY
    values, deleted, or given an unknown key beside it."""
    doc = envelope(channel)
    count = 0
    for keys in list(_walk(doc)):
        if not keys:
            continue
        parent = doc
        for key in keys[:-1]:
            parent = parent[key]
        last, original = keys[-1], parent[keys[-1]]
        node = schema_node(channel, doc, keys)
        for value in [*boundary_values(node, original), *TRICKY]:
            parent[last] = value
            check_fast_agrees(channel, doc)
            count += 1
        if isinstance(parent, dict):
            del parent[last]
            check_fast_agrees(channel, doc)
            parent["unknown_key"] = original
            check_fast_agrees(channel, doc)
            del parent["unknown_key"]
            count += 2
        parent[last] = original
    check_fast_agrees(channel, doc)
    assert doc == envelope(channel)
    assert count > 500


# --------------------------------------------------------------------- config loaders

AGENT_BASE: dict[str, Any] = {
    "agent": {"site": "an-phuoc", "device": "pc-ketoan-01", "interval_s": 60},
    "broker": {"url": "mqtt://127.0.0.1:1883", "keepalive_s": 60},
    "probes": {"portal_url": "https://dichvucong.example", "extra_hosts": ["10.0.0.1"]},
    "queue": {"max_mb": 50, "batch_max_items": 500},
    "asset": {"tag": "DN-AP-0042", "role": "office"},
    "polled": [{"device": "router-01", "host": "192.168.1.1", "community": "public"},
               {"device": "switch-01", "host": "192.168.1.2", "snmp": "3", "user": "u",
                "auth_password": "12345678", "priv_password": "12345678"}],
}
COLLECTOR_BASE: dict[str, Any] = {
    "collector": {"listen": "127.0.0.1:9555", "silence_intervals": 3.0},
    "broker": {"url": "mqtt://127.0.0.1:1883"},
    "tsdb": {"url": "http://127.0.0.1:8428"},
    "alerts": {
        "enabled": True, "group_by": ["site"], "group_wait": "30s", "work_start": "07:30",
        "extra_holidays": ["2026-12-31"],
        "recipients": [{"email": "xa@example.org", "sites": ["an-phuoc"], "language": "vi"},
                       {"email": "tinh@example.org", "severities": ["critical"],
                        "province": True}],
        "smtp": {"host": "mail.example.org", "port": 587, "username": "u", "password": "p"},
        "inhibit": [{"source": ["site_unreachable"], "equal": ["site"]}],
    },
    "report": {"province": "Đồng Nai", "period": "30d", "prices": {"new_pc": 15_000_000}},
}
RULES_BASE: dict[str, Any] = {
    "rules": [{"name": "cpu_busy", "quantity": "cpu_percent", "above": 90, "clear": 80,
               "for": "10m", "severity": "warning", "summary": "CPU {value:.0f} %",
               "sites": ["an-phuoc"], "roles": ["office"]},
              {"name": "smart_failed", "quantity": "smart_failed", "above": 0.5,
               "severity": "critical"}],
    "links": {"window": "15m", "rtt_p95_ms": 300, "min_samples": 3},
    "priority": {"critical": 20, "days": 7, "roles": {"office": 1.0}},
    "os_end_of_support": {"Windows 10": "2025-10-14"},
}
RULES_SHAPE: dict[str, Any] = {
    "rules": [{key: Any for key in rules_spec.RULE_KEYS}],
    "links": {**{f.name: float for f in dataclasses.fields(rules_spec.LinkLimits)},
              "window": str, "throughput_window": str},
    "priority": {f.name: float for f in dataclasses.fields(Weights)},
    "os_end_of_support": {"Windows 10": str, "Windows 7": str},
}


@dataclasses.dataclass(frozen=True)
class Loader:
    load: Callable[[Path], Any]
    error: type[Exception]
    base: dict[str, Any]
    shape: dict[str, Any]


COLLECTOR_SHAPE = config_shape(CollectorConfig)
LOADERS = {
    "agent": Loader(lambda p: agent_config.load(p, {}), ConfigError, AGENT_BASE,
                    config_shape(AgentConfig)),
    "collector": Loader(lambda p: collector_config.load(p, {}), ConfigError, COLLECTOR_BASE,
                        COLLECTOR_SHAPE),
    # The [alerts] section alone (of the collector's file): its keys get all mutations.
    "alerts": Loader(lambda p: collector_config.load(p, {}), ConfigError, COLLECTOR_BASE,
                     {"alerts": COLLECTOR_SHAPE["alerts"]}),
    "rules": Loader(rules_spec.load, rules_spec.RuleError, RULES_BASE, RULES_SHAPE),
}


@pytest.fixture(scope="module")
def cfg_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One file the config tests overwrite; no CWATCH_* variable overrides a key."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("CWATCH_")]:
            patch.delenv(name)
        yield tmp_path_factory.mktemp("fuzz-config") / "config.toml"


def check_load(name: str, path: Path, content: bytes, *, strict: bool = False) -> str:
    """Write and load; the outcome ("loaded", "refused") or the known bug tolerated."""
    path.write_bytes(content)
    loader = LOADERS[name]
    try:
        loader.load(path)
    except loader.error as exc:
        message = str(exc)
        if one_line(message) and str(path) in message:
            return "refused"
        if not strict and known_bug(exc):
            return f"known bug: {known_bug(exc)}"
        raise AssertionError(f"{name}: {type(exc).__name__} message must be one line "
                             f"naming {path}: {message!r}") from exc
    except Exception as exc:
        if strict or not known_bug(exc):
            raise
        return f"known bug: {known_bug(exc)}"
    return "loaded"


def test_base_configs_load(cfg_file: Path) -> None:
    for name, loader in LOADERS.items():
        assert check_load(name, cfg_file, toml_dumps(loader.base).encode(), strict=True) \
            == "loaded", name


@st.composite
def config_bytes(draw: Any) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(LOADERS)))
    content = draw(st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        broken_toml(toml_dumps(LOADERS[name].base)),
    ))
    return name, content


@fuzz(500)
@given(config_bytes())
def test_config_files_of_random_or_broken_bytes(cfg_file: Path, case: tuple[str, bytes]
                                                ) -> None:
    event(check_load(case[0], cfg_file, case[1]))


@pytest.mark.parametrize("name", sorted(LOADERS))
@fuzz(300)
@given(data=st.data())
def test_config_files_of_valid_toml_with_random_values(cfg_file: Path, name: str,
                                                       data: st.DataObject) -> None:
    """Valid files with known keys set to random or edge values (huge ints, inf, nan,
    dates, arrays, tables, odd strings), keys and sections dropped, unknown keys added,
    tables replaced by scalars."""
    loader = LOADERS[name]
    doc = data.draw(mutated_config(loader.base, loader.shape), label="doc")
    text = toml_dumps(doc)
    tomllib.loads(text)  # the generator writes valid TOML
    event(check_load(name, cfg_file, text.encode()))


@fuzz(150)
@given(st.dictionaries(toml_keys, toml_values, max_size=6))
def test_toml_writer_round_trips(doc: dict[str, Any]) -> None:
    def comparable(value: Any) -> Any:  # NaN != NaN
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, dict):
            return {k: comparable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [comparable(v) for v in value]
        return value

    assert comparable(tomllib.loads(toml_dumps(doc))) == comparable(doc)


# ------------------------------------------------------------ regressions: bugs found here
# The ten bugs these properties found, each fixed; the first value names it, the last is
# the exception it used to raise (AssertionError: a multi-line message or detail). A new
# bug found later goes into fuzz_strategies.KNOWN_BUGS with a strict-xfail reproducer
# until it is fixed, then here.

SITE_DEVICE = '[agent]\nsite = "an-phuoc"\ndevice = "pc-01"\n'
RULE = '[[rules]]\nname = "r"\nquantity = "cpu_percent"\nabove = 90\n'
CONFIG_REGRESSIONS = [
    ("toml-not-utf8", "agent", SITE_DEVICE.encode() + b'log_file = "C:\\\\nh\xe1t.log"\n',
     UnicodeDecodeError),
    ("toml-not-utf8", "collector", b"\xef\xbb\xbf[collector]\n\xff", UnicodeDecodeError),
    ("toml-not-utf8", "rules", b'[[rules]]\nname = "\xe9"\n', UnicodeDecodeError),
    ("toml-too-deep", "agent", b"x = " + b"[" * 2000 + b"]" * 2000, RecursionError),
    ("toml-too-deep", "collector", b"x = " + b"{a = " * 2000 + b"1" + b"}" * 2000,
     RecursionError),
    ("toml-too-deep", "rules", b"x = " + b"[" * 2000 + b"]" * 2000, RecursionError),
    ("int-too-large-for-float", "agent", (SITE_DEVICE + "interval_s = 1" + "0" * 309).encode(),
     OverflowError),
    ("int-too-large-for-float", "agent", (SITE_DEVICE + '[[polled]]\ndevice = "r"\nhost = "h"\n'
                                          'community = "c"\nport = 1' + "0" * 309).encode(),
     OverflowError),
    ("int-too-large-for-float", "collector",
     ("[report]\nrefresh_age_years = 1" + "0" * 309).encode(), OverflowError),
    ("int-too-large-for-float", "rules",
     ('[[rules]]\nname = "r"\nquantity = "cpu_percent"\nabove = 1' + "0" * 309).encode(),
     OverflowError),
    ("rules-section-not-a-table", "rules", b"links = 1", TypeError),
    ("rules-section-not-a-table", "rules", b'priority = ["x"]', TypeError),
    ("rules-section-not-a-table", "rules", b"os_end_of_support = 2025-10-14", TypeError),
    ("rules-unchecked-rule-types", "rules",
     b'[[rules]]\nname = "r"\nquantity = ["cpu_percent"]\nabove = 90\n', TypeError),
    ("rules-unchecked-rule-types", "rules", (RULE + 'summary = "{value[0]}"').encode(),
     TypeError),
    ("rules-unchecked-rule-types", "rules", (RULE + 'summary_vi = "{item[a]}"').encode(),
     TypeError),
    ("rules-unchecked-rule-types", "rules", (RULE + "sites = 1").encode(), TypeError),
    ("rules-unchecked-rule-types", "rules", (RULE + "roles = true").encode(), TypeError),
    ("rules-int-of-non-finite", "rules", b"[links]\nmin_samples = inf", OverflowError),
    ("rules-int-of-non-finite", "rules", b"[links]\nmin_samples = nan", ValueError),
    ("rules-int-of-non-finite", "rules", b"[priority]\ndays = -inf", OverflowError),
    ("holidays-country-getattr", "collector", b'[alerts]\nholidays_country = "__init__"',
     TypeError),
    ("holidays-country-getattr", "collector", b'[alerts]\nholidays_country = "utils"',
     TypeError),
    ("rules-message-newline", "rules",
     b'[[rules]]\nname = "r\\nx"\nquantity = "nope"\nabove = 1\n', AssertionError),
    ("rules-message-newline", "rules", (RULE + '"a\\nb" = 1').encode(), AssertionError),
    ("rules-message-newline", "rules", b'[priority.roles]\n"a\\nb" = "x"', AssertionError),
    ("recipient-email-newline", "collector",
     b'[[alerts.recipients]]\nemail = "a@b\\n"\nlanguage = "fr"\n', AssertionError),
]


@pytest.mark.parametrize(("bug", "name", "content"), [
    pytest.param(bug, name, content, id=f"{bug}-{name}-{index}")
    for index, (bug, name, content, _was) in enumerate(CONFIG_REGRESSIONS)])
def test_config_regression(cfg_file: Path, bug: str, name: str, content: bytes) -> None:
    assert check_load(name, cfg_file, content, strict=True) in ("loaded", "refused")


def _envelope_with_unknown_key() -> bytes:
    doc = envelope("metrics")
    doc["data"]["temp\nc"] = 1
    return protocol.encode(doc)


DECODER_REGRESSIONS = [
    ("decoder-version-repr-recursion", samples.topic("metrics"),
     b'{"v":' + b"[" * 1000 + b"]" * 1000 + b"}", RecursionError),
    ("decoder-version-repr-recursion", BATCH_TOPIC,
     b'{"v":1,"data":{"items":[{"channel":"probe","v":' + b"[" * 1000 + b"]" * 1000
     + b'}]},"site":"an-phuoc","device":"pc-ketoan-01","ts":1795737000}', RecursionError),
    ("decoder-unknown-key-newline", samples.topic("metrics"), _envelope_with_unknown_key(),
     AssertionError),
]


@pytest.mark.parametrize(("bug", "topic", "payload"), [
    pytest.param(bug, topic, payload, id=f"{bug}-{index}")
    for index, (bug, topic, payload, _was) in enumerate(DECODER_REGRESSIONS)])
def test_decoder_regression(bug: str, topic: str, payload: bytes) -> None:
    check_decoded(topic, payload, DECODER.decode(topic, payload), strict=True)

