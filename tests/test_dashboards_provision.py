"""`cwatch dashboards provision` against a fake Grafana (tests/grafana_fake.py): what it
creates, that a second run writes nothing, that it puts back what differs and only that,
its errors, the command line, and the file-provisioning YAML agreeing with the API's."""

from __future__ import annotations

import argparse
import copy
import json
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import niquests.utils
import pytest
import yaml
from grafana_fake import FakeGrafana

import dashboards
from cwatch.cli import build_parser
from cwatch.procs import free_port
from dashboards.datasources import PROM_UID, VM_UID, datasource_models
from dashboards.provision import FOLDER_TITLE, FOLDER_UID, Item, ProvisionError, provision

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token"
VM_URL, PROM_URL = "http://10.0.0.5:8428", "http://10.0.0.5:9090"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
GRAFANA_VARS = ("GRAFANA_URL", "GRAFANA_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD")
SAMPLES: list[dict[str, Any]] = [
    {"uid": "cwatch-alpha", "title": "Alpha overview", "schemaVersion": 39, "tags": ["cwatch"],
     "panels": [{"id": 1, "type": "stat", "title": "Devices online",
                 "datasource": {"type": "prometheus", "uid": PROM_UID}}]},
    {"uid": "cwatch-beta", "title": "Beta details", "schemaVersion": 39, "panels": [
        {"id": 1, "type": "timeseries", "title": "CPU"},
        {"id": 2, "type": "row", "title": "Disks", "collapsed": True,
         "panels": [{"id": 3, "type": "table"}, {"id": 4, "type": "bargauge"}]}]},
    {"uid": "cwatch-gamma", "title": "Gamma links", "schemaVersion": 39, "panels": []},
]
UIDS = [sample["uid"] for sample in SAMPLES]


def samples() -> list[dict[str, Any]]:
    return copy.deepcopy(SAMPLES)


def _forget_proxies() -> None:
    # niquests reads the environment's proxies once per process (functools.lru_cache):
    # without this, the first test to make a request would fix them for all the others.
    niquests.utils.getproxies.cache_clear()
    niquests.utils.getproxies_environment.cache_clear()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy or Grafana settings of the machine running the tests leak in."""
    for name in PROXY_VARS + GRAFANA_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    _forget_proxies()
    yield
    _forget_proxies()


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with FakeGrafana(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def provisioned(grafana: FakeGrafana) -> FakeGrafana:
    """A Grafana that has had one run already."""
    provision(grafana.url, token=TOKEN, vm_url=VM_URL, prometheus_url=PROM_URL,
              dashboards=samples())
    return grafana


def again(grafana: FakeGrafana, **changes: Any) -> tuple[dict[tuple[str, str], str],
                                                         list[tuple[str, str]]]:
    """Run once more: ({(kind, uid): action}, the write requests of that run)."""
    before = len(grafana.writes())
    options: dict[str, Any] = {"token": TOKEN, "vm_url": VM_URL, "prometheus_url": PROM_URL,
                               "dashboards": samples(), **changes}
    report = provision(grafana.url, **options)
    return ({(item.kind, item.uid): item.action for item in report.items},
            grafana.writes()[before:])


def without_grafana_keys(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in dashboard.items() if key not in ("id", "version")}


# --- what a run does --------------------------------------------------------------------


def test_first_run_creates_the_folder_data_sources_and_dashboards(
        grafana: FakeGrafana) -> None:
    seen: list[Item] = []
    report = provision(grafana.url, token=TOKEN, vm_url=VM_URL + "/",
                       prometheus_url=PROM_URL, dashboards=samples(), progress=seen.append)

    assert [(i.kind, i.uid, i.action) for i in report.items] == [
        ("folder", "commune-watch", "created"), ("datasource", VM_UID, "created"),
        ("datasource", PROM_UID, "created"),
        *[("dashboard", uid, "created") for uid in UIDS]]
    assert seen == report.items  # progress heard of each object, in order
    assert report.items[3].title == "Alpha overview"
    assert "6 created, 0 updated, 0 unchanged" in report.summary()
    assert grafana.folders["commune-watch"]["title"] == "commune-watch"
    assert grafana.datasources[VM_UID]["url"] == VM_URL  # without the trailing slash
    assert grafana.datasources[PROM_UID]["url"] == PROM_URL
    for model in datasource_models(VM_URL, PROM_URL):
        stored = grafana.datasources[model["uid"]]
        assert (stored["name"], stored["type"], stored["jsonData"]) == \
            (model["name"], model["type"], model["jsonData"])
    for sample in SAMPLES:
        record = grafana.dashboards[sample["uid"]]
        assert record["folderUid"] == "commune-watch"
        assert without_grafana_keys(record["dashboard"]) == sample
        assert "cwatch dashboards provision" in record["message"]


def test_second_run_writes_nothing_and_reports_all_unchanged(
        provisioned: FakeGrafana) -> None:
    reads_before = len(provisioned.requests)
    actions, writes = again(provisioned)

    assert writes == []
    assert set(actions.values()) == {"unchanged"} and len(actions) == 6
    # It did look: one GET per object, after the health check.
    assert len(provisioned.requests) - reads_before == 1 + 6


def test_a_dashboard_changed_in_the_code_updates_only_that_one(
        provisioned: FakeGrafana) -> None:
    changed = samples()
    changed[1]["title"] = "Beta details (new)"
    actions, writes = again(provisioned, dashboards=changed)

    assert writes == [("POST", "/api/dashboards/db")]
    assert actions[("dashboard", "cwatch-beta")] == "updated"
    assert [a for key, a in actions.items() if key != ("dashboard", "cwatch-beta")] \
        == ["unchanged"] * 5
    stored = provisioned.dashboards["cwatch-beta"]["dashboard"]
    assert stored["title"] == "Beta details (new)" and stored["version"] == 2


def test_a_dashboard_edited_in_grafana_is_put_back(provisioned: FakeGrafana) -> None:
    provisioned.edit_dashboard("cwatch-alpha", title="Edited in the UI", panels=[])
    actions, writes = again(provisioned)

    assert writes == [("POST", "/api/dashboards/db")]
    assert actions[("dashboard", "cwatch-alpha")] == "updated"
    assert without_grafana_keys(provisioned.dashboards["cwatch-alpha"]["dashboard"]) \
        == SAMPLES[0]


def test_a_dashboard_moved_to_another_folder_is_moved_back(provisioned: FakeGrafana) -> None:
    provisioned.move_dashboard("cwatch-gamma", "")  # to the General folder
    actions, writes = again(provisioned)

    assert writes == [("POST", "/api/dashboards/db")]
    assert actions[("dashboard", "cwatch-gamma")] == "updated"
    assert provisioned.dashboards["cwatch-gamma"]["folderUid"] == "commune-watch"


def test_a_new_vm_url_updates_only_that_data_source_and_keeps_ui_settings(
        provisioned: FakeGrafana) -> None:
    vm = provisioned.datasources[VM_UID]  # set in Grafana's UI by an admin:
    vm["basicAuth"], vm["basicAuthUser"] = True, "grafana"
    vm["jsonData"]["timeout"] = "30"
    actions, writes = again(provisioned, vm_url="http://10.0.0.9:8428")

    assert writes == [("PUT", f"/api/datasources/uid/{VM_UID}")]
    assert actions[("datasource", VM_UID)] == "updated"
    assert actions[("datasource", PROM_UID)] == "unchanged"
    vm = provisioned.datasources[VM_UID]
    assert vm["url"] == "http://10.0.0.9:8428" and vm["version"] == 2
    assert (vm["basicAuth"], vm["basicAuthUser"]) == (True, "grafana")
    assert vm["jsonData"] == {**datasource_models()[0]["jsonData"], "timeout": "30"}


def test_a_new_folder_title_renames_the_folder(provisioned: FakeGrafana) -> None:
    actions, writes = again(provisioned, folder_title="Commune watch")

    assert writes == [("PUT", "/api/folders/commune-watch")]
    assert actions[("folder", "commune-watch")] == "updated"
    assert provisioned.folders["commune-watch"]["title"] == "Commune watch"


def test_user_and_password_work_too(grafana: FakeGrafana) -> None:
    report = provision(grafana.url, user="admin", password="admin-secret",
                       dashboards=samples())
    assert report.count("created") == 6
    port = grafana.port  # and in the URL, as grafana-client accepts them
    report = provision(f"http://admin:admin-secret@127.0.0.1:{port}", dashboards=samples())
    assert report.count("unchanged") == 6


def test_grafana_under_a_sub_path() -> None:
    with FakeGrafana(token=TOKEN, prefix="/grafana") as fake:
        for url in (fake.url, fake.url + "/"):  # ".../grafana" and ".../grafana/"
            provision(url, token=TOKEN, dashboards=samples())
        assert ("GET", "/grafana/api/health") in fake.requests
        assert set(fake.dashboards) == set(UIDS)


def test_a_proxy_in_the_environment_does_not_catch_a_local_grafana(
        grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead_proxy)
    report = provision(grafana.url, token=TOKEN, dashboards=samples())
    assert report.count("created") == 6
    assert grafana.proxied == []


def test_a_remote_grafana_goes_through_the_environment_proxy(
        grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", grafana.url)  # the fake serves as the proxy too
    report = provision("http://grafana.invalid:3000", token=TOKEN, dashboards=samples(),
                       timeout=5)
    assert report.count("created") == 6
    assert "http://grafana.invalid:3000/api/health" in grafana.proxied


# --- errors -----------------------------------------------------------------------------


def error_of(url: str, **options: Any) -> ProvisionError:
    options.setdefault("dashboards", samples())
    with pytest.raises(ProvisionError) as caught:
        provision(url, **options)
    assert "\n" not in str(caught.value)
    return caught.value


def test_a_bad_token_is_named(grafana: FakeGrafana) -> None:
    error = error_of(grafana.url, token="not-the-token")
    assert "token" in str(error) and grafana.url in str(error) and "401" in str(error)
    assert not error.usage and grafana.writes() == []


def test_a_bad_password_names_the_user(grafana: FakeGrafana) -> None:
    error = error_of(grafana.url, user="admin", password="wrong")
    assert "user 'admin'" in str(error) and "401" in str(error)


def test_a_token_without_the_rights_names_the_endpoint(grafana: FakeGrafana) -> None:
    error = error_of(grafana.url, token="viewer-token")
    assert "403" in str(error) and "POST /api/folders" in str(error)
    assert "folders:create" in str(error)  # Grafana's own words


@pytest.mark.parametrize("credentials", [
    {}, {"token": TOKEN, "user": "admin", "password": "x"}, {"user": "admin"},
    {"password": "x"}])
def test_credentials_are_a_token_or_a_user_and_password(credentials: dict[str, str]) -> None:
    error = error_of("http://127.0.0.1:3000", **credentials)
    assert error.usage


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:3000", "127.0.0.1:3000", "http://",
                                 "http://127.0.0.1:99999", "", "file:///etc/passwd",
                                 "ftp://admin:s3cret@127.0.0.1"])
def test_a_bad_url_is_refused_before_any_request(url: str) -> None:
    error = error_of(url, token=TOKEN)
    assert error.usage and "http(s)://HOST" in str(error)
    assert "s3cret" not in str(error)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_an_unreachable_grafana_is_named_quickly(host: str) -> None:
    url = f"http://{host}:{free_port()}"  # nothing listens there
    started = time.monotonic()
    error = error_of(url, token=TOKEN)
    assert time.monotonic() - started < 5
    assert str(error).startswith(f"cannot reach Grafana at {url}: ")
    assert not error.usage
    if host == "127.0.0.1":  # ::1 may be missing, with another reason
        assert str(error).endswith(": connection refused")


def test_an_unreachable_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("http_proxy", dead_proxy)
    error = error_of("http://grafana.invalid:3000", token=TOKEN)
    assert f"cannot reach Grafana at http://grafana.invalid:3000 through the proxy " \
           f"{dead_proxy}" in str(error)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Takes connections (into the backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_grafana_that_does_not_answer_times_out(silent_port: int) -> None:
    started = time.monotonic()
    error = error_of(f"http://127.0.0.1:{silent_port}", token=TOKEN, timeout=0.5)
    assert time.monotonic() - started < 5
    assert "no answer within 0.5 s" in str(error)


@pytest.mark.parametrize("mode", ["404", "html"])
def test_a_server_that_is_not_grafana(mode: str) -> None:
    with FakeGrafana(mode=mode) as web:
        error = error_of(web.url, token=TOKEN)
        assert f"{web.url} does not answer as Grafana" in str(error)
        assert web.requests == [("GET", "/api/health")]


def test_a_dashboard_grafana_refuses_is_named(grafana: FakeGrafana) -> None:
    broken = samples()
    broken[1]["title"] = ""
    error = error_of(grafana.url, token=TOKEN, dashboards=broken)
    assert "dashboard cwatch-beta" in str(error)
    assert "400" in str(error) and "Dashboard title cannot be empty" in str(error)
    assert "cwatch-beta" not in grafana.dashboards


def test_a_read_only_data_source_is_not_fought(provisioned: FakeGrafana) -> None:
    provisioned.datasources[VM_UID]["readOnly"] = True  # file-provisioned in Grafana
    before = len(provisioned.writes())
    error = error_of(provisioned.url, token=TOKEN, vm_url="http://10.0.0.9:8428")
    assert f"data source {VM_UID}" in str(error) and "read-only" in str(error)
    assert len(provisioned.writes()) == before


@pytest.mark.parametrize("bad", [[{"title": "No uid"}], [SAMPLES[0], SAMPLES[0]]])
def test_dashboards_need_distinct_uids(grafana: FakeGrafana, bad: list[dict]) -> None:
    error = error_of(grafana.url, token=TOKEN, dashboards=copy.deepcopy(bad))
    assert "uid" in str(error)
    assert grafana.requests == []


# --- the command line -------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    """`cwatch dashboards ARGV` as cwatch's own parser reads it."""
    return build_parser().parse_args(["dashboards", *argv])


@pytest.fixture
def json_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "json"
    folder.mkdir()
    for sample in SAMPLES:
        (folder / f"{sample['uid']}.json").write_text(json.dumps(sample), encoding="utf-8")
    return folder


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cwatch dashboards: error: "), err
    return lines[0]


def test_cli_provision_prints_a_line_per_object_and_a_summary(
        grafana: FakeGrafana, json_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("provision", "--url", grafana.url, "--token", TOKEN, "--dir", str(json_dir),
                 "--vm-url", VM_URL, "--folder", "Commune watch")
    assert args.run(args) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 7 and err == ""
    assert lines[3].split() == ["dashboard", "cwatch-alpha", "Alpha", "overview", "created"]
    assert lines[-1].startswith(f"Grafana {grafana.url}: 6 created")
    assert grafana.datasources[VM_UID]["url"] == VM_URL
    assert grafana.folders["commune-watch"]["title"] == "Commune watch"


def test_cli_provision_reads_the_environment(
        grafana: FakeGrafana, json_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GRAFANA_URL", grafana.url)
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    args = parse("provision", "--dir", str(json_dir))
    assert args.run(args) == 0
    # Options given beat the environment: a user and password despite $GRAFANA_TOKEN.
    args = parse("provision", "--dir", str(json_dir), "--user", "admin", "--password", "x")
    assert args.run(args) == 1
    assert "user 'admin'" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(("argv", "status", "words"), [
    (["--token", "wrong"], 1, "token"),
    (["--token", TOKEN, "--user", "admin"], 2, "not both"),
    ([], 2, "--token"),
])
def test_cli_provision_errors(grafana: FakeGrafana, json_dir: Path, argv: list[str],
                              status: int, words: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("provision", "--url", grafana.url, "--dir", str(json_dir), *argv)
    assert args.run(args) == status
    assert words in one_error_line(capsys.readouterr().err)
    assert grafana.writes() == []


@pytest.mark.parametrize(("url", "status", "words"), [
    (None, 2, "--url"), ("ftp://127.0.0.1:3000", 2, "http(s)://HOST"),
    ("unreachable", 1, "cannot reach Grafana"),
])
def test_cli_provision_url_errors(json_dir: Path, url: str | None, status: int, words: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    if url == "unreachable":
        url = f"http://127.0.0.1:{free_port()}"
    argv = ["provision", "--token", TOKEN, "--dir", str(json_dir)]
    args = parse(*argv, *(["--url", url] if url else []))
    assert args.run(args) == status
    assert words in one_error_line(capsys.readouterr().err)


def test_cli_provision_without_dashboards(grafana: FakeGrafana, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("provision", "--url", grafana.url, "--token", TOKEN, "--dir", str(tmp_path))
    assert args.run(args) == 1
    assert "cwatch dashboards build" in one_error_line(capsys.readouterr().err)
    assert grafana.requests == []


def test_cli_list(json_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("list", "--dir", str(json_dir))
    assert args.run(args) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows == [["UID", "TITLE", "PANELS"], ["cwatch-alpha", "Alpha", "overview", "1"],
                    ["cwatch-beta", "Beta", "details", "3"],
                    ["cwatch-gamma", "Gamma", "links", "0"]]


def test_cli_list_names_a_broken_file(json_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    (json_dir / "zz-broken.json").write_text("{not json", encoding="utf-8")
    args = parse("list", "--dir", str(json_dir))
    assert args.run(args) == 1
    assert "zz-broken.json" in one_error_line(capsys.readouterr().err)


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """dashboards.build as its contract says: main(out_dir) writes, check(out_dir) lists
    the differing files."""
    calls = types.SimpleNamespace(main=[], check=[], differing=[])
    module = types.ModuleType("dashboards.build")

    def main(out_dir: Path) -> None:
        calls.main.append(out_dir)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "cwatch-alpha.json").write_text(json.dumps(SAMPLES[0]))

    def check(out_dir: Path) -> list[str]:
        calls.check.append(out_dir)
        return list(calls.differing)

    module.main, module.check = main, check  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dashboards.build", module)
    monkeypatch.setattr(dashboards, "build", module, raising=False)
    return calls


def test_cli_build_and_check(fake_build: types.SimpleNamespace, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = parse("build", "--out", str(out))
    assert args.run(args) == 0
    assert fake_build.main == [out] and "wrote 1 dashboard file(s)" in capsys.readouterr().out

    args = parse("build", "--out", str(out), "--check")
    assert args.run(args) == 0 and fake_build.check == [out]
    fake_build.differing[:] = ["cwatch-alpha.json", "cwatch-beta.json"]
    assert args.run(args) == 1
    err = capsys.readouterr().err
    assert "cwatch-alpha.json, cwatch-beta.json" in err and len(fake_build.main) == 1


def test_cli_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("provision", "build", "list"):
        with pytest.raises(SystemExit) as done:
            parse(action, "--help")
        assert done.value.code == 0
        assert f"cwatch dashboards {action}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parse("provision", "--timeout", "0")
    assert "--timeout" in capsys.readouterr().err


def test_cli_through_cwatch(grafana: FakeGrafana, json_dir: Path) -> None:
    """Through `python -m cwatch`, as a user runs it."""
    cwatch = [sys.executable, "-m", "cwatch", "dashboards"]
    command = [*cwatch, "provision", "--url", grafana.url, "--dir", str(json_dir)]
    done = subprocess.run([*command, "--token", TOKEN], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "6 created" in done.stdout
    done = subprocess.run([*command, "--token", "wrong"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.startswith("cwatch dashboards: error: ") and "token" in done.stderr


# --- Grafana's file provisioning --------------------------------------------------------

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_file_provisioning_agrees_with_the_api_models() -> None:
    config = load_yaml(PROVISIONING / "datasources" / "cwatch.yaml")
    assert config["apiVersion"] == 1
    in_file = {entry["uid"]: entry for entry in config["datasources"]}
    models = {model["uid"]: model for model in datasource_models()}  # default URLs
    assert set(in_file) == set(models) == {VM_UID, PROM_UID}
    for uid, model in models.items():
        for key in ("name", "type", "access", "url", "isDefault", "jsonData"):
            assert in_file[uid][key] == model[key], (uid, key)

    config = load_yaml(PROVISIONING / "dashboards" / "cwatch.yaml")
    [provider] = config["providers"]
    assert config["apiVersion"] == 1 and provider["type"] == "file"
    assert (provider["folder"], provider["folderUid"]) == (FOLDER_TITLE, FOLDER_UID)
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/commune-watch"
