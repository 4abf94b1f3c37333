"""The shipped dashboards (dashboards/json/) as Grafana reads them: up to date with the
code that generates them, every panel with a unit, thresholds and a known data source,
every variable defined, every link pointing at a shipped dashboard and its variables.
(Whether each query returns data is tests/test_dashboards_data.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dashboards import build
from dashboards.datasources import PROM_UID, VM_UID
from dashboards.files import JSON_DIR, load_all

DOCS = Path(__file__).resolve().parents[1] / "docs" / "dashboards.md"
MIXED = "-- Mixed --"
BUILTIN = {"__rate_interval", "__range", "__interval", "__value", "__data", "__url_time_range"}
DASHBOARDS = load_all()
BY_UID = {d["uid"]: d for d in DASHBOARDS}


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(d["uid"], p) for d in DASHBOARDS for p in d["panels"] if p["type"] != "row"]


def test_committed_json_is_what_the_code_generates() -> None:
    assert build.check() == [], "run: python -m dashboards.build"
    assert sorted(p.name for p in JSON_DIR.glob("*.json")) == sorted(build.DASHBOARDS)


def test_check_notices_a_stale_or_missing_file(tmp_path: Path) -> None:
    build.main(tmp_path)
    assert build.check(tmp_path) == []
    (tmp_path / "device.json").write_text("{}", encoding="utf-8")
    (tmp_path / "commune.json").unlink()
    assert sorted(build.check(tmp_path)) == ["commune.json", "device.json"]


def test_the_five_dashboards_have_unique_uids_and_panel_ids() -> None:
    assert set(BY_UID) == {"cwatch-province", "cwatch-commune", "cwatch-device",
                           "cwatch-priorities", "cwatch-collector"}
    for dashboard in DASHBOARDS:
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids, dashboard["uid"]
        assert "commune-watch" in dashboard["tags"]
        assert any(link["type"] == "dashboards" and link["keepTime"]
                   for link in dashboard["links"]), dashboard["uid"]


@pytest.mark.parametrize(("uid", "panel"), panels(), ids=lambda x: x if isinstance(x, str)
                         else x["title"])
def test_every_panel_has_unit_thresholds_and_a_known_data_source(uid: str,
                                                                 panel: dict[str, Any]) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults.get("unit"), "no unit"
    assert defaults["thresholds"]["steps"], "no thresholds"
    assert panel.get("description"), "no description"
    assert panel["datasource"]["uid"] in (VM_UID, PROM_UID, MIXED)
    assert panel["targets"], "no query"
    refs = [t["refId"] for t in panel["targets"]]
    assert len(refs) == len(set(refs))
    for target in panel["targets"]:
        assert target["datasource"]["uid"] in (VM_UID, PROM_UID)
        if panel["datasource"]["uid"] != MIXED:
            assert target["datasource"] == panel["datasource"]
        if panel["type"] == "table":
            assert target.get("instant") and target.get("format") == "table"


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d["uid"])
def test_every_variable_used_is_defined(dashboard: dict[str, Any]) -> None:
    defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    text = " ".join(exprs + [p["title"] for p in dashboard["panels"]])
    used = set(re.findall(r"\$\{?(\w+)", text)) - BUILTIN
    assert used <= defined, used - defined


def _links(dashboard: dict[str, Any]) -> list[str]:
    urls = []
    for panel in dashboard["panels"]:
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "links":
                    urls += [link["url"] for link in prop["value"]]
    return urls


def test_links_lead_from_province_to_commune_to_device() -> None:
    reached = {uid: {u.split("/")[2] for u in _links(d)} for uid, d in BY_UID.items()}
    assert "cwatch-commune" in reached["cwatch-province"]
    assert "cwatch-device" in reached["cwatch-commune"]
    assert {"cwatch-commune", "cwatch-device"} <= reached["cwatch-priorities"]


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d["uid"])
def test_every_link_names_a_shipped_dashboard_and_its_variables(
        dashboard: dict[str, Any]) -> None:
    for url in _links(dashboard):
        match = re.fullmatch(r"/d/([\w-]+)/[\w-]+\?(.*)", url)
        assert match, url
        target = BY_UID[match.group(1)]
        names = {v["name"] for v in target.get("templating", {}).get("list", [])}
        given = set(re.findall(r"var-(\w+)=", match.group(2)))
        assert given <= names, (url, names)
        assert "${__url_time_range}" in url  # the time range follows the click


def test_docs_describe_every_dashboard() -> None:
    text = " ".join(DOCS.read_text(encoding="utf-8").split())  # a name may wrap a line
    for dashboard in DASHBOARDS:
        assert f"## {dashboard['title']}" in text, dashboard["title"]
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["title"].replace("$site", "").replace("$device", "").strip() in \
                    text, (dashboard["title"], panel["title"])
