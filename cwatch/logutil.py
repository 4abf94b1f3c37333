"""Logging set-up and a rate limiter so a flood of bad input cannot flood the log."""

from __future__ import annotations

import logging
import logging.handlers
import time
from pathlib import Path
from typing import Callable, List, Optional

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(level: str = "info", log_file: str = "") -> None:
    """Log to stderr, or to a rotating file (for a Windows agent started without a console)."""
    handlers: Optional[List[logging.Handler]] = None
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        # Small and bounded: an old PC's disk is not the place for an endless log.
        handlers = [logging.handlers.RotatingFileHandler(
            log_file, maxBytes=1_000_000, backupCount=3, encoding="utf-8")]
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT,
                        handlers=handlers)


class RateLimitedLog:
    """Logs at most one line per key per `every_s`, then says how many it held back."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._every = every_s
        self._clock = clock
        self._state = {}  # type: Dict[str, Tuple[float, int]]

    def warning(self, key: str, message: str) -> bool:
        """Log `message` unless `key` was logged recently; True if it was logged."""
        now = self._clock()
        last, held = self._state.get(key, (float("-inf"), 0))
        if now - last < self._every:
            self._state[key] = (last, held + 1)
            return False
        suffix = f" ({held} more like this held back)" if held else ""
        self._logger.warning("%s%s", message, suffix)
        self._state[key] = (now, 0)
        return True
