"""Enrollment tokens: a new agent trades a one-time token for its own broker account.

    cwatch admin enroll-token an-phuoc --uses 40   -> a token for one commune's PCs
    agent: POST /api/enroll {token, site, device}   -> the collector (on the broker host)
           checks the token, creates "site/device" in the password file, reloads the
           broker, and answers the user name and a fresh password, once.

Tokens live in a small SQLite file shared by `cwatch admin` and the collector (SQLite
does the locking); only their SHA-256 is stored. A token is for one site, a number of
devices and a number of days; a device that already has an account is refused (a
token must not let anyone take over an existing PC's identity: remove it first).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from cwatch.admin.accounts import AccountError, PasswordFile, new_password, username

SCHEMA = """CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY, site TEXT NOT NULL, uses_left INTEGER NOT NULL,
    expires_ts REAL NOT NULL, created_ts REAL NOT NULL, note TEXT NOT NULL DEFAULT '')"""


class EnrollError(ValueError):
    """Why an enrollment was refused, one line; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Credential:
    username: str
    password: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None)
            db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise AccountError(f"{self.path}: cannot open the token store: {exc}") from None
        return db

    def create(self, site: str, uses: int, valid_s: float, note: str = "") -> str:
        username(site, "x")  # checks the site id
        token = secrets.token_urlsafe(24)
        now = time.time()
        db = self._connect()
        try:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
                       (_digest(token), site, uses, now + valid_s, now, note))
        finally:
            db.close()
        os.chmod(str(self.path), 0o600)
        return token

    def redeem(self, token: str, site: str) -> None:
        """Use up one of the token's devices, or raise EnrollError (401/403)."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # one redeemer at a time: no double spending
            # Looked up by its SHA-256: a guess reveals nothing about a stored token.
            digest = _digest(token)
            row = db.execute("SELECT site, uses_left, expires_ts FROM tokens WHERE digest = ?",
                             (digest,)).fetchone()
            if row is None:
                raise EnrollError(401, "unknown enrollment token")
            token_site, uses_left, expires_ts = row
            if expires_ts < time.time():
                raise EnrollError(401, "this enrollment token has expired")
            if uses_left <= 0:
                raise EnrollError(401, "this enrollment token is used up")
            if token_site != site:
                raise EnrollError(403, f"this enrollment token is for site {token_site!r}, "
                                       f"not {site!r}")
            db.execute("UPDATE tokens SET uses_left = uses_left - 1 WHERE digest = ?",
                       (digest,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def list(self) -> list[dict]:
        db = self._connect()
        try:
            rows = db.execute("SELECT site, uses_left, expires_ts, created_ts, note FROM tokens "
                              "ORDER BY created_ts").fetchall()
        finally:
            db.close()
        return [{"site": s, "uses_left": u, "expires_ts": e, "created_ts": c, "note": n}
                for s, u, e, c, n in rows]


class Enroller:
    """The collector's side of POST /api/enroll."""

    def __init__(self, tokens: TokenStore, passwords: PasswordFile,
                 broker_pid_file: Path | None) -> None:
        self.tokens = tokens
        self.passwords = passwords
        self.broker_pid_file = broker_pid_file

    def enroll(self, token: str, site: str, device: str) -> tuple[Credential, str | None]:
        """The new account, and why the broker was not reloaded (None: it was)."""
        try:
            user = username(site, device)
        except AccountError as exc:
            raise EnrollError(400, str(exc)) from None
        if user in self.passwords.users():
            raise EnrollError(409, f"{user} already has an account; to enroll this device "
                                   "again, remove it first (cwatch admin remove-device)")
        self.tokens.redeem(token, site)
        password = new_password()
        self.passwords.set(user, password)
        # The password goes back even if the reload fails: the agent keeps retrying to
        # connect, and gets in once someone reloads the broker.
        return Credential(user, password), self._reload_broker()

    def _reload_broker(self) -> str | None:
        """SIGHUP makes mosquitto read its password file again."""
        if self.broker_pid_file is None:
            return None
        try:
            os.kill(int(self.broker_pid_file.read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError) as exc:
            return f"{self.broker_pid_file}: {exc}"
        return None
