"""What every commune-watch dashboard shares: data sources, queries, thresholds, links
between dashboards, and the site/device variables. Built on Grafana's typed
grafana-foundation-sdk, so a misspelt option fails here rather than in Grafana."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

from dashboards.datasources import PROM_UID, VM_UID

TAG = "commune-watch"
VM = model.DataSourceRef(type_val="prometheus", uid=VM_UID)
PROM = model.DataSourceRef(type_val="prometheus", uid=PROM_UID)
# A panel whose queries go to both data sources (each query names its own).
MIXED = model.DataSourceRef(type_val="datasource", uid="-- Mixed --")

UIDS = {"province": "cwatch-province", "commune": "cwatch-commune", "device": "cwatch-device",
        "priorities": "cwatch-priorities", "collector": "cwatch-collector"}

# Colours by meaning, the same on every dashboard.
GOOD, WARN, BAD = "green", "orange", "red"


def query(expr: str, legend: str = "", *, source: model.DataSourceRef = VM,
          instant: bool = False, table: bool = False, ref: str = "A") -> prometheus.Dataquery:
    """One PromQL query. A table panel's queries are instant and shaped as a table
    (one row per series, a column per label)."""
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(source)
    if legend:
        target = target.legend_format(legend)
    target = target.instant() if instant or table else target.range()
    if table:
        target = target.format(prometheus_model.PromQueryFormat.TABLE)
    return target


def thresholds(*steps: tuple[float | None, str]) -> board.ThresholdsConfig:
    """Absolute thresholds: the first step's value is None (everything below the next)."""
    return board.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=value, color=color) for value, color in steps])


def higher_is_worse(warn: float, bad: float) -> board.ThresholdsConfig:
    return thresholds((None, GOOD), (warn, WARN), (bad, BAD))


def lower_is_worse(bad: float, warn: float) -> board.ThresholdsConfig:
    return thresholds((None, BAD), (bad, WARN), (warn, GOOD))


NEUTRAL = thresholds((None, "blue"))


def dashboard_url(name: str, **variables: str) -> str:
    """A link to another dashboard that keeps the time range. Values may be Grafana
    templates such as ${__value.raw} (the clicked cell) or ${__data.fields.site} (another
    cell of the row, by the field's own name: a rename by the organize step only changes
    how it is shown)."""
    slug = {"province": "province-overview", "commune": "commune", "device": "device",
            "priorities": "upgrade-priorities", "collector": "collector-health"}[name]
    parts = [f"var-{key}={value}" for key, value in variables.items()]
    return f"/d/{UIDS[name]}/{slug}?" + "&".join([*parts, "${__url_time_range}"])


def link_override(column: str, title: str, url: str) -> tuple[str, list[model.DynamicConfigValue]]:
    """A table column whose cells open another dashboard."""
    return column, [model.DynamicConfigValue(id_val="links", value=[
        {"title": title, "url": url, "targetBlank": False}])]


def column(name: str, **settings: Any) -> tuple[str, list[model.DynamicConfigValue]]:
    """Per-column settings of a table (unit, thresholds, displayName, ...)."""
    values = []
    for key, value in settings.items():
        key = {"display_name": "displayName", "cell": "custom.cellOptions",
               "width": "custom.width"}.get(key, key)
        if isinstance(value, board.ThresholdsConfig):
            value = value.build()
        values.append(model.DynamicConfigValue(id_val=key, value=value))
    return name, values


def value_text(mapping: dict[str, tuple[str, str]]) -> list[model.ValueMap]:
    """Numbers shown as words in a colour, e.g. {"1": ("online", GOOD)}."""
    return [model.ValueMap(options={value: model.ValueMappingResult(text=text, color=color)
                                    for value, (text, color) in mapping.items()})]


ONLINE = value_text({"1": ("online", GOOD), "0": ("offline", BAD)})


def merge_table(rename: dict[str, str], hide: tuple[str, ...] = (),
                order: tuple[str, ...] = ()) -> list[model.DataTransformerConfig]:
    """Join the instant queries of a table panel on their common labels, then name the
    value columns and drop the technical ones."""
    exclude = {name: True for name in ("Time", "__name__", *hide)}
    organize: dict[str, Any] = {"excludeByName": exclude, "renameByName": rename}
    if order:
        organize["indexByName"] = {name: index for index, name in enumerate(order)}
    return [model.DataTransformerConfig(id_val="merge", options={}),
            model.DataTransformerConfig(id_val="organize", options=organize)]


def site_variable(source: model.DataSourceRef = VM, metric: str = "cwatch_host_uptime_s",
                  *, include_all: bool = False) -> board.QueryVariable:
    variable = (board.QueryVariable("site").label("Commune / ward").datasource(source)
                .query({"query": f"label_values({metric}, site)", "refId": "site"})
                .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(model.VariableSort.ALPHABETICAL_ASC))
    if include_all:
        variable = variable.include_all(True).all_value(".*")
    return variable


def device_variable() -> board.QueryVariable:
    return (board.QueryVariable("device").label("Device").datasource(VM)
            .query({"query": 'label_values(cwatch_host_uptime_s{site="$site"}, device)',
                    "refId": "device"})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC))


def new_dashboard(name: str, title: str, description: str, time_from: str) -> board.Dashboard:
    """A dashboard with the shared settings and a menu of the other dashboards."""
    return (board.Dashboard(title).uid(UIDS[name]).description(description)
            .tags([TAG]).refresh("1m").time(time_from, "now").timezone("browser")
            .tooltip(model.DashboardCursorSync.CROSSHAIR).readonly()
            .link(board.DashboardLink("commune-watch").type(model.DashboardLinkType.DASHBOARDS)
                  .tags([TAG]).as_dropdown(True).include_vars(True).keep_time(True)))

