"""Decode and validate one MQTT message into accepted samples or counted rejections.

    topic + payload bytes
        -> size check -> (zlib, batch only) -> UTF-8 + JSON -> version
        -> JSON Schema for the channel (msgspec's fast check; fastjsonschema when it
           says no) -> identity (topic == envelope)
        -> clock sanity -> Sample(s)

A batch is unpacked and every item checked on its own, so one bad item costs
only itself. Nothing here raises on bad input: every failure is a Rejection
with a short reason code (a metrics label) and a one-line detail naming the field.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastjsonschema
import orjson

from collector import fastcheck
from cwatch import protocol

# Reason codes: a closed set, used as the `reason` label of the rejection counter.
TOO_LARGE = "too_large"
BAD_TOPIC = "bad_topic"
BAD_ENCODING = "bad_encoding"
BAD_JSON = "bad_json"
TOO_DEEP = "too_deep"
NON_FINITE = "non_finite"
UNSUPPORTED_VERSION = "unsupported_version"
SCHEMA = "schema"
IDENTITY_MISMATCH = "identity_mismatch"
TS_IN_FUTURE = "ts_in_future"
# Not the decoder's: the collector's per-device rate limit (collector/ratelimit.py).
RATE_LIMITED = "rate_limited"
REASONS = (
    TOO_LARGE, BAD_TOPIC, BAD_ENCODING, BAD_JSON, TOO_DEEP, NON_FINITE,
    UNSUPPORTED_VERSION, SCHEMA, IDENTITY_MISMATCH, TS_IN_FUTURE, RATE_LIMITED,
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One accepted envelope (a batch item becomes a Sample of its own channel)."""

    site: str
    device: str
    channel: str
    ts: float
    seq: int
    data: dict[str, Any]
    from_batch: bool = False


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    topic: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail} (topic {self.topic[:120]})"


@dataclass(slots=True)
class Decoded:
    samples: list[Sample]
    rejections: list[Rejection]


class _Reject(Exception):
    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.field = reason, detail, field


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    """The schema with every local `$ref` replaced by a copy of its definition.

    fastjsonschema turns a `$ref` into a function call whose error-message argument is
    built eagerly with `str.format(**locals())`; inside list items that cost 70 % of
    the validation time. Our definitions are not recursive, so inlining is safe."""
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        return _inline_refs(definitions[ref.removeprefix("#/definitions/")], definitions)
    return {key: _inline_refs(value, definitions) for key, value in node.items()
            if key != "definitions"}


class _Validator:
    """Raises JsonSchemaValueException for what fastjsonschema rejects, as fastjsonschema.

    A valid document passes msgspec's check (collector/fastcheck.py, a few us) and stops
    there; fastjsonschema (about 35 us for a metrics envelope) runs only on what that
    check does not accept: to reject it with its own wording, or to accept what the fast
    check is stricter about (an integer sent as 4.0). Verdicts and details are
    fastjsonschema's either way."""

    __slots__ = ("fast", "full")

    def __init__(self, schema: dict[str, Any]) -> None:
        inlined = _inline_refs(schema, schema["definitions"])
        self.fast = fastcheck.compile_check(inlined)
        self.full = fastjsonschema.compile(inlined)

    def __call__(self, doc: Any) -> None:
        if not self.fast(doc):
            self.full(doc)


def _compile_validators(schema: dict[str, Any]) -> dict[str, _Validator]:
    validators = {ch: _Validator(protocol.channel_schema(schema, ch))
                  for ch in protocol.CHANNELS if ch != protocol.BATCH}
    # The batch shell checks only the list; each item then goes through its own
    # channel's validator so that a bad item (even one that is not an object, or of no
    # known channel) does not sink its neighbours.
    shell = protocol.channel_schema(schema, protocol.BATCH)
    shell["definitions"] = dict(shell["definitions"])
    shell["definitions"]["batch_item"] = {}
    validators[protocol.BATCH] = _Validator(shell)
    return validators


MAX_DETAIL = 300


def _one_line(text: str) -> str:
    """Control characters escaped (a key may hold a newline: no forged log lines), and
    cut to MAX_DETAIL characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 3] + "..."


def _shown(value: Any) -> str:
    """A short, safe picture of a value the sender chose (any size, any depth)."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(exc: fastjsonschema.JsonSchemaValueException, path: str) -> tuple[str, str]:
    """(field, one-line detail) for a schema violation, naming the exact field."""
    field, detail = _describe_raw(exc, path)
    return field, _one_line(detail)  # the field as sent (for programs); the detail is logged


def _describe_raw(exc: fastjsonschema.JsonSchemaValueException,
                  path: str) -> tuple[str, str]:
    # fastjsonschema calls the root "data"; our envelope has a "data" key of its own.
    name = exc.name or "data"
    field = path + name[4:]
    if exc.rule == "required" and isinstance(exc.value, dict):
        missing = [key for key in exc.rule_definition if key not in exc.value]
        field = f"{field}.{missing[0]}"
        return field, f"{field} is required but missing [required]"
    if exc.rule == "additionalProperties" and isinstance(exc.value, dict):
        allowed = exc.definition.get("properties", {})
        extra = sorted(key for key in exc.value if key not in allowed)
        field = f"{field}.{extra[0]}"
        return field, f"{field} is not a field of protocol v1 [additionalProperties]"
    return field, f"{exc.message.replace(name, field, 1)} [{exc.rule}]"


class _NonFinite(ValueError):
    pass


def _refuse_constant(token: str) -> Any:
    raise _NonFinite(token)


def _json_error(payload: bytes, exc: orjson.JSONDecodeError) -> _Reject:
    message = str(exc)
    if "depth limit" in message:
        return _Reject(TOO_DEEP, f"JSON nested deeper than the parser allows ({message})")
    if "UTF-8" in message:
        return _Reject(BAD_ENCODING, f"payload is not valid UTF-8 ({message})")
    if "infinity" in message:
        return _Reject(NON_FINITE, f"a number overflows to infinity ({message})")
    # orjson says only "unexpected character" for NaN; the slow parser, run on
    # this failure path only, tells a non-finite literal from other bad JSON.
    try:
        json.loads(payload, parse_constant=_refuse_constant)
    except _NonFinite as token:
        return _Reject(NON_FINITE, f"numbers must be finite; {token} is not JSON")
    except (ValueError, RecursionError):
        pass
    return _Reject(BAD_JSON, f"payload is not valid JSON ({message})")


class Decoder:
    """Turns (topic, payload) into Samples and Rejections; safe on any input."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        max_payload_bytes: int = protocol.MAX_PAYLOAD_BYTES,
        max_decompressed_bytes: int = protocol.MAX_BATCH_DECOMPRESSED_BYTES,
        max_future_skew_s: float = protocol.MAX_FUTURE_SKEW_S,
    ) -> None:
        self._clock = clock
        self._max_payload = max_payload_bytes
        self._max_decompressed = max_decompressed_bytes
        self._max_skew = max_future_skew_s
        self._validators = _compile_validators(protocol.load_schema())

    def decode(self, topic: str, payload: bytes) -> Decoded:
        out = Decoded([], [])
        try:
            where = protocol.parse_topic(topic)
        except protocol.TopicError as exc:
            out.rejections.append(Rejection(BAD_TOPIC, str(exc), topic))
            return out
        try:
            env = self._parse(where.channel, payload)
            self._check(env, where, where.channel, "envelope")
        except _Reject as rej:
            out.rejections.append(Rejection(rej.reason, rej.detail, topic, rej.field))
            return out
        if where.channel != protocol.BATCH:
            out.samples.append(self._sample(env, where.channel, from_batch=False))
            return out
        for index, item in enumerate(env["data"]["items"]):
            path = f"envelope.data.items[{index}]"
            channel = item.get("channel") if isinstance(item, dict) else None
            try:
                if not isinstance(item, dict):
                    raise _Reject(SCHEMA, f"{path} must be an object [type]", path)
                if channel not in protocol.BATCHABLE_CHANNELS:
                    raise _Reject(SCHEMA, f"{path}.channel must be one of "
                                          f"{', '.join(protocol.BATCHABLE_CHANNELS)}, not "
                                          f"{_shown(channel)} [enum]", f"{path}.channel")
                self._check(item, where, channel, path)
            except _Reject as rej:
                out.rejections.append(Rejection(rej.reason, rej.detail, topic, rej.field))
                continue
            out.samples.append(self._sample(item, channel, from_batch=True))
        return out

    def _parse(self, channel: str, payload: bytes) -> Any:
        if len(payload) > self._max_payload:
            raise _Reject(TOO_LARGE, f"payload is {len(payload)} bytes, limit {self._max_payload}")
        if payload[:1] == bytes((protocol.ZLIB_FIRST_BYTE,)):
            if channel != protocol.BATCH:
                raise _Reject(BAD_ENCODING, f"zlib-compressed payload on channel {channel!r}; "
                                            "only batch may be compressed")
            payload = self._inflate(payload)
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise _json_error(payload, exc) from None

    def _inflate(self, payload: bytes) -> bytes:
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(payload, self._max_decompressed)
        except zlib.error as exc:
            raise _Reject(BAD_ENCODING, f"batch payload is not valid zlib data ({exc})") from None
        if inflater.unconsumed_tail:
            raise _Reject(TOO_LARGE, f"batch inflates beyond {self._max_decompressed} bytes")
        if not inflater.eof:
            raise _Reject(BAD_ENCODING, "batch payload is truncated zlib data")
        return raw

    def _check(self, env: Any, where: protocol.Topic, channel: str, path: str) -> None:
        if isinstance(env, dict) and "v" in env and env["v"] != protocol.VERSION:
            raise _Reject(UNSUPPORTED_VERSION,
                          f"{path}.v is {_shown(env['v'])}; this collector speaks version "
                          f"{protocol.VERSION}", f"{path}.v")
        try:
            self._validators[channel](env)
        except fastjsonschema.JsonSchemaValueException as exc:
            field, detail = _describe(exc, path)
            raise _Reject(SCHEMA, detail, field) from None
        for key, expected in (("site", where.site), ("device", where.device)):
            if env[key] != expected:
                raise _Reject(IDENTITY_MISMATCH,
                              f"{path}.{key} {_shown(env[key])} differs from the topic's "
                              f"{expected!r}",
                              f"{path}.{key}")
        if env["ts"] > self._clock() + self._max_skew:
            raise _Reject(TS_IN_FUTURE,
                          f"{path}.ts {env['ts']} is more than {self._max_skew:g} s in the future",
                          f"{path}.ts")

    @staticmethod
    def _sample(env: dict[str, Any], channel: str, *, from_batch: bool) -> Sample:
        return Sample(env["site"], env["device"], channel, float(env["ts"]), env["seq"],
                      env["data"], from_batch)
