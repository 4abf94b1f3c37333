"""Start an in-process collector on a test broker, with its state in a temp folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.config import AlertsSection
from collector.config import CollectorConfig, CollectorSection, EnrollSection, TsdbSection
from collector.service import Collector
from cwatch.mqtt import BrokerConfig
from cwatch.procs import Mosquitto


def start_collector(broker: Mosquitto, state_dir: Path, client_id: str, *,
                    sinks: list[Callable] | None = None, on_reject: Callable | None = None,
                    tsdb_url: str | None = None, serve_http: bool = False,
                    alerts: AlertsSection | None = None, enroll: EnrollSection | None = None,
                    login: tuple[str, str] | None = None, reconnect_max_s: int = 120,
                    **section: Any) -> Collector:
    """Without tsdb_url the time-series writer is off (no VictoriaMetrics needed).
    reconnect_max_s: the reconnect backoff's ceiling; lower it where a test restarts
    the broker and must not wait for a long backoff."""
    config = CollectorConfig(
        collector=CollectorSection(**{"client_id": client_id, "listen": "127.0.0.1:0",
                                      "state_path": str(state_dir / f"{client_id}.db"),
                                      **section}),
        broker=BrokerConfig(url=broker.url, username=login[0] if login else None,
                            password=login[1] if login else None,
                            reconnect_max_s=reconnect_max_s),
        tsdb=TsdbSection(enabled=tsdb_url is not None, url=tsdb_url or "http://127.0.0.1:1"),
        alerts=alerts or AlertsSection(), enroll=enroll or EnrollSection())
    collector = Collector(config, sinks=sinks, on_reject=on_reject)
    collector.start(serve_http=serve_http)
    assert collector.wait_connected(10), "collector did not connect"
    return collector


# The default interface_errors rule without its 5 minutes: a router's rising error
# counter becomes a finding at the first sample over the limit (rules_file=...).
INTERFACE_ERRORS_AT_ONCE = """[[rules]]
name = "interface_errors"
finding = "interface_errors"
quantity = "net_errors_per_s"
above = 2
clear = 0.5
for = "0s"
severity = "warning"
summary = "Interface {item}: {value:.1f} errors/s"
summary_vi = "Cổng {item}: {value:.1f} lỗi/giây"
source = "test"
"""


# For a collector fed by `cwatch sim` replaying hours in seconds: by the per-device rate
# limit's measure that is a flood, so the limit is off.
REPLAY: dict[str, Any] = {"device_rate_per_s": 0}


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0,
               what: str = "condition", poll_s: float = 0.02) -> float:
    """Seconds it took; fails the test naming `what` after timeout_s."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"{what} not met within {timeout_s:g} s"
        time.sleep(poll_s)
    return time.monotonic() - started
