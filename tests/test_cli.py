"""`cwatch` and its subcommands: help, errors and the agent's one-shot mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from agent_helpers import agent_toml
from jsonschema import Draft7Validator

from cwatch import protocol


def cwatch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cwatch", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize(("command", "must_mention"), [
    ((), ["agent", "collector", "sim", "demo", "alerts", "report", "dashboards"]),
    (("agent",), ["--config", "--broker", "--site", "--device", "--interval", "--once",
                  "--print", "Example"]),
    (("collector",), ["--config", "--broker", "--tsdb", "--listen", "--state", "Example"]),
    (("demo",), ["--duration", "Ctrl-C"]),
    (("sim",), ["--broker", "--devices", "--sites", "--seed", "--scenario", "--truth",
                 "--duration", "--start", "--speed", "Examples"]),
    (("alerts",), ["silence", "outbox", "test-email", "CWATCH_API_URL", "Examples",
                   "Exit status"]),
    (("alerts", "silence"), ["add", "list", "expire", "Examples"]),
    (("alerts", "silence", "add"), ["--url", "--site", "--device", "--rule", "--duration",
                                    "--until", "--start", "--reason", "--by", "Examples"]),
    (("alerts", "silence", "list"), ["--url", "--state", "--json", "Examples"]),
    (("alerts", "silence", "expire"), ["--url", "ID", "Example"]),
    (("alerts", "outbox"), ["--url", "--state", "--limit", "--json", "Examples"]),
    (("alerts", "test-email"), ["--config", "--to", "Examples"]),
    (("report",), ["procurement", "Example"]),
    (("report", "procurement"), ["--config", "--state", "--out", "--format", "--lang",
                                 "--site", "--role", "--period", "--from", "--to", "--budget",
                                 "--assets", "--pdf-devices", "Examples", "Exit status"]),
    (("dashboards",), ["provision", "build", "list", "Examples", "Exit status"]),
    (("dashboards", "provision"), ["--url", "--token", "--user", "--password", "--vm-url",
                                   "--prometheus-url", "--folder", "GRAFANA_TOKEN",
                                   "Examples"]),
    (("dashboards", "build"), ["--out", "--check", "Examples"]),
    (("dashboards", "list"), ["--dir", "Examples"]),
])
def test_help(command: tuple[str, ...], must_mention: list[str]) -> None:
    result = cwatch(*command, "--help")
    assert result.returncode == 0, result.stderr
    for word in must_mention:
        assert word in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("agent", "--interval", "-5"), "argument --interval: '-5' must be a positive number"),
    (("agent", "--interval", "nan"), "'nan' must be a positive number"),
    (("agent", "--site", "x", "--device", "y", "--print"), "--print needs --once"),
    (("agent", "--once", "--print"), "[agent] site: missing required key"),
    (("collector", "--listen", "9555"), "listen '9555' must be HOST:PORT"),
    (("sim", "--speed", "0"), "argument --speed: '0' must be a positive number"),
    (("sim", "--start", "yesterday"), "--start 'yesterday' must be now"),
    (("alerts",), "the following arguments are required: ACTION"),
    (("alerts", "silence", "add", "--duration", "2h", "--reason", "x"),
     "give at least one of --site, --device, --rule"),
    (("alerts", "test-email"), "the following arguments are required: --config"),
    (("dashboards",), "the following arguments are required: ACTION"),
    (("dashboards", "provision", "--timeout", "x"), "argument --timeout: 'x' is not a number"),
    (("report",), "the following arguments are required: REPORT"),
    (("report", "procurement", "--budget", "lots"), "argument --budget: 'lots' is not a whole"),
    (("report", "procurement", "--pdf-devices", "-1"), "argument --pdf-devices: '-1' must be"),
    (("report", "procurement", "--lang", "fr"), "argument --lang: invalid choice: 'fr'"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_fail_in_one_line(args: tuple[str, ...], message: str) -> None:
    result = cwatch(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_agent_once_print_emits_schema_valid_envelopes(tmp_path: Path) -> None:
    config = agent_toml(tmp_path / "agent.toml", "mqtt://127.0.0.1:1", tmp_path / "data",
                        probes=True)
    args = ("agent", "--config", str(config), "--site", "an-phuoc", "--device", "pc-01",
            "--once", "--print", "--data-dir", str(tmp_path))
    result = cwatch(*args)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    schema = protocol.load_schema()
    channels = []
    for line in lines:
        topic = protocol.parse_topic(line["topic"])
        assert (topic.site, topic.device) == ("an-phuoc", "pc-01")
        validator = Draft7Validator(protocol.channel_schema(schema, topic.channel))
        assert [e.message for e in validator.iter_errors(line["payload"])] == []
        assert len(protocol.encode(line["payload"])) <= 2048
        channels.append(topic.channel)
    assert channels == ["status", "inventory", "metrics", "probe"]
    assert [t["name"] for t in lines[3]["payload"]["data"]["targets"]] == ["collector"]
    # The sequence counter survives a restart and never goes back.
    again = cwatch(*args)
    first_seqs = [line["payload"]["seq"] for line in lines]
    second_seqs = [json.loads(line)["payload"]["seq"] for line in again.stdout.splitlines()]
    assert min(second_seqs) > max(first_seqs)
