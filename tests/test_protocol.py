"""The protocol schema and the collector's decoder agree, rule by rule."""

from __future__ import annotations

import json
import zlib

import pytest
import samples
from bad_messages import cases
from jsonschema import Draft7Validator
from schema_mutations import Mutation, mutations

from collector import fastcheck
from collector.ingest import Decoder
from cwatch import protocol

SCHEMA = protocol.load_schema()
ALL_MUTATIONS = [(ch, m) for ch in protocol.CHANNELS
                 for m in mutations(SCHEMA, ch, samples.envelope(ch))]


def payload_for(doc: object) -> bytes:
    raw = json.dumps(doc).encode()
    # Batches over the plain size limit travel compressed, as an agent sends them.
    return zlib.compress(raw) if len(raw) > protocol.MAX_PAYLOAD_BYTES else raw


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder()


def test_schema_file_is_a_valid_draft7_schema() -> None:
    Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("channel", protocol.CHANNELS)
def test_full_sample_is_valid_for_both_validators(channel: str, decoder: Decoder) -> None:
    doc = samples.envelope(channel)
    errors = list(Draft7Validator(protocol.channel_schema(SCHEMA, channel)).iter_errors(doc))
    assert errors == []
    decoded = decoder.decode(samples.topic(channel), protocol.encode(doc))
    assert decoded.rejections == []
    expected = len(doc["data"]["items"]) if channel == "batch" else 1
    assert len(decoded.samples) == expected


def test_every_schema_rule_is_exercised() -> None:
    rules = {m.rule for _, m in ALL_MUTATIONS}
    keywords = set()

    def collect(node: object) -> None:
        if isinstance(node, dict):
            keywords.update(k for k in node if k in {
                "type", "minimum", "maximum", "maxLength", "pattern", "enum", "const",
                "required", "additionalProperties", "maxItems", "minItems"})
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(SCHEMA["definitions"])
    assert rules == keywords
    assert len(ALL_MUTATIONS) > 400


@pytest.mark.parametrize(("channel", "mutation"), ALL_MUTATIONS,
                         ids=[f"{ch}:{m.id}" for ch, m in ALL_MUTATIONS])
def test_each_schema_violation_is_rejected_naming_the_field(
        channel: str, mutation: Mutation, decoder: Decoder) -> None:
    validator = Draft7Validator(protocol.channel_schema(SCHEMA, channel))
    assert list(validator.iter_errors(mutation.doc)), "reference validator accepted it"
    decoded = decoder.decode(samples.topic(channel), payload_for(mutation.doc))
    if mutation.path.startswith("envelope.data.items["):
        # A broken batch item (even not an object, or of no known channel) costs only
        # itself: its neighbours are accepted.
        assert len(decoded.samples) == len(mutation.doc["data"]["items"]) - 1
    else:
        assert decoded.samples == []
    (rejection,) = decoded.rejections
    expected_reason = "unsupported_version" if mutation.path == "envelope.v" else "schema"
    assert rejection.reason == expected_reason
    assert rejection.field == mutation.expected_field
    assert mutation.expected_field in rejection.detail
    assert "\n" not in rejection.detail


@pytest.mark.parametrize("case", cases(), ids=lambda case: case[0])
def test_rules_beyond_the_schema(case: tuple, decoder: Decoder) -> None:
    _, topic, payload, reason, field = case
    decoded = decoder.decode(topic, payload)
    assert decoded.samples == []
    (rejection,) = decoded.rejections
    assert rejection.reason == reason, rejection.detail
    assert rejection.field == field
    assert rejection.detail and "\n" not in rejection.detail


def test_bad_batch_item_costs_only_itself(decoder: Decoder) -> None:
    batch = samples.envelope("batch")
    batch["data"]["items"][1]["data"]["targets"][0]["loss_percent"] = 140
    batch["data"]["items"][2]["device"] = "someone-else"
    decoded = decoder.decode(samples.topic("batch"), zlib.compress(protocol.encode(batch)))
    assert [s.channel for s in decoded.samples] == ["metrics"]
    assert decoded.samples[0].from_batch
    assert decoded.samples[0].ts == batch["data"]["items"][0]["ts"]
    reasons = [(r.reason, r.field) for r in decoded.rejections]
    assert reasons == [
        ("schema", "envelope.data.items[1].data.targets[0].loss_percent"),
        ("identity_mismatch", "envelope.data.items[2].device"),
    ]


def test_compressed_batch_keeps_original_timestamps(decoder: Decoder) -> None:
    batch = samples.envelope("batch")
    decoded = decoder.decode(samples.topic("batch"), zlib.compress(protocol.encode(batch)))
    assert decoded.rejections == []
    assert [(s.channel, s.seq, s.ts) for s in decoded.samples] == [
        (item["channel"], item["seq"], item["ts"]) for item in batch["data"]["items"]]


@pytest.mark.parametrize("channel", protocol.CHANNELS)
def test_valid_envelopes_take_the_fast_check(channel: str, decoder: Decoder) -> None:
    """The full samples (every field) pass msgspec's check alone: fastjsonschema, five
    to ten times slower, is left for what that check refuses (collector/fastcheck.py)."""
    doc = samples.envelope(channel)
    assert decoder._validators[channel].fast(doc)
    for item in doc["data"].get("items", []) if channel == protocol.BATCH else []:
        assert decoder._validators[item["channel"]].fast(item)


@pytest.mark.parametrize(("channel", "mutation"), ALL_MUTATIONS,
                         ids=[f"{ch}:{m.id}" for ch, m in ALL_MUTATIONS])
def test_each_schema_violation_fails_the_fast_check(
        channel: str, mutation: Mutation, decoder: Decoder) -> None:
    """So fastjsonschema judges it, and words the rejection."""
    doc = mutation.doc
    if mutation.path.startswith("envelope.data.items["):
        index = int(mutation.path.removeprefix("envelope.data.items[").split("]")[0])
        item = doc["data"]["items"][index]
        channel = item.get("channel") if isinstance(item, dict) else None
        if channel not in protocol.BATCHABLE_CHANNELS:
            return  # the decoder refuses it before any schema check
        doc = item
    assert not decoder._validators[channel].fast(doc)


@pytest.mark.parametrize("node", [
    {"type": "string", "format": "email"},
    {"type": "number", "multipleOf": 2},
    {"type": "object", "patternProperties": {"^x": {}}},
    {"type": "object", "additionalProperties": {"type": "string"}},
    {"type": "object", "required": ["x"]},
    {"type": "string", "pattern": "[a-z]+"},
    {"type": "number", "maximum": 2**53},
    {"type": "integer", "minimum": 0.5},
    {"enum": [1.5]},
    {"enum": [True]},
    {"oneOf": [{"type": "string"}, {"type": "null"}]},
    {"if": {"type": "string"}, "then": {"maxLength": 1}},
    {"maxLength": 3},
    {"type": "string", "enum": ["a"]},
])
def test_fast_check_refuses_schemas_it_does_not_translate(node: dict) -> None:
    """A new keyword in the schema fails loudly here rather than loosen the fast check."""
    with pytest.raises(fastcheck.SchemaNotSupported):
        fastcheck.compile_check({"type": "object", "properties": {"x": node}})


def test_topic_helpers_round_trip() -> None:
    topic = protocol.topic_for("an-phuoc", "pc-01", "metrics")
    assert topic == "cwatch/v1/an-phuoc/pc-01/metrics"
    assert protocol.parse_topic(topic) == ("an-phuoc", "pc-01", "metrics")
    with pytest.raises(ValueError, match="site"):
        protocol.topic_for("An Phước", "pc-01", "metrics")
    with pytest.raises(ValueError, match="channel"):
        protocol.topic_for("an-phuoc", "pc-01", "logs")


def test_encode_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValueError):
        protocol.encode({"x": float("nan")})


def test_encode_keeps_vietnamese_text_as_utf8() -> None:
    raw = protocol.encode({"location": "Bộ phận một cửa"})
    assert "Bộ phận một cửa".encode() in raw


def test_protocol_doc_tables_match_the_schema() -> None:
    from pathlib import Path

    from cwatch.protocol.tables import BEGIN, END, render

    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text("utf-8")
    generated = doc[doc.index(BEGIN):doc.index(END) + len(END)]
    assert generated == render(SCHEMA), "run: python -m cwatch.protocol.tables"


def test_protocol_doc_states_the_enforced_limits() -> None:
    from pathlib import Path

    from collector.ingest import REASONS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text("utf-8")
    assert f"{protocol.MAX_PAYLOAD_BYTES:,} bytes".replace(",", " ") in doc
    assert f"{protocol.MAX_BATCH_DECOMPRESSED_BYTES:,} bytes".replace(",", " ") in doc
    assert f"at most {protocol.MAX_FUTURE_SKEW_S:g} s in the future" in doc
    max_items = SCHEMA["definitions"]["batch_data"]["properties"]["items"]["maxItems"]
    assert f"| items in one batch | {max_items:,}".replace(",", " ") in doc
    for reason in REASONS:
        assert f"| `{reason}` |" in doc
