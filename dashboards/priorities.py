"""Upgrade priorities: where the next upgrade money does the most good. The collector's
ranking (collector/rules/priority.py) with its reasons and the cheapest action, by
device and by site, and the age and operating systems of the fleet."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as board

from dashboards.common import (
    NEUTRAL,
    PROM,
    VM,
    column,
    dashboard_url,
    higher_is_worse,
    link_override,
    merge_table,
    new_dashboard,
    query,
    site_variable,
)

SITES = 'site=~"$site"'
TOP = 200  # rows of the device table: beyond this nobody reads, and the budget ends sooner
SCORED = f"cwatch_upgrade_priority_score{{{SITES}}} > 0"


def _devices_table() -> table.Panel:
    targets = [query(f"topk({TOP}, {SCORED})", source=PROM, table=True, ref="A"),
               query(f"cwatch_upgrade_priority_rank{{{SITES}}} and on (site, device) "
                     f"topk({TOP}, {SCORED})", source=PROM, table=True, ref="B")]
    rename = {"Value #B": "Rank", "site": "Site", "device": "Device", "role": "Role",
              "Value #A": "Score", "action": "Suggested action", "why": "Why"}
    panel = (table.Panel().title("Devices to upgrade first").description(
        "Score = (failure risk + performance shortfall + age) x role weight; the reasons "
        "and their points are in Why. The same ranking as /api/priorities and the "
        "procurement report.").datasource(PROM).targets(targets)
        .transformations(merge_table(rename, hide=("instance", "job"), order=(
            "Rank", "Site", "Device", "Role", "Score", "Suggested action", "Why")))
        .unit("none").thresholds(NEUTRAL).span(24).height(14)
        .sort_by([common_builder.TableSortByFieldState().display_name("Rank").desc(False)]))
    for name, values in (
            link_override("Site", "Open the commune", dashboard_url(
                "commune", site="${__value.raw}")),
            link_override("Device", "Open the device", dashboard_url(
                "device", site="${__data.fields.site}", device="${__value.raw}")),
            column("Score", decimals=1, thresholds=higher_is_worse(30, 60),
                   cell={"type": "color-background"}),
            column("Rank", decimals=0, width=70)):
        panel = panel.override_by_name(name, values)
    return panel


def build() -> board.Dashboard:
    dash = (new_dashboard("priorities", "Upgrade priorities",
                          "Which devices and communes to upgrade first, and how.", "now-7d")
            .with_variable(site_variable(PROM, "cwatch_upgrade_priority_score",
                                         include_all=True)))
    needing = (stat.Panel().title("Devices needing action").description(
        "Devices whose suggested action is not 'none'.").datasource(PROM)
        .with_target(query(f'count(cwatch_upgrade_priority_score{{{SITES}, action!="none"}})'
                           " or vector(0)", source=PROM, instant=True))
        .unit("none").decimals(0).thresholds(NEUTRAL).span(6).height(8))
    actions = (bargauge.Panel().title("Suggested actions").description(
        "How many devices each action would fix: the shopping list.").datasource(PROM)
        .with_target(query(f'count by (action) (cwatch_upgrade_priority_score{{{SITES}, '
                           'action!="none"})', "{{action}}", source=PROM, instant=True))
        .unit("none").decimals(0).thresholds(NEUTRAL).span(9).height(8))
    sites = (bargauge.Panel().title("Communes by upgrade need").description(
        "Sum of a commune's device scores, plus 20 for a slow link or local network "
        "finding.").datasource(PROM)
        .with_target(query(f"topk(15, cwatch_upgrade_site_score{{{SITES}}})", "{{site}}",
                           source=PROM, instant=True))
        .unit("none").decimals(0).thresholds(higher_is_worse(100, 300)).span(9).height(8))
    oldest = (bargauge.Panel().title("Oldest machines").description(
        "Years since the BIOS date, the 15 oldest.").datasource(VM)
        .with_target(query(f"topk(15, (time() - last_over_time(cwatch_inventory_bios_date_ts"
                           f"{{{SITES}}}[25h])) / 31557600)", "{{site}}/{{device}}",
                           instant=True))
        .unit("y").decimals(1).thresholds(higher_is_worse(6, 10)).span(12).height(10))
    systems = (bargauge.Panel().title("Operating systems").description(
        "Windows 7 has had no security updates since 2020, Windows 10 since October 2025: "
        "those PCs need Windows 11 (and often new hardware for it).").datasource(VM)
        .with_target(query(f"count by (os_name, os_version) (last_over_time("
                           f"cwatch_inventory_info{{{SITES}}}[25h]))",
                           "{{os_name}} {{os_version}}", instant=True))
        .unit("none").decimals(0).thresholds(NEUTRAL).span(12).height(10))
    return (dash.with_row(board.Row("Ranking"))
            .with_panel(needing).with_panel(actions).with_panel(sites)
            .with_panel(_devices_table())
            .with_row(board.Row("The fleet's age"))
            .with_panel(oldest).with_panel(systems))
