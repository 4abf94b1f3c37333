"""Commune: one site's devices and their state, its link over time (latency, loss,
jitter, DNS, portal, throughput) and its findings."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import stat, table, timeseries

from dashboards.common import (
    MIXED,
    NEUTRAL,
    ONLINE,
    PROM,
    VM,
    column,
    dashboard_url,
    higher_is_worse,
    link_override,
    lower_is_worse,
    merge_table,
    new_dashboard,
    query,
    site_variable,
    thresholds,
)
from dashboards.findings import findings_table

SITE = 'site="$site"'


def _stat(title: str, expr: str, description: str, steps: board.ThresholdsConfig) -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(PROM)
            .with_target(query(expr, source=PROM, instant=True)).unit("none").decimals(0)
            .thresholds(steps).span(6).height(4))


def _devices_table() -> table.Panel:
    targets = [
        query(f"last_over_time(cwatch_status_online{{{SITE}}}[30d])", table=True, ref="A"),
        query(f"avg_over_time(cwatch_host_cpu_percent{{{SITE}}}[1h])", table=True, ref="B"),
        query(f"avg_over_time(cwatch_host_mem_used_percent{{{SITE}}}[1h])", table=True,
              ref="C"),
        query(f"max by (site, device) (last_over_time(cwatch_disk_used_percent{{{SITE}}}[1h]))",
              table=True, ref="D"),
        query(f"last_over_time(cwatch_host_uptime_s{{{SITE}}}[1h])", table=True, ref="E"),
        query(f"last_over_time(cwatch_inventory_info{{{SITE}}}[25h])", table=True, ref="F"),
        query(f'count by (site, device) (cwatch_finding_active{{{SITE}, device!=""}})',
              source=PROM, table=True, ref="G"),
    ]
    rename = {"device": "Device", "role": "Role", "os_name": "OS", "os_version": "Version",
              "cpu_model": "CPU", "Value #A": "Status", "Value #B": "CPU 1h",
              "Value #C": "Memory 1h", "Value #D": "Fullest disk", "Value #E": "Up for",
              "Value #G": "Findings"}
    # Only the inventory's most telling labels; the device dashboard has the rest.
    hide = ("site", "Value #F", "hostname", "os_build", "os_arch", "system_manufacturer",
            "system_model", "bios_date", "asset_tag", "location", "agent_version")
    panel = (table.Panel().title("Devices").description(
        "Each device's status, its average CPU and memory over the last hour, its fullest "
        "partition, uptime, role and operating system (VictoriaMetrics), and its active "
        "findings (Prometheus). Click a device to open it.").datasource(MIXED)
        .targets(targets).transformations(merge_table(rename, hide=hide, order=(
            "Device", "Status", "Role", "OS", "Version", "CPU 1h", "Memory 1h",
            "Fullest disk", "Up for", "Findings", "CPU")))
        .unit("none").thresholds(NEUTRAL).span(24).height(12))
    for name, values in (
            link_override("Device", "Open the device", dashboard_url(
                "device", site="$site", device="${__value.raw}")),
            column("Status", mappings=ONLINE, cell={"type": "color-text"}),
            column("CPU 1h", unit="percent", decimals=0, thresholds=higher_is_worse(70, 90),
                   cell={"type": "color-background"}),
            column("Memory 1h", unit="percent", decimals=0, thresholds=higher_is_worse(85, 95),
                   cell={"type": "color-background"}),
            column("Fullest disk", unit="percent", decimals=0,
                   thresholds=higher_is_worse(85, 95), cell={"type": "color-background"}),
            column("Up for", unit="s", decimals=0),
            column("Findings", thresholds=higher_is_worse(1, 2), cell={"type": "color-text"})):
        panel = panel.override_by_name(name, values)
    return panel


def _link_panel(title: str, expr: str, legend: str, unit: str,
                steps: board.ThresholdsConfig, description: str) -> timeseries.Panel:
    return (timeseries.Panel().title(title).description(description).datasource(VM)
            .with_target(query(expr, legend)).unit(unit).min(0).thresholds(steps)
            .span(8).height(8).interval("5m"))


def _link_row(dash: board.Dashboard) -> board.Dashboard:
    return (dash.with_row(board.Row("The commune's link"))
            .with_panel(_link_panel(
                "Round trip by target", f"avg by (target) (cwatch_probe_rtt_avg_ms{{{SITE}}})",
                "{{target}}", "ms", higher_is_worse(300, 800),
                "Average over the site's PCs. Gateway high too: the local network or "
                "router; only portal and DNS high: the commune's internet link."))
            .with_panel(_link_panel(
                "Packet loss by target",
                f"avg by (target) (cwatch_probe_loss_percent{{{SITE}}})", "{{target}}",
                "percent", higher_is_worse(2, 10), "Share of probes lost."))
            .with_panel(_link_panel(
                "Jitter by target", f"avg by (target) (cwatch_probe_jitter_ms{{{SITE}}})",
                "{{target}}", "ms", higher_is_worse(50, 150),
                "How much the round trip varies: calls and remote desktop suffer above "
                "about 30 ms."))
            .with_panel(_link_panel(
                "Throughput", f"avg(last_over_time(cwatch_throughput_mbit_per_s{{{SITE}}}[2h]))",
                "download", "Mbits", lower_is_worse(2, 10),
                "Download speed of the agents' hourly test (the last result held for up "
                "to two hours)."))
            .with_panel(_link_panel(
                "DNS lookups", f"avg(cwatch_probe_dns_ms{{{SITE}}})", "DNS", "ms",
                higher_is_worse(200, 1000), "Time to resolve a name."))
            .with_panel(_link_panel(
                "Portal answer time",
                f'avg(cwatch_probe_http_ttfb_ms{{{SITE}, kind="portal"}})', "portal", "ms",
                higher_is_worse(2000, 4000), "Time to the provincial portal's first byte, "
                "seen from this commune.")))


def build() -> board.Dashboard:
    dash = (new_dashboard("commune", "Commune",
                          "One commune or ward: its devices, its link, its findings.",
                          "now-24h")
            .with_variable(site_variable()))
    dash = (dash.with_row(board.Row("$site now"))
            .with_panel(_stat("Devices online", f'sum(cwatch_devices{{{SITE}, status="online"}})'
                              " or vector(0)", "Agents connected now.", NEUTRAL))
            .with_panel(_stat("Devices offline",
                              f'sum(cwatch_devices{{{SITE}, status="offline"}}) or vector(0)',
                              "Devices that went offline.", higher_is_worse(1, 5)))
            .with_panel(_stat("Devices flagged", "count(count by (device) (cwatch_finding_active"
                              f'{{{SITE}, device!=""}})) or vector(0)',
                              "Devices with an active finding.", higher_is_worse(1, 3)))
            .with_panel(_stat("Link findings", "count(cwatch_finding_active"
                              f'{{{SITE}, scope="site"}}) or vector(0)',
                              "Findings about the site as a whole: slow link, local network, "
                              "unreachable.", thresholds((None, "green"), (1, "red"))))
            .with_panel(_devices_table()))
    dash = _link_row(dash)
    return (dash.with_row(board.Row("Findings"))
            .with_panel(findings_table("Active findings in $site", SITE)))
