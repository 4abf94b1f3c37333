"""Shared fixtures: real servers started as child processes on free loopback ports.

No test mocks the MQTT broker. Each fixture starts its own server with a
throw-away config in a temporary folder and never touches a system instance.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests' own helper modules

from smtp_helpers import SmtpServer  # noqa: E402

from cwatch.procs import Mosquitto  # noqa: E402
from cwatch.tsdb_proc import VictoriaMetrics  # noqa: E402


@pytest.fixture
def writers() -> Iterator[list[Any]]:
    """Time-series writers a test makes; stopped at the end even when it fails."""
    made: list[Any] = []
    yield made
    for writer in made:
        writer.stop(timeout_s=0.5)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private mosquitto for one test (tests may stop and restart it)."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def shared_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for the tests that only publish and subscribe."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A private VictoriaMetrics for one test (tests may stop and restart it: same port,
    same data folder)."""
    server = VictoriaMetrics(tmp_path / "victoria-metrics").start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()
