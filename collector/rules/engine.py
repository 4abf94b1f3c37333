"""The rule engine: each accepted sample, in sample time, moves each (rule, device, item)
through pending -> firing -> resolved; probes go to the link tracker; silence comes
from the collector's housekeeping (the only judgement on the wall clock).

    metrics/inventory sample -> quantities -> Rule.fires for `for` seconds -> open finding
                                           -> Rule.clears (hysteresis)     -> resolve it
    probe sample             -> LinkTracker (site windows, fault location), and the
                                rules on probes (a polled router's loss from the LAN)
    housekeeping: silent devices -> device_silent, or site_unreachable for a whole site

A sample older than the last one a rule judged for that device is left out of that
rule (rules move forward in time; the state store still keeps it). Findings are in the
findings table; on start the active ones are loaded back, so a restart neither
duplicates nor forgets them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from collector.ingest import Sample
from collector.rules.links import LinkTracker
from collector.rules.quantities import QUANTITIES, Pairs
from collector.rules.spec import Rule, RuleSet
from collector.store.findings import FindingsStore
from collector.store.state import SILENCE_FLOOR_S, StateStore, utc_day
from cwatch.worktime import local_day, office_hours

log = logging.getLogger(__name__)

DAY_S = 86400.0
BUSY_CPU_PERCENT = 90.0
FORECAST_DAYS, FORECAST_MIN_DAYS = 14, 4
SILENT, SITE_DOWN = "device_silent", "site_unreachable"


@dataclasses.dataclass
class KeyState:
    pending_since: float | None = None
    finding_id: int | None = None
    last_ts: float = float("-inf")


class RuleEngine:
    def __init__(self, rules: RuleSet, findings: FindingsStore, state: StateStore) -> None:
        self.rules = rules
        self.findings = findings
        self.state = state
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str, str, str], KeyState] = {}
        # (rule, site, device) -> items with an open finding: what an inventory replaces.
        self._open_items: dict[tuple[str, str, str], set[str]] = {}
        self._roles: dict[tuple[str, str], str] = {}
        self._busy: dict[tuple[str, str], list[int]] = {}  # [local day, samples, busy]
        self._forecast: dict[tuple[str, str], tuple[str, Pairs]] = {}  # by UTC day
        self._silent: dict[tuple[str, str | None], int] = {}  # (site, device|None) -> id
        self.links = LinkTracker(rules.links, findings.open, findings.resolve,
                                 findings.update)
        self._by_channel: dict[str, list[Rule]] = {}
        for rule in rules.rules:
            self._by_channel.setdefault(rule.channel, []).append(rule)
        # (channel, site, role) -> the rules that apply, worked out once, not per sample.
        self._applicable: dict[tuple[str, str, str | None], list[Rule]] = {}
        derived: dict[str, Callable[[Sample], Pairs]] = {
            "unexpected_reboots_24h": self._unexpected_reboots_24h,
            "disk_days_to_full": self._days_to_full,
            "cpu_busy_share_workday": self._busy_share,
            "os_days_past_end_of_support": self._os_days_past_end_of_support,
        }
        self._measure: dict[str, Callable[[Sample], Pairs]] = {
            rule.quantity: derived.get(rule.quantity) or _of_data(QUANTITIES[rule.quantity][1])
            for rule in rules.rules}
        self._restore()

    def _restore(self) -> None:
        rule_names = {rule.name for rule in self.rules.rules}
        for row in self.findings.query(state="active", limit=1_000_000):
            if row["finding"] == SILENT:
                self._silent[(row["site"], row["device"])] = row["id"]
            elif row["finding"] == SITE_DOWN:
                self._silent[(row["site"], None)] = row["id"]
            elif row["rule"] in rule_names and row["device"]:
                key = (row["rule"], row["site"], row["device"], row["item"])
                self._keys[key] = KeyState(finding_id=row["id"], last_ts=row["updated_ts"])
                self._open_items.setdefault(key[:3], set()).add(key[3])
            elif row["scope"] in ("site", "province"):
                self.links.restore(row["finding"], row["site"], row["id"])

    # --- samples (store worker thread) -----------------------------------------------------

    def observe(self, sample: Sample) -> None:
        with self._lock:
            try:
                self._observe(sample)
            except Exception:  # one odd sample must not stop the rules for everyone
                log.exception("rules failed on a %s sample from %s/%s", sample.channel,
                              sample.site, sample.device)

    def _observe(self, sample: Sample) -> None:
        if sample.channel == "status":
            return
        self._back_from_silence(sample)
        if sample.channel == "inventory":
            role = (sample.data.get("asset") or {}).get("role")
            if role:
                self._roles[(sample.site, sample.device)] = role
        if sample.channel == "probe":
            self.links.observe(sample)  # and the device's own probe rules below
        role = self._roles.get((sample.site, sample.device))
        for rule in self._rules_for(sample.channel, sample.site, role):
            pairs = self._measure[rule.quantity](sample)
            if sample.channel == "inventory":
                pairs += self._replaced(rule, sample, pairs)
            for item, value in pairs:
                self._judge(rule, sample, item, value)

    def _rules_for(self, channel: str, site: str, role: str | None) -> list[Rule]:
        key = (channel, site, role)
        rules = self._applicable.get(key)
        if rules is None:
            rules = self._applicable[key] = [rule for rule in self._by_channel.get(channel, ())
                                             if rule.applies(site, role)]
        return rules

    def _unexpected_reboots_24h(self, sample: Sample) -> Pairs:
        return [("", float(self.state.unexpected_reboots(
            sample.site, sample.device, sample.ts - DAY_S, sample.ts)))]

    def _os_days_past_end_of_support(self, sample: Sample) -> Pairs:
        os = sample.data.get("os") or {}
        name = f"{os.get('name', '')} {os.get('version', '')}".strip()
        end = self.rules.os_end_of_support.get(name)
        return [] if end is None else [(name, (sample.ts - end) / DAY_S)]

    def _days_to_full(self, sample: Sample) -> Pairs:
        """Days until the fullest partition reaches 100 % at the trend of the last two
        weeks' daily peaks (least squares), worked out once per device per day."""
        key, today = (sample.site, sample.device), utc_day(sample.ts)
        cached = self._forecast.get(key)
        if cached is not None and cached[0] >= today:
            return cached[1]
        start = utc_day(sample.ts - FORECAST_DAYS * DAY_S)
        history = self.state.disk_history(sample.site, sample.device, start, today)
        pairs: Pairs = []
        if len(history) >= FORECAST_MIN_DAYS:
            origin = dt.date.fromisoformat(history[0][0])
            xs = [(dt.date.fromisoformat(day) - origin).days for day, _ in history]
            ys = [value for _, value in history]
            mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
            spread = sum((x - mean_x) ** 2 for x in xs)
            slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread \
                if spread else 0.0
            # A flat or shrinking disk never fills: report it as far away, so it clears.
            days = (100.0 - ys[-1]) / slope if slope > 0.01 else 10_000.0
            pairs = [("", max(0.0, min(days, 10_000.0)))]
        self._forecast[key] = (today, pairs)
        return pairs

    def _busy_share(self, sample: Sample) -> Pairs:
        """Share of today's working-hour samples with the CPU at 90 % or more, once an
        hour's worth of samples has come in."""
        cpu = sample.data.get("cpu_percent")
        if cpu is None or not office_hours(sample.ts):
            return []
        key = (sample.site, sample.device)
        day = local_day(sample.ts)
        counts = self._busy.get(key)
        if counts is None or counts[0] != day:
            if counts is not None and counts[0] > day:
                return []  # a late sample of an earlier day
            counts = self._busy[key] = [day, 0, 0]
        counts[1] += 1
        counts[2] += cpu >= BUSY_CPU_PERCENT
        interval = sample.data.get("interval_s") or 60
        if counts[1] * interval < 3600:
            return []
        return [("", counts[2] / counts[1])]

    def _replaced(self, rule: Rule, sample: Sample, pairs: Pairs) -> Pairs:
        """An inventory describes the whole machine: an open finding about an item it no
        longer lists (the OS it replaced, a Windows 11 blocker since fixed) clears."""
        current = {item for item, _ in pairs}
        healthy = rule.clear - 1 if rule.fires_above else rule.clear + 1
        open_items = self._open_items.get((rule.name, sample.site, sample.device), ())
        return [(item, healthy) for item in sorted(open_items) if item not in current]

    def _judge(self, rule: Rule, sample: Sample, item: str, value: float) -> None:
        key = (rule.name, sample.site, sample.device, item)
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = KeyState()
        if sample.ts < state.last_ts:
            return
        state.last_ts = sample.ts
        if state.finding_id is None:
            if not rule.fires(value):
                state.pending_since = None
                return
            if state.pending_since is None:
                state.pending_since = sample.ts
            if sample.ts - state.pending_since >= rule.for_s:
                texts = _texts(rule, value, item)
                self._open_items.setdefault(key[:3], set()).add(item)
                state.finding_id = self.findings.open(
                    finding=rule.finding, rule=rule.name, severity=rule.severity,
                    scope="device", site=sample.site, device=sample.device, item=item,
                    started_ts=state.pending_since, value=value, summary=texts[0],
                    summary_vi=texts[1])
        elif rule.clears(value):
            self.findings.resolve(state.finding_id, sample.ts)
            state.finding_id, state.pending_since = None, None
            self._open_items.get(key[:3], set()).discard(item)
        else:
            self.findings.update(state.finding_id, sample.ts, value, *_texts(rule, value, item))

    # --- silence (housekeeping thread) -----------------------------------------------------

    def check_silence(self, now: float) -> None:
        """After the collector's silence pass (wall clock): one finding per device that
        went away without a goodbye (silent, or its Last Will) at least SILENCE_FLOOR_S
        ago, or one for a whole site when every device of it is offline and some did not
        say goodbye (the link or the power, not the end of the working day)."""
        with self._lock:
            gone: dict[str, list[str]] = {}
            for site, device in self.state.unreachable(now - SILENCE_FLOOR_S):
                gone.setdefault(site, []).append(device)
            for site, devices in gone.items():
                members = self.state.site_devices(site)
                # (device, status, status_reason, role): all offline, none said goodbye.
                if len(members) >= 2 and all(m[1] == "offline" and m[2] != "shutdown"
                                             for m in members):
                    if (site, None) not in self._silent:
                        self._silent[(site, None)] = self.findings.open(
                            finding=SITE_DOWN, rule=SITE_DOWN, severity="critical",
                            scope="site", site=site, device=None, item="", started_ts=now,
                            value=float(len(members)),
                            summary=f"Nothing heard from any of the {len(members)} devices "
                                    f"of {site}: the commune's link or power is down",
                            summary_vi=f"Mất liên lạc với cả {len(members)} thiết bị của "
                                       f"{site}: đường truyền hoặc điện của xã bị mất")
                    continue
                for device in devices:
                    if (site, device) not in self._silent:
                        self._silent[(site, device)] = self.findings.open(
                            finding=SILENT, rule=SILENT, severity="warning", scope="device",
                            site=site, device=device, item="", started_ts=now, value=None,
                            summary="No data from this device for several of its intervals "
                                    "(dead, unplugged, or its agent stopped)",
                            summary_vi="Không nhận được dữ liệu từ thiết bị này trong nhiều chu "
                                       "kỳ (hỏng, rút điện hoặc agent dừng)")

    def _back_from_silence(self, sample: Sample) -> None:
        # Silence is judged on the wall clock, so is its end (a backlog's items carry
        # their old sample times).
        for key in ((sample.site, sample.device), (sample.site, None)):
            finding_id = self._silent.pop(key, None)
            if finding_id is not None:
                self.findings.resolve(finding_id, time.time())

    def active(self) -> list[dict[str, Any]]:
        return self.findings.query(state="active", limit=1_000_000)


def _of_data(quantity: Callable[[dict[str, Any]], Pairs]) -> Callable[[Sample], Pairs]:
    return lambda sample: quantity(sample.data)


def _texts(rule: Rule, value: float, item: str) -> tuple[str, str]:
    return (rule.summary.format(value=value, item=item),
            rule.summary_vi.format(value=value, item=item))
