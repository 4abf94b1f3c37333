"""Generate the dashboards' JSON from the code in this package.

    python -m dashboards.build            # write dashboards/json/*.json
    python -m dashboards.build --check    # exit 1 if the committed files are stale

Needs grafana-foundation-sdk (the `dev` extra); provisioning needs only the JSON.
Panel ids and query refIds are numbered here, so the output is stable from run to run
and a diff shows only what changed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboards.files import JSON_DIR

# File name -> the module that builds it; imported when building, since only building
# needs grafana-foundation-sdk.
DASHBOARDS = {
    "province.json": "dashboards.province",
    "commune.json": "dashboards.commune",
    "device.json": "dashboards.device",
    "priorities.json": "dashboards.priorities",
    "collector.json": "dashboards.collector_health",
}


def _builder(module: str) -> Callable[[], Any]:
    import importlib

    return importlib.import_module(module).build


def generate() -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana JSON, by file name."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    encoder = JSONEncoder(sort_keys=True)
    out = {}
    for name, module in DASHBOARDS.items():
        dashboard = json.loads(encoder.encode(_builder(module)().build()))
        _number(dashboard)
        out[name] = dashboard
    return out


def _number(dashboard: dict[str, Any]) -> None:
    """Panel ids 1, 2, 3... in layout order; refIds A, B, C... where a query has none."""
    for panel_id, panel in enumerate(dashboard["panels"], start=1):
        panel["id"] = panel_id
        for index, target in enumerate(panel.get("targets", [])):
            if not target.get("refId"):
                target["refId"] = chr(ord("A") + index)


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(out_dir: Path = JSON_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in generate().items():
        path = out_dir / name
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def check(out_dir: Path = JSON_DIR) -> list[str]:
    """Names of the files that differ from what the code generates (missing included)."""
    stale = []
    for name, dashboard in generate().items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(dashboard):
            stale.append(name)
    return stale


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m dashboards.build",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=JSON_DIR, help="folder for the JSON")
    parser.add_argument("--check", action="store_true",
                        help="only compare: exit 1 if a file differs from the code")
    args = parser.parse_args()
    if args.check:
        stale = check(args.out)
        for name in stale:
            print(f"stale: {args.out / name} (run: python -m dashboards.build)")
        sys.exit(1 if stale else 0)
    for path in main(args.out):
        print(f"wrote {path}")
