"""The collector's own health as Prometheus metrics, in a registry it owns."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from collector.ingest import REASONS
from cwatch.protocol import CHANNELS


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.received = Counter(
            "cwatch_messages_received", "MQTT messages received", registry=self.registry)
        self.accepted = Counter(
            "cwatch_messages_accepted",
            "Envelopes accepted (each item of a batch counts once)", ["channel"],
            registry=self.registry)
        self.rejected = Counter(
            "cwatch_messages_rejected", "Messages or batch items rejected, by reason",
            ["reason"], registry=self.registry)
        self.throttled = Counter(
            "cwatch_device_throttled_messages",
            "Messages dropped by the per-device rate limit, by device (only devices that "
            "were ever throttled have a series)", ["site", "device"], registry=self.registry)
        self.broker_dropped = Gauge(
            "cwatch_broker_messages_dropped",
            "Messages the broker dropped since it started, as it reports them in $SYS "
            "(mosquitto: queues full, e.g. max_queued_messages while the collector was "
            "away); a backlog batch is one message", registry=self.registry)
        self.unassigned = Counter(
            "cwatch_unassigned_site_messages",
            "Status messages of sites in no collector's partition (missing from sites_file: "
            "their data reaches no collector), by site", ["site"], registry=self.registry)
        self.duplicates = Counter(
            "cwatch_messages_duplicate",
            "Envelopes dropped as already seen (same site, device and seq)",
            registry=self.registry)
        self.state_queue = Gauge(
            "cwatch_state_queue_samples", "Accepted samples waiting for the device state store",
            registry=self.registry)
        self.delay = Histogram(
            "cwatch_ingest_delay_seconds",
            "From a live sample's own time (agent clock) to stored in the state store; "
            "backfilled batch items are left out", registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        # Pre-create every label so a dashboard sees 0 rather than no series.
        for channel in CHANNELS:
            if channel != "batch":
                self.accepted.labels(channel)
        for reason in REASONS:
            self.rejected.labels(reason)

    def totals(self) -> dict[str, float]:
        """Received, accepted and rejected so far, summed over labels (for summaries)."""
        out = {}
        for name, counter in (("received", self.received), ("accepted", self.accepted),
                              ("rejected", self.rejected), ("duplicate", self.duplicates)):
            out[name] = sum(s.value for metric in counter.collect() for s in metric.samples
                            if s.name.endswith("_total"))
        return out


class FleetCollector(Collector):
    """Devices per site and status, read from the state store at scrape time."""

    def __init__(self, counts_by_site: Callable[[], dict[str, dict[str, int]]]) -> None:
        self._counts = counts_by_site

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("cwatch_devices", "Devices known to the collector, by site "
                                   "and status", labels=["site", "status"])
        for site, by_status in sorted(self._counts().items()):
            for status in ("online", "offline"):
                family.add_metric([site, status], by_status.get(status, 0))
        yield family


class FindingsCollector(Collector):
    """Active findings read from the findings table at scrape time: counts by kind and
    severity, and (given active_rows) one series per active finding for alerting rules
    (deploy/prometheus/cwatch-alerts.yml)."""

    LABELS = ("finding", "rule", "severity", "scope", "site", "device", "item")

    def __init__(self, active_counts: Callable[[], dict[tuple[str, str], int]],
                 active_rows: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self._counts = active_counts
        self._rows = active_rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("cwatch_findings_active", "Active findings by kind and "
                                   "severity", labels=["finding", "severity"])
        for (finding, severity), count in sorted(self._counts().items()):
            family.add_metric([finding, severity], count)
        yield family
        if self._rows is None:
            return
        active = GaugeMetricFamily(
            "cwatch_finding_active", "1 per active finding (site/device empty for "
            "province-level findings, item empty when the finding is about the whole "
            "device or site)", labels=list(self.LABELS))
        started = GaugeMetricFamily(
            "cwatch_finding_started_timestamp_seconds", "When the active finding started "
            "(Unix time)", labels=list(self.LABELS))
        seen: set[tuple[str, ...]] = set()
        for row in self._rows():
            if row.get("ended_ts") is not None:
                continue
            labels = tuple("" if row.get(name) is None else str(row[name])
                           for name in self.LABELS)
            # Two rows with the same labels would be one series twice (an invalid
            # exposition); the first (newest, as query() orders them) wins.
            if labels in seen:
                continue
            seen.add(labels)
            active.add_metric(list(labels), 1)
            started.add_metric(list(labels), float(row["started_ts"]))
        yield active
        yield started


class PrioritiesCollector(Collector):
    """The upgrade ranking (collector/rules/priority.py) as gauges, for the Grafana table:
    a score and a rank per device (with its role, suggested action and why) and a score
    per site. The ranking reads every device's state, so it is computed at most once per
    `max_age_s` however often Prometheus scrapes, and off the scrape: a scrape that finds
    it older gets the last one while a thread ranks again (65,000 devices take seconds
    to rank, and Prometheus gives a scrape 10 s). Only the very first scrape waits."""

    def __init__(self, rank: Callable[[], dict[str, Any]], max_age_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rank = rank
        self._max_age_s = max_age_s
        self._clock = clock
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()  # one ranking at a time
        self._refreshing: threading.Thread | None = None

    def refresh_in_background(self) -> threading.Thread:
        """Rank again in a thread (unless one is at it already); the thread is returned."""
        with self._lock:
            if self._refreshing is None or not self._refreshing.is_alive():
                self._refreshing = threading.Thread(target=self._refresh, daemon=True,
                                                    name="cwatch-priorities")
                self._refreshing.start()
            return self._refreshing

    def _refresh(self) -> dict[str, Any]:
        started = self._clock()
        ranking = self._rank()
        self._cached = (started, ranking)
        return ranking

    def _ranking(self) -> dict[str, Any]:
        cached = self._cached
        if cached is None:
            self.refresh_in_background().join()
            cached = self._cached
            assert cached is not None
        elif self._clock() - cached[0] >= self._max_age_s:
            self.refresh_in_background()
        return cached[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ranking = self._ranking()
        score = GaugeMetricFamily(
            "cwatch_upgrade_priority_score", "Upgrade priority of a device (higher first), "
            "with its role, the suggested action and why", labels=[
                "site", "device", "role", "action", "why"])
        rank = GaugeMetricFamily("cwatch_upgrade_priority_rank", "Place of the device in the "
                                 "province's upgrade ranking (1 = first)",
                                 labels=["site", "device"])
        for place, device in enumerate(ranking["devices"], start=1):
            why = "; ".join(f"{part['because']} (+{part['points']:g})"
                            for part in device["why"])
            score.add_metric([device["site"], device["device"], device["role"] or "",
                              device["action"], why], device["score"])
            rank.add_metric([device["site"], device["device"]], place)
        yield score
        yield rank
        sites = GaugeMetricFamily("cwatch_upgrade_site_score", "Upgrade priority of a site: "
                                  "its devices' scores plus its link findings",
                                  labels=["site", "action"])
        for site in ranking["sites"]:
            sites.add_metric([site["site"], site["action"]], site["score"])
        yield sites


def register_site_names(registry: CollectorRegistry, names: dict[str, str]) -> None:
    """cwatch_site_info{site, name} = 1 per site of the sites file, so dashboards can
    show "An Phước" beside the id an-phuoc."""
    info = Gauge("cwatch_site_info", "The sites of the collector's sites file with their "
                 "display names (always 1)", ["site", "name"], registry=registry)
    for site, name in sorted(names.items()):
        info.labels(site, name).set(1)
