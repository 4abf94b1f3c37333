"""Config files and command-line overrides: good ones load, bad ones fail in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent import config as agent_config
from collector import config as collector_config
from cwatch.config import BrokerURL, ConfigError

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_example_configs_load() -> None:
    agent = agent_config.load(DEPLOY / "agent.example.toml", {})
    assert agent.agent.site == "an-phuoc"
    assert agent.broker.address.tls and agent.broker.address.port == 8883
    assert agent.asset.location == "Bộ phận một cửa, quầy 2"
    collector = collector_config.load(DEPLOY / "collector.example.toml", {})
    assert collector.collector.listen == "0.0.0.0:9555"
    assert collector.tsdb.url == "http://127.0.0.1:8428"
    alerts = collector.alerts
    assert not alerts.enabled and [r.email for r in alerts.recipients] == [
        "cntt@tinh.gov.vn", "cntt.anphuoc@tinh.gov.vn"]
    assert alerts.recipients[1].name == "Nguyễn Văn An" and alerts.inhibit[0].equal == ["site"]


def test_command_line_overrides_file(tmp_path: Path) -> None:
    config = agent_config.load(DEPLOY / "agent.example.toml",
                               {"agent": {"interval_s": 15.0, "site": None},
                                "broker": {"url": "mqtt://10.1.2.3"}})
    assert config.agent.interval_s == 15.0
    assert config.agent.site == "an-phuoc"  # None means "not given"
    assert (config.broker.address.host, config.broker.address.port) == ("10.1.2.3", 1883)


def test_environment_overrides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CWATCH_BROKER_PASSWORD", "s3cret")
    monkeypatch.setenv("CWATCH_AGENT_INTERVAL_S", "30")
    config = agent_config.load(DEPLOY / "agent.example.toml", {})
    assert config.broker.credentials() == ("an-phuoc.pc-motcua-02", "s3cret")
    assert config.agent.interval_s == 30.0


def test_broker_url_forms() -> None:
    assert BrokerURL.parse("mqtt://u:p%40ss@host:1999") == BrokerURL("host", 1999, False, "u",
                                                                       "p@ss")
    assert BrokerURL.parse("mqtts://host").port == 8883
    for bad in ("http://host", "mqtt://", "mqtt://host:99999", "mqtt://host/path", "host:1883"):
        with pytest.raises(ValueError, match="broker URL"):
            BrokerURL.parse(bad)


@pytest.mark.parametrize(("text", "message"), [
    ("[agent]\nsite = 'an-phuoc'\n", "[agent] device: missing required key"),
    ("[agent]\nsite = 'an-phuoc'\ndevice = 'pc'\ninterval = 5\n",
     "[agent] unknown key 'interval'"),
    ("[agent]\nsite = 'an-phuoc'\ndevice = 'pc'\ninterval_s = 'fast'\n",
     "[agent] interval_s: expected float, got 'fast'"),
    ("[agent]\nsite = 'an-phuoc'\ndevice = 'pc'\ninterval_s = 0\n",
     "interval_s must be between 1 and 86400"),
    ("[agent]\nsite = 'An Phước'\ndevice = 'pc'\n", "site 'An Phước' must match"),
    ("[agent]\nsite = 'a'\ndevice = 'pc'\n[broker]\nurl = 'tcp://x'\n",
     "[broker] broker URL 'tcp://x' must start with mqtt://"),
    ("[agent]\nsite = 'a'\ndevice = 'pc'\n[broker]\ncert_file = 'c.pem'\n",
     "cert_file and key_file must be given together"),
    ("[agent]\nsite = 'a'\ndevice = 'pc'\n[broker]\nkeepalive_s = true\n",
     "[broker] keepalive_s: expected int, got True"),
    ("agent = 5\n", "agent: expected a table"),
    ("[agent\n", "not valid TOML"),
])
def test_bad_agent_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        agent_config.load(path, {})
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CWATCH_COLLECTOR_LISTEN", "nowhere")
    with pytest.raises(ConfigError, match=r"listen 'nowhere' must be HOST:PORT"):
        collector_config.load(None, {})
    monkeypatch.setenv("CWATCH_COLLECTOR_LISTEN", "127.0.0.1:1")
    monkeypatch.setenv("CWATCH_BROKER_KEEPALIVE_S", "soon")
    with pytest.raises(ConfigError, match="from environment CWATCH_BROKER_KEEPALIVE_S"):
        collector_config.load(None, {})


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cwatch", "collector", "--config", str(tmp_path / "nope.toml")],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"cwatch collector: error: {tmp_path / 'nope.toml'}: file not found")


def test_unknown_receiver_is_named_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text('[collector]\nreceiver = "fork"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        collector_config.load(path, {})
    assert 'receiver must be "process" or "thread"' in str(caught.value)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
