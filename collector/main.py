"""`cwatch collector`: run until SIGINT/SIGTERM, then stop cleanly."""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import threading

from collector.config import CollectorConfig
from collector.service import Collector

log = logging.getLogger(__name__)


def run(config: CollectorConfig) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        collector = Collector(config)
    except ValueError as exc:  # the sites file of a partition
        log.error("cannot start: %s", exc)
        return 1
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        log.error("cannot open the device state database %s: %s",
                  config.collector.state_path, exc)
        return 1
    try:
        collector.start()
    except OSError as exc:  # the HTTP port is taken or not ours to bind
        log.error("cannot serve HTTP on %s: %s", config.collector.listen, exc)
        collector.stop()
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    log.info("stopping")
    collector.stop()
    return 0
