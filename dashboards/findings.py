"""The active-findings table that the province, commune and device dashboards share."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import (
    BAD,
    NEUTRAL,
    PROM,
    WARN,
    column,
    dashboard_url,
    link_override,
    merge_table,
    query,
    value_text,
)

# A province-level finding (the portal slow everywhere) has no site.
WHOLE_PROVINCE = [model.SpecialValueMap(options=model.DashboardSpecialValueMapOptions(
    match=model.SpecialValueMatch.EMPTY,
    result=model.ValueMappingResult(text="whole province", color="purple")))]
SEVERITY = value_text({"critical": ("critical", BAD), "warning": ("warning", WARN),
                       "info": ("info", "blue")})


def findings_table(title: str, selector: str, *, span: int = 24) -> table.Panel:
    """Active findings matching `selector` (e.g. 'site="$site"'), newest first, with the
    time each started; site and device cells open their dashboards. Prometheus adds its
    own instance and job labels to what it scrapes: hidden."""
    expr = f"cwatch_finding_started_timestamp_seconds{{{selector}}} * 1000"
    rename = {"finding": "Finding", "severity": "Severity", "site": "Site",
              "device": "Device", "item": "Item", "Value": "Since"}
    panel = (table.Panel().title(title).description(
        "Active findings of the collector's rules (docs/rules.md), as Prometheus last "
        "scraped them. Site and device open their dashboards.").datasource(PROM)
        .with_target(query(expr, source=PROM, table=True))
        .transformations(merge_table(rename, hide=("rule", "scope", "instance", "job"), order=(
            "Severity", "Finding", "Site", "Device", "Item", "Since")))
        .unit("dateTimeFromNow").thresholds(NEUTRAL).no_value("No active findings")
        .sort_by([common_builder.TableSortByFieldState().display_name("Since").desc(True)])
        .span(span).height(9))
    for name, values in (
            ("Site", link_override("Site", "Open the commune", dashboard_url(
                "commune", site="${__value.raw}"))[1] + column(
                    "Site", mappings=WHOLE_PROVINCE)[1]),
            link_override("Device", "Open the device", dashboard_url(
                "device", site="${__data.fields.site}", device="${__value.raw}")),
            column("Severity", mappings=SEVERITY, cell={"type": "color-text"})):
        panel = panel.override_by_name(name, values)
    return panel
