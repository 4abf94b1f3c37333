"""`cwatch`: one command, one subcommand per component.

Each subcommand imports its component only when it runs, so `cwatch agent`
on a Python 3.8 PC with only the [agent] extras never touches collector code.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Callable, List, Optional

import cwatch
from cwatch.config import ConfigError

PROG = "cwatch"


class UsageError(Exception):
    """A bad combination of options; reported as one line, exit status 2."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value
    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _need_python_311(command: str) -> None:
    if sys.version_info < (3, 11):
        version = "{}.{}".format(*sys.version_info[:2])
        raise UsageError(f"cwatch {command} needs Python 3.11 or newer; this is {version} "
                         "(only `cwatch agent` runs on older Pythons)")


def _run_agent(args: argparse.Namespace) -> int:
    from agent import config as agent_config
    from cwatch import logutil

    if args.enroll:
        return _enroll_agent(args)
    if args.print and not args.once:
        raise UsageError("--print needs --once")
    if args.once and not args.print:
        raise UsageError("--once needs --print (publishing a single round is not supported yet)")
    overrides = {
        "agent": {"site": args.site, "device": args.device, "interval_s": args.interval,
                  "data_dir": args.data_dir, "log_file": args.log_file},
        "broker": {"url": args.broker},
    }
    config = agent_config.load(args.config, overrides)
    logutil.setup(config.agent.log_level, config.agent.log_file)
    from agent.service import run_from_args

    return run_from_args(config, once=args.once)


def _enroll_agent(args: argparse.Namespace) -> int:
    import os

    from agent import enroll

    token = args.enroll_token or os.environ.get(enroll.TOKEN_ENV, "")
    missing = [name for name, value in (("--site", args.site), ("--device", args.device),
                                        ("--config", args.config),
                                        (f"a token (${enroll.TOKEN_ENV})", token)) if not value]
    if missing:
        raise UsageError(f"--enroll needs {', '.join(missing)}")
    from cwatch.protocol import is_valid_id

    for name, value in (("--site", args.site), ("--device", args.device)):
        if not is_valid_id(value):
            raise UsageError(f"{name} {value!r} must match [a-z0-9][a-z0-9._-]{{0,63}}")
    user = enroll.enroll(args.enroll, token.strip(), args.site, args.device, args.config)
    print(f"cwatch agent: enrolled as {user}; the account is in {args.config}. Start the "
          f"agent with: cwatch agent --config {args.config}")
    return 0


def _run_collector(args: argparse.Namespace) -> int:
    _need_python_311("collector")
    from collector import config as collector_config
    from cwatch import logutil

    overrides = {
        "collector": {"listen": args.listen, "state_path": args.state},
        "broker": {"url": args.broker},
        "tsdb": ({"enabled": False} if args.tsdb == "off"
                 else {"url": args.tsdb, "enabled": True if args.tsdb else None}),
    }
    config = collector_config.load(args.config, overrides)
    logutil.setup(config.collector.log_level)
    from collector.main import run

    return run(config)


def _run_demo(args: argparse.Namespace) -> int:
    _need_python_311("demo")
    from cwatch import logutil
    from cwatch.demo import run_demo

    logutil.setup("warning")
    return run_demo(duration_s=args.duration, output=args.output)


def _run_sim(args: argparse.Namespace) -> int:
    _need_python_311("sim")
    from cwatch import logutil
    from cwatch.sim.main import run
    from cwatch.sim.scenario import ScenarioError

    logutil.setup(args.log_level)
    try:
        return run(args.broker, args.devices, args.sites, args.seed, args.scenario, args.truth,
                   args.duration, args.start, args.speed, args.connections)
    except (ScenarioError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except ConnectionError as exc:
        print(f"{PROG} sim: error: {exc}", file=sys.stderr)
        return 1


def _run_alerts(args: argparse.Namespace) -> int:
    _need_python_311("alerts")
    from alerts import cli as alerts_cli

    try:
        if args.alerts_command == "test-email":
            return alerts_cli.run_test_email(args.config, args.to)
        url = alerts_cli.api_url(args.url)
        if args.alerts_command == "outbox":
            return alerts_cli.outbox(url, args.state, args.limit, args.json)
        if args.silence_command == "add":
            return alerts_cli.silence_add(
                url, site=args.site, device=args.device, rule=args.rule,
                duration=args.duration, until=args.until, start=args.start,
                reason=args.reason, created_by=args.by, as_json=args.json)
        if args.silence_command == "list":
            return alerts_cli.silence_list(url, args.state, args.json)
        return alerts_cli.silence_expire(url, args.id)
    except alerts_cli.CliError as exc:
        if exc.usage:
            raise UsageError(str(exc)) from None
        print(f"{PROG} alerts: error: {exc}", file=sys.stderr)
        return 1


def _run_report(args: argparse.Namespace) -> int:
    _need_python_311("report")
    from collector.reports import cli as report_cli
    from cwatch import logutil

    logutil.setup("warning" if args.quiet else "info")
    return report_cli.run(args)


def _run_dashboards(args: argparse.Namespace) -> int:
    _need_python_311("dashboards")
    from dashboards import cli as dashboards_cli

    return dashboards_cli.run(args)


def _run_admin(args: argparse.Namespace) -> int:
    from cwatch.admin import cli as admin_cli

    return admin_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="commune-watch: monitor the PCs, disks, routers and internet links of "
                    "commune offices. Agents publish over MQTT; the collector stores, checks "
                    "and reports.",
        epilog="Run `cwatch COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + cwatch.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    agent = sub.add_parser(
        "agent", help="run the agent on a PC (Python 3.8+)",
        description="Collect this PC's health and publish it to the MQTT broker. Options given "
                    "here override the config file; site and device are required one way or "
                    "the other.",
        epilog="Example: cwatch agent --broker mqtt://10.0.0.5:1883 --site an-phuoc "
               "--device pc-ketoan-01\n         cwatch agent --config /etc/cwatch/agent.toml\n"
               "         cwatch agent --site an-phuoc --device pc-01 --once --print\n"
               "         CWATCH_ENROLL_TOKEN=... cwatch agent --enroll http://10.0.0.5:9555 "
               "--site an-phuoc --device pc-01 --config /etc/cwatch/agent.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    agent.add_argument("--config", type=Path, metavar="FILE",
                       help="TOML config file (see deploy/agent.example.toml)")
    agent.add_argument("--broker", metavar="URL",
                       help="mqtt://[user:pass@]host:port or mqtts://... (default "
                            "mqtt://127.0.0.1:1883)")
    agent.add_argument("--site", metavar="SITE", help="commune code, e.g. an-phuoc")
    agent.add_argument("--device", metavar="DEVICE", help="stable id of this PC, e.g. pc-01")
    agent.add_argument("--interval", type=_positive_float, metavar="SECONDS",
                       help="seconds between metrics (default 60)")
    agent.add_argument("--data-dir", metavar="DIR",
                       help="where the agent keeps its state (default ./cwatch-agent-data)")
    agent.add_argument("--log-file", metavar="PATH",
                       help="log to this rotating file instead of stderr (Windows task)")
    agent.add_argument("--once", action="store_true", help="collect one round and exit")
    agent.add_argument("--print", action="store_true",
                       help="with --once: print {topic, payload} JSON lines instead of "
                            "publishing (no broker needed)")
    agent.add_argument("--enroll", metavar="COLLECTOR_URL",
                       help="get this PC's own broker account from the collector with a "
                            "one-time token ($CWATCH_ENROLL_TOKEN), write it into --config, "
                            "and exit")
    agent.add_argument("--enroll-token", metavar="TOKEN", help=argparse.SUPPRESS)
    agent.set_defaults(run=_run_agent)

    collector = sub.add_parser(
        "collector", help="run the collector (Python 3.11+)",
        description="Subscribe to every agent's messages, validate and de-duplicate them, "
                    "write time series (VictoriaMetrics or InfluxDB) and device state "
                    "(SQLite), and serve /metrics and the JSON API. Options given here "
                    "override the config file.",
        epilog="Example: cwatch collector --broker mqtt://127.0.0.1:1883 --listen "
               "0.0.0.0:9555\n         cwatch collector --config /etc/cwatch/collector.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    collector.add_argument("--config", type=Path, metavar="FILE",
                           help="TOML config file (see deploy/collector.example.toml)")
    collector.add_argument("--broker", metavar="URL", help="mqtt://[user:pass@]host:port")
    collector.add_argument("--tsdb", metavar="URL",
                           help="InfluxDB-v2-compatible write endpoint, e.g. "
                                "http://127.0.0.1:8428 (VictoriaMetrics); 'off' keeps only "
                                "the device state")
    collector.add_argument("--listen", metavar="HOST:PORT",
                           help="address of the HTTP server for /metrics and /api "
                                "(default 127.0.0.1:9555)")
    collector.add_argument("--state", metavar="PATH",
                           help="device state database (default ./cwatch-state.db)")
    collector.set_defaults(run=_run_collector)

    demo = sub.add_parser(
        "demo", help="run a broker, the collector and an agent on this machine",
        description="Start everything on this machine with embedded defaults: a private "
                    "mosquitto on a free port, the collector, and an agent for this PC. Shows "
                    "a live summary; Ctrl-C stops it and leaves nothing running.")
    demo.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                      help="stop by itself after this many seconds (default: until Ctrl-C)")
    demo.add_argument("--output", type=Path, default=Path("cwatch-demo"), metavar="DIR",
                      help="folder for the demo's files (default ./cwatch-demo)")
    demo.set_defaults(run=_run_demo)

    sim = sub.add_parser(
        "sim", help="simulate a fleet of devices publishing through a broker",
        description="Simulate commune PCs, servers and routers publishing protocol-v1 "
                    "messages through an MQTT broker as agents do, with injected faults "
                    "(failing disks, overheating, full disks, reboots, silent devices, slow "
                    "links, a slow portal) and a ground-truth file of what should be flagged.",
        epilog="Examples:\n"
               "  cwatch sim --broker mqtt://127.0.0.1:1883 --devices 300 --sites 10\n"
               "  cwatch sim --broker mqtt://127.0.0.1:1883 --start 2d --speed 1000 "
               "--truth truth.json --duration 180\n"
               "The default scenario: cwatch/sim/scenarios/default.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sim.add_argument("--broker", metavar="URL", default="mqtt://127.0.0.1:1883",
                     help="mqtt://[user:pass@]host:port (default mqtt://127.0.0.1:1883)")
    sim.add_argument("--devices", type=_positive_int, metavar="N",
                     help="devices in all (default: the scenario's, 300)")
    sim.add_argument("--sites", type=_positive_int, metavar="M",
                     help="sites (communes) (default: the scenario's, 10)")
    sim.add_argument("--seed", type=int, default=1, help="same seed, same fleet (default 1)")
    sim.add_argument("--scenario", type=Path, metavar="FILE",
                     help="scenario TOML (default: the built-in one)")
    sim.add_argument("--truth", type=Path, metavar="OUT.json",
                     help="write the ground truth (expected findings) here")
    sim.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                     help="stop after this many seconds of wall time (default: until Ctrl-C)")
    sim.add_argument("--start", default="now", metavar="WHEN",
                     help="sample time to start at: now, a time ago (2d, 6h) or an ISO time "
                          "(default now)")
    sim.add_argument("--speed", type=_positive_float, default=1.0, metavar="X",
                     help="sample time runs X times faster than the wall clock, never past "
                          "now (default 1)")
    sim.add_argument("--connections", type=_positive_int, default=20, metavar="N",
                     help="MQTT connections shared by the devices (default 20)")
    sim.add_argument("--log-level", default="info",
                     choices=("debug", "info", "warning", "error"))
    sim.set_defaults(run=_run_sim)

    _add_alerts_parser(sub)

    _add_dashboards_parser(sub)

    _add_report_parser(sub)

    _add_admin_parser(sub)
    return parser


def _add_admin_parser(subparsers: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    admin = subparsers.add_parser(
        "admin", help="broker accounts for devices and services (on the broker host)",
        description=_wrap("Create and remove the broker accounts of devices: each device gets "
                          "its own user name (site/device) and password, and the shipped ACL "
                          "(deploy/mosquitto/cwatch.acl) lets it publish only on its own "
                          "topics and read nothing. add-device prints the agent's [agent] and "
                          "[broker] config with the new password; copy it to the PC."),
        epilog="Examples:\n"
               "  cwatch admin add-device an-phuoc pc-motcua-02 "
               "--broker-url mqtts://mqtt.dongnai.gov.vn:8883\n"
               "  cwatch admin add-device an-phuoc pc-server --polls router-01 switch-01\n"
               "  cwatch admin remove-device an-phuoc pc-motcua-02\n"
               "  cwatch admin add-service cwatch-collector\n"
               "  cwatch admin list\n"
               "  cwatch admin enroll-token an-phuoc --uses 40   (agents enroll themselves)\n\n"
               "Then reload the broker: systemctl reload mosquitto.\n"
               "Exit status: 0 done; 1 nothing to remove; 2 a bad id or an unusable file.",
        formatter_class=raw)
    admin.set_defaults(run=_run_admin)
    actions = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    actions.required = True

    def files(parser: argparse.ArgumentParser, acl: bool = True) -> None:
        parser.add_argument("--password-file", default="/etc/mosquitto/cwatch.passwd",
                            metavar="PATH", help="mosquitto's password_file "
                            "(default: %(default)s)")
        if acl:
            parser.add_argument("--acl-file", default="/etc/mosquitto/cwatch.acl",
                                metavar="PATH", help="mosquitto's acl_file, copied from "
                                "deploy/mosquitto/cwatch.acl (default: %(default)s)")

    add = actions.add_parser("add-device", help="create a device's account (or give it a new "
                             "password) and print its agent config")
    add.add_argument("site", help="the commune's id, e.g. an-phuoc")
    add.add_argument("device", help="the device's id, e.g. pc-motcua-02")
    add.add_argument("--polls", nargs="+", default=[], metavar="DEVICE",
                     help="routers or switches this PC polls over SNMP/ping: it may publish "
                          "for them too (same site)")
    add.add_argument("--broker-url", default="", metavar="URL",
                     help="the broker as the agents reach it, e.g. "
                          "mqtts://mqtt.dongnai.gov.vn:8883 (default: $CWATCH_BROKER_URL)")
    add.add_argument("--ca-file", default="", metavar="PATH",
                     help="where the agent finds the CA certificate of the broker's TLS "
                          "certificate, if not a public CA")
    files(add)

    remove = actions.add_parser("remove-device", help="revoke a device's account")
    remove.add_argument("site")
    remove.add_argument("device")
    files(remove)

    service = actions.add_parser("add-service", help="create an account for a service "
                                 "(the collector: cwatch-collector) and print its password")
    service.add_argument("name", help="the account's name as the ACL file gives it")
    files(service, acl=False)

    listing = actions.add_parser("list", help="list the accounts and what each PC polls")
    files(listing)

    def tokens_file(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--tokens-file", default="/var/lib/cwatch/enroll-tokens.db",
                            metavar="PATH", help="the collector's [enroll] tokens_file "
                            "(default: %(default)s)")

    enroll = actions.add_parser("enroll-token", help="make a one-time token with which the "
                                "agents of one site get their own accounts")
    enroll.add_argument("site")
    enroll.add_argument("--uses", type=_positive_int, default=1, metavar="N",
                        help="how many devices may enroll with it (default 1)")
    enroll.add_argument("--valid-days", type=_positive_float, default=7.0, metavar="DAYS",
                        help="how long it can be used (default 7)")
    enroll.add_argument("--note", default="", help="who it was given to, for the list")
    tokens_file(enroll)
    tokens = actions.add_parser("tokens", help="list the enrollment tokens")
    tokens_file(tokens)


def _add_alerts_parser(sub: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    alerts = sub.add_parser(
        "alerts", help="silences, the e-mail outbox and a test e-mail (Python 3.11+)",
        description="Work with the e-mail alerts of a running collector through its JSON "
                    "API: silence alerts during planned work, look at the outbox of "
                    "e-mails, and send a test e-mail with the collector's config file. The "
                    "collector's address is --url, else $CWATCH_API_URL, else "
                    "http://127.0.0.1:9555; its token, if it has one, is $CWATCH_API_TOKEN. "
                    "Times are Vietnam time (UTC+07:00) unless given with an offset.",
        epilog="Examples:\n"
               "  cwatch alerts silence add --site an-phuoc --duration 2h "
               "--reason \"replacing the router\"\n"
               "  cwatch alerts silence list --state all\n"
               "  cwatch alerts silence expire 7\n"
               "  cwatch alerts outbox --state failed\n"
               "  cwatch alerts test-email --config /etc/cwatch/collector.toml\n\n"
               "Exit status: 0 done; 1 the collector cannot be reached or cannot do it (no "
               "such silence,\nalerts off, a server error) or a test e-mail was not sent; "
               "2 a mistake in the command,\nincluding a request the collector refuses as "
               "invalid (HTTP 400).",
        formatter_class=raw)
    alerts.set_defaults(run=_run_alerts)
    actions = alerts.add_subparsers(dest="alerts_command", metavar="ACTION")
    actions.required = True
    # On each action, not on `alerts`: a sub-parser's default would overwrite the parent's.
    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--url", metavar="URL",
                     help="the collector's API (default: $CWATCH_API_URL, else "
                          "http://127.0.0.1:9555)")

    silence = actions.add_parser(
        "silence", help="add, list or expire silences",
        description="A silence holds back the e-mails about the findings it matches (by "
                    "site, device and/or rule) for a while: planned work, a known outage.",
        epilog="Examples:\n"
               "  cwatch alerts silence add --site an-phuoc --device pc-01 --duration 3h "
               "--reason \"disk swap\"\n"
               "  cwatch alerts silence list\n"
               "  cwatch alerts silence expire 7",
        formatter_class=raw)
    silence_actions = silence.add_subparsers(dest="silence_command", metavar="ACTION")
    silence_actions.required = True

    add = silence_actions.add_parser(
        "add", parents=[api], help="silence the alerts that match, for a while",
        description="Add a silence: the findings matching every matcher given (at least one "
                    "of --site, --device, --rule) send no e-mail from --start (default now) "
                    "for --duration or until --until. Prints the new silence's id, then a "
                    "summary.",
        epilog="Examples:\n"
               "  cwatch alerts silence add --site an-phuoc --duration 2h "
               "--reason \"replacing the router\"\n"
               "  cwatch alerts silence add --site binh-an --rule disk_failing "
               "--start \"2026-12-01 07:30\" \\\n"
               "      --until 2026-12-01T17:00+07:00 --reason \"disk swap\" --by lan",
        formatter_class=raw)
    add.add_argument("--site", metavar="SITE", help="only this site (commune), e.g. an-phuoc")
    add.add_argument("--device", metavar="DEVICE", help="only this device, e.g. pc-01")
    add.add_argument("--rule", metavar="RULE", help="only this rule or finding kind")
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--duration", metavar="DURATION",
                       help="how long from the start: 90m, 2h, 1d")
    until.add_argument("--until", metavar="TIME",
                       help="when it ends: 2026-12-01T17:00+07:00, or 2026-12-01 17:00 "
                            "(Vietnam time)")
    add.add_argument("--start", metavar="TIME",
                     help="when it begins, written like --until (default: now)")
    add.add_argument("--reason", required=True, metavar="TEXT",
                     help="why (shown to whoever wonders where the e-mails went)")
    add.add_argument("--by", metavar="NAME",
                     help="who silences (default: $USER, else \"cli\")")
    add.add_argument("--json", action="store_true", help="print the new silence as JSON")

    listing = silence_actions.add_parser(
        "list", parents=[api], help="show silences",
        description="Show the silences in a table (id, matchers, from, until, by, reason; "
                    "times in Vietnam time) or as the API's JSON.",
        epilog="Examples:\n  cwatch alerts silence list\n"
               "  cwatch alerts silence list --state expired --json",
        formatter_class=raw)
    listing.add_argument("--state", default="active",
                         choices=("active", "pending", "expired", "all"),
                         help="which silences (default: active)")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")

    expire = silence_actions.add_parser(
        "expire", parents=[api], help="end a silence now",
        description="End a silence now (it stays in the list of expired silences).",
        epilog="Example: cwatch alerts silence expire 7", formatter_class=raw)
    expire.add_argument("id", type=_positive_int, metavar="ID",
                        help="the silence's id (from `silence list`)")

    outbox = actions.add_parser(
        "outbox", parents=[api], help="show the e-mails waiting, sent or failed",
        description="Show the collector's outbox: the e-mails it queued, their state "
                    "(pending, sent, failed), attempts and last error, newest first.",
        epilog="Examples:\n  cwatch alerts outbox\n"
               "  cwatch alerts outbox --state failed --limit 20\n"
               "  cwatch alerts outbox --json",
        formatter_class=raw)
    outbox.add_argument("--state", choices=("pending", "sent", "failed"),
                        help="only e-mails in this state (default: all)")
    outbox.add_argument("--limit", type=_positive_int, metavar="N",
                        help="at most N e-mails, 1-1000 (default 100)")
    outbox.add_argument("--json", action="store_true", help="print the API's JSON")

    test = actions.add_parser(
        "test-email", help="send a test e-mail to the configured recipients",
        description="Read the collector's config file and send a test e-mail, in each "
                    "recipient's language, through the SMTP server of its [alerts] section. "
                    "It talks to the mail server directly (no collector needs to run). "
                    "Exit status 1 if any e-mail was not sent.",
        epilog="Examples:\n  cwatch alerts test-email --config /etc/cwatch/collector.toml\n"
               "  cwatch alerts test-email --config collector.toml --to lan@example.vn",
        formatter_class=raw)
    test.add_argument("--config", type=Path, metavar="FILE", required=True,
                      help="the collector's TOML config file, with its [alerts] section")
    test.add_argument("--to", metavar="EMAIL",
                      help="only this recipient (one of the config's [[alerts.recipients]])")


def _wrap(text: str) -> str:
    """The raw formatter keeps the examples' lines; the prose is wrapped here instead."""
    return textwrap.fill(text, width=79, break_on_hyphens=False)


def _add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    """`report procurement` (collector/reports/cli.py runs it)."""
    raw = argparse.RawDescriptionHelpFormatter
    report = subparsers.add_parser(
        "report", help="write the procurement report (XLSX, CSV, HTML, PDF; Python 3.11+)",
        description=_wrap("Reports made from the collector's state database. procurement: "
                          "which PCs, disks, routers and links to replace or upgrade, in "
                          "which commune, why, in what order and at what cost."),
        epilog="Example:\n  cwatch report procurement --config /etc/cwatch/collector.toml "
               "--out /srv/reports", formatter_class=raw)
    actions = report.add_subparsers(dest="report_command", metavar="REPORT")
    actions.required = True
    procurement = actions.add_parser(
        "procurement", help="ranked, costed upgrade list per commune, in Vietnamese or English",
        description=_wrap(
            "Rank every device by upgrade priority (failure risk, performance shortfall, "
            "age; collector/rules/priority.py), suggest the cheapest action that fixes what "
            "was measured, say whether each Windows PC can take Windows 11, cost it all in "
            "VND from the [report.prices] of the config file, cut the list at --budget, and "
            "write it per commune. Reads the collector's state database (it may be running) "
            "and its [report] section; options override the file."),
        epilog="Examples:\n"
               "  cwatch report procurement --config /etc/cwatch/collector.toml --out reports\n"
               "  cwatch report procurement --state cwatch-state.db --lang en --format xlsx,pdf\n"
               "  cwatch report procurement --config collector.toml --budget 500000000 "
               "--site an-phuoc --site binh-minh\n"
               "  cwatch report procurement --config collector.toml --from 2026-07-01 "
               "--to 2026-09-30 --assets tai-san.csv\n\n"
               "Files: bao-cao-mua-sam-<last day>.<format> (vi) or "
               "procurement-report-<last day>.<format> (en).\n"
               "Exit status: 0 written; 1 it could not be made (no state database, a file "
               "that cannot\nbe read or written); 2 a mistake in the command line or the "
               "config file.", formatter_class=raw)
    procurement.set_defaults(run=_run_report)
    procurement.add_argument("--config", metavar="FILE",
                             help="the collector's TOML file: [collector] state_path, "
                                  "sites_file, rules_file and the [report] section")
    procurement.add_argument("--state", metavar="DB",
                             help="the collector's state database (default: [collector] "
                                  "state_path)")
    procurement.add_argument("--out", default=".", metavar="DIR",
                             help="folder for the files (default: the current one)")
    procurement.add_argument("--format", metavar="LIST",
                             help="comma-separated: xlsx, csv, html, pdf (default: all four, "
                                  "but no PDF for more than 300 communes: for a whole "
                                  "country it would take 20 to 30 minutes; name pdf to get "
                                  "it anyway)")
    procurement.add_argument("--lang", choices=("vi", "en"),
                             help="language of the report (default: [report] language, vi)")
    procurement.add_argument("--site", action="append", metavar="SITE",
                             help="only this commune (repeat for several)")
    procurement.add_argument("--role", action="append", metavar="ROLE",
                             help="only devices of this role: service-counter, office, "
                                  "server, router, ... (repeat for several)")
    procurement.add_argument("--period", metavar="DURATION",
                             help="measurements of the last DURATION, e.g. 30d or 12w "
                                  "(default: [report] period, 30d)")
    procurement.add_argument("--from", dest="from_date", metavar="DATE",
                             help="first day of the measurements (YYYY-MM-DD)")
    procurement.add_argument("--to", dest="to_date", metavar="DATE",
                             help="last day of the measurements (default: today)")
    procurement.add_argument("--budget", type=_positive_int, metavar="VND",
                             help="the money available; the list is cut where it ends "
                                  "(default: [report] budget_vnd, none)")
    procurement.add_argument("--assets", metavar="CSV",
                             help="the province's asset register: purchase dates, tags, "
                                  "locations (columns in docs/reports.md)")
    procurement.add_argument("--province", metavar="NAME",
                             help="the province's name for the title (default: [report] "
                                  "province)")
    procurement.add_argument("--sites-file", metavar="CSV",
                             help="site ids and names (default: [collector] sites_file)")
    procurement.add_argument("--pdf-devices", type=_non_negative_int, default=10, metavar="N",
                             help="the PDF lists, per commune, the first N devices that "
                                  "need something (default 10; 0: all of them, slow for a "
                                  "province: WeasyPrint lays out ~20 rows a second); the "
                                  "XLSX, CSV and HTML list every device")
    procurement.add_argument("--quiet", action="store_true",
                             help="no progress and no log lines, only the files written")


def _add_dashboards_parser(subparsers: argparse._SubParsersAction) -> None:
    """`dashboards` with its actions build, list and provision (dashboards/cli.py runs
    them; defaults left at None are filled in there)."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "dashboards", help="generate, list and provision the Grafana dashboards",
        description=_wrap("The Grafana dashboards of commune-watch, written as code: generate "
                          "their JSON files (build), show them (list), and put them, with their "
                          "folder and the two data sources they query, into a running Grafana "
                          "through its HTTP API (provision). For Grafana's own file provisioning "
                          "instead, see deploy/grafana/provisioning/."),
        epilog="Examples:\n"
               "  cwatch dashboards provision --url http://127.0.0.1:3000 "
               "--token glsa_xxxxxxxx\n"
               "  GRAFANA_URL=http://10.0.0.5:3000 GRAFANA_TOKEN=glsa_xxx "
               "cwatch dashboards provision\n"
               "  cwatch dashboards list\n"
               "  cwatch dashboards build --check\n\n"
               "Exit status: 0 done; 1 Grafana cannot be reached or refused something, or "
               "the JSON files\ndiffer from the code (build --check); 2 a mistake in the "
               "command line.",
        formatter_class=raw)
    parser.set_defaults(run=_run_dashboards)
    actions = parser.add_subparsers(dest="dashboards_command", metavar="ACTION")
    actions.required = True
    _add_dashboards_provision(actions, raw)
    _add_dashboards_build(actions, raw)
    _add_dashboards_list(actions, raw)


def _add_dashboards_provision(actions: argparse._SubParsersAction, raw: type) -> None:
    provision = actions.add_parser(
        "provision", help="create or update the folder, data sources and dashboards in "
                          "Grafana",
        description=_wrap("Create or update, through Grafana's HTTP API, the dashboards' folder, "
                          "the two data sources (VictoriaMetrics and Prometheus, found by uid: "
                          "cwatch-vm, cwatch-prom) and every dashboard (by uid, in that folder). "
                          "Each object is read first and written only if it differs, so running "
                          "it again changes nothing and says \"unchanged\"; a dashboard edited in "
                          "Grafana's UI is put back. Prints one line per object, then a summary. "
                          "Authenticate with a service-account token (Bearer; the service "
                          "account needs the Admin role: data sources need it) or a user and "
                          "password (basic auth). A Grafana on this machine (localhost, "
                          "127.0.0.1) is reached directly, whatever http_proxy says; any other "
                          "host through the environment's proxy settings (see no_proxy)."),
        epilog="Examples:\n"
               "  cwatch dashboards provision --url http://127.0.0.1:3000 --token "
               "glsa_xxxxxxxx\n"
               "  export GRAFANA_URL=https://grafana.example.vn GRAFANA_TOKEN=glsa_xxxxxxxx\n"
               "  cwatch dashboards provision --vm-url http://10.0.0.5:8428 "
               "--prometheus-url http://10.0.0.5:9090\n"
               "  GRAFANA_PASSWORD=secret cwatch dashboards provision --url "
               "http://127.0.0.1:3000 --user admin\n\n"
               "A password on the command line shows in the process list: prefer "
               "$GRAFANA_PASSWORD.\nExit status: 0 done; 1 Grafana cannot be reached or "
               "refused something; 2 a mistake\nin the command line.",
        formatter_class=raw)
    provision.add_argument("--url", metavar="URL",
                           help="Grafana's address, e.g. http://127.0.0.1:3000 or "
                                "https://host/grafana (default: $GRAFANA_URL)")
    provision.add_argument("--token", metavar="TOKEN",
                           help="a service-account token (default: $GRAFANA_TOKEN)")
    provision.add_argument("--user", metavar="USER",
                           help="a Grafana user instead of a token (default: $GRAFANA_USER)")
    provision.add_argument("--password", metavar="PASSWORD",
                           help="that user's password (default: $GRAFANA_PASSWORD)")
    provision.add_argument("--vm-url", metavar="URL",
                           help="VictoriaMetrics as Grafana's server reaches it (default "
                                "http://127.0.0.1:8428)")
    provision.add_argument("--prometheus-url", metavar="URL",
                           help="Prometheus as Grafana's server reaches it (default "
                                "http://127.0.0.1:9090)")
    provision.add_argument("--folder", default="commune-watch", metavar="TITLE",
                           help="title of the dashboards' folder (uid commune-watch; default "
                                "commune-watch)")
    provision.add_argument("--dir", type=Path, metavar="DIR",
                           help="the dashboard JSON files to provision (default: the "
                                "shipped ones)")
    provision.add_argument("--timeout", type=_positive_float, default=10.0, metavar="SECONDS",
                           help="give up on a request after this long (default 10)")


def _add_dashboards_build(actions: argparse._SubParsersAction, raw: type) -> None:
    build = actions.add_parser(
        "build", help="generate the dashboard JSON files from the code",
        description=_wrap("Generate one JSON file per dashboard from the Python code in "
                          "dashboards/ (the files are committed, so Grafana's file provisioning "
                          "can read them as they are). With --check, write nothing and fail if "
                          "the files differ from what the code generates (for CI)."),
        epilog="Examples:\n  cwatch dashboards build\n  cwatch dashboards build --check\n"
               "  cwatch dashboards build --out /tmp/dashboards",
        formatter_class=raw)
    build.add_argument("--out", type=Path, metavar="DIR",
                       help="where the JSON files go (default: dashboards/json in the package)")
    build.add_argument("--check", action="store_true",
                       help="write nothing; exit status 1 if the files in DIR differ from "
                            "the code")


def _add_dashboards_list(actions: argparse._SubParsersAction, raw: type) -> None:
    listing = actions.add_parser(
        "list", help="show the shipped dashboards",
        description=_wrap("Show each dashboard JSON file's uid, title and number of panels."),
        epilog="Examples:\n  cwatch dashboards list\n  cwatch dashboards list --dir /tmp/out",
        formatter_class=raw)
    listing.add_argument("--dir", type=Path, metavar="DIR",
                         help="the folder of dashboard JSON files (default: the shipped ones)")


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, UsageError) as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


