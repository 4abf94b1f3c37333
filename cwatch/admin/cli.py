"""`cwatch admin`: the broker accounts of devices and services (run on the broker host)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cwatch.admin.accounts import (
    AccountError,
    AclFile,
    PasswordFile,
    new_password,
    polled_topics,
    username,
)
from cwatch.admin.enrollment import TokenStore
from cwatch.config import BrokerURL, ConfigError

RELOAD_HINT = ("reload the broker so it reads the files again: "
               "`systemctl reload mosquitto` (or `kill -HUP` its process)")


def run(args: argparse.Namespace) -> int:
    try:
        return ACTIONS[args.admin_command](args)
    except AccountError as exc:
        raise ConfigError(str(exc)) from None


def _agent_snippet(args: argparse.Namespace, user: str, password: str) -> str:
    lines = ["# The agent's config file (Linux /etc/cwatch/agent.toml, Windows",
             "# C:\\ProgramData\\cwatch\\agent.toml); the password is shown only this once.",
             "[agent]", f'site = "{args.site}"', f'device = "{args.device}"', "",
             "[broker]", f'url = "{args.broker_url}"', f'username = "{user}"',
             f'password = "{password}"']
    if args.ca_file:
        lines.append(f'ca_file = "{args.ca_file}"')
    return "\n".join(lines) + "\n"


def _broker_url(args: argparse.Namespace) -> str:
    url = args.broker_url or os.environ.get("CWATCH_BROKER_URL", "")
    if not url:
        raise ConfigError("add-device needs --broker-url (or $CWATCH_BROKER_URL): the "
                          "broker as the agents reach it, e.g. mqtts://mqtt.dongnai.gov.vn:8883")
    try:
        BrokerURL.parse(url)
    except ValueError as exc:
        raise ConfigError(f"--broker-url: {exc}") from None
    return url


def _add_device(args: argparse.Namespace) -> int:
    args.broker_url = _broker_url(args)  # before anything is written
    user = username(args.site, args.device)
    topics = polled_topics(args.site, args.polls)  # checks the polled ids too
    acl = AclFile(Path(args.acl_file))
    acl.grants()  # fails early, before a password is made, if the ACL is missing
    password = new_password()
    new = PasswordFile(Path(args.password_file)).set(user, password)
    acl.set_grants(user, topics)
    sys.stdout.write(_agent_snippet(args, user, password))
    extra = f"; it may also publish for {', '.join(args.polls)}" if args.polls else ""
    print(f"cwatch admin: {'added' if new else 'new password for'} {user}{extra}; "
          f"{RELOAD_HINT}", file=sys.stderr)
    return 0


def _add_service(args: argparse.Namespace) -> int:
    password = new_password()
    new = PasswordFile(Path(args.password_file)).set(args.name, password)
    print(f"[broker]\nusername = \"{args.name}\"\npassword = \"{password}\"")
    print(f"cwatch admin: {'added' if new else 'new password for'} {args.name}; what it may "
          f"read or write is in the ACL file; {RELOAD_HINT}", file=sys.stderr)
    return 0


def _remove_device(args: argparse.Namespace) -> int:
    user = username(args.site, args.device)
    removed = PasswordFile(Path(args.password_file)).remove(user)
    acl = AclFile(Path(args.acl_file))
    acl.set_grants(user, [])
    if not removed:
        print(f"cwatch admin: {user} had no account; nothing removed", file=sys.stderr)
        return 1
    print(f"cwatch admin: removed {user}; it can connect until you {RELOAD_HINT}",
          file=sys.stderr)
    return 0


def _list_devices(args: argparse.Namespace) -> int:
    grants = AclFile(Path(args.acl_file)).grants() if Path(args.acl_file).exists() else {}
    for user in sorted(PasswordFile(Path(args.password_file)).users()):
        extra = grants.get(user, [])
        polled = [t.split("/")[3] for t in extra]
        print(user + (f"  polls {', '.join(polled)}" if polled else ""))
    return 0


def _enroll_token(args: argparse.Namespace) -> int:
    token = TokenStore(Path(args.tokens_file)).create(args.site, args.uses,
                                                      args.valid_days * 86400, args.note)
    print(token)
    print(f"cwatch admin: enrollment token for {args.uses} device(s) of {args.site}, valid "
          f"{args.valid_days:g} days; on each PC: CWATCH_ENROLL_TOKEN=<token> cwatch agent "
          f"--enroll http://<collector>:9555 --site {args.site} --device <id> --config "
          "<file>", file=sys.stderr)
    return 0


def _list_tokens(args: argparse.Namespace) -> int:
    now = time.time()
    for row in TokenStore(Path(args.tokens_file)).list():
        left = "expired" if row["expires_ts"] < now else \
            f"{(row['expires_ts'] - now) / 86400:.1f} days left"
        print(f"{row['site']}  {row['uses_left']} device(s) left  {left}  {row['note']}")
    return 0


ACTIONS = {"add-device": _add_device, "add-service": _add_service,
           "remove-device": _remove_device, "list": _list_devices,
           "enroll-token": _enroll_token, "tokens": _list_tokens}
