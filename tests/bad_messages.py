"""Messages that break each rule the collector enforces outside the JSON Schema.

Each case: (id, topic, payload, expected reason, expected field or None).
Schema rules are covered field by field by schema_mutations.py.
"""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import samples

from cwatch import protocol


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def cases() -> list[tuple[str, str, bytes, str, str | None]]:
    good = samples.envelope("metrics")
    metrics_topic = samples.topic("metrics")
    batch = samples.envelope("batch")
    nan_doc = _bytes(good).replace(b'"cpu_percent": 37.5', b'"cpu_percent": NaN')
    huge_batch = samples.envelope("batch")
    huge_batch["data"]["items"] = huge_batch["data"]["items"] * 1000
    bomb = zlib.compress(b" " * (protocol.MAX_BATCH_DECOMPRESSED_BYTES + 10) + b"{}", 9)
    deep = b'{"v":1,"data":' + b"[" * 5000 + b"]" * 5000 + b"}"
    return [
        ("too-large", metrics_topic, b" " * (protocol.MAX_PAYLOAD_BYTES + 1), "too_large", None),
        ("topic-prefix", "other/v1/an-phuoc/pc-01/metrics", _bytes(good), "bad_topic", None),
        ("topic-version", "cwatch/v2/an-phuoc/pc-01/metrics", _bytes(good), "bad_topic", None),
        ("topic-levels", "cwatch/v1/an-phuoc/pc-01/metrics/extra", _bytes(good), "bad_topic",
         None),
        ("topic-site", "cwatch/v1/An_Phuoc/pc-01/metrics", _bytes(good), "bad_topic", None),
        ("topic-device", "cwatch/v1/an-phuoc/-pc/metrics", _bytes(good), "bad_topic", None),
        ("topic-channel", "cwatch/v1/an-phuoc/pc-01/logs", _bytes(good), "bad_topic", None),
        ("not-utf8", metrics_topic, b'{"v":1,"site":"\xff\xfe"}', "bad_encoding", None),
        ("not-json", metrics_topic, b"hello", "bad_json", None),
        ("truncated-json", metrics_topic, _bytes(good)[:-10], "bad_json", None),
        ("empty", metrics_topic, b"", "bad_json", None),
        ("not-object", metrics_topic, b"[1,2,3]", "schema", "envelope"),
        ("too-deep", metrics_topic, deep, "too_deep", None),
        ("nan", metrics_topic, nan_doc, "non_finite", None),
        ("infinity", metrics_topic, nan_doc.replace(b"NaN", b"Infinity"), "non_finite", None),
        ("minus-infinity", metrics_topic, nan_doc.replace(b"NaN", b"-Infinity"), "non_finite",
         None),
        ("overflow", metrics_topic, nan_doc.replace(b"NaN", b"1e999"), "non_finite", None),
        ("version-2", metrics_topic, _bytes({**good, "v": 2}), "unsupported_version",
         "envelope.v"),
        ("spoofed-site", samples.topic("metrics", site="binh-minh"), _bytes(good),
         "identity_mismatch", "envelope.site"),
        ("spoofed-device", samples.topic("metrics", device="pc-other"), _bytes(good),
         "identity_mismatch", "envelope.device"),
        ("channel-mismatch", samples.topic("probe"), _bytes(good), "schema",
         "envelope.channel"),
        ("ts-future", metrics_topic, _bytes({**good, "ts": time.time() + 3600}),
         "ts_in_future", "envelope.ts"),
        ("zlib-not-batch", metrics_topic, zlib.compress(_bytes(good)), "bad_encoding", None),
        ("zlib-corrupt", samples.topic("batch"), zlib.compress(_bytes(batch))[:-8] + b"garbage!",
         "bad_encoding", None),
        ("zlib-truncated", samples.topic("batch"), zlib.compress(_bytes(batch))[:40],
         "bad_encoding", None),
        ("zlib-bomb", samples.topic("batch"), bomb, "too_large", None),
        ("batch-too-many", samples.topic("batch"), zlib.compress(_bytes(huge_batch)), "schema",
         "envelope.data.items"),
    ]
