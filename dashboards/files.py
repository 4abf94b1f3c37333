"""The generated dashboards as shipped: one JSON file per dashboard in dashboards/json/,
written by `python -m dashboards.build` and committed, so Grafana's file provisioning
can read them as they are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

JSON_DIR = Path(__file__).resolve().parent / "json"


def dashboard_paths(folder: Path = JSON_DIR) -> list[Path]:
    return sorted(folder.glob("*.json"))


def load_all(folder: Path = JSON_DIR) -> list[dict[str, Any]]:
    """Every shipped dashboard, in file-name order."""
    return [json.loads(path.read_text(encoding="utf-8")) for path in dashboard_paths(folder)]
