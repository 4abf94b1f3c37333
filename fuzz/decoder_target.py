#!/usr/bin/env python3
"""libFuzzer target (atheris) for collector.ingest.Decoder.decode, and a replayer.

    pip install atheris                                   # not a project dependency
    python fuzz/decoder_target.py --seed-corpus CORPUS    # write seed inputs
    python fuzz/decoder_target.py -atheris_runs=100000 CORPUS   # fuzz (libFuzzer flags)
    python fuzz/decoder_target.py --replay CORPUS crash-ab12... # replay, atheris or not

Without atheris installed, any run replays the files and folders given. An input is
one byte choosing the topic (TOPICS; the last choice reads the topic from the input up
to the first newline) followed by the payload. Each input must decode without raising,
and the result must satisfy tests/fuzz_strategies.check_decoded (closed set of reasons,
one-line details naming the field, samples matching the topic). Known bugs listed in
tests/fuzz_strategies.py are let through unless CWATCH_FUZZ_STRICT=1.
"""

from __future__ import annotations

import os
import sys
import traceback
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

try:
    import atheris
except ImportError:
    atheris = None

TOOL_MODES = ("--replay", "--seed-corpus", "--write-dict")
if atheris is not None and not set(TOOL_MODES) & set(sys.argv):
    # Coverage feedback from the decoder, the protocol module and the schema library
    # (orjson and zlib are native: no feedback from inside them).
    with atheris.instrument_imports(include=["collector.ingest", "cwatch.protocol",
                                             "fastjsonschema"]):
        from collector import ingest
    INSTRUMENT = True
else:
    from collector import ingest
    INSTRUMENT = False

import fuzz_strategies as fs  # noqa: E402  (imports hypothesis: after instrumenting)
import samples  # noqa: E402

from cwatch import protocol  # noqa: E402

STRICT = os.environ.get("CWATCH_FUZZ_STRICT") == "1"
TOPICS = [samples.topic(ch) for ch in protocol.CHANNELS] + [
    samples.topic("metrics", site="binh-minh"),  # identity mismatch
    samples.topic("batch", device="pc-other"),
]
RAW_TOPIC = len(TOPICS)
DECODER = ingest.Decoder(clock=lambda: fs.NOW)
if INSTRUMENT:
    # The compiled schema validators are generated code no import hook sees.
    for _validator in DECODER._validators.values():
        atheris.instrument_func(_validator)


def split_input(data: bytes) -> tuple[str, bytes]:
    if not data:
        return TOPICS[0], b""
    choice = data[0] % (len(TOPICS) + 1)
    if choice < len(TOPICS):
        return TOPICS[choice], data[1:]
    line, _, payload = data[1:].partition(b"\n")
    return line.decode("utf-8", "replace"), payload


def make_input(topic: str, payload: bytes) -> bytes:
    if topic in TOPICS:
        return bytes([TOPICS.index(topic)]) + payload
    return bytes([RAW_TOPIC]) + topic.encode("utf-8", "replace") + b"\n" + payload


def test_one_input(data: bytes) -> None:
    topic, payload = split_input(data)
    try:
        decoded = DECODER.decode(topic, payload)
    except Exception as exc:
        if not STRICT and fs.known_bug(exc):
            return
        raise
    fs.check_decoded(topic, payload, decoded, strict=STRICT)


def seed_inputs() -> dict[str, bytes]:
    """Valid envelopes of every channel, a compressed batch, and the hand-written bad
    messages of tests/bad_messages.py (the ones under 64 KiB)."""
    from bad_messages import cases

    seeds = {}
    for channel in protocol.CHANNELS:
        raw = protocol.encode(fs.envelope(channel))
        seeds[f"valid-{channel}"] = make_input(samples.topic(channel), raw)
    batch = protocol.encode(fs.envelope("batch"))
    seeds["valid-batch-zlib"] = make_input(samples.topic("batch"), zlib.compress(batch))
    for name, topic, payload, _reason, _field in cases():
        if len(payload) <= 64 * 1024:
            seeds[f"bad-{name}"] = make_input(topic, payload)
    return seeds


def dictionary() -> list[str]:
    """libFuzzer dictionary: the schema's keys and enum values, odd JSON tokens."""
    words = set(fs.RAW_TOKENS) | {'"v"', '"x"', "{", "}", "[", "]", ":", ",", "true", "null"}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                words.add(f'"{key}"')
                walk(value)
            for value in node.get("enum", []):
                if isinstance(value, str):
                    words.add(f'"{value}"')
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(fs.SCHEMA)

    def quote(word: str) -> str:  # libFuzzer's escapes: \\, \" and \xAB
        out = ""
        for byte in word.encode("utf-8"):
            char = chr(byte)
            out += "\\" + char if char in '\\"' else char if 32 <= byte < 127 else f"\\x{byte:02x}"
        return f'"{out}"'

    return [quote(word) for word in sorted(words)]


def replay(paths: list[str]) -> int:
    files = []
    for arg in paths:
        path = Path(arg)
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    failures = 0
    for path in files:
        try:
            test_one_input(path.read_bytes())
        except Exception:
            failures += 1
            print(f"FAIL {path}", file=sys.stderr)
            traceback.print_exc()
    print(f"replayed {len(files)} input(s), {failures} failure(s)")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    if "--seed-corpus" in argv:
        folder = Path(argv[argv.index("--seed-corpus") + 1])
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seed_inputs().items():
            (folder / name).write_bytes(data)
        print(f"wrote {len(seed_inputs())} seed inputs to {folder}")
        return 0
    if "--write-dict" in argv:
        target = Path(argv[argv.index("--write-dict") + 1])
        target.write_text("\n".join(dictionary()) + "\n", encoding="utf-8")
        print(f"wrote {target}")
        return 0
    if atheris is None or "--replay" in argv:
        paths = [a for a in argv[1:] if a != "--replay" and not a.startswith("-")]
        if not paths:
            print(__doc__, file=sys.stderr)
            return 2
        return replay(paths)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
