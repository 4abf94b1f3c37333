"""Bad input for the fuzz tests (tests/test_fuzz.py) and the fuzz target (fuzz/).

Three parts:

* a reference model of the decoder: the protocol's JSON Schema checked by the
  `jsonschema` package (not the collector's fastjsonschema), plus the documented
  checks that are the collector's own (docs/protocol.md, "Limits" and "Rejections");
* invariants every decode result must satisfy, whatever the input;
* hypothesis strategies: arbitrary bytes, JSON-ish text, deep nesting, mutated
  envelopes, zlib batches, TOML config documents;

and the list of known bugs (KNOWN_BUGS): outcomes the properties tolerate only
because each has a strict-xfail reproducer in tests/test_fuzz.py. Fixing a bug makes
its reproducer XPASS (a failure, being strict): then delete the reproducer's xfail
mark and the bug's entry here.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import re
import traceback
import typing
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import samples
from hypothesis import strategies as st

from collector import ingest
from cwatch import protocol

REPO = Path(__file__).resolve().parents[1]
NOW = 1_795_737_464.0  # the decoder's clock in these tests (2026-11-26)
SCHEMA = protocol.load_schema()
DEFS = SCHEMA["definitions"]
TS_MIN, TS_MAX = DEFS["ts"]["minimum"], DEFS["ts"]["maximum"]
SEQ_MAX = DEFS["seq"]["maximum"]
# Rejections that name a field (`Rejection.field`, also quoted in the detail).
FIELD_REASONS = {ingest.SCHEMA, ingest.UNSUPPORTED_VERSION, ingest.IDENTITY_MISMATCH,
                 ingest.TS_IN_FUTURE}


# --------------------------------------------------------------------------- known bugs


@dataclasses.dataclass(frozen=True)
class KnownBug:
    id: str
    summary: str
    match: Callable[[BaseException], bool]


def _project_frames(exc: BaseException) -> list[tuple[str, str]]:
    out = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if not Path(frame.filename).is_absolute():  # generated code: "<string>"
            continue
        path = Path(frame.filename).resolve()
        if path.is_relative_to(REPO) and not path.is_relative_to(REPO / ".venv"):
            out.append((path.relative_to(REPO).as_posix(), frame.name))
    return out


def raised_in(exc: BaseException, *places: str) -> bool:
    """True if the innermost project frame of `exc` is one of "file.py:function"."""
    frames = _project_frames(exc)
    return bool(frames) and f"{frames[-1][0]}:{frames[-1][1]}" in places


def one_line(text: str) -> bool:
    return len(text.splitlines()) == 1


# Bugs the properties tolerate for now, each with a strict-xfail reproducer in
# tests/test_fuzz.py until fixed. None are open: the ten found so far are fixed, and
# their reproducers are regression tests there.
KNOWN_BUGS: dict[str, KnownBug] = {}
# Rejections whose detail breaks the one-line rule for a known reason (none open).
KNOWN_DETAIL_BUGS: dict[str, str] = {}


def known_bug(exc: BaseException) -> str | None:
    for bug in KNOWN_BUGS.values():
        if bug.match(exc):
            return bug.id
    return None


def known_rejection_bug(rejection: ingest.Rejection) -> str | None:
    """The KNOWN_DETAIL_BUGS entry that explains this rejection's detail (none open)."""
    return None


# --------------------------------------------------------------- invariants of a result


def check_decoded(topic: str, payload: bytes, decoded: Any, now: float = NOW,
                  strict: bool = False) -> None:
    """What must hold for any (topic, payload): raises AssertionError naming the breach.
    strict: no allowance for KNOWN_DETAIL_BUGS."""
    assert isinstance(decoded, ingest.Decoded), decoded
    for rej in decoded.rejections:
        assert isinstance(rej, ingest.Rejection), rej
        assert rej.reason in ingest.REASONS, rej
        assert rej.reason != ingest.RATE_LIMITED, "the decoder does not rate-limit"
        assert isinstance(rej.detail, str) and rej.detail.strip(), rej
        assert one_line(rej.detail) or (not strict and known_rejection_bug(rej)), \
            f"multi-line detail: {rej.detail!r}"
        assert rej.topic == topic, rej
        if rej.reason in FIELD_REASONS:
            assert isinstance(rej.field, str) and rej.field.startswith("envelope"), rej
            # Named as the log shows it: unprintable characters escaped, cut to a line.
            shown = ingest._one_line(rej.field)
            assert shown.removesuffix("...") in rej.detail, \
                f"detail does not name {rej.field!r}: {rej.detail}"
        else:
            assert rej.field is None, rej
    reasons = [r.reason for r in decoded.rejections]
    try:
        where = protocol.parse_topic(topic)
    except protocol.TopicError:
        assert decoded.samples == [] and reasons == [ingest.BAD_TOPIC], decoded
        return
    assert ingest.BAD_TOPIC not in reasons, decoded
    if len(payload) > protocol.MAX_PAYLOAD_BYTES:
        assert decoded.samples == [] and reasons == [ingest.TOO_LARGE], decoded
    units = len(decoded.samples) + len(decoded.rejections)
    if where.channel == protocol.BATCH:
        # One rejection for the whole batch, or one outcome per item (at most 1000).
        assert 1 <= units <= 1000, decoded
    else:
        assert units == 1, decoded
    for sample in decoded.samples:
        assert isinstance(sample, ingest.Sample), sample
        assert (sample.site, sample.device) == (where.site, where.device), (where, sample)
        if where.channel == protocol.BATCH:
            assert sample.from_batch and sample.channel in protocol.BATCHABLE_CHANNELS, sample
        else:
            assert not sample.from_batch and sample.channel == where.channel, sample
        assert isinstance(sample.ts, float) and math.isfinite(sample.ts), sample
        assert TS_MIN <= sample.ts <= min(TS_MAX, now + protocol.MAX_FUTURE_SKEW_S), sample
        assert isinstance(sample.seq, (int, float)) and not isinstance(sample.seq, bool)
        assert 0 <= sample.seq <= SEQ_MAX and float(sample.seq).is_integer(), sample
        assert isinstance(sample.data, dict), sample


# ------------------------------------------------------------------ the reference model


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    # JSON Schema patterns are ECMA 262 regexes: there "$" matches only at the very end,
    # while Python's "$" also matches before a final newline ("portal\n" would pass).
    # The collector's fastjsonschema follows ECMA (it compiles "$" as "\Z"), so does this.
    if not validator.is_type(instance, "string"):
        return
    python = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
    if re.search(python, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


ReferenceValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"pattern": _ecma_pattern})
REFERENCE = {ch: ReferenceValidator(protocol.channel_schema(SCHEMA, ch))
             for ch in protocol.CHANNELS}


@dataclasses.dataclass(frozen=True)
class Accept:
    channel: str
    seq: Any
    ts: float
    data: Any


@dataclasses.dataclass(frozen=True)
class Reject:
    reasons: frozenset[str]
    fields: frozenset[str] | None  # the field the rejection may name; None: no field


def field_path(prefix: str, keys: Any) -> str:
    out = prefix
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else f".{key}"
    return out


def _error_fields(errors: list[Any]) -> frozenset[str]:
    """The fields a decoder may name for these jsonschema errors: the failing value's
    path, or for required / additionalProperties the missing or unknown key."""
    fields = set()
    for error in errors:
        at = field_path("envelope", error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            fields.update(f"{at}.{k}" for k in error.validator_value if k not in error.instance)
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            fields.update(f"{at}.{k}" for k in error.instance if k not in known)
        else:
            fields.add(at)
    return frozenset(fields)


def _reference_one(doc: Any, where: protocol.Topic, channel: str, prefix: str,
                   errors: list[Any], now: float) -> Accept | Reject:
    """One envelope (or batch item), in the order docs/protocol.md gives: version, schema
    (the reference validator's verdict), identity, clock."""
    if isinstance(doc, dict) and "v" in doc and doc["v"] != protocol.VERSION:
        return Reject(frozenset({ingest.UNSUPPORTED_VERSION}), frozenset({f"{prefix}.v"}))
    if errors:
        return Reject(frozenset({ingest.SCHEMA}), _error_fields(errors))
    for key in ("site", "device"):
        if doc[key] != getattr(where, key):
            return Reject(frozenset({ingest.IDENTITY_MISMATCH}), frozenset({f"{prefix}.{key}"}))
    if doc["ts"] > now + protocol.MAX_FUTURE_SKEW_S:
        return Reject(frozenset({ingest.TS_IN_FUTURE}), frozenset({f"{prefix}.ts"}))
    return Accept(channel, doc.get("seq"), float(doc["ts"]), doc["data"])


def _item_of(error: Any) -> int | None:
    """The batch item an error is about (errors inside items[i], its type and channel
    included, cost only that item); None for the batch's own "shell" (the list)."""
    path = list(error.absolute_path)
    return path[2] if len(path) >= 3 and path[:2] == ["data", "items"] else None


def reference(where: protocol.Topic, doc: Any, now: float = NOW) -> list[Accept | Reject]:
    """Expected outcomes of a parsed JSON document on a valid topic: one per envelope,
    or one per item of a batch whose shell is valid."""
    errors = list(REFERENCE[where.channel].iter_errors(doc))
    if where.channel != protocol.BATCH:
        return [_reference_one(doc, where, where.channel, "envelope", errors, now)]
    shell = [e for e in errors if _item_of(e) is None]
    verdict = _reference_one(doc, where, where.channel, "envelope", shell, now)
    if isinstance(verdict, Reject):
        return [verdict]
    out: list[Accept | Reject] = []
    for index, item in enumerate(doc["data"]["items"]):
        prefix = f"envelope.data.items[{index}]"
        if not isinstance(item, dict):
            out.append(Reject(frozenset({ingest.SCHEMA}), frozenset({prefix})))
            continue
        if item.get("channel") not in protocol.BATCHABLE_CHANNELS:
            out.append(Reject(frozenset({ingest.SCHEMA}), frozenset({f"{prefix}.channel"})))
            continue
        mine = [e for e in errors if _item_of(e) == index]
        out.append(_reference_one(item, where, item["channel"], prefix, mine, now))
    return out


def compare(expected: list[Accept | Reject], decoded: Any) -> None:
    accepted = [o for o in expected if isinstance(o, Accept)]
    rejected = [o for o in expected if isinstance(o, Reject)]
    got = [(s.channel, s.seq, s.ts) for s in decoded.samples]
    assert got == [(a.channel, a.seq, a.ts) for a in accepted], (expected, decoded)
    for sample, accept in zip(decoded.samples, accepted):
        assert sample.data == accept.data
    assert len(decoded.rejections) == len(rejected), (expected, decoded)
    for rej, want in zip(decoded.rejections, rejected):
        assert rej.reason in want.reasons, (want, rej)
        if want.fields is None:
            assert rej.field is None, (want, rej)
        else:
            assert rej.field in want.fields, (want, rej)


# ----------------------------------------------------------------- decoder strategies

ID_RE = r"[a-z0-9][a-z0-9._-]{0,63}"
ids = st.from_regex(ID_RE, fullmatch=True)
channels = st.sampled_from(protocol.CHANNELS)


def _near_topics() -> st.SearchStrategy[str]:
    part = st.one_of(ids, st.sampled_from(
        ["", "An-Phuoc", "-pc", "a" * 64, "a" * 65, "+", "#", "a/b", "é", "a\x00", "pc 01",
         "a\n", "."]))
    return st.one_of(
        st.builds("cwatch/v1/{}/{}/{}".format, part, part,
                  st.one_of(channels, st.sampled_from(["", "logs", "METRICS", "metrics/"]))),
        st.builds("{}/{}".format, st.sampled_from(["cwatch/v2", "cwatch", "$share/g/cwatch/v1",
                                                    "/cwatch/v1", "cwatch/v1/"]),
                  st.text(max_size=30)),
    )


valid_topics = st.builds(protocol.topic_for, ids, ids, channels)
topics = st.one_of(st.builds(samples.topic, channels), valid_topics, _near_topics(), st.text())

json_ints = st.one_of(st.integers(-2**63, 2**64 - 1), st.sampled_from(
    [0, -1, 1, 2**53 - 1, 2**53, 2**53 + 1, -2**53 - 1, 2**31, 2**63 - 1, -2**63, 2**64 - 1]))
json_floats = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(st.none(), st.booleans(), json_ints, json_floats, st.text(max_size=20))
json_keys = st.one_of(st.text(max_size=8), st.sampled_from(
    ["v", "site", "device", "ts", "seq", "channel", "data", "items", "cpu_percent", "name"]))
# Finite JSON: what json.dumps writes and the reference validator can judge.
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(json_keys, inner, max_size=4)),
    max_leaves=12)


def envelope(channel: str, seq: int = 1, ts: float | None = None) -> dict[str, Any]:
    return samples.envelope(channel, seq=seq, ts=NOW - 5 if ts is None else ts)


def _paths(value: Any, keys: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield keys
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*keys, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*keys, index))


def _get(doc: Any, keys: tuple[Any, ...]) -> Any:
    for key in keys:
        doc = doc[key]
    return doc


def _set(doc: Any, keys: tuple[Any, ...], value: Any) -> Any:
    value = copy.deepcopy(value)  # never share: later mutations would reach both places
    if not keys:
        return value
    _get(doc, keys[:-1])[keys[-1]] = value
    return doc


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = DEFS[node["$ref"].removeprefix("#/definitions/")]
    return node


def schema_node(channel: str, doc: Any, keys: tuple[Any, ...]) -> dict[str, Any] | None:
    """The schema of the value at `keys` (a batch item: its channel's envelope)."""
    node: dict[str, Any] | None = DEFS[channel]
    value = doc
    for key in keys:
        node = _resolve(node)
        if isinstance(key, int):
            node = node.get("items")
            if node == {"$ref": "#/definitions/batch_item"}:
                item = value[key]
                ch = item.get("channel") if isinstance(item, dict) else None
                node = DEFS[ch] if ch in protocol.BATCHABLE_CHANNELS else None
        else:
            node = node.get("properties", {}).get(key)
        if node is None:
            return None
        value = value[key]
    return _resolve(node)


def boundary_values(node: dict[str, Any] | None, value: Any) -> list[Any]:
    """Values at and just past the limits the schema gives this field."""
    out: list[Any] = [0, -1, 1, 2**53 - 1, 2**53, 2**53 + 1, 1.5, -0.0, "", None, True, [], {}]
    if not node:
        return out
    for bound, direction in (("minimum", -math.inf), ("maximum", math.inf)):
        if bound in node:
            limit = node[bound]
            step = -1 if direction < 0 else 1
            out += [limit, limit + step, limit + step * 0.5, math.nextafter(limit, direction),
                    float(limit)]
    if "maxLength" in node:
        n = node["maxLength"]
        out += ["a" * n, "a" * (n + 1), "é" * n, "é" * (n + 1), "\U0001f600" * (n + 1)]
    if "pattern" in node:
        out += ["a", "a" * 64, "a" * 65, "A", "a\n", "-a", "a b", "2014-06-05",
                "2014-06-05\n", "9999-99-99", "00:1a:2b:3c:4d:5e", "00:1A:2B:3C:4D:5E"]
    if "enum" in node:
        out += [*node["enum"], "x"]
    if "const" in node:
        out += [node["const"], "x"]
    if isinstance(value, list) and value:
        if node.get("maxItems", 1000) <= 64:
            out += [[value[0]] * node["maxItems"], [value[0]] * (node["maxItems"] + 1)]
        out += [[], value + value]
    return out


TS_VALUES = [NOW, NOW + protocol.MAX_FUTURE_SKEW_S, NOW + protocol.MAX_FUTURE_SKEW_S + 0.001,
             NOW + 10**6, TS_MAX, TS_MAX + 0.5, TS_MIN, TS_MIN - 0.1, 0, -1, 1e300, int(NOW),
             "1795737464"]
VERSIONS = [1, 1.0, 2, 0, -1, True, False, None, "1", [1], {"v": 1}, 1.0000000000000002]
MUTATIONS = ("delete", "random", "boundary", "type", "add_key", "identity", "ts", "version")


@st.composite
def mutate(draw: Any, channel: str, doc: Any) -> Any:
    """One mutation of `doc` (in place, returned): drop a key, set a random or boundary
    value, change a type, add a key, break identity, move ts, change v."""
    op = draw(st.sampled_from(MUTATIONS))
    paths = list(_paths(doc))
    named = {"identity": ("site", "device"), "ts": ("ts",), "version": ("v",)}
    if op in named:
        targets = [p for p in paths if p and p[-1] in named[op]]
        if targets:
            keys = draw(st.sampled_from(targets))
            value = draw({"identity": ids, "ts": st.sampled_from(TS_VALUES),
                          "version": st.sampled_from(VERSIONS)}[op])
            return _set(doc, keys, value)
        op = "random"
    if op == "delete":
        targets = [p for p in paths if p]
        if targets:
            keys = draw(st.sampled_from(targets))
            del _get(doc, keys[:-1])[keys[-1]]
            return doc
        op = "random"
    if op == "add_key":
        tables = [p for p in paths if isinstance(_get(doc, p), dict)]
        if tables:
            keys = draw(st.sampled_from(tables))
            return _set(doc, (*keys, draw(json_keys)), draw(json_values))
        op = "random"
    keys = draw(st.sampled_from(paths))
    if op == "random":
        return _set(doc, keys, draw(json_values))
    if op == "type":
        return _set(doc, keys, draw(st.sampled_from([None, True, 0, 1.5, "s", [], {}])))
    node = schema_node(channel, doc, keys) if isinstance(doc, dict) else None
    return _set(doc, keys, draw(st.sampled_from(boundary_values(node, _get(doc, keys)))))


@st.composite
def mutated_envelopes(draw: Any, max_mutations: int = 3) -> tuple[str, Any]:
    channel = draw(channels)
    doc = envelope(channel, seq=draw(st.sampled_from([0, 1, 4211, SEQ_MAX])),
                   ts=draw(st.sampled_from([NOW - 5, NOW - 86400 * 365, TS_MIN, NOW + 600])))
    for _ in range(draw(st.integers(0, max_mutations))):
        doc = draw(mutate(channel, doc))
    return channel, doc


def encode_json(doc: Any, ascii_only: bool, compact: bool) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(doc, ensure_ascii=ascii_only, separators=separators).encode()


# JSON-ish text: what a broken or hostile agent may send.


class Raw(str):
    """A token written as is: NaN, 1e309, a 40-digit integer, a lone surrogate..."""


class Obj(tuple):
    """A JSON object as (key, value) pairs, so keys may repeat."""


RAW_TOKENS = [
    "NaN", "-NaN", "Infinity", "-Infinity", "+Infinity", "nan", "inf", "1e309", "-1e309",
    "1e400", "1E+999", "2e308", "1.7976931348623157e308", "1.7976931348623159e308",
    "1" + "0" * 40, "-" + "9" * 30, str(2**64), str(-2**63 - 1), "1" + "0" * 400,
    "1e-400", "-0", "0e0", "01", "1.", ".5", "+1", "0x10", "1_000", "tru", "nul",
    '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"', '"\\x41"', "'single'", "undefined",
    '"\t"', "[1,]", '{"a":1,}', "//c\n1", "1 2", '"\\uD834\\uDD1E"',
]
jsonish_values = st.recursive(
    st.one_of(json_scalars, st.floats(), st.sampled_from(RAW_TOKENS).map(Raw)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.lists(st.tuples(json_keys, inner), max_size=4).map(Obj)),
    max_leaves=20)


def dump_jsonish(value: Any, ascii_only: bool = True) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, (Obj, dict)):
        pairs = value if isinstance(value, Obj) else value.items()
        return "{" + ",".join(json.dumps(k, ensure_ascii=ascii_only) + ":"
                              + dump_jsonish(v, ascii_only) for k, v in pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump_jsonish(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)  # floats: NaN, Infinity as tokens


ENCODINGS = ("utf-8", "utf-8", "utf-8", "bom", "utf-16", "utf-32", "bad-byte", "truncate",
             "nul", "latin-1")


@st.composite
def encoded(draw: Any, text: str) -> bytes:
    how = draw(st.sampled_from(ENCODINGS))
    raw = text.encode("utf-8")
    if how == "bom":
        return b"\xef\xbb\xbf" + raw
    if how in ("utf-16", "utf-32", "latin-1"):
        return text.encode(how, errors="replace")
    if how == "utf-8":
        return raw
    at = draw(st.integers(0, len(raw)))
    if how == "truncate":
        return raw[:at]
    junk = b"\x00" if how == "nul" else bytes([draw(st.integers(0x80, 0xFF))])
    return raw[:at] + junk + raw[at:]


@st.composite
def jsonish_payloads(draw: Any) -> tuple[str, bytes]:
    """A JSON-ish value: alone, or put somewhere in a valid envelope (maybe with a
    repeated key), then encoded well or badly."""
    channel = draw(channels)
    value = draw(jsonish_values)
    if draw(st.booleans()):
        doc: Any = envelope(channel)
        doc = _set(doc, draw(st.sampled_from(list(_paths(doc)))), value)
        if isinstance(doc, dict) and draw(st.booleans()):
            doc = Obj([*doc.items(), (draw(st.sampled_from(list(doc))), draw(jsonish_values))])
    else:
        doc = value
    text = dump_jsonish(doc, ascii_only=draw(st.booleans()))
    return samples.topic(channel), draw(encoded(text))


PLACEHOLDER = "\x00placeholder"
DEEP_SPOTS = ("root", "v", "data", "unknown", "cpu_percent", "seq", "ts", "item_v", "item_data",
              "item_unknown")


@st.composite
def deep_payloads(draw: Any) -> tuple[str, bytes, int]:
    """Nesting from shallow to far beyond the parser's limit (1 024), in many places."""
    depth = draw(st.one_of(st.integers(0, 64), st.integers(990, 1030), st.integers(1030, 5000)))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"":', "}")]))
    inner = draw(st.sampled_from(["1", "null", "[]", "{}", '"x"', "NaN", "1e999"]))
    nested = opener * depth + inner + closer * depth
    spot = draw(st.sampled_from(DEEP_SPOTS))
    channel = protocol.BATCH if spot.startswith("item_") else draw(channels)
    if spot == "root":
        return samples.topic(channel), nested.encode(), depth
    doc = envelope(channel)
    target = doc["data"]["items"][0] if spot.startswith("item_") else doc
    key = spot.removeprefix("item_")
    if key == "cpu_percent" and channel == protocol.METRICS:
        target["data"][key] = PLACEHOLDER
    else:
        target["unknown" if key == "cpu_percent" else key] = PLACEHOLDER
    text = json.dumps(doc).replace(json.dumps(PLACEHOLDER), nested)
    return samples.topic(channel), text.encode(), depth


# zlib batches


@st.composite
def compressed_batches(draw: Any) -> tuple[dict[str, Any], bytes, bytes, str]:
    """(doc, its JSON, payload, how): a batch compressed as an agent sends it, then maybe
    truncated, corrupted, given trailing bytes, or sent with a preset-dictionary flag."""
    doc = envelope(protocol.BATCH, seq=draw(st.integers(0, 10**6)))
    for _ in range(draw(st.integers(0, 2))):
        doc = draw(mutate(protocol.BATCH, doc))
    raw = encode_json(doc, draw(st.booleans()), draw(st.booleans()))
    packed = zlib.compress(raw, draw(st.integers(0, 9)))
    how = draw(st.sampled_from(["intact", "intact", "truncate", "flip", "trailing", "fdict",
                                "raw-deflate"]))
    if how == "truncate":
        packed = packed[:draw(st.integers(1, len(packed) - 1))]
    elif how == "flip":
        at = draw(st.integers(0, len(packed) - 1))
        packed = packed[:at] + bytes([packed[at] ^ draw(st.integers(1, 255))]) + packed[at + 1:]
    elif how == "trailing":
        packed += draw(st.binary(min_size=1, max_size=16))
    elif how == "fdict":  # FDICT set, FCHECK kept valid: needs a dictionary we never have
        cmf, flg = packed[0], (packed[1] | 0x20) & 0xE0
        flg |= (31 - (cmf * 256 + flg) % 31) % 31
        packed = bytes([cmf, flg]) + packed[2:]
    elif how == "raw-deflate":  # no zlib header: first byte is no longer 'x'
        packed = b"x" + zlib.compress(raw)[2:-4]
    return doc, raw, packed, how


_BOMBS: dict[int, bytes] = {}


def bomb(inflated_size: int) -> bytes:
    """zlib data that inflates to exactly `inflated_size` bytes of JSON (a string of
    spaces), cheap to make and cached."""
    if inflated_size not in _BOMBS:
        head, tail = b'{"v":1,"pad":"', b'"}'
        _BOMBS[inflated_size] = zlib.compress(
            head + b" " * (inflated_size - len(head) - len(tail)) + tail, 9)
    return _BOMBS[inflated_size]


# ----------------------------------------------------------- TOML documents for configs


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def toml_dumps(doc: dict[str, Any], header: tuple[str, ...] = ()) -> str:
    """A TOML document for `doc`: tables as [headers], lists of tables as [[headers]]."""
    lines = []
    for key, value in doc.items():
        if not isinstance(value, dict) and not _is_array_of_tables(value):
            lines.append(f"{_toml_string(key)} = {toml_value(value)}")
    for key, value in doc.items():
        name = ".".join(_toml_string(k) for k in (*header, key))
        if isinstance(value, dict):
            lines.append(f"[{name}]")
            lines.append(toml_dumps(value, (*header, key)))
        elif _is_array_of_tables(value):
            for table in value:
                lines.append(f"[[{name}]]")
                lines.append(toml_dumps(table, (*header, key)))
    return "\n".join(line for line in lines if line) + "\n"


INTERESTING_STRINGS = [
    "", " ", "\n", "a\nb", "\t", "\x00", "é", "Bộ phận một cửa", "a" * 300, "0", "-1", "1e999",
    "nan", "inf", "true", "30s", "5m", "4h", "1.5d", "-1s", "0s", "1e3s", "٣s", "30 s", "90",
    "07:30", "24:00", "23:59", " 7:30 ", "00:00", "١٢:٣٠", "a@b.c", "a@b\n", "@", "x <a@b.c>",
    "mqtt://127.0.0.1:1883", "mqtts://h", "mqtt://h:99999", "mqtt://[::1", "mqtt://:1",
    "mqtt://u:p@h/path", "http://x", "https://", "ftp://x", "127.0.0.1:0", ":9555", "h:²",
    "[::1]:9555", "1/2", "2/1", "0/1", "²/³", "an-phuoc", "An Phuoc", "-a", "a" * 64, "a" * 65,
    "2025-10-14", "2025-02-30", "0000-00-00", "VN", "US", "XX", "vn", "__init__", "utils",
    "HolidayBase", "UTC", "Asia/Ho_Chi_Minh", "Europe", "../../etc/passwd", "/etc/localtime",
    "*", "site", "device", "item", "critical", "warning", "info", "vi", "en", "{value}",
    "{item}", "{value:.0f}", "{value[0]}", "{item[a]}", "{item.x}", "{", "}", "{0}", "{value!z}",
    "{value:{item}}", "cpu_percent", "disk_used_percent", "2c", "3", "none", "sha", "aes",
    "md5", "des", "PATH", "HOME", "1bad", "router", "service-counter", "uefi", "K/N",
]
INTERESTING_NUMBERS = [0, -1, 1, 2, 5, 60, 161, 65535, 65536, 2**31, 2**63 - 1, -2**63,
                       10**400, -10**400, 0.0, -0.0, 0.5, 1.5, 1e-9, 1e308, -1e308,
                       math.inf, -math.inf, math.nan, 5e-324]
toml_scalars = st.one_of(
    st.text(max_size=12), st.sampled_from(INTERESTING_STRINGS), st.integers(),
    st.sampled_from(INTERESTING_NUMBERS), st.floats(), st.booleans(),
    st.dates(), st.datetimes(), st.times(),
)
toml_keys = st.one_of(st.text(max_size=10), st.sampled_from(
    ["enabled", "site", "device", "name", "rules", "links", "priority", "url", "port", "a.b",
     ""]))
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(toml_keys, inner, max_size=3)),
    max_leaves=8)


def config_shape(cls: Any) -> dict[str, Any]:
    """{key: type} of a config dataclass, nested dataclasses (and lists of them) as dicts."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            out[field.name] = config_shape(tp)
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            out[field.name] = [config_shape(typing.get_args(tp)[0])]
        else:
            out[field.name] = tp
    return out


def _known_keys(shape: Any, doc: Any, keys: tuple[Any, ...] = ()
                ) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, type) of every key the shape defines, walking the doc's actual tables."""
    if isinstance(shape, list):
        if isinstance(doc, list):
            for index, item in enumerate(doc):
                yield from _known_keys(shape[0], item, (*keys, index))
        return
    if not isinstance(shape, dict) or not isinstance(doc, dict):
        return
    for name, sub in shape.items():
        yield (*keys, name), sub
        if name in doc:
            yield from _known_keys(sub, doc[name], (*keys, name))


def typed_values(tp: Any) -> st.SearchStrategy[Any]:
    """Values aimed at a key of type `tp`: its own type's edges more often than not."""
    base = tp
    if typing.get_origin(tp) is typing.Union:
        base = [a for a in typing.get_args(tp) if a is not type(None)][0]
    numbers = st.one_of(st.sampled_from(INTERESTING_NUMBERS), st.integers(), st.floats())
    strings = st.one_of(st.sampled_from(INTERESTING_STRINGS), st.text(max_size=12))
    aimed = {float: numbers, int: numbers, str: strings, bool: st.one_of(st.booleans(), numbers)}
    if isinstance(base, type) and base in aimed:
        return st.one_of(aimed[base], aimed[base], toml_values)
    if typing.get_origin(base) is list:
        return st.one_of(st.lists(strings, max_size=3), st.lists(numbers, max_size=2),
                         toml_values)
    return toml_values


@st.composite
def mutated_config(draw: Any, base: dict[str, Any], shape: dict[str, Any],
                   max_mutations: int = 3) -> dict[str, Any]:
    """A valid config document with known keys set to random or edge values, keys and
    sections dropped, unknown keys added, tables replaced by scalars."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        op = draw(st.sampled_from(["set", "set", "set", "delete", "add", "retable"]))
        if op == "set":
            keys, tp = draw(st.sampled_from(list(_known_keys(shape, doc))))
            if isinstance(_get(doc, keys[:-1]), dict):
                _set(doc, keys, draw(typed_values(tp)))
        elif op == "delete":
            keys = draw(st.sampled_from([p for p in _paths(doc) if p]))
            del _get(doc, keys[:-1])[keys[-1]]
        elif op == "add":
            tables = [p for p in _paths(doc) if isinstance(_get(doc, p), dict)]
            _set(doc, (*draw(st.sampled_from(tables)), draw(toml_keys)), draw(toml_values))
        else:  # a section or array of tables that is something else
            keys = draw(st.sampled_from(
                [p for p in _paths(doc) if p and isinstance(_get(doc, p), (dict, list))]
                or [("x",)]))
            _set(doc, keys, draw(st.one_of(toml_scalars, st.lists(toml_scalars, max_size=2),
                                           st.just([{}]), st.just({}))))
    return doc


@st.composite
def broken_toml(draw: Any, text: str) -> bytes:
    """Valid TOML text made invalid (or not): characters inserted, removed, lines doubled,
    cut short, re-encoded."""
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["insert", "delete", "double", "truncate"]))
        at = draw(st.integers(0, len(text)))
        if how == "insert":
            text = text[:at] + draw(st.one_of(
                st.sampled_from(list("[]{}=\"'#\n.,\\") + ["[[", "]]", '"""', "\r", "\x00"]),
                st.text(max_size=3))) + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 5)):]
        elif how == "double":
            lines = text.splitlines(keepends=True) or [""]
            index = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[:index + 1] + lines[index:])
        else:
            text = text[:at]
    return draw(encoded(text))
