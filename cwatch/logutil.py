"""Logging set-up and a rate limiter so a flood of bad input cannot flood the log."""

from __future__ import annotations

import logging
import time
from typing import Callable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(level: str = "info") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT)


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
