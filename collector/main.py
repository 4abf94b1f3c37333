"""`cwatch collector`: run until SIGINT/SIGTERM, then stop cleanly."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

from collector.config import CollectorConfig
from collector.service import Collector

log = logging.getLogger(__name__)


def run(config: CollectorConfig) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    collector = Collector(config)
    collector.start()
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    log.info("stopping")
    collector.stop()
    return 0
