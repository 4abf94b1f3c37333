"""The per-finding series the Prometheus alerting rules use (cwatch_finding_active)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.metrics import FindingsCollector


def _row(**fields: Any) -> dict[str, Any]:
    row = {"id": 1, "finding": "disk_full", "rule": "disk_full_system", "severity": "warning",
           "scope": "device", "site": "an-phuoc", "device": "pc-01", "item": "C:",
           "started_ts": 1_700_000_000.0, "ended_ts": None, "value": 97.0,
           "summary": "Partition C: 97 % full", "summary_vi": "Phân vùng C: đầy 97 %",
           "updated_ts": 1_700_000_100.0}
    row.update(fields)
    return row


ROWS = [
    _row(),
    _row(id=2, finding="site_unreachable", rule="site_unreachable", severity="critical",
         scope="site", site="binh-hoa", device=None, item="", started_ts=1_700_000_500.5,
         value=4.0),
    _row(id=3, finding="portal_slow", rule="portal_slow", severity="critical",
         scope="province", site=None, device=None, item="", started_ts=1_700_001_000.0,
         value=None),
]


def _scrape(collector: FindingsCollector) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {family.name: [(sample.labels, sample.value) for sample in family.samples]
            for family in text_string_to_metric_families(text)}


def test_one_series_per_active_finding_with_its_start() -> None:
    families = _scrape(FindingsCollector(
        lambda: {("disk_full", "warning"): 1, ("site_unreachable", "critical"): 1,
                 ("portal_slow", "critical"): 1},
        lambda: ROWS))
    active = families["cwatch_finding_active"]
    assert sorted(active, key=lambda s: s[0]["finding"]) == [
        ({"finding": "disk_full", "rule": "disk_full_system", "severity": "warning",
          "scope": "device", "site": "an-phuoc", "device": "pc-01", "item": "C:"}, 1.0),
        # Province-level: no site and no device, as empty labels (None -> "").
        ({"finding": "portal_slow", "rule": "portal_slow", "severity": "critical",
          "scope": "province", "site": "", "device": "", "item": ""}, 1.0),
        ({"finding": "site_unreachable", "rule": "site_unreachable", "severity": "critical",
          "scope": "site", "site": "binh-hoa", "device": "", "item": ""}, 1.0),
    ]
    started = {s[0]["finding"]: (s[0], s[1])
               for s in families["cwatch_finding_started_timestamp_seconds"]}
    assert started["site_unreachable"][1] == 1_700_000_500.5
    assert started["disk_full"][1] == 1_700_000_000.0
    assert started["portal_slow"][0]["scope"] == "province"
    # The same labels on both families, so a rule can join them.
    assert sorted(labels.items() for labels, _ in active) == sorted(
        labels.items() for labels, _ in families["cwatch_finding_started_timestamp_seconds"])
    # The counts family is still there, unchanged.
    assert sorted(families["cwatch_findings_active"], key=lambda s: s[0]["finding"]) == [
        ({"finding": "disk_full", "severity": "warning"}, 1.0),
        ({"finding": "portal_slow", "severity": "critical"}, 1.0),
        ({"finding": "site_unreachable", "severity": "critical"}, 1.0),
    ]


def test_rows_are_read_at_every_scrape() -> None:
    rows: list[dict[str, Any]] = [_row()]
    collector = FindingsCollector(lambda: {}, lambda: rows)
    assert len(_scrape(collector)["cwatch_finding_active"]) == 1
    rows.clear()
    families = _scrape(collector)
    # No active finding: the families are there (HELP/TYPE) but without series, so
    # the alerts resolve.
    assert families["cwatch_finding_active"] == []
    assert families["cwatch_finding_started_timestamp_seconds"] == []


def test_resolved_rows_and_duplicate_labels_are_left_out() -> None:
    rows = [_row(id=9, started_ts=1_700_000_900.0), _row(id=8),
            _row(id=7, item="D:", ended_ts=1_700_000_200.0)]
    families = _scrape(FindingsCollector(lambda: {}, lambda: rows))
    assert [(s[0]["item"], s[1]) for s in families["cwatch_finding_active"]] == [("C:", 1.0)]
    # The first row (the newest, as the findings query orders them) gives the start.
    assert [s[1] for s in families["cwatch_finding_started_timestamp_seconds"]] == [
        1_700_000_900.0]


def test_without_rows_only_the_counts_are_exported() -> None:
    families = _scrape(FindingsCollector(lambda: {("disk_full", "warning"): 3}))
    assert set(families) == {"cwatch_findings_active"}
    assert families["cwatch_findings_active"] == [
        ({"finding": "disk_full", "severity": "warning"}, 3.0)]


def test_upgrade_ranking_on_metrics_computed_at_most_once_a_minute() -> None:
    from collector.metrics import PrioritiesCollector

    ranking = {
        "devices": [
            {"site": "an-phuoc", "device": "pc-01", "role": "service-counter", "score": 61.5,
             "action": "replace the HDD with an SSD", "why": [
                 {"part": "risk", "points": 20.0, "because": "Ổ đĩa sda: 16 sector"},
                 {"part": "age", "points": 27.3, "because": "13 years old (from BIOS date)"}]},
            {"site": "binh-hoa", "device": "router", "role": None, "score": 0.0,
             "action": "none", "why": []}],
        "sites": [{"site": "an-phuoc", "score": 61.5, "action": "none", "link": []}]}
    calls: list[float] = []
    now = [1000.0]

    current = [ranking]

    def rank() -> dict[str, Any]:
        calls.append(now[0])
        return current[0]

    collector = PrioritiesCollector(rank, max_age_s=60, clock=lambda: now[0])
    scraped = _scrape(collector)
    scores = {(labels["site"], labels["device"]): (labels, value)
              for labels, value in scraped["cwatch_upgrade_priority_score"]}
    labels, value = scores[("an-phuoc", "pc-01")]
    assert value == 61.5 and labels["action"] == "replace the HDD with an SSD"
    assert labels["why"] == ("Ổ đĩa sda: 16 sector (+20); "
                             "13 years old (from BIOS date) (+27.3)")
    assert scores[("binh-hoa", "router")][0]["role"] == ""
    assert sorted((labels["device"], value) for labels, value
                  in scraped["cwatch_upgrade_priority_rank"]) == [("pc-01", 1), ("router", 2)]
    assert scraped["cwatch_upgrade_site_score"] == [
        ({"site": "an-phuoc", "action": "none"}, 61.5)]
    now[0] += 59
    _scrape(collector)
    assert calls == [1000.0]  # cached
    now[0] += 1
    current[0] = {**ranking, "devices": ranking["devices"][:1]}
    assert len(_scrape(collector)["cwatch_upgrade_priority_rank"]) == 2  # the last one ...
    deadline = time.monotonic() + 10  # ... while a thread ranks again
    while len(_scrape(collector)["cwatch_upgrade_priority_rank"]) != 1:
        assert time.monotonic() < deadline, "the new ranking never came"
        time.sleep(0.01)
    assert calls == [1000.0, 1060.0]  # one ranking however many scrapes meanwhile
