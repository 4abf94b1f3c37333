"""The files in deploy/ are accepted by the real programs they configure (the
broker's: tests/test_broker_security.py)."""

from __future__ import annotations

import re
from pathlib import Path

from cwatch.tsdb_proc import VictoriaMetrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_victoria_metrics_starts_with_the_deployed_arguments(tmp_path: Path) -> None:
    text = (DEPLOY / "victoria-metrics" / "victoria-metrics.default").read_text()
    found = re.search(r'^ARGS="([^"]*)"', text, re.M)
    assert found is not None
    args = found.group(1).split()
    assert "-retentionPeriod=5y" in args
    # Our own data folder and port; the rest as deployed (later flags win).
    kept = [a for a in args if not a.startswith(("-storageDataPath", "-httpListenAddr"))]
    server = VictoriaMetrics(tmp_path / "vm", extra_args=kept).start()
    try:
        assert server.query("1")[0]["value"][1] == "1"
    finally:
        server.stop()
