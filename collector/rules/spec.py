"""The rule file: TOML -> RuleSet. Every mistake is a RuleError that names the file, the
rule and the key (TOML syntax errors carry the line)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from collector.rules.priority import Weights
from collector.rules.quantities import QUANTITIES
from cwatch.config import ConfigError, parse_duration, read_toml

DEFAULT_PATH = Path(__file__).parent / "default.toml"
SEVERITIES = ("info", "warning", "critical")
# Quantities the engine works out from more than one sample.
DERIVED = {"unexpected_reboots_24h": "metrics", "os_days_past_end_of_support": "inventory",
           "cpu_busy_share_workday": "metrics", "disk_days_to_full": "metrics"}
RULE_KEYS = {"name", "finding", "quantity", "above", "below", "clear", "for", "severity",
             "summary", "summary_vi", "source", "sites", "roles"}


class RuleError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    finding: str
    quantity: str
    threshold: float
    fires_above: bool  # True: value > threshold fires; False: value < threshold fires
    clear: float
    for_s: float
    severity: str
    summary: str
    summary_vi: str
    source: str
    sites: tuple[str, ...] = ()  # empty: everywhere
    roles: tuple[str, ...] = ()

    @property
    def channel(self) -> str:
        return DERIVED.get(self.quantity) or QUANTITIES[self.quantity][0]

    def fires(self, value: float) -> bool:
        return value > self.threshold if self.fires_above else value < self.threshold

    def clears(self, value: float) -> bool:
        return value <= self.clear if self.fires_above else value >= self.clear

    def applies(self, site: str, role: str | None) -> bool:
        return (not self.sites or site in self.sites) and (not self.roles or role in self.roles)


@dataclasses.dataclass(frozen=True)
class LinkLimits:
    window_s: float = 900.0
    rtt_p95_ms: float = 300.0
    loss_percent: float = 10.0
    gateway_rtt_p95_ms: float = 50.0
    gateway_loss_percent: float = 5.0
    portal_ttfb_p95_ms: float = 3000.0
    dns_p95_ms: float = 500.0
    min_mbit_per_s: float = 1.0
    throughput_window_s: float = 7200.0
    portal_sites_share: float = 0.5
    min_samples: int = 3
    clear_ratio: float = 0.8


@dataclasses.dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    os_end_of_support: dict[str, float]  # "Windows 10" -> Unix time
    links: LinkLimits
    priority: Weights = dataclasses.field(default_factory=Weights)


def load(path: Path | None = None) -> RuleSet:
    """The default rules, with the operator's file (if any) laid over them by name."""
    base = _read(DEFAULT_PATH)
    if path is None:
        return parse(base, str(DEFAULT_PATH))
    override = _read(path)
    rules = override.get("rules", [])
    if not isinstance(rules, list):
        raise RuleError(f"{path}: rules must be [[rules]] tables")
    for index, rule in enumerate(rules):  # errors numbered as in the operator's file
        _rule(rule, f"{path}: [[rules]] #{index + 1}")
    for section in ("os_end_of_support", "links", "priority"):
        if not isinstance(override.get(section, {}), dict):
            raise RuleError(f"{path}: [{section}] must be a table")
    merged = dict(base)
    by_name = {r.get("name"): r for r in base.get("rules", [])}
    for rule in override.get("rules", []):
        by_name[rule.get("name") if isinstance(rule, dict) else None] = rule
    merged["rules"] = list(by_name.values())
    merged["os_end_of_support"] = {**base.get("os_end_of_support", {}),
                                   **override.get("os_end_of_support", {})}
    merged["links"] = {**base.get("links", {}), **override.get("links", {})}
    merged["priority"] = {**base.get("priority", {}), **override.get("priority", {})}
    unknown = set(override) - {"rules", "os_end_of_support", "links", "priority"}
    if unknown:
        raise RuleError(f"{path}: unknown section(s) {', '.join(map(repr, sorted(unknown)))}")
    return parse(merged, str(path))


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_toml(path)
    except ConfigError as exc:
        raise RuleError(str(exc)) from None


def parse(raw: dict[str, Any], where: str) -> RuleSet:
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise RuleError(f"{where}: rules must be [[rules]] tables")
    rules = tuple(_rule(r, f"{where}: [[rules]] #{i + 1}") for i, r in enumerate(rules_raw))
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise RuleError(f"{where}: two rules are named {_first_repeat(names)!r}")
    eos = {}
    for name, date in (raw.get("os_end_of_support") or {}).items():
        try:
            day = date if isinstance(date, dt.date) else dt.date.fromisoformat(str(date))
        except ValueError:
            raise RuleError(f"{where}: [os_end_of_support] {name!r} = {date!r} is not a date "
                            "like 2025-10-14") from None
        eos[name] = dt.datetime(day.year, day.month, day.day,
                                tzinfo=dt.timezone.utc).timestamp()
    return RuleSet(rules, eos, _links(raw.get("links") or {}, where),
                   _priority(raw.get("priority") or {}, where))


def _priority(raw: dict[str, Any], where: str) -> Weights:
    numbers = {f.name for f in dataclasses.fields(Weights)} - {"roles", "days"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "roles":
            if not isinstance(value, dict):
                raise RuleError(f"{where}: [priority] roles must be a table of role = weight")
            values["roles"] = tuple((role, _number(weight, f"{where}: [priority.roles] {role!r}"))
                                    for role, weight in value.items())
        elif key == "days":
            values["days"] = _whole(value, f"{where}: [priority] days")
        elif key in numbers:
            values[key] = _number(value, f"{where}: [priority] {key}")
        else:
            raise RuleError(f"{where}: [priority] unknown key {key!r}")
    return Weights(**values)


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError(f"{where}: name is missing")
    where = f"{where} ({name if name.isprintable() else repr(name)})"  # one line, always
    extra = set(raw) - RULE_KEYS
    if extra:
        raise RuleError(f"{where}: unknown key(s) {', '.join(map(repr, sorted(extra)))}")
    quantity = raw.get("quantity")
    if not isinstance(quantity, str) or (quantity not in QUANTITIES and
                                         quantity not in DERIVED):
        raise RuleError(f"{where}: quantity {quantity!r} is not one of "
                        f"{', '.join(sorted([*QUANTITIES, *DERIVED]))}")
    if ("above" in raw) == ("below" in raw):
        raise RuleError(f"{where}: give exactly one of above or below")
    key = "above" if "above" in raw else "below"
    threshold = _number(raw[key], f"{where}: {key}")
    clear = _number(raw.get("clear", threshold), f"{where}: clear")
    if (key == "above" and clear > threshold) or (key == "below" and clear < threshold):
        raise RuleError(f"{where}: clear {clear:g} must be on the healthy side of {key} "
                        f"{threshold:g}")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    try:
        for_s = parse_duration(raw.get("for", 0), f"{where}: for")
    except ValueError as exc:
        raise RuleError(str(exc)) from None
    summary = raw.get("summary") or f"{name}: {{value:g}}"
    for text, label in ((summary, "summary"), (raw.get("summary_vi", ""), "summary_vi")):
        if not isinstance(text, str):
            raise RuleError(f"{where}: {label} must be text, not {text!r}")
        try:
            text.format(value=1.0, item="x")
        except (KeyError, ValueError, IndexError, AttributeError, TypeError) as exc:
            raise RuleError(f"{where}: {label} {text!r} cannot be filled in ({exc}); use "
                            "{value} and {item}") from None
    return Rule(name=name, finding=str(raw.get("finding") or name), quantity=quantity,
                threshold=threshold, fires_above=key == "above", clear=clear, for_s=for_s,
                severity=severity, summary=summary, summary_vi=raw.get("summary_vi") or summary,
                source=str(raw.get("source", "")), sites=_names(raw, "sites", where),
                roles=_names(raw, "roles", where))


def _names(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A list of ids (sites, roles); a bare string would become its letters."""
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"{where}: {key} must be a list of names like [\"an-phuoc\"], "
                        f"not {value!r}")
    return tuple(value)


def _links(raw: dict[str, Any], where: str) -> LinkLimits:
    fields = {f.name for f in dataclasses.fields(LinkLimits)} - {"window_s",
                                                                  "throughput_window_s"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("window", "throughput_window"):
            try:
                values[f"{key}_s"] = parse_duration(value, f"{where}: [links] {key}")
            except ValueError as exc:
                raise RuleError(str(exc)) from None
        elif key in fields:
            values[key] = _number(value, f"{where}: [links] {key}")
        else:
            raise RuleError(f"{where}: [links] unknown key {key!r}")
    if "min_samples" in raw:
        values["min_samples"] = _whole(raw["min_samples"], f"{where}: [links] min_samples")
    return LinkLimits(**values)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{what} must be a number, not {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise RuleError(f"{what} is too large") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise RuleError(f"{what} must be a finite number, not {value!r}")
    return number


def _whole(value: Any, what: str) -> int:
    number = _number(value, what)
    if number != int(number) or not 0 < number <= 1_000_000:
        raise RuleError(f"{what} must be a whole number from 1 to 1000000, not {value!r}")
    return int(number)


def _first_repeat(names: list[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return ""
