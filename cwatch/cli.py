"""`cwatch`: one command, one subcommand per component.

Each subcommand imports its component only when it runs, so `cwatch agent`
on a Python 3.8 PC with only the [agent] extras never touches collector code.
"""

from __future__ import annotations

import argparse
import sys
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _need_python_311(command: str) -> None:
    if sys.version_info < (3, 11):
        version = "{}.{}".format(*sys.version_info[:2])
        raise UsageError(f"cwatch {command} needs Python 3.11 or newer; this is {version} "
                         "(only `cwatch agent` runs on older Pythons)")


def _run_agent(args: argparse.Namespace) -> int:
    from agent import config as agent_config
    from cwatch import logutil

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


def _not_yet(name: str, issue: int) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise UsageError(f"cwatch {name} is not built yet in version {cwatch.__version__} "
                         f"(planned in issue {issue})")
    return run


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
               "         cwatch agent --site an-phuoc --device pc-01 --once --print",
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

    for name, issue, text in (
        ("report", 9, "write procurement reports (XLSX, CSV, HTML, PDF)"),
        ("dashboards", 8, "generate and provision the Grafana dashboards"),
    ):
        cmd = sub.add_parser(name, help=text + " (not built yet)",
                             description=text[0].upper() + text[1:] + ". Not built yet in "
                             f"this version; planned in issue {issue}.")
        cmd.set_defaults(run=_not_yet(name, issue))
    return parser


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


