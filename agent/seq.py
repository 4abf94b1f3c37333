"""A per-device sequence number that survives agent restarts and reboots.

The collector de-duplicates by (site, device, seq), so a number must never be
reused. Writing the counter to disk for every message would wear old disks and
cost I/O, so blocks of numbers are reserved on disk and handed out from memory:
a restart skips the rest of a block (a harmless gap), never reuses a number.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class SeqCounter:
    def __init__(self, path: Path, block: int = 1000) -> None:
        self._path = path
        self._block = block
        self._lock = threading.Lock()
        self._next = self._read()
        self._reserved_until = self._next
        self._reserve()

    def _read(self) -> int:
        try:
            return max(0, int(self._path.read_text(encoding="ascii").strip()))
        except FileNotFoundError:
            return 0
        except ValueError:
            # A torn or corrupt file: start far beyond anything plausible rather than reuse.
            return int(self._path.stat().st_mtime * 1000)

    def _reserve(self) -> None:
        self._reserved_until = self._next + self._block
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w", encoding="ascii") as fh:
            fh.write(str(self._reserved_until))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(str(tmp), str(self._path))

    def next(self) -> int:
        with self._lock:
            if self._next >= self._reserved_until:
                self._reserve()
            value = self._next
            self._next += 1
            return value
