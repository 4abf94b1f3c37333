"""deploy/prometheus and deploy/alertmanager: accepted by the real promtool and amtool
(Debian packages prometheus and prometheus-alertmanager), the alert unit tests pass,
and every kind of finding the collector makes has an alert."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import tomllib

from cwatch.procs import end_process, find_binary, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
# Findings the collector makes in code rather than from default.toml.
BUILT_IN_FINDINGS = {"device_silent", "site_unreachable", "slow_link", "local_network",
                     "dns_slow", "portal_slow"}


def _run(tool: str, package: str, *args: str | Path,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = find_binary(tool, package, ["/usr/bin", "/usr/local/bin"])
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run("promtool", "prometheus", *args, cwd=cwd)


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run("amtool", "prometheus-alertmanager", *args)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


# --- promtool --------------------------------------------------------------------------

def test_promtool_accepts_the_config_and_finds_the_rules_next_to_it(tmp_path: Path) -> None:
    # From another folder: rule_files are resolved relative to prometheus.yml itself.
    result = promtool("check", "config", PROMETHEUS / "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, _output(result)
    assert "1 rule files found" in _output(result)
    assert "cwatch-alerts.yml" in _output(result)


def test_promtool_rejects_a_config_whose_rule_file_is_missing(tmp_path: Path) -> None:
    shutil.copy(PROMETHEUS / "prometheus.yml", tmp_path)  # without cwatch-alerts.yml
    # Run from deploy/prometheus, where a cwatch-alerts.yml is: promtool still looks
    # for it next to the config it checks.
    result = promtool("check", "config", tmp_path / "prometheus.yml", cwd=PROMETHEUS)
    assert result.returncode != 0
    missing = tmp_path / "cwatch-alerts.yml"
    assert f'"{missing}" does not point to an existing file' in _output(result)


def test_promtool_accepts_the_alerting_rules() -> None:
    result = promtool("check", "rules", PROMETHEUS / "cwatch-alerts.yml")
    assert result.returncode == 0, _output(result)
    assert "SUCCESS" in _output(result)


def test_promtool_rejects_a_broken_alert_expression(tmp_path: Path) -> None:
    text = (PROMETHEUS / "cwatch-alerts.yml").read_text()
    broken = text.replace('{finding="site_unreachable"} == 1', '{finding="site_unreachable" == 1')
    assert broken != text
    (tmp_path / "cwatch-alerts.yml").write_text(broken)
    result = promtool("check", "rules", tmp_path / "cwatch-alerts.yml")
    assert result.returncode != 0
    assert "CwatchSiteUnreachable" in _output(result)
    assert "parse error" in _output(result)


def test_alert_unit_tests_pass(tmp_path: Path) -> None:
    result = promtool("test", "rules", PROMETHEUS / "cwatch-alerts.test.yml", cwd=tmp_path)
    assert result.returncode == 0, _output(result)
    assert "SUCCESS" in _output(result)


def test_alert_unit_tests_catch_an_alert_firing_too_early(tmp_path: Path) -> None:
    text = (PROMETHEUS / "cwatch-alerts.yml").read_text()
    rule = re.search(r"alert: CwatchSiteUnreachable\n.*\n\s+for: 5m", text)
    assert rule is not None
    (tmp_path / "cwatch-alerts.yml").write_text(
        text.replace(rule.group(0), rule.group(0).replace("for: 5m", "for: 1m")))
    shutil.copy(PROMETHEUS / "cwatch-alerts.test.yml", tmp_path)
    result = promtool("test", "rules", tmp_path / "cwatch-alerts.test.yml")
    assert result.returncode != 0
    # The check at 4 minutes, which expects nothing yet, is the one that fails.
    assert "alertname: CwatchSiteUnreachable, time: 4m" in _output(result)


# --- amtool ------------------------------------------------------------------------------

def test_amtool_accepts_the_alertmanager_config() -> None:
    result = amtool("check-config", ALERTMANAGER)
    assert result.returncode == 0, _output(result)
    assert "1 inhibit rules" in _output(result)


def test_amtool_rejects_a_route_to_an_unknown_receiver(tmp_path: Path) -> None:
    text = ALERTMANAGER.read_text()
    broken = text.replace("receiver: commune-an-phuoc\n", "receiver: commune-an-phouc\n")
    assert broken != text
    (tmp_path / "alertmanager.yml").write_text(broken)
    result = amtool("check-config", tmp_path / "alertmanager.yml")
    assert result.returncode != 0
    assert 'undefined receiver "commune-an-phouc"' in _output(result)


def _routes_test(receivers: str, *labels: str) -> subprocess.CompletedProcess[str]:
    return amtool("config", "routes", "test", "--config.file", ALERTMANAGER,
                  f"--verify.receivers={receivers}", *labels)


def test_alerts_reach_the_province_and_the_commune() -> None:
    cases = [
        # Critical: the province, and the commune's contact when it has one.
        ("provincial-it,commune-an-phuoc",
         ["site=an-phuoc", "severity=critical", "scope=device", "finding=smart_failed"]),
        ("provincial-it",
         ["site=xa-khac", "severity=critical", "scope=site", "finding=site_unreachable"]),
        # Warnings: the commune's contact only.
        ("commune-an-phuoc", ["site=an-phuoc", "severity=warning", "finding=disk_full"]),
        ("district-example", ["site=binh-hoa", "severity=warning", "finding=slow_link"]),
        # The province itself and the collector: the provincial team only.
        ("provincial-it", ["severity=critical", "scope=province", "finding=portal_slow"]),
        ("provincial-it", ["severity=warning", "scope=collector",
                           "alertname=CwatchAlertMailFailing"]),
    ]
    for receivers, labels in cases:
        result = _routes_test(receivers, *labels)
        assert result.returncode == 0, (labels, _output(result))
    # And the check can fail: a critical alert does not go to the commune only.
    result = _routes_test("commune-an-phuoc", "site=an-phuoc", "severity=critical")
    assert result.returncode != 0
    assert "provincial-it" in _output(result)


def _alert(alertname: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": alertname, **labels}}


def test_site_unreachable_inhibits_the_other_alerts_of_its_site(tmp_path: Path) -> None:
    """A private Alertmanager (never the system one) with the shipped config; only the
    mail server is replaced by a closed local port (no e-mail goes out anyway: the test
    ends within the 30 s group_wait)."""
    text = ALERTMANAGER.read_text()
    config = tmp_path / "alertmanager.yml"
    config.write_text(re.sub(r'smtp_smarthost: "[^"]*"',
                             f'smtp_smarthost: "127.0.0.1:{free_port()}"', text))
    port = free_port()
    binary = find_binary("prometheus-alertmanager", "prometheus-alertmanager",
                         ["/usr/bin", "/usr/local/bin"])
    log = (tmp_path / "alertmanager.log").open("w+")
    proc = subprocess.Popen([binary, f"--config.file={config}",
                             f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="],  # no gossip with other peers
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for_port("127.0.0.1", port, 15.0, proc)
        api = f"http://127.0.0.1:{port}/api/v2/alerts"
        alerts = [
            _alert("CwatchSiteUnreachable", finding="site_unreachable", site="binh-hoa",
                   severity="critical", scope="site"),
            _alert("CwatchDeviceSilent", finding="device_silent", site="binh-hoa",
                   device="pc-01", severity="warning", scope="device"),
            _alert("CwatchDeviceSilent", finding="device_silent", site="an-phuoc",
                   device="pc-01", severity="warning", scope="device"),
            _alert("CwatchPortalSlow", finding="portal_slow", severity="critical",
                   scope="province"),
        ]
        request = urllib.request.Request(api, data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        expected = {
            ("CwatchSiteUnreachable", "binh-hoa"): ("active", False),
            # The silent PC of the unreachable commune: held back.
            ("CwatchDeviceSilent", "binh-hoa"): ("suppressed", True),
            # Other communes and the province: not.
            ("CwatchDeviceSilent", "an-phuoc"): ("active", False),
            ("CwatchPortalSlow", ""): ("active", False),
        }
        # Alertmanager's inhibitor takes new alerts in on its own thread: ask again
        # for a while before deciding.
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(api, timeout=10) as response:
                got = json.load(response)
            states = {(a["labels"]["alertname"], a["labels"].get("site", "")):
                      (a["status"]["state"], bool(a["status"]["inhibitedBy"])) for a in got}
            if states == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert states == expected
    finally:
        end_process(proc)
        log.seek(0)
        output = log.read()
        log.close()
    # No complaint about the configuration either (e.g. a repeat_interval longer than
    # the notification log is kept).
    assert not re.search(r"level=(warn|error) component=configuration", output), output


# --- coverage ----------------------------------------------------------------------------

def _finding_matchers() -> tuple[set[str], set[str]]:
    """Kinds named by the alerts' `finding=`/`finding=~` matchers, and by `finding!~`
    (the catch-all rule), read from the expressions in cwatch-alerts.yml."""
    named, excluded = set(), set()
    text = (PROMETHEUS / "cwatch-alerts.yml").read_text()
    for expr in re.findall(r"^\s*expr:\s*(.+)$", text, re.M):
        for op, value in re.findall(r'\bfinding\s*(=~|!~|!=|=)\s*"([^"]*)"', expr):
            kinds = set(value.split("|"))
            assert all(re.fullmatch(r"[a-z0-9_]+", kind) for kind in kinds), value
            (named if op in ("=", "=~") else excluded).update(kinds)
    return named, excluded


def test_every_finding_kind_has_an_alert() -> None:
    rules = tomllib.loads((ROOT / "collector" / "rules" / "default.toml").read_text())
    kinds = {rule["finding"] for rule in rules["rules"]} | BUILT_IN_FINDINGS
    assert len(kinds) > len(BUILT_IN_FINDINGS)
    named, excluded = _finding_matchers()
    assert kinds - named == set(), "finding kinds without an alert"
    assert named - kinds == set(), "alerts on finding kinds the collector never makes"
    # The catch-all alert leaves out exactly the kinds with an alert of their own.
    assert excluded == named
