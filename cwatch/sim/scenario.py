"""The simulator's scenario file (TOML): the fleet's shape and the faults to inject.

Every mistake is a ScenarioError naming the file, the key and what is wrong.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import tomllib

from cwatch import config, protocol

DEFAULT_PATH = Path(__file__).parent / "scenarios" / "default.toml"

# Faults on one device, and faults on a whole site's link (or every site's portal).
DEVICE_FAULTS = ("disk_reallocated", "smart_failure", "nvme_wear", "high_temperature",
                 "memory_pressure", "disk_full", "unexpected_reboots", "silent")
SITE_FAULTS = ("slow_link", "outage")
PROVINCE_FAULTS = ("portal_slow",)
FAULT_KINDS = DEVICE_FAULTS + SITE_FAULTS + PROVINCE_FAULTS
ROLES = ("service-counter", "office", "server")  # plus one router per site, always



class ScenarioError(ValueError):
    pass


def parse_duration(value: Any, what: str) -> float:
    try:
        return config.parse_duration(value, what)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: str
    start_s: float = 0.0
    duration_s: float | None = None  # None: until the end of the simulation
    count: int = 1
    target: str | None = None  # "site/device" or "site"


@dataclasses.dataclass(frozen=True)
class Scenario:
    sites: int = 10
    devices: int = 300
    interval_s: float = 60.0
    probe_interval_s: float = 300.0
    inventory_interval_s: float = 86400.0
    jitter: float = 0.1
    site_names: tuple[str, ...] = ()
    roles: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"service-counter": 0.35, "office": 0.55, "server": 0.10})
    faults: tuple[Fault, ...] = ()

    def with_size(self, devices: int | None, sites: int | None) -> Scenario:
        """The command line's --devices / --sites over the file's."""
        changed = dataclasses.replace(self, devices=devices or self.devices,
                                      sites=sites or self.sites)
        _check_fleet(changed, "command line")
        return changed


def load(path: Path | None = None) -> Scenario:
    path = path or DEFAULT_PATH
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse(raw)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def parse(raw: dict[str, Any]) -> Scenario:
    unknown = set(raw) - {"fleet", "roles", "faults"}
    if unknown:
        raise ScenarioError(f"unknown section(s) {', '.join(sorted(unknown))}; expected "
                            "[fleet], [roles], [[faults]]")
    fleet = _table(raw, "fleet")
    known = {f.name for f in dataclasses.fields(Scenario)} - {"roles", "faults"}
    for key in fleet:
        if key not in known:
            raise ScenarioError(f"[fleet] unknown key {key!r}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for key in ("sites", "devices"):
        if key in fleet:
            values[key] = _int(fleet[key], f"[fleet] {key}", 1, 1_000_000)
    for key in ("interval_s", "probe_interval_s", "inventory_interval_s"):
        if key in fleet:
            values[key] = parse_duration(fleet[key], f"[fleet] {key}")
    if "jitter" in fleet:
        values["jitter"] = _number(fleet["jitter"], "[fleet] jitter", 0.0, 0.5)
    if "site_names" in fleet:
        names = fleet["site_names"]
        if not isinstance(names, list) or not all(protocol.is_valid_id(n) for n in names):
            raise ScenarioError("[fleet] site_names must be a list of ids like \"an-phuoc\" "
                                "(lower-case letters, digits, '.', '_', '-')")
        if len(set(names)) != len(names):
            raise ScenarioError("[fleet] site_names has duplicates")
        values["site_names"] = tuple(names)
    if "roles" in raw:
        roles = _table(raw, "roles")
        for role, share in roles.items():
            if role not in ROLES:
                raise ScenarioError(f"[roles] unknown role {role!r}; known: {', '.join(ROLES)}")
            _number(share, f"[roles] {role}", 0.0, 1.0)
        if not roles or sum(roles.values()) <= 0:
            raise ScenarioError("[roles] needs at least one role with a share above 0")
        values["roles"] = {role: float(share) for role, share in roles.items()}
    faults = raw.get("faults", [])
    if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
        raise ScenarioError("faults must be written as [[faults]] tables")
    values["faults"] = tuple(_fault(f, i + 1) for i, f in enumerate(faults))
    scenario = Scenario(**values)
    _check_fleet(scenario, "[fleet]")
    return scenario


def _fault(raw: dict[str, Any], number: int) -> Fault:
    where = f"[[faults]] #{number}"
    allowed = {"kind", "start", "duration", "count", "target"}
    extra = set(raw) - allowed
    if extra:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; known: "
                            f"{', '.join(sorted(allowed))}")
    kind = raw.get("kind")
    if kind not in FAULT_KINDS:
        raise ScenarioError(f"{where}: kind {kind!r} is not one of {', '.join(FAULT_KINDS)}")
    duration = raw.get("duration")
    if kind == "outage" and duration is None:
        raise ScenarioError(f"{where}: an outage needs a duration")
    target = raw.get("target")
    if target is not None:
        parts = target.split("/") if isinstance(target, str) else []
        wanted = 2 if kind in DEVICE_FAULTS else 1
        if kind in PROVINCE_FAULTS or len(parts) != wanted or not all(
                protocol.is_valid_id(p) for p in parts):
            shape = "\"site/device\"" if wanted == 2 else "\"site\""
            raise ScenarioError(f"{where}: target {target!r} must be {shape}"
                                if kind not in PROVINCE_FAULTS else
                                f"{where}: {kind} applies to every site; remove target")
    return Fault(kind=kind,
                 start_s=parse_duration(raw.get("start", 0), f"{where} start"),
                 duration_s=None if duration is None else parse_duration(
                     duration, f"{where} duration"),
                 count=_int(raw.get("count", 1), f"{where} count", 1, 100_000),
                 target=target)


def _check_fleet(scenario: Scenario, where: str) -> None:
    if scenario.sites > scenario.devices:
        raise ScenarioError(f"{where}: {scenario.sites} sites need at least as many devices "
                            f"(each site has a router); got {scenario.devices}")
    for key in ("interval_s", "probe_interval_s", "inventory_interval_s"):
        if not 1 <= getattr(scenario, key) <= 86400:
            raise ScenarioError(f"{where}: {key} must be between 1 s and 1 day")


def _table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"[{name}] must be a table")
    return value


def _int(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ScenarioError(f"{what} must be a whole number from {low} to {high}, not {value!r}")
    return value


def _number(value: Any, what: str, low: float, high: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not low <= value <= high:
        raise ScenarioError(f"{what} must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)
