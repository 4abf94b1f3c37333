"""The collector's own health as Prometheus metrics, in a registry it owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

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
                              ("rejected", self.rejected)):
            out[name] = sum(s.value for metric in counter.collect() for s in metric.samples
                            if s.name.endswith("_total"))
        return out
