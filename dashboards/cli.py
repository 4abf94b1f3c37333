"""`cwatch dashboards`: generate the Grafana dashboards, list them, and put them into a
running Grafana through its HTTP API.

    build [--check]   ->  dashboards.build.main(out_dir) / .check(out_dir)
    list              ->  the JSON files in dashboards/json/ (or --dir)
    provision         ->  dashboards.provision.provision(...): folder, data sources and
                          dashboards, created or updated only where they differ

The command line is in cwatch/cli.py (`_add_dashboards_parser`); `run` returns the exit
status:
    0  done
    1  Grafana could not be reached, or refused something; a build check found files
       that differ from the code; no dashboards to list or provision
    2  a mistake in the command line (URL, credentials, options)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from dashboards import files
from dashboards.datasources import DEFAULT_PROMETHEUS_URL, DEFAULT_VM_URL

PROG = "cwatch dashboards"
URL_ENV, TOKEN_ENV = "GRAFANA_URL", "GRAFANA_TOKEN"
USER_ENV, PASSWORD_ENV = "GRAFANA_USER", "GRAFANA_PASSWORD"


class CliError(Exception):
    """One line for the user; `usage` means exit status 2 (their input), else 1."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


# --- the actions ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run the action in args; errors become one line on stderr and the exit status.
    Options left at None take their defaults here: the parser (cwatch/cli.py) does not
    import this package, so that `cwatch agent` never loads it."""
    for name, default in (("dir", files.JSON_DIR), ("out", files.JSON_DIR),
                          ("vm_url", DEFAULT_VM_URL),
                          ("prometheus_url", DEFAULT_PROMETHEUS_URL)):
        if getattr(args, name, "") is None:
            setattr(args, name, default)
    try:
        if args.dashboards_command == "provision":
            return _provision(args)
        if args.dashboards_command == "build":
            return _build(args.out, args.check)
        return _list(args.dir)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2 if exc.usage else 1


def _from_env(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    """Token, user, password: the options if any is given, else the environment (so an
    exported $GRAFANA_TOKEN does not clash with --user/--password)."""
    given = (args.token, args.user, args.password)
    if any(given):
        return given
    env = os.environ
    return env.get(TOKEN_ENV) or None, env.get(USER_ENV) or None, env.get(PASSWORD_ENV) or None


def _provision(args: argparse.Namespace) -> int:
    from dashboards import provision as prov

    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise CliError(f"no Grafana address: give --url or set ${URL_ENV}", usage=True)
    token, user, password = _from_env(args)
    dashboards = _load(args.dir)
    if not dashboards:
        raise CliError(f"no dashboard JSON files in {args.dir}: run `cwatch dashboards "
                       "build` first")
    try:
        report = prov.provision(
            url, token=token, user=user, password=password, vm_url=args.vm_url,
            prometheus_url=args.prometheus_url, folder_title=args.folder,
            dashboards=dashboards, timeout=args.timeout, progress=_print_item)
    except prov.ProvisionError as exc:
        raise CliError(_with_options(str(exc)), usage=exc.usage) from None
    print(report.summary())
    return 0


def _with_options(message: str) -> str:
    """The library's words for credentials, with the options that give them."""
    if message.startswith("no credentials"):
        return (f"{message} (--token or ${TOKEN_ENV}; --user and --password, or "
                f"${USER_ENV} and ${PASSWORD_ENV})")
    return message


def _print_item(item: Any) -> None:
    print(f"{item.kind:<10}  {item.uid:<24}  {item.title:<32}  {item.action}", flush=True)


def _build(out_dir: Path, check: bool) -> int:
    try:
        from dashboards import build
    except ImportError as exc:
        raise CliError(f"cannot build the dashboards: {exc}") from None
    if check:
        differing = list(build.check(out_dir))
        if differing:
            print(f"{PROG}: {len(differing)} file(s) in {out_dir} differ from the code: "
                  f"{', '.join(differing)}; run `cwatch dashboards build`", file=sys.stderr)
            return 1
        print(f"{out_dir}: every dashboard file matches the code")
        return 0
    written = build.main(out_dir)  # the paths it wrote
    count = len(written) if isinstance(written, list) else len(files.dashboard_paths(out_dir))
    print(f"wrote {count} dashboard file(s) to {out_dir}")
    return 0


def _load(folder: Path) -> list[dict[str, Any]]:
    """The dashboards in `folder`, like files.load_all(), naming a file that is not JSON."""
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder", usage=True)
    dashboards = []
    for path in files.dashboard_paths(folder):
        try:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CliError(f"cannot read {path}: {exc}") from None
        if not isinstance(dashboard, dict):
            raise CliError(f"{path} is not a dashboard (a JSON object)")
        dashboards.append(dashboard)
    return dashboards


def panel_count(dashboard: dict[str, Any]) -> int:
    """Panels, those inside collapsed rows included; the row headers themselves are not."""
    count = 0
    for panel in dashboard.get("panels") or []:
        if panel.get("type") == "row":
            count += len(panel.get("panels") or [])
        else:
            count += 1
    return count


def _list(folder: Path) -> int:
    dashboards = _load(folder)
    if not dashboards:
        raise CliError(f"no dashboard JSON files in {folder}: run `cwatch dashboards build`")
    rows = [(str(d.get("uid", "-")), str(d.get("title", "-")), str(panel_count(d)))
            for d in dashboards]
    widths = [max(len(row[i]) for row in [("UID", "TITLE", "PANELS"), *rows])
              for i in range(3)]
    for uid, title, panels in [("UID", "TITLE", "PANELS"), *rows]:
        print(f"{uid:<{widths[0]}}  {title:<{widths[1]}}  {panels:>{widths[2]}}")
    return 0
