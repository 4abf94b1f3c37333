"""The files in deploy/ are accepted by the real programs they configure."""

from __future__ import annotations

import re
from pathlib import Path

from mqtt_helpers import Publisher

from cwatch.procs import Mosquitto
from cwatch.tsdb_proc import VictoriaMetrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_mosquitto_accepts_the_broker_settings(tmp_path: Path) -> None:
    text = (DEPLOY / "mosquitto" / "cwatch.conf").read_text()
    # The test's own listener on a free port replaces the deployed one.
    settings = "\n".join(line for line in text.splitlines()
                         if not re.match(r"\s*(listener|allow_anonymous)\b", line))
    assert "max_queued_messages 2000000" in settings
    broker = Mosquitto(tmp_path / "broker", extra_conf=settings).start()
    try:
        publisher = Publisher(broker.host, broker.port)
        publisher.publish("cwatch/v1/an-phuoc/pc-01/metrics", b"{}")
        publisher.close()
        assert broker.proc is not None and broker.proc.poll() is None
    finally:
        broker.stop()


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
