"""Wire protocol v1: topics, envelopes and limits shared by agent and collector.

This module is imported by the agent and must stay Python 3.8 compatible and
free of third-party imports. docs/protocol.md is the prose version of it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional

VERSION = 1
TOPIC_PREFIX = "cwatch/v1"
SUBSCRIPTION = TOPIC_PREFIX + "/+/+/+"

# Channels an agent publishes on; "batch" carries buffered envelopes of the first three.
METRICS, PROBE, INVENTORY, STATUS, BATCH = "metrics", "probe", "inventory", "status", "batch"
CHANNELS = (METRICS, PROBE, INVENTORY, STATUS, BATCH)
BATCHABLE_CHANNELS = (METRICS, PROBE, INVENTORY)
RETAINED_CHANNELS = (STATUS, INVENTORY)
QOS = 1

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

# Limits the collector enforces before and besides the JSON Schema.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_DECOMPRESSED_BYTES = 4 * 1024 * 1024
MAX_FUTURE_SKEW_S = 600.0
# A payload whose first byte is this is zlib (RFC 1950) compressed JSON; JSON text never
# starts with 'x', so the two cannot be confused, and it works over MQTT 3.1.1.
ZLIB_FIRST_BYTE = 0x78

SCHEMA_PATH = Path(__file__).parent / "schemas" / "v1.schema.json"


class Topic(NamedTuple):
    site: str
    device: str
    channel: str


class TopicError(ValueError):
    """A topic that is not cwatch/v1/<site>/<device>/<channel>."""


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def topic_for(site: str, device: str, channel: str) -> str:
    """Build a topic; raises ValueError on an id or channel the protocol does not allow."""
    for name, value in (("site", site), ("device", device)):
        if not is_valid_id(value):
            raise ValueError(
                f"{name} {value!r} must match [a-z0-9][a-z0-9._-]{{0,63}}"
            )
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    return f"{TOPIC_PREFIX}/{site}/{device}/{channel}"


def parse_topic(topic: str) -> Topic:
    """Split a topic into site, device and channel, or raise TopicError saying why."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "cwatch" or parts[1] != "v1":
        raise TopicError(f"topic {topic[:200]!r} is not cwatch/v1/<site>/<device>/<channel>")
    site, device, channel = parts[2], parts[3], parts[4]
    if not is_valid_id(site):
        raise TopicError(f"topic site {site[:80]!r} is not a valid id")
    if not is_valid_id(device):
        raise TopicError(f"topic device {device[:80]!r} is not a valid id")
    if channel not in CHANNELS:
        raise TopicError(f"topic channel {channel[:80]!r} is not one of {', '.join(CHANNELS)}")
    return Topic(site, device, channel)


def envelope(
    site: str, device: str, ts: float, seq: Optional[int], data: Dict[str, Any],
    channel: Optional[str] = None,
) -> Dict[str, Any]:
    """Build an envelope dict; `channel` is set only for items inside a batch."""
    env = {"v": VERSION, "site": site, "device": device, "ts": ts}  # type: Dict[str, Any]
    if seq is not None:
        env["seq"] = seq
    if channel is not None:
        env["channel"] = channel
    env["data"] = data
    return env


def encode(env: Dict[str, Any]) -> bytes:
    """Serialise an envelope as compact UTF-8 JSON; NaN and Infinity are refused."""
    return json.dumps(env, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def load_schema() -> Dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        return json.load(fh)


def channel_schema(schema: Dict[str, Any], channel: str) -> Dict[str, Any]:
    """A stand-alone schema for one channel's envelope: the whole file rooted at its definition."""
    rooted = dict(schema)
    rooted["$ref"] = "#/definitions/" + channel
    return rooted
