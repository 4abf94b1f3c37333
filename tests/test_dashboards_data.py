"""Every query of every panel of the shipped dashboards, run against real servers that
hold a simulated province: a real mosquitto, the collector, a real VictoriaMetrics
(the `cwatch-vm` data source) and a real Debian Prometheus scraping the collector
(`cwatch-prom`). Each must parse and return data: no empty or broken panel.

Grafana itself cannot run here, so the test does what Grafana would: it substitutes
the template variables (with values that the variables' own queries offer) and the
`$__` macros, and sends each query to the data source the panel names."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import REPLAY, start_collector, wait_until
from prometheus_helpers import Prometheus, api_get
from smtp_helpers import SmtpServer
from test_alerts_e2e import alerts_for

from cwatch.procs import Mosquitto
from cwatch.tsdb_proc import VictoriaMetrics
from dashboards.datasources import PROM_UID, VM_UID
from dashboards.files import load_all

SCENARIO = Path(__file__).parent / "fixtures" / "sim-dashboards.toml"
# The six real Dong Nai communes, with their Vietnamese names (the scenario's sites).
SITES_CSV = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / \
    "sites-dong-nai-sample.csv"
LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


def _range_seconds(dashboard: dict[str, Any]) -> int:
    match = re.fullmatch(r"now-(\d+)([hd])", dashboard["time"]["from"])
    assert match, dashboard["time"]
    return int(match.group(1)) * {"h": 3600, "d": 86400}[match.group(2)]


def _substitute(expr: str, variables: dict[str, str], range_s: int) -> str:
    # Grafana's macros: $__rate_interval is at least four scrape intervals (15 s on the
    # cwatch-prom data source), $__range the dashboard's time range.
    macros = {"$__rate_interval": "1m", "$__range": f"{range_s}s", "$__interval": "1m"}
    for name, value in [*macros.items(), *((f"${k}", v) for k, v in variables.items())]:
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def _has_data(result: list[dict[str, Any]]) -> bool:
    values = [s["value"] for s in result if "value" in s] + [
        v for s in result for v in s.get("values", [])]
    return any(not math.isnan(float(v[1])) for v in values)


@pytest.fixture
def province(mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics,
             smtp_server: SmtpServer, tmp_path: Path):
    """A simulated province, stored and scraped: (servers by data-source uid, truth)."""
    collector = start_collector(mosquitto, tmp_path, "dashboards-collector",
                                tsdb_url=victoria_metrics.url, serve_http=True,
                                alerts=alerts_for(smtp_server), sites_file=str(SITES_CSV),
                                **REPLAY)
    prometheus = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{collector.api.port}"])
    try:
        prometheus.start()
        truth_path = tmp_path / "truth.json"
        result = subprocess.run(
            [str(Path(sys.executable).parent / "cwatch"), "sim", "--broker", mosquitto.url,
             "--scenario", str(SCENARIO), "--seed", "5", "--start", "5h", "--speed", "4000",
             "--duration", "10", "--truth", str(truth_path), "--connections", "4"],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        sent = int(re.search(r"\((\d+) envelopes", result.stderr).group(1))
        wait_until(lambda: collector.metrics.totals()["accepted"] >= sent, 60, "all accepted")
        assert collector.wait_idle(60)
        victoria_metrics.force_flush()
        # Prometheus must have scraped the findings and the e-mails: a few more scrapes.
        wait_until(lambda: smtp_server.messages, 30, "an alert e-mail")
        scraped = prometheus.scrapes()
        wait_until(lambda: prometheus.scrapes() >= scraped + 4, 30, "four more scrapes")
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        yield {VM_UID: victoria_metrics.url, PROM_UID: prometheus.url}, truth
    finally:
        prometheus.stop()
        collector.stop()


ROUTER_PANELS = {"Link use", "Dropped packets", "Links up", "Tracked connections"}


def test_every_panel_of_every_dashboard_returns_data(province) -> None:
    servers, truth = province
    # The device with a failing disk, and its commune: the richest views.
    disk = next(t for t in truth["expected"] if t["fault"] == "disk_reallocated")
    chosen = {"site": disk["site"], "device": disk["device"], "instance": ".*"}
    end = time.time()
    problems: list[str] = []
    checked = 0
    for dashboard in load_all():
        range_s = _range_seconds(dashboard)
        variables = {}
        for variable in dashboard.get("templating", {}).get("list", []):
            offered = _variable_values(variable, servers, variables, end - range_s, end)
            value = chosen[variable["name"]]
            if value == ".*":
                assert variable["includeAll"] and variable["allValue"] == ".*"
                assert offered, f"{dashboard['uid']}: variable {variable['name']} offers nothing"
            else:
                assert value in offered, (dashboard["uid"], variable["name"], offered)
            variables[variable["name"]] = value
        for panel in dashboard["panels"]:
            columns: set[str] = set()
            # A router's own panels are read on the commune's router, not on the PC.
            on = dict(variables, device="router-01") if panel.get("title") in ROUTER_PANELS \
                and "device" in variables else variables
            for target in panel.get("targets", []):
                where = f"{dashboard['uid']} / {panel['title']} / {target['refId']}"
                expr = _substitute(target["expr"], on, range_s)
                server = servers[target["datasource"]["uid"]]
                try:
                    result = _run(server, expr, target, end, range_s)
                except AssertionError as exc:
                    problems.append(f"{where}: {expr}: {exc}")
                    continue
                checked += 1
                if not _has_data(result):
                    problems.append(f"{where}: no data: {expr}")
                columns |= {label for series in result for label in series["metric"]}
            if panel["type"] == "table":
                problems += _unnamed_columns(dashboard["uid"], panel, columns)
    assert not problems, "\n".join(problems)
    assert checked >= 60, checked  # the dashboards really were read
    # The Vietnamese names of the sites file reach the province's table intact.
    names = {s["metric"]["site"]: s["metric"]["name"] for s in api_get(
        servers[PROM_UID], "/api/v1/query", {"query": "cwatch_site_info"})}
    assert names["an-phuoc"] == "An Phước" and names["binh-minh"] == "Bình Minh"


def _unnamed_columns(uid: str, panel: dict[str, Any], labels: set[str]) -> list[str]:
    """A table shows every label of its rows as a column: each must be given a name or
    hidden by the panel's organize step (else e.g. Prometheus' own `job` shows up)."""
    targets = panel["targets"]
    values = {"Value"} if len(targets) == 1 else {f"Value #{t['refId']}" for t in targets}
    organize = next(t["options"] for t in panel["transformations"] if t["id"] == "organize")
    shown = (labels | values) - set(organize["excludeByName"])
    unnamed = shown - set(organize["renameByName"])
    problems = [f"{uid} / {panel['title']}: column {name!r} neither named nor hidden"
                for name in sorted(unnamed)]
    # A link that takes another cell of the row (${__data.fields.site}) needs that field.
    links = json.dumps(panel["fieldConfig"]["overrides"])
    problems += [f"{uid} / {panel['title']}: a link uses field {name!r}, not in the rows"
                 for name in re.findall(r"__data\.fields\.(\w+)", links) if name not in labels]
    return problems


def _run(server: str, expr: str, target: dict[str, Any], end: float,
         range_s: int) -> list[dict[str, Any]]:
    if target.get("instant"):
        return api_get(server, "/api/v1/query", {"query": expr, "time": f"{end:.3f}"})
    # As Grafana asks: about 500 points over the range, the last one at `end` (where the
    # few seconds that Prometheus has scraped are).
    step = max(60, range_s // 500)
    start = end - (range_s // step) * step
    return api_get(server, "/api/v1/query_range", {
        "query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}s"})


def _variable_values(variable: dict[str, Any], servers: dict[str, str],
                     earlier: dict[str, str], start: float, end: float) -> list[str]:
    """What Grafana offers for a label_values(...) variable over the time range."""
    match = LABEL_VALUES.match(variable["query"]["query"])
    assert match, variable["query"]
    selector, label = match.group(1), match.group(2)
    params: dict[str, Any] = {"start": f"{start:.3f}", "end": f"{end:.3f}"}
    if selector:
        for name, value in earlier.items():
            selector = selector.replace(f"${name}", value)
        params["match[]"] = selector
    return api_get(servers[variable["datasource"]["uid"]], f"/api/v1/label/{label}/values",
                   params)
