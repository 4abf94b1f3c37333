"""The files in deploy/ are accepted by the real programs they configure (the
broker's: tests/test_broker_security.py)."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

from cwatch.tsdb_proc import VictoriaMetrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def deployed_vm_args() -> list[str]:
    """The shipped arguments but our own data folder and port (later flags win)."""
    text = (DEPLOY / "victoria-metrics" / "victoria-metrics.default").read_text()
    found = re.search(r'^ARGS="([^"]*)"', text, re.M)
    assert found is not None
    args = found.group(1).split()
    assert "-retentionPeriod=5y" in args
    return [a for a in args if not a.startswith(("-storageDataPath", "-httpListenAddr"))]


def test_victoria_metrics_starts_with_the_deployed_arguments(tmp_path: Path) -> None:
    server = VictoriaMetrics(tmp_path / "vm", extra_args=deployed_vm_args()).start()
    try:
        assert server.query("1")[0]["value"][1] == "1"
    finally:
        server.stop()


def test_a_point_written_twice_counts_once_only_with_the_deployed_dedup(
        tmp_path: Path) -> None:
    """What the collector may do after a crash (it re-sends the batch in flight):
    VictoriaMetrics keeps both copies by default, one with -dedup.minScrapeInterval."""
    stamp = int((time.time() - 3600) * 1000)
    line = f"cwatch_dup,site=s,device=d v=1.5 {stamp}".encode()
    counts = {}
    for name, args in (("default", []), ("deployed", deployed_vm_args())):
        server = VictoriaMetrics(tmp_path / name, extra_args=args).start()
        try:
            for _ in range(2):
                request = urllib.request.Request(
                    f"{server.url}/api/v2/write?org=cwatch&bucket=cwatch&precision=ms",
                    data=line, method="POST")
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 204
            [row] = server.export('{__name__="cwatch_dup_v"}', end=time.time())
            [[_, count]] = [series["value"] for series in
                            server.query("count_over_time(cwatch_dup_v[2h])")]
            counts[name] = (len(row["timestamps"]), int(count))
        finally:
            server.stop()
    assert counts == {"default": (2, 2), "deployed": (1, 1)}
