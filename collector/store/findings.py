"""Findings (active and resolved) in the collector's SQLite file, next to the device
state: one row per finding with its start, end, severity, what it is about, and the
evidence (the measured value and the rule's explanation).

It shares the state store's connection and lock: SQLite takes one writer at a time,
and two connections to one file would make each wait for (and time out on) the
other's transactions under load.
"""

from __future__ import annotations

from typing import Any

from collector.store.state import StateStore

_SCHEMA = """CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    finding TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, scope TEXT NOT NULL,
    site TEXT, device TEXT, item TEXT NOT NULL DEFAULT '',
    started_ts DOUBLE PRECISION NOT NULL, ended_ts DOUBLE PRECISION,
    value DOUBLE PRECISION, summary TEXT NOT NULL, summary_vi TEXT NOT NULL,
    updated_ts DOUBLE PRECISION NOT NULL)"""
_INDEX = "CREATE INDEX IF NOT EXISTS findings_open ON findings (ended_ts, site, device)"
_COLUMNS = ("id", "finding", "rule", "severity", "scope", "site", "device", "item",
            "started_ts", "ended_ts", "value", "summary", "summary_vi", "updated_ts")
STATES = ("active", "resolved", "all")


class FindingsStore:
    def __init__(self, state: StateStore) -> None:
        self._db, self._lock = state.connection()
        with self._lock:
            self._db.execute(_SCHEMA)
            self._db.execute(_INDEX)

    def open(self, *, finding: str, rule: str, severity: str, scope: str, site: str | None,
             device: str | None, item: str, started_ts: float, value: float | None,
             summary: str, summary_vi: str) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO findings (finding, rule, severity, scope, site, device, item, "
                "started_ts, value, summary, summary_vi, updated_ts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (finding, rule, severity, scope, site, device, item, started_ts, value,
                 summary, summary_vi, started_ts))
            return int(cursor.lastrowid or 0)

    def update(self, finding_id: int, ts: float, value: float | None, summary: str,
               summary_vi: str) -> None:
        with self._lock:
            self._db.execute("UPDATE findings SET value = ?, summary = ?, summary_vi = ?, "
                             "updated_ts = ? WHERE id = ?",
                             (value, summary, summary_vi, ts, finding_id))

    def resolve(self, finding_id: int, ts: float) -> None:
        with self._lock:
            self._db.execute("UPDATE findings SET ended_ts = ?, updated_ts = ? WHERE id = ? "
                             "AND ended_ts IS NULL", (ts, ts, finding_id))

    def query(self, *, state: str = "active", site: str | None = None,
              device: str | None = None, finding: str | None = None,
              severity: str | None = None, limit: int = 100,
              offset: int = 0) -> list[dict[str, Any]]:
        where, args = [], []
        if state == "active":
            where.append("ended_ts IS NULL")
        elif state == "resolved":
            where.append("ended_ts IS NOT NULL")
        for column, value in (("site", site), ("device", device), ("finding", finding),
                              ("severity", severity)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM findings"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_ts DESC, id DESC LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit, offset)).fetchall()
        return [dict(zip(_COLUMNS, row)) for row in rows]

    def active_counts(self) -> dict[tuple[str, str], int]:
        """{(finding, severity): active findings} for the Prometheus gauge."""
        with self._lock:
            rows = self._db.execute("SELECT finding, severity, COUNT(*) FROM findings WHERE "
                                    "ended_ts IS NULL GROUP BY finding, severity").fetchall()
        return {(finding, severity): count for finding, severity, count in rows}

    def by_ids(self, ids: list[int] | set[int]) -> dict[int, dict[str, Any]]:
        """The findings with these ids (active or not), by id."""
        out: dict[int, dict[str, Any]] = {}
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[start:start + 500]
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {', '.join(_COLUMNS)} FROM findings WHERE id IN "
                    f"({','.join('?' * len(chunk))})", chunk).fetchall()
            out.update((row[0], dict(zip(_COLUMNS, row))) for row in rows)
        return out

    def resolved_since(self, since: float, limit: int = 10_000) -> list[dict[str, Any]]:
        """Findings that ended at or after `since`, most recent first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM findings WHERE ended_ts >= ? "
                "ORDER BY ended_ts DESC LIMIT ?", (since, limit)).fetchall()
        return [dict(zip(_COLUMNS, row)) for row in rows]
