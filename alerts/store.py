"""What the notifier must remember across restarts, in the collector's SQLite file:
silences, each notification group's timers and what it last told its recipient, the
outbox of rendered e-mails, and the day each recipient last got a digest.

A notification is queued in the outbox in the same transaction that records it as
sent to the group, so a restart neither sends it twice nor forgets it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from collector.store.state import StateStore, transaction

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS alert_silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT, device TEXT, rule TEXT,
        starts_ts DOUBLE PRECISION NOT NULL, ends_ts DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL, created_by TEXT NOT NULL,
        created_ts DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alert_groups (
        recipient TEXT NOT NULL, group_key TEXT NOT NULL,
        next_flush_ts DOUBLE PRECISION NOT NULL, last_sent_ts DOUBLE PRECISION,
        PRIMARY KEY (recipient, group_key))""",
    """CREATE TABLE IF NOT EXISTS alert_notified (
        recipient TEXT NOT NULL, group_key TEXT NOT NULL, finding_id INTEGER NOT NULL,
        PRIMARY KEY (recipient, group_key, finding_id))""",
    """CREATE TABLE IF NOT EXISTS alert_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
        message BLOB NOT NULL, created_ts DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts DOUBLE PRECISION NOT NULL, sent_ts DOUBLE PRECISION,
        last_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox (state, next_attempt_ts)",
    """CREATE TABLE IF NOT EXISTS alert_digests (
        recipient TEXT PRIMARY KEY, last_day TEXT NOT NULL,
        last_ts DOUBLE PRECISION NOT NULL)""",
)
SILENCE_STATES = ("active", "pending", "expired", "all")
OUTBOX_STATES = ("pending", "sent", "failed")


@dataclasses.dataclass(frozen=True)
class Silence:
    id: int
    site: str | None
    device: str | None
    rule: str | None
    starts_ts: float
    ends_ts: float
    reason: str
    created_by: str
    created_ts: float

    def matches(self, finding: dict[str, Any]) -> bool:
        """Every matcher given must match; `rule` matches a rule or a finding kind."""
        return ((self.site is None or self.site == finding["site"])
                and (self.device is None or self.device == finding["device"])
                and (self.rule is None or self.rule in (finding["rule"], finding["finding"])))

    def state(self, now: float) -> str:
        if now < self.starts_ts:
            return "pending"
        return "active" if now < self.ends_ts else "expired"

    def as_json(self, now: float) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "state": self.state(now)}


@dataclasses.dataclass
class Group:
    recipient: str
    key: str
    next_flush_ts: float
    last_sent_ts: float | None
    notified: set[int]


@dataclasses.dataclass(frozen=True)
class OutboxItem:
    id: int
    recipient: str
    kind: str
    subject: str
    message: bytes
    attempts: int
    created_ts: float


class AlertStore:
    def __init__(self, state: StateStore, clock: Any = time.time) -> None:
        self._db, self._lock = state.connection()
        self._clock = clock
        with self._lock:
            for statement in _SCHEMA:
                self._db.execute(statement)

    # --- silences ------------------------------------------------------------------------

    def add_silence(self, *, site: str | None, device: str | None, rule: str | None,
                    starts_ts: float, ends_ts: float, reason: str, created_by: str) -> Silence:
        now = self._clock()
        with self._lock, transaction(self._db):
            cursor = self._db.execute(
                "INSERT INTO alert_silences (site, device, rule, starts_ts, ends_ts, reason, "
                "created_by, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (site, device, rule, starts_ts, ends_ts, reason, created_by, now))
        return Silence(int(cursor.lastrowid or 0), site, device, rule, starts_ts, ends_ts,
                       reason, created_by, now)

    def expire_silence(self, silence_id: int) -> Silence | None:
        """End a silence now; None if there is no such silence."""
        now = self._clock()
        with self._lock, transaction(self._db):
            self._db.execute("UPDATE alert_silences SET ends_ts = MIN(ends_ts, ?), "
                             "starts_ts = MIN(starts_ts, ?) WHERE id = ?", (now, now, silence_id))
        return self.silence(silence_id)

    def silence(self, silence_id: int) -> Silence | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM alert_silences WHERE id = ?",
                                   (silence_id,)).fetchone()
        return Silence(*row) if row else None

    def silences(self, state: str = "all", now: float | None = None) -> list[Silence]:
        now = self._clock() if now is None else now
        with self._lock:
            rows = self._db.execute("SELECT * FROM alert_silences ORDER BY id").fetchall()
        found = [Silence(*row) for row in rows]
        return found if state == "all" else [s for s in found if s.state(now) == state]

    # --- groups ----------------------------------------------------------------------------

    def groups(self, recipient: str) -> dict[str, Group]:
        with self._lock:
            rows = self._db.execute("SELECT group_key, next_flush_ts, last_sent_ts FROM "
                                    "alert_groups WHERE recipient = ?", (recipient,)).fetchall()
            notified = self._db.execute("SELECT group_key, finding_id FROM alert_notified "
                                        "WHERE recipient = ?", (recipient,)).fetchall()
        groups = {key: Group(recipient, key, next_flush, last_sent, set())
                  for key, next_flush, last_sent in rows}
        for key, finding_id in notified:
            if key in groups:
                groups[key].notified.add(finding_id)
        return groups

    def save_group(self, group: Group) -> None:
        with self._lock, transaction(self._db):
            self._write_group(group)

    def delete_group(self, group: Group) -> None:
        with self._lock, transaction(self._db):
            self._delete_group(group)

    def record_notification(self, group: Group, *, kind: str, subject: str, message: bytes,
                            keep: bool) -> None:
        """Queue the e-mail and remember what the group told its recipient, atomically."""
        with self._lock, transaction(self._db):
            self._queue(group.recipient, kind, subject, message)
            if keep:
                self._write_group(group)
            else:
                self._delete_group(group)

    def _write_group(self, group: Group) -> None:
        self._db.execute("INSERT OR REPLACE INTO alert_groups (recipient, group_key, "
                         "next_flush_ts, last_sent_ts) VALUES (?, ?, ?, ?)",
                         (group.recipient, group.key, group.next_flush_ts, group.last_sent_ts))
        self._db.execute("DELETE FROM alert_notified WHERE recipient = ? AND group_key = ?",
                         (group.recipient, group.key))
        self._db.executemany("INSERT INTO alert_notified (recipient, group_key, finding_id) "
                             "VALUES (?, ?, ?)",
                             [(group.recipient, group.key, i) for i in sorted(group.notified)])

    def _delete_group(self, group: Group) -> None:
        for table in ("alert_groups", "alert_notified"):
            self._db.execute(f"DELETE FROM {table} WHERE recipient = ? AND group_key = ?",
                             (group.recipient, group.key))

    # --- digests -----------------------------------------------------------------------------

    def last_digest(self, recipient: str) -> tuple[str, float] | None:
        with self._lock:
            row = self._db.execute("SELECT last_day, last_ts FROM alert_digests WHERE "
                                   "recipient = ?", (recipient,)).fetchone()
        return (row[0], row[1]) if row else None

    def record_digest(self, recipient: str, day: str,
                      email: tuple[str, bytes] | None) -> None:
        """The day's digest is done: queued (subject, message), or skipped (None)."""
        with self._lock, transaction(self._db):
            if email is not None:
                self._queue(recipient, "digest", *email)
            self._db.execute("INSERT OR REPLACE INTO alert_digests (recipient, last_day, "
                             "last_ts) VALUES (?, ?, ?)", (recipient, day, self._clock()))

    # --- outbox ------------------------------------------------------------------------------

    def _queue(self, recipient: str, kind: str, subject: str, message: bytes) -> None:
        now = self._clock()
        self._db.execute("INSERT INTO alert_outbox (recipient, kind, subject, message, "
                         "created_ts, next_attempt_ts) VALUES (?, ?, ?, ?, ?, ?)",
                         (recipient, kind, subject, message, now, now))

    def due(self, now: float, limit: int = 50) -> list[OutboxItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, recipient, kind, subject, message, attempts, created_ts FROM "
                "alert_outbox WHERE state = 'pending' AND next_attempt_ts <= ? ORDER BY id "
                "LIMIT ?", (now, limit)).fetchall()
        return [OutboxItem(*row) for row in rows]

    def mark_sent(self, item_id: int) -> None:
        with self._lock, transaction(self._db):
            self._db.execute("UPDATE alert_outbox SET state = 'sent', sent_ts = ?, "
                             "attempts = attempts + 1, last_error = NULL WHERE id = ?",
                             (self._clock(), item_id))

    def mark_failed(self, item_id: int, error: str, retry_at: float | None) -> None:
        """A failed attempt: try again at `retry_at`, or never (a permanent failure)."""
        with self._lock, transaction(self._db):
            if retry_at is None:
                self._db.execute("UPDATE alert_outbox SET state = 'failed', attempts = "
                                 "attempts + 1, last_error = ? WHERE id = ?", (error, item_id))
            else:
                self._db.execute("UPDATE alert_outbox SET attempts = attempts + 1, "
                                 "last_error = ?, next_attempt_ts = ? WHERE id = ?",
                                 (error, retry_at, item_id))

    def outbox(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = ("SELECT id, recipient, kind, subject, state, attempts, created_ts, "
               "next_attempt_ts, sent_ts, last_error FROM alert_outbox")
        args: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            args = (state,)
        with self._lock:
            cursor = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
            columns = [c[0] for c in cursor.description]
            return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def outbox_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM alert_outbox GROUP BY state"
                                    ).fetchall()
        return {state: rows_count for state, rows_count in rows}

    def oldest_pending_ts(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(created_ts) FROM alert_outbox WHERE state = "
                                   "'pending'").fetchone()
        return row[0]
