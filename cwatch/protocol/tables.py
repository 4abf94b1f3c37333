"""Render the schema's fields as Markdown tables for docs/protocol.md.

`python -m cwatch.protocol.tables` rewrites the generated part of
docs/protocol.md; a test fails when the document and the schema disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

from cwatch.protocol import CHANNELS, load_schema

BEGIN = "<!-- BEGIN GENERATED FIELD TABLES: python -m cwatch.protocol.tables -->"
END = "<!-- END GENERATED FIELD TABLES -->"


def _resolve(root: Dict[str, Any], node: Dict[str, Any]) -> Dict[str, Any]:
    while "$ref" in node:
        target = root  # type: Any
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _fmt_number(value: float) -> str:
    if value == 2 ** 53 - 1:
        return "2^53-1"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e6:
        return f"{value:g}"
    return f"{value:,}".replace(",", " ") if isinstance(value, int) else f"{value:g}"


def _limits(node: Dict[str, Any]) -> str:
    parts = []  # type: List[str]
    if "minimum" in node or "maximum" in node:
        parts.append("{} .. {}".format(_fmt_number(node.get("minimum", "-")),
                                       _fmt_number(node.get("maximum", "-"))))
    if "maxLength" in node:
        parts.append("≤ {} chars".format(node["maxLength"]))
    if "maxItems" in node:
        parts.append("≤ {} items".format(node["maxItems"]))
    if "minItems" in node:
        parts.append("≥ {} item".format(node["minItems"]))
    if "pattern" in node:
        parts.append("`{}`".format(node["pattern"]))
    if "enum" in node:
        parts.append(" / ".join("`null`" if v is None else f"`{v}`"
                                for v in node["enum"]))
    if "const" in node:
        parts.append("= `{}`".format(node["const"]))
    return "; ".join(parts)


def _type(node: Dict[str, Any]) -> str:
    types = node.get("type")
    if types is None:
        return "string" if "enum" in node or "const" in node else "any"
    if isinstance(types, list):
        return " or ".join(t for t in types)
    return str(types)


def fields(root: Dict[str, Any], node: Dict[str, Any], prefix: str = ""
           ) -> Iterator[Tuple[str, str, str, bool, str]]:
    """(path, type, limits, required, description) for every property under `node`."""
    node = _resolve(root, node)
    required = set(node.get("required", ()))
    for name, child in node.get("properties", {}).items():
        child = _resolve(root, child)
        path = prefix + name
        yield path, _type(child), _limits(child), name in required, child.get("description", "")
        if "properties" in child:
            yield from fields(root, child, path + ".")
        items = child.get("items")
        if isinstance(items, dict) and "properties" in _resolve(root, items):
            yield from fields(root, items, path + "[].")


def render(schema: Dict[str, Any]) -> str:
    out = [BEGIN, ""]
    for channel in CHANNELS:
        data = _resolve(schema, schema["definitions"][channel]["properties"]["data"])
        out += [f"#### `{channel}` data", "",
                "| field | type | limits | required | notes |", "|---|---|---|---|---|"]
        for path, typ, limits, required, description in fields(schema, data):
            out.append("| `{}` | {} | {} | {} | {} |".format(
                path, typ, limits.replace("|", "\\|"), "yes" if required else "",
                description))
        out.append("")
    out.append(END)
    return "\n".join(out)


def rewrite(doc_path: Path) -> bool:
    """Replace the generated part of `doc_path`; True when it changed."""
    text = doc_path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + render(load_schema()) + text[end:]
    if new != text:
        doc_path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/protocol.md")
    print("{} {}".format(target, "updated" if rewrite(target) else "already up to date"))
