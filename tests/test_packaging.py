"""The agent stays light: its extras pull nothing of the collector's, its code
runs on Python 3.8, and `cwatch agent` never imports collector code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from agent_helpers import agent_toml

ROOT = Path(__file__).resolve().parents[1]
AGENT_ALLOWED = {"commune-watch", "psutil", "paho-mqtt", "tomli", "typing-extensions"}
COLLECTOR_ONLY = {"orjson", "fastjsonschema", "msgspec", "prometheus-client", "influxdb-client",
                  "grafana-client", "numpy", "weasyprint", "openpyxl"}
# Everything `cwatch agent` imports: the agent package and the shared modules.
AGENT_CODE = ["agent", "cwatch/__init__.py", "cwatch/__main__.py", "cwatch/cli.py",
              "cwatch/config.py", "cwatch/mqtt.py", "cwatch/logutil.py", "cwatch/protocol"]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_agent_extra_installs_no_collector_dependency(tmp_path: Path) -> None:
    """Resolve `pip install .[agent]` as a clean venv would, without installing."""
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), f"{ROOT}[agent]"],
        check=True, capture_output=True, timeout=300)
    names = {_normalise(item["metadata"]["name"])
             for item in json.loads(report.read_text())["install"]}
    assert {"psutil", "paho-mqtt", "commune-watch"} <= names
    assert names <= AGENT_ALLOWED, f"agent pulls in {sorted(names - AGENT_ALLOWED)}"
    assert not names & COLLECTOR_ONLY


def test_agent_code_is_python_38_compatible() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vermin"), "--target=3.8-", "--no-tips", "--violations",
         "--eval-annotations", *AGENT_CODE],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_agent_command_does_not_import_collector_code(tmp_path: Path) -> None:
    config = agent_toml(tmp_path / "agent.toml", "mqtt://127.0.0.1:1", tmp_path / "data",
                        probes=True)
    script = (
        "import sys, io, contextlib\n"
        "from cwatch.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['agent', '--config', {str(config)!r}, '--once', '--print'])\n"
        "heavy = ('collector', 'alerts', 'dashboards', 'orjson', 'fastjsonschema', "
        "'prometheus_client', 'influxdb_client', 'grafana_client')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
