"""`cwatch agent --enroll URL`: trade a one-time token for this PC's broker account and
write it into the agent's config file (the collector's POST /api/enroll).

The token comes from $CWATCH_ENROLL_TOKEN (or --enroll-token); the new password is
written only to the config file, which is made readable by its owner only.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict

from cwatch.config import ConfigError

TOKEN_ENV = "CWATCH_ENROLL_TOKEN"
TIMEOUT_S = 30.0


def request_account(url: str, token: str, site: str, device: str) -> Dict[str, Any]:
    """The collector's answer: username, password, broker_url; ConfigError otherwise."""
    body = json.dumps({"token": token, "site": site, "device": device}).encode()
    request = urllib.request.Request(url.rstrip("/") + "/api/enroll", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                reason = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                reason = f"HTTP {exc.code} {exc.reason} (is this the collector's address?)"
        raise ConfigError(f"enrollment refused: {reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach the collector at {url}: "
                          f"{getattr(exc, 'reason', exc)}") from None
    if not isinstance(answer, dict) or not all(
            isinstance(answer.get(k), str) for k in ("username", "password", "broker_url")):
        raise ConfigError(f"the answer of {url}/api/enroll is not an enrollment")
    return answer


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def write_config(path: Path, site: str, device: str, account: Dict[str, Any]) -> None:
    """Create the config file, or add [broker] to one that has none."""
    broker = ["[broker]"]
    if account["broker_url"]:
        broker.append("url = " + _toml_string(account["broker_url"]))
    pem = account.get("ca_pem")
    if isinstance(pem, str) and "BEGIN CERTIFICATE" in pem:
        # The broker's CA, next to the config: the agent trusts it for this broker only.
        ca_path = path.with_name("cwatch-broker-ca.crt")
        path.parent.mkdir(parents=True, exist_ok=True)
        ca_path.write_text(pem, encoding="ascii")
        broker.append("ca_file = " + _toml_string(str(ca_path.resolve())))
    broker += ["username = " + _toml_string(account["username"]),
               "password = " + _toml_string(account["password"])]
    if path.exists():
        text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + "\n".join(broker) + "\n"
    else:
        text = "\n".join(["[agent]", "site = " + _toml_string(site),
                          "device = " + _toml_string(device), "", *broker]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(str(tmp), str(path))


def enroll(url: str, token: str, site: str, device: str, config_path: Path) -> str:
    """Enroll and write the config; the new account's user name."""
    if config_path.exists() and re.search(r"^\s*\[broker\]",
                                          config_path.read_text(encoding="utf-8"), re.M):
        # Checked before the token is spent, not after.
        raise ConfigError(f"{config_path} already has a [broker] section: remove it (or give "
                          "another --config file) and enroll again")
    account = request_account(url, token, site, device)
    write_config(config_path, site, device, account)
    return str(account["username"])
