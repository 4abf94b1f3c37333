"""The two Grafana data sources the dashboards query, both of Grafana's `prometheus` type.

* VictoriaMetrics (uid `cwatch-vm`): every measurement the agents sent, as the collector
  wrote it (docs/metrics-mapping.md), with the samples' own times, backfill included.
* Prometheus (uid `cwatch-prom`): the collector's own `/metrics` as Prometheus scrapes it
  (deploy/prometheus/prometheus.yml): current state (devices online, active findings,
  upgrade priorities) and the collector's health.

Panels name a data source by uid, so a dashboard works whatever the data source is
called in a given Grafana, as long as the uid matches.
"""

from __future__ import annotations

from typing import Any

VM_UID = "cwatch-vm"
PROM_UID = "cwatch-prom"

DEFAULT_VM_URL = "http://127.0.0.1:8428"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"


def datasource_models(vm_url: str = DEFAULT_VM_URL,
                      prometheus_url: str = DEFAULT_PROMETHEUS_URL) -> list[dict[str, Any]]:
    """The data sources as Grafana's HTTP API takes them (POST /api/datasources)."""
    return [
        {"uid": VM_UID, "name": "commune-watch VictoriaMetrics", "type": "prometheus",
         "access": "proxy", "url": vm_url.rstrip("/"), "isDefault": False,
         # VictoriaMetrics answers the Prometheus query API; "Prometheus" keeps Grafana
         # from sending Prometheus-only calls VictoriaMetrics lacks.
         "jsonData": {"httpMethod": "POST", "timeInterval": "60s",
                      "prometheusType": "Prometheus"}},
        {"uid": PROM_UID, "name": "commune-watch Prometheus", "type": "prometheus",
         "access": "proxy", "url": prometheus_url.rstrip("/"), "isDefault": False,
         "jsonData": {"httpMethod": "POST", "timeInterval": "30s",
                      "prometheusType": "Prometheus"}},
    ]
