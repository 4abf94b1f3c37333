"""A fast yes-or-"ask fastjsonschema" check of a parsed envelope against the protocol schema.

fastjsonschema's generated Python costs about 35 us for a metrics envelope; most
envelopes are valid, and only a rejection needs its exact wording. So each channel's
schema (refs already inlined) is also translated into msgspec types - Structs with
forbid_unknown_fields, Annotated[int | float | str | list, Meta(...)], Literal - and
`msgspec.convert` checks the parsed dict against them in C, in a few microseconds.

The contract is one-sided: `check(doc)` is True only for documents fastjsonschema
accepts too. It may say False for a document fastjsonschema would accept (an integer
written as 4.0: JSON Schema calls it an integer, msgspec's int does not); the caller then
runs fastjsonschema, which decides and words any rejection as before. So the fast path
changes the speed, never a verdict nor a detail. Where msgspec is stricter or equal:

    JSON Schema (fastjsonschema)          msgspec type used here
    ----------------------------------    -------------------------------------------
    integer: int or integral float,       int (not bool, not float); bounds compared
      not bool                              exactly
    number: int or float, not bool        float (takes int, not bool); bounds below 2^53
                                            in size, so an int's rounding cannot cross one
    string maxLength (code points)        str Meta(max_length) (code points)
    pattern, "$" compiled as "\\Z"        the same rewritten pattern, re.search
    enum / const of strings, ints, null   Literal (exact type) / None
    additionalProperties: false           Struct(forbid_unknown_fields=True)
    absent optional field                 a default (never validated); null still
                                            refused unless the type has "null"

A keyword this module does not know raises SchemaNotSupported when the Decoder is built,
so a schema change cannot silently loosen the fast path; the differential property test
in tests/test_fuzz.py holds the contract against fastjsonschema itself.
"""

from __future__ import annotations

import contextlib
import keyword
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import msgspec

# Keywords that do not constrain a value.
ANNOTATIONS = frozenset({"description", "title", "$comment", "$schema", "$id", "examples"})
# fastjsonschema compiles every unescaped "$" of a pattern as "\\Z" (ECMA 262: end of
# string only; Python's "$" also matches before a final newline). Its own rule, copied.
DOLLAR_FINDER = re.compile(r"(?<!\\)\$")
# An int bound (or an int value against a float bound) converts to float exactly below this.
EXACT_FLOAT = 2**53


class SchemaNotSupported(ValueError):
    """The schema uses a keyword or combination the fast check does not translate."""


def _number_meta(node: dict[str, Any], integer: bool, where: str) -> dict[str, Any]:
    meta = {}
    for key, name in (("minimum", "ge"), ("maximum", "le")):
        if key not in node:
            continue
        bound = node[key]
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise SchemaNotSupported(f"{where}: {key} {bound!r}")
        if abs(bound) >= EXACT_FLOAT:
            raise SchemaNotSupported(f"{where}: {key} {bound!r} is beyond 2^53")
        if integer:
            if bound != int(bound):
                raise SchemaNotSupported(f"{where}: integer {key} {bound!r}")
            bound = int(bound)
        meta[name] = bound
    return meta


def _string_meta(node: dict[str, Any], where: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if "maxLength" in node:
        meta["max_length"] = int(node["maxLength"])
    if "minLength" in node:
        meta["min_length"] = int(node["minLength"])
    if "pattern" in node:
        pattern = node["pattern"]
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise SchemaNotSupported(f"{where}: unanchored pattern {pattern!r}")
        meta["pattern"] = DOLLAR_FINDER.sub(r"\\Z", pattern)  # as fastjsonschema compiles it
        re.compile(meta["pattern"])
    return meta


def _literal(values: list[Any], where: str) -> Any:
    """Literal[...] of strings and ints (not bools), or None; Optional when null is one."""
    allowed = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise SchemaNotSupported(f"{where}: enum/const value {value!r}")
        allowed.append(value)
    options = [Literal[tuple(allowed)]] if allowed else []  # type: ignore[valid-type]
    if None in values:
        options.append(None)
    if not options:
        raise SchemaNotSupported(f"{where}: empty enum")
    return Union[tuple(options)] if len(options) > 1 else options[0]


class _Translator:
    def __init__(self) -> None:
        self._structs = 0

    def type_of(self, node: Any, where: str) -> Any:
        if not isinstance(node, dict):
            raise SchemaNotSupported(f"{where}: schema {node!r}")
        keys = set(node) - ANNOTATIONS
        if not keys:
            return Any
        if "const" in node or "enum" in node:
            if keys not in ({"const"}, {"enum"}):
                raise SchemaNotSupported(f"{where}: enum/const with {sorted(keys)}")
            return _literal([node["const"]] if "const" in node else node["enum"], where)
        if "type" not in node:
            raise SchemaNotSupported(f"{where}: no type in {sorted(keys)}")
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        used = {"type"}
        options = []
        for name in types:
            if name == "null":
                options.append(None)
            elif name == "boolean":
                options.append(bool)
            elif name in ("integer", "number"):
                meta = _number_meta(node, name == "integer", where)
                used |= {"minimum", "maximum"}
                base = int if name == "integer" else float
                options.append(Annotated[base, msgspec.Meta(**meta)] if meta else base)
            elif name == "string":
                meta = _string_meta(node, where)
                used |= {"maxLength", "minLength", "pattern"}
                options.append(Annotated[str, msgspec.Meta(**meta)] if meta else str)
            elif name == "array":
                options.append(self._array(node, where))
                used |= {"items", "maxItems", "minItems"}
            elif name == "object":
                options.append(self._struct(node, where))
                used |= {"properties", "required", "additionalProperties"}
            else:
                raise SchemaNotSupported(f"{where}: type {name!r}")
        # A keyword that applies to none of the types is ignored by JSON Schema; one that
        # is not known at all might constrain something we do not check.
        unknown = keys - used - {"minimum", "maximum", "maxLength", "minLength", "pattern",
                                 "items", "maxItems", "minItems", "properties", "required",
                                 "additionalProperties"}
        if unknown:
            raise SchemaNotSupported(f"{where}: keywords {sorted(unknown)}")
        return Union[tuple(options)] if len(options) > 1 else options[0]

    def _array(self, node: dict[str, Any], where: str) -> Any:
        items = node.get("items", {})
        item_type = self.type_of(items, where + "[]")
        meta = {}
        if "maxItems" in node:
            meta["max_length"] = int(node["maxItems"])
        if "minItems" in node:
            meta["min_length"] = int(node["minItems"])
        listed = list[item_type]  # type: ignore[valid-type]
        return Annotated[listed, msgspec.Meta(**meta)] if meta else listed

    def _struct(self, node: dict[str, Any], where: str) -> Any:
        extra = node.get("additionalProperties", True)
        if extra not in (True, False):
            raise SchemaNotSupported(f"{where}: additionalProperties {extra!r}")
        properties = node.get("properties", {})
        required = set(node.get("required", ()))
        if required - set(properties):
            # A required key with no property schema: allowed when extra keys are, but
            # then msgspec would not check its presence. Not in our schema.
            raise SchemaNotSupported(f"{where}: required {sorted(required - set(properties))}")
        fields = []
        for key, sub in properties.items():
            if not key.isidentifier() or keyword.iskeyword(key) or key.startswith("_"):
                raise SchemaNotSupported(f"{where}: property name {key!r}")
            sub_type = self.type_of(sub, f"{where}.{key}")
            # An absent optional field gets None; defaults are not validated, and a null
            # that is sent is still checked against sub_type.
            fields.append((key, sub_type) if key in required else (key, sub_type, None))
        self._structs += 1
        return msgspec.defstruct(
            f"Fast{self._structs}", fields, kw_only=True, forbid_unknown_fields=not extra,
            gc=False, module=__name__)


def compile_check(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """check(doc): True only if fastjsonschema accepts doc under `schema` too (see above).
    `schema` must have its $refs inlined."""
    target = _Translator().type_of(schema, "data")
    convert = msgspec.convert
    # msgspec vets a type on its first use: one it cannot handle raises TypeError here,
    # loudly, not as a silent fallback to fastjsonschema on every message.
    with contextlib.suppress(msgspec.ValidationError):
        convert(None, target)

    def check(doc: Any) -> bool:
        try:
            convert(doc, target)
        except Exception:  # ValidationError, or anything odd: let fastjsonschema judge
            return False
        return True

    return check
