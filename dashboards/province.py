"""Province overview: is anything wrong anywhere, and where? Devices online, offline and
flagged; every site's link quality; the active findings; the provincial portal."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import stat, table, timeseries

from dashboards.common import (
    BAD,
    GOOD,
    MIXED,
    NEUTRAL,
    PROM,
    VM,
    WARN,
    column,
    dashboard_url,
    higher_is_worse,
    link_override,
    lower_is_worse,
    merge_table,
    new_dashboard,
    query,
    thresholds,
)
from dashboards.findings import findings_table

# One device counts as flagged once, whatever number of findings it has.
FLAGGED_BY_SITE = 'count by (site) (count by (site, device) (cwatch_finding_active{device!=""}))'
# Every site the collector knows, at 0: so a site without findings shows 0, not a gap.
SITES_AT_ZERO = "sum by (site) (cwatch_devices) * 0"
PORTAL = 'kind="portal"'


def _stat(title: str, expr: str, description: str, steps: board.ThresholdsConfig,
          unit: str = "none") -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(PROM)
            .with_target(query(expr, source=PROM, instant=True)).unit(unit).decimals(0)
            .thresholds(steps).span(4).height(4))


def _now_row(dash: board.Dashboard) -> board.Dashboard:
    return (dash.with_row(board.Row("The province now"))
            .with_panel(_stat("Devices online", 'sum(cwatch_devices{status="online"})',
                              "Devices whose agent is connected now.", NEUTRAL))
            .with_panel(_stat("Devices offline", 'sum(cwatch_devices{status="offline"})',
                              "Devices that said goodbye or fell silent (Last Will).",
                              higher_is_worse(1, 20)))
            .with_panel(_stat("Devices flagged", 'count(count by (site, device) '
                              '(cwatch_finding_active{device!=""})) or vector(0)',
                              "Devices with at least one active finding.",
                              higher_is_worse(1, 10)))
            .with_panel(_stat("Critical findings",
                              'sum(cwatch_findings_active{severity="critical"}) or vector(0)',
                              "Active findings of severity critical: failing disks, "
                              "unreachable sites.", thresholds((None, GOOD), (1, BAD))))
            .with_panel(_stat("Sites unreachable",
                              'count(cwatch_finding_active{finding="site_unreachable"}) '
                              "or vector(0)", "Communes from which nothing arrives: their "
                              "link or power is down.", thresholds((None, GOOD), (1, BAD))))
            .with_panel(_stat("Province-level findings",
                              'count(cwatch_finding_active{scope="province"}) or vector(0)',
                              "Faults seen from every commune at once, such as the "
                              "provincial portal being slow: not a commune's problem.",
                              thresholds((None, GOOD), (1, WARN)))))


def _sites_table() -> table.Panel:
    window = "[1h]"
    targets = [
        query('sum by (site) (cwatch_devices{status="online"})', source=PROM, table=True,
              ref="A"),
        query('sum by (site) (cwatch_devices{status="offline"})', source=PROM, table=True,
              ref="B"),
        query(f"{FLAGGED_BY_SITE} or {SITES_AT_ZERO}", source=PROM, table=True, ref="C"),
        query(f"avg by (site) (avg_over_time(cwatch_probe_rtt_avg_ms{{{PORTAL}}}{window}))",
              table=True, ref="D"),
        query(f"avg by (site) (avg_over_time(cwatch_probe_loss_percent{{{PORTAL}}}{window}))",
              table=True, ref="E"),
        query("avg by (site) (avg_over_time(cwatch_probe_jitter_ms{kind=\"portal\"}"
              f"{window}))", table=True, ref="F"),
        query("avg by (site) (last_over_time(cwatch_throughput_mbit_per_s[6h]))", table=True,
              ref="G"),
        # The names of the collector's sites file ("An Phước"), when it has one.
        query("max by (site, name) (cwatch_site_info)", source=PROM, table=True, ref="H"),
    ]
    rename = {"site": "Site", "name": "Name", "Value #A": "Online", "Value #B": "Offline",
              "Value #C": "Flagged", "Value #D": "Portal RTT", "Value #E": "Loss",
              "Value #F": "Jitter", "Value #G": "Throughput"}
    panel = (table.Panel().title("Sites").description(
        "Every commune: devices now (Prometheus) and its link to the provincial portal over "
        "the last hour, throughput from the last hourly test (VictoriaMetrics). Click a site "
        "to open its commune dashboard.").datasource(MIXED).targets(targets)
        .transformations(merge_table(rename, hide=("Value #H",), order=(
            "Site", "Name", "Online", "Offline", "Flagged", "Portal RTT", "Loss", "Jitter",
            "Throughput"))).unit("none").span(24).height(10)
        .thresholds(NEUTRAL))
    overrides = [
        link_override("Site", "Open the commune", dashboard_url("commune",
                                                                site="${__value.raw}")),
        column("Offline", thresholds=higher_is_worse(1, 5),
               cell={"type": "color-text"}),
        column("Flagged", thresholds=higher_is_worse(1, 3), cell={"type": "color-text"}),
        column("Portal RTT", unit="ms", decimals=0, thresholds=higher_is_worse(300, 800),
               cell={"type": "color-background"}),
        column("Loss", unit="percent", decimals=1, thresholds=higher_is_worse(2, 10),
               cell={"type": "color-background"}),
        column("Jitter", unit="ms", decimals=0, thresholds=higher_is_worse(50, 150)),
        column("Throughput", unit="Mbits", decimals=1, thresholds=lower_is_worse(2, 10),
               cell={"type": "color-background"}),
    ]
    for name, values in overrides:
        panel = panel.override_by_name(name, values)
    return panel


def _links_row(dash: board.Dashboard) -> board.Dashboard:
    def by_site(title: str, metric: str, unit: str, steps: board.ThresholdsConfig,
                description: str) -> timeseries.Panel:
        return (timeseries.Panel().title(title).description(description).datasource(VM)
                .with_target(query(f"avg by (site) ({metric}{{{PORTAL}}})", "{{site}}"))
                .unit(unit).min(0).thresholds(steps).span(8).height(8).interval("5m"))

    return (dash.with_row(board.Row("Links to the provincial portal"))
            .with_panel(by_site("Portal round trip by site", "cwatch_probe_rtt_avg_ms", "ms",
                                higher_is_worse(300, 800), "Average round trip from each "
                                "commune's PCs to the portal. One site high: its link."))
            .with_panel(by_site("Packet loss by site", "cwatch_probe_loss_percent", "percent",
                                higher_is_worse(2, 10), "Probes lost on the way to the "
                                "portal."))
            .with_panel(by_site("Portal answer time by site", "cwatch_probe_http_ttfb_ms",
                                "ms", higher_is_worse(2000, 4000), "Time to the portal's "
                                "first byte. Every site high at once: the portal itself.")))


def build() -> board.Dashboard:
    dash = new_dashboard("province", "Province overview",
                         "Every commune at a glance: devices, links, active findings.",
                         "now-24h")
    dash = _now_row(dash).with_row(board.Row("Sites")).with_panel(_sites_table())
    dash = _links_row(dash)
    findings = (timeseries.Panel().title("Active findings by kind").description(
        "How many findings of each kind were active, over time.").datasource(PROM)
        .with_target(query("sum by (finding) (cwatch_findings_active)", "{{finding}}",
                           source=PROM)).unit("none").min(0).decimals(0).span(8).height(9)
        .thresholds(NEUTRAL))
    return (dash.with_row(board.Row("Findings"))
            .with_panel(findings_table("Active findings", "", span=16))
            .with_panel(findings))
