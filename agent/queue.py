"""On-disk store-and-forward queue (SQLite): nothing is lost while the link is down.

Every envelope is written here before it is published and deleted only after
the broker acknowledged it (QoS 1 PUBACK), so a crash, a reboot or a dead link
loses nothing; a message that was sent but not yet deleted may be sent twice,
which the collector's de-duplication by seq makes harmless.

The queue is bounded by bytes and by age; when full it drops the oldest
envelopes first and counts them (persistently), as Telegraf's buffer does.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple


class Item(NamedTuple):
    id: int
    channel: str
    payload: bytes  # the envelope's JSON


_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped_total', 0);
"""


class DiskQueue:
    def __init__(self, path: Path, max_bytes: int = 50 * 1024 * 1024,
                 max_age_s: float = 7 * 86400, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._max_age = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # WAL: readers never block the writer; FULL: a committed envelope survives power loss.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._count, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM queue").fetchone()
        self.added = threading.Condition(self._lock)

    def put(self, channel: str, payload: bytes) -> None:
        with self._lock:
            with self._db:  # one transaction: insert and prune together
                self._db.execute("BEGIN")
                self._db.execute(
                    "INSERT INTO queue (channel, created, size, payload) VALUES (?, ?, ?, ?)",
                    (channel, self._clock(), len(payload), payload))
                self._count += 1
                self._bytes += len(payload)
                self._prune()
            self.added.notify_all()

    def _prune(self) -> None:
        """Drop envelopes past the age bound, then the oldest until under the byte bound."""
        cutoff = self._clock() - self._max_age
        dropped = self._delete_where("created < ?", (cutoff,))
        while self._bytes > self._max_bytes and self._count > 1:
            excess = self._bytes - self._max_bytes
            # Oldest rows whose running size covers the excess, in one statement.
            rows = self._db.execute(
                "SELECT id, size FROM queue ORDER BY id LIMIT 1000").fetchall()
            last_id, freed = rows[0][0], 0
            for row_id, size in rows:
                last_id, freed = row_id, freed + size
                if freed >= excess:
                    break
            dropped += self._delete_where("id <= ?", (last_id,))
        if dropped:
            self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped_total'",
                             (dropped,))

    def _delete_where(self, condition: str, args: Tuple[object, ...]) -> int:
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM queue WHERE " + condition,
            args).fetchone()
        if count:
            self._db.execute("DELETE FROM queue WHERE " + condition, args)
            self._count -= count
            self._bytes -= size
        return int(count)

    def oldest(self, limit: int, max_bytes: int) -> List[Item]:
        """The oldest envelopes, at most `limit` of them and about `max_bytes` in all."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, channel, payload, size FROM queue ORDER BY id LIMIT ?",
                (limit,)).fetchall()
        items, total = [], 0
        for row_id, channel, payload, size in rows:
            if items and total + size > max_bytes:
                break
            items.append(Item(row_id, channel, bytes(payload)))
            total += size
        return items

    def newest(self, channel: str) -> Optional[Item]:
        with self._lock:
            row = self._db.execute(
                "SELECT id, channel, payload FROM queue WHERE channel = ? ORDER BY id DESC "
                "LIMIT 1", (channel,)).fetchone()
        return Item(row[0], row[1], bytes(row[2])) if row else None

    def delete(self, ids: Sequence[int]) -> None:
        """Forget envelopes the broker acknowledged (ids already gone are ignored)."""
        if not ids:
            return
        with self._lock:
            marks = ",".join("?" * len(ids))
            with self._db:
                self._db.execute("BEGIN")
                self._delete_where("id IN (" + marks + ")", tuple(ids))

    def wait_for_items(self, timeout_s: float) -> bool:
        with self._lock:
            if self._count == 0:
                self.added.wait(timeout_s)
            return self._count > 0

    @property
    def count(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped_total(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT value FROM meta WHERE key = 'dropped_total'").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
