"""Break a valid envelope one schema rule at a time.

Walks the protocol schema next to a valid document and yields, for every
constraint it finds (type, minimum, maximum, maxLength, pattern, enum, const,
required, additionalProperties, maxItems, minItems), a copy of the document
that violates just that constraint, plus the field path a validator should name.
Adding a field or a rule to the schema adds its test cases automatically.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_WRONG_VALUES = (("string", "wrong"), ("boolean", True), ("object", {}), ("array", []),
                 ("null", None), ("number", 1.5))


@dataclass(frozen=True)
class Mutation:
    rule: str
    path: str  # where the value was changed, e.g. envelope.data.disks[0].used_percent
    expected_field: str  # the field a rejection must name (for a missing key: that key)
    doc: Any

    @property
    def id(self) -> str:
        return f"{self.path}:{self.rule}"


def resolve(root: dict, node: dict) -> dict:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _wrong_value(types: list[str]) -> Any:
    allowed = set(types)
    if "number" in allowed:
        allowed.add("integer")
    for name, value in _WRONG_VALUES:
        if name not in allowed and not (name == "number" and "number" in allowed):
            return value
    raise AssertionError(f"no wrong value for types {types}")


def _set(doc: Any, keys: list[Any], value: Any) -> Any:
    new = copy.deepcopy(doc)
    target = new
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return new


def _delete(doc: Any, keys: list[Any]) -> Any:
    new = copy.deepcopy(doc)
    target = new
    for key in keys[:-1]:
        target = target[key]
    del target[keys[-1]]
    return new


def _path(keys: list[Any]) -> str:
    out = "envelope"
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else f".{key}"
    return out


def mutations(root: dict, channel: str, doc: Any, *, descend_batch_items: bool = False
              ) -> Iterator[Mutation]:
    yield from _walk(root, root["definitions"][channel], doc, doc, [], descend_batch_items)


def _walk(root: dict, node: dict, whole: Any, value: Any, keys: list[Any],
          descend: bool) -> Iterator[Mutation]:
    if not descend and node.get("$ref") == "#/definitions/batch_item":
        node = {k: v for k, v in resolve(root, node).items() if k not in ("if", "then", "else")}
    node = resolve(root, node)
    here = _path(keys)

    def make(rule: str, new_doc: Any, at: str | None = None) -> Mutation:
        return Mutation(rule, here, at or here, new_doc)

    types = node.get("type")
    if types is not None and keys:
        types = [types] if isinstance(types, str) else types
        yield make("type", _set(whole, keys, _wrong_value(types)))
    if "const" in node and keys:
        yield make("const", _set(whole, keys, "wrong-const"))
    if "enum" in node and keys:
        yield make("enum", _set(whole, keys, "not-in-enum"))
    if value is None:
        return
    if "minimum" in node and keys:
        low = node["minimum"] - (1 if isinstance(node["minimum"], int) else 0.5)
        yield make("minimum", _set(whole, keys, low))
    if "maximum" in node and keys:
        yield make("maximum", _set(whole, keys, node["maximum"] + 1))
    if "maxLength" in node and keys:
        yield make("maxLength", _set(whole, keys, "a" * (node["maxLength"] + 1)))
    if "pattern" in node and keys:
        yield make("pattern", _set(whole, keys, "Not Valid!"))
    if isinstance(value, dict):
        for required in node.get("required", ()):
            yield make("required", _delete(whole, [*keys, required]), _path([*keys, required]))
        if node.get("additionalProperties") is False:
            yield make("additionalProperties", _set(whole, [*keys, "unexpected_field"], 1),
                       _path([*keys, "unexpected_field"]))
        for name, child in node.get("properties", {}).items():
            if name in value:
                yield from _walk(root, child, whole, value[name], [*keys, name], descend)
    if isinstance(value, list):
        if "maxItems" in node and value:
            yield make("maxItems", _set(whole, keys, [value[0]] * (node["maxItems"] + 1)))
        if node.get("minItems", 0) > 0:
            yield make("minItems", _set(whole, keys, []))
        if value and "items" in node:
            yield from _walk(root, node["items"], whole, value[0], [*keys, 0], descend)
