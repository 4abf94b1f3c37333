"""Collector health: is the pipeline keeping up? Messages in, rejected (by reason) and
duplicated, writes to the time-series store (rate, latency, errors, losses), queues,
and the alert e-mail outbox. From Prometheus scraping the collector's /metrics."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import NEUTRAL, PROM, higher_is_worse, new_dashboard, query

INSTANCE = 'instance=~"$instance"'
RATE = "[$__rate_interval]"
MSG_PER_S = "suffix: msg/s"


def _graph(title: str, targets: list[tuple[str, str]], unit: str,
           steps: board.ThresholdsConfig, description: str, span: int = 8) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(PROM)
             .unit(unit).min(0).thresholds(steps).span(span).height(8))
    for index, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, source=PROM, ref="ABCDEFGH"[index]))
    return panel


def _rate(metric: str, by: str = "") -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({metric}{{{INSTANCE}}}{RATE}))"


def _quantile(q: float, metric: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{INSTANCE}}}{RATE})))"


def build() -> board.Dashboard:
    instance = (board.QueryVariable("instance").label("Collector").datasource(PROM)
                .query({"query": "label_values(cwatch_messages_received_total, instance)",
                        "refId": "instance"})
                .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .multi(True).include_all(True).all_value(".*"))
    dash = (new_dashboard("collector", "Collector health",
                          "Is the collector keeping up with the province?", "now-6h")
            .with_variable(instance))
    dash = (dash.with_row(board.Row("Ingest"))
            .with_panel(_graph("Messages accepted by channel", [
                (_rate("cwatch_messages_accepted_total", "channel"), "{{channel}}")],
                MSG_PER_S, NEUTRAL, "Envelopes accepted per second (each batch item "
                "counts)."))
            .with_panel(_graph("Rejected by reason", [
                (_rate("cwatch_messages_rejected_total", "reason"), "{{reason}}")],
                MSG_PER_S, higher_is_worse(0.01, 1), "Messages refused and why (docs/"
                "collector.md). identity_mismatch: an agent misconfigured, or an "
                "impostor."))
            .with_panel(_graph("Received and duplicates", [
                (_rate("cwatch_messages_received_total"), "received"),
                (_rate("cwatch_messages_duplicate_total"), "duplicates")], MSG_PER_S,
                NEUTRAL, "Duplicates are normal after reconnects (QoS 1 re-sends)."))
            .with_panel(_graph("Ingest delay", [
                (_quantile(0.5, "cwatch_ingest_delay_seconds"), "median"),
                (_quantile(0.95, "cwatch_ingest_delay_seconds"), "95th percentile")], "s",
                higher_is_worse(10, 60), "From a live sample's own time to stored; a PC "
                "with a wrong clock shows here too.", span=12))
            .with_panel(_graph("Queues", [
                (f"sum(cwatch_state_queue_samples{{{INSTANCE}}})", "state store (samples)"),
                (f"sum(cwatch_tsdb_queue_lines{{{INSTANCE}}})", "time-series store (lines)")],
                "none", higher_is_worse(10_000, 100_000), "Work waiting. Growing for "
                "minutes: the store is too slow or down.", span=12)))
    return (dash.with_row(board.Row("Time-series store"))
            .with_panel(_graph("Lines written", [
                (_rate("cwatch_tsdb_lines_written_total"), "written")], "suffix: lines/s",
                NEUTRAL, "Lines of line protocol written to VictoriaMetrics per second."))
            .with_panel(_graph("Write latency", [
                (_quantile(0.5, "cwatch_tsdb_write_seconds"), "median"),
                (_quantile(0.99, "cwatch_tsdb_write_seconds"), "99th percentile")], "s",
                higher_is_worse(1, 5), "Time of one batch write."))
            .with_panel(_graph("Write errors and losses", [
                (_rate("cwatch_tsdb_write_errors_total", "reason"), "error: {{reason}}"),
                (_rate("cwatch_tsdb_lines_dropped_total", "reason"), "lost: {{reason}}")],
                "suffix: /s", higher_is_worse(0.01, 1), "Errors are retried; lost lines "
                "are gone (spool full, refused by the database, a damaged spool file)."))
            .with_panel(_graph("Spool on disk", [
                (f"sum(cwatch_tsdb_spool_bytes{{{INSTANCE}}})", "spool")], "bytes",
                higher_is_worse(100e6, 3e9), "Lines waiting on disk for the time-series "
                "database (docs/collector.md). Grows while it is down; at [tsdb] "
                "spool_max_bytes (6 GiB) the oldest are dropped."))
            .with_row(board.Row("Alert e-mails"))
            .with_panel(_graph("Outbox", [
                (f"sum(cwatch_alert_outbox_pending{{{INSTANCE}}})", "waiting"),
                (f"sum(cwatch_alert_outbox_failed{{{INSTANCE}}})", "refused for good")],
                "none", higher_is_worse(1, 20), "E-mails not sent yet. Growing: the SMTP "
                "server is unreachable (see the collector's log)."))
            .with_panel(_graph("E-mails queued", [
                (f"sum by (kind) (increase(cwatch_alert_emails_queued_total{{{INSTANCE}}}"
                 f"{RATE}))", "{{kind}}")], "none", NEUTRAL, "Notifications and digests "
                "put in the outbox."))
            .with_panel(_graph("Devices known", [
                (f"sum by (status) (cwatch_devices{{{INSTANCE}}})", "{{status}}")], "none",
                NEUTRAL, "Devices in the state store, by status.")))
