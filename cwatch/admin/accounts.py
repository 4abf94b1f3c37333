"""Broker accounts: mosquitto's password file and the ACL grants of pollers.

One account per device, named "<site>/<device>": the shipped ACL
(deploy/mosquitto/cwatch.acl) lets it write only `cwatch/v1/<site>/<device>/#` with
the pattern `cwatch/v1/%u/#`, and read nothing. A PC that polls routers over SNMP
publishes them as their own devices, so it also gets a `user` block granting those
topics, kept below a marker line in the same ACL file.

Passwords are stored as mosquitto 2 stores them (`$7$`: PBKDF2-SHA512, 101
iterations, 12-byte salt), so no mosquitto_passwd is needed and no password ever
appears on a command line. Both files are rewritten whole (write, fsync, rename) so
the broker never reads half a file; it reads them again on SIGHUP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cwatch.protocol import is_valid_id

ITERATIONS = 101  # mosquitto_passwd's own default for $7$
POLLED_MARKER = "# --- pollers' grants, managed by `cwatch admin` (do not edit below) ---"


class AccountError(ValueError):
    """A bad id or a file that cannot be used; str() is one line."""


def username(site: str, device: str) -> str:
    for name, value in (("site", site), ("device", device)):
        if not is_valid_id(value):
            raise AccountError(f"{name} {value!r} must match [a-z0-9][a-z0-9._-]{{0,63}}")
    return f"{site}/{device}"


def new_password() -> str:
    return secrets.token_urlsafe(18)  # 144 bits, no characters TOML or shells mind


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, ITERATIONS, 64)
    return "$7${}${}${}".format(ITERATIONS, base64.b64encode(salt).decode("ascii"),
                                base64.b64encode(digest).decode("ascii"))


def check_password(password: str, stored: str) -> bool:
    try:
        _, kind, iterations, salt, digest = stored.split("$")
        if kind != "7":
            return False
        again = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), base64.b64decode(salt),
                                    int(iterations), 64)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(again, base64.b64decode(digest))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise AccountError(f"{path}: cannot read: {exc}") from None


def _write_lines(path: Path, lines: list[str], mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + ("\n" if lines else ""))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(str(tmp), str(path))
    except OSError as exc:
        raise AccountError(f"{path}: cannot write: {exc.strerror}") from None


class PasswordFile:
    """mosquitto's `password_file`: one `user:hash` line per account."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def users(self) -> dict[str, str]:
        out = {}
        for line in _read_lines(self.path):
            if line.strip() and not line.startswith("#") and ":" in line:
                user, stored = line.split(":", 1)
                out[user] = stored
        return out

    def set(self, user: str, password: str) -> bool:
        """Add or replace the account; True when it was new."""
        users = self.users()
        new = user not in users
        users[user] = hash_password(password)
        # Readable by the broker's group only: hashes are still worth guarding.
        _write_lines(self.path, [f"{u}:{h}" for u, h in sorted(users.items())], 0o640)
        return new

    def remove(self, user: str) -> bool:
        users = self.users()
        if users.pop(user, None) is None:
            return False
        _write_lines(self.path, [f"{u}:{h}" for u, h in sorted(users.items())], 0o640)
        return True


class AclFile:
    """The shipped ACL, with the pollers' `user` blocks kept below POLLED_MARKER."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _split(self) -> tuple[list[str], dict[str, list[str]]]:
        lines = _read_lines(self.path)
        if not lines:
            raise AccountError(f"{self.path}: not found or empty; copy "
                               "deploy/mosquitto/cwatch.acl there first")
        if POLLED_MARKER not in lines:
            return lines, {}
        at = lines.index(POLLED_MARKER)
        grants: dict[str, list[str]] = {}
        user = None
        for line in lines[at + 1:]:
            if line.startswith("user "):
                user = line[5:].strip()
                grants[user] = []
            elif line.startswith("topic write ") and user is not None:
                grants[user].append(line[len("topic write "):].strip())
        return lines[:at], grants

    def grants(self) -> dict[str, list[str]]:
        return self._split()[1]

    def set_grants(self, user: str, topics: list[str]) -> None:
        """The extra topics `user` may write (empty: none beyond its own)."""
        head, grants = self._split()
        if topics:
            grants[user] = topics
        else:
            grants.pop(user, None)
        while head and not head[-1].strip():
            head.pop()
        body = [*head, "", POLLED_MARKER]
        for name in sorted(grants):
            body += ["", f"user {name}", *(f"topic write {t}" for t in grants[name])]
        _write_lines(self.path, body, 0o644)


def polled_topics(site: str, polled: list[str]) -> list[str]:
    return [f"cwatch/v1/{username(site, device)}/#" for device in polled]
