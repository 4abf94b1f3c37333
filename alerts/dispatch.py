"""From findings to queued e-mails, Alertmanager's way, one pass per tick:

    active findings -> route (recipient's sites and severities)
                    -> inhibit (a commune that is down hides what sits behind it)
                    -> silence (planned maintenance)
                    -> group (by site, by default) and wait: group_wait for a new group,
                       then group_interval between looks
                    -> dedup: send only when a finding is new, one that was sent got
                       resolved, or repeat_interval has passed
                    -> office hours: only news with a critical in it goes out at night
                    -> render -> outbox (store.py), with the group's memory, atomically
    once a day per recipient: the digest (open, resolved, upgrade priorities)

The findings table is the input: the rule engine writes it, this reads it, so the
notifier never holds up ingest and a restart starts from what is on disk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from alerts.calendar import WorkCalendar
from alerts.config import AlertsSection, InhibitRule, Recipient, clock_minutes
from alerts.render import Renderer
from alerts.store import AlertStore, Group
from collector.store.findings import FindingsStore

log = logging.getLogger(__name__)

Finding = dict[str, Any]
Priorities = Callable[[str | None, int], list[dict[str, Any]]]
DIGEST_RESOLVED_MAX_S = 7 * 86400.0


class Dispatcher:
    def __init__(self, section: AlertsSection, store: AlertStore, findings: FindingsStore,
                 renderer: Renderer, calendar: WorkCalendar,
                 priorities: Priorities | None = None,
                 on_queued: Callable[[str], None] | None = None) -> None:
        self.section = section
        self.store = store
        self.findings = findings
        self.renderer = renderer
        self.calendar = calendar
        self._priorities = priorities
        self._on_queued = on_queued or (lambda kind: None)
        self._group_wait = section.seconds("group_wait")
        self._group_interval = section.seconds("group_interval")
        self._repeat = section.seconds("repeat_interval")
        self.silenced_count = 0
        self.inhibited_count = 0
        self._digest_day: dict[str, str] = {}  # recipient -> the day its digest was done

    def tick(self, now: float) -> int:
        """One pass over every recipient; returns the e-mails queued."""
        active = self.findings.query(state="active", limit=1_000_000)
        silences = self.store.silences("active", now)
        silenced = {f["id"] for f in active if any(s.matches(f) for s in silences)}
        inhibited = _inhibited(active, self.section.inhibit)
        self.silenced_count, self.inhibited_count = len(silenced), len(inhibited - silenced)
        held = silenced | inhibited
        by_site: dict[str | None, list[Finding]] = {}
        for finding in active:
            if finding["id"] not in held:
                by_site.setdefault(finding["site"], []).append(finding)
        queued = 0
        for recipient in self.section.recipients:
            # A commune's contact needs only its sites' findings: no scan of the province.
            sites = list(by_site) if "*" in recipient.sites else list(
                dict.fromkeys([*recipient.sites, None]))  # a site listed twice counts once
            candidates = [f for site in sites for f in by_site.get(site, ())]
            queued += self._recipient(recipient, candidates, now)
            queued += self._maybe_digest(recipient, active, silenced, now)
        return queued

    # --- notifications --------------------------------------------------------------------

    def _recipient(self, recipient: Recipient, notifiable: list[Finding], now: float) -> int:
        firing_by_group: dict[str, list[Finding]] = {}
        for finding in notifiable:
            if recipient.wants(finding["site"], finding["severity"]):
                firing_by_group.setdefault(self._group_key(finding), []).append(finding)
        groups = self.store.groups(recipient.email)
        queued = 0
        for key in sorted(set(groups) | set(firing_by_group)):
            firing = firing_by_group.get(key, [])
            group = groups.get(key)
            if group is None:  # a new group waits group_wait for its companions
                group = Group(recipient.email, key, now + self._group_wait, None, set())
                self.store.save_group(group)
                if self._group_wait > 0:
                    continue
            if now >= group.next_flush_ts:
                queued += self._flush(recipient, group, firing, now)
        return queued

    def _flush(self, recipient: Recipient, group: Group, firing: list[Finding],
               now: float) -> int:
        firing_ids = {f["id"] for f in firing}
        new = [f for f in firing if f["id"] not in group.notified]
        gone = group.notified - firing_ids
        # A finding that left the group resolved gets a notice; one silenced or inhibited
        # since is dropped quietly (Alertmanager does the same).
        resolved = [f for f in self.findings.by_ids(gone).values()
                    if f["ended_ts"] is not None] if gone else []
        repeat_due = bool(firing) and (group.last_sent_ts is None
                                       or now - group.last_sent_ts >= self._repeat)
        if not (new or resolved or repeat_due):
            if not firing:
                self.store.delete_group(group)
            else:
                group.notified = firing_ids  # forget the quietly dropped
                group.next_flush_ts = now + self._group_interval
                self.store.save_group(group)
            return 0
        urgent = any(f["severity"] == "critical" for f in new + resolved) or (
            repeat_due and any(f["severity"] == "critical" for f in firing))
        if self.section.office_hours and not urgent and not self.calendar.is_working_time(now):
            group.next_flush_ts = max(now + self._group_interval,
                                      self.calendar.next_working_time(now))
            self.store.save_group(group)
            return 0
        subject, message = self.renderer.notification(
            recipient, self._labels(group.key), firing, resolved, now)
        group.notified = firing_ids
        group.last_sent_ts = now
        group.next_flush_ts = now + self._group_interval
        kind = "firing" if firing else "resolved"
        self.store.record_notification(group, kind=kind, subject=subject, message=message,
                                       keep=bool(firing))
        self._on_queued(kind)
        log.info("queued for %s: %s", recipient.email, subject)
        return 1

    def _group_key(self, finding: Finding) -> str:
        return json.dumps([finding[label] for label in self.section.group_by])

    def _labels(self, key: str) -> dict[str, str | None]:
        return dict(zip(self.section.group_by, json.loads(key)))

    # --- digest ----------------------------------------------------------------------------

    def _maybe_digest(self, recipient: Recipient, active: list[Finding], silenced: set[int],
                      now: float) -> int:
        if not recipient.digest or not self.section.digest_time:
            return 0
        local = self.calendar.local(now)
        today = local.date()
        if not self.calendar.is_working_day(today) or \
                local.hour * 60 + local.minute < clock_minutes(self.section.digest_time,
                                                               "digest_time"):
            return 0
        if self._digest_day.get(recipient.email) == today.isoformat():
            return 0  # done today: no query on every pass for the rest of the day
        last = self.store.last_digest(recipient.email)
        if last is not None and last[0] >= today.isoformat():
            self._digest_day[recipient.email] = last[0]
            return 0
        since = now - 86400.0 if last is None else max(last[1], now - DIGEST_RESOLVED_MAX_S)
        mine = [f for f in active if recipient.wants(f["site"], f["severity"])]
        resolved = [f for f in self.findings.resolved_since(since)
                    if recipient.wants(f["site"], f["severity"])]
        if not mine and not resolved:  # nothing to tell: no e-mail, but the day is done
            self.store.record_digest(recipient.email, today.isoformat(), None)
            self._digest_day[recipient.email] = today.isoformat()
            return 0
        priorities = self._top_priorities(recipient)
        subject, message = self.renderer.digest(recipient, mine, resolved, priorities,
                                                silenced, now)
        self.store.record_digest(recipient.email, today.isoformat(), (subject, message))
        self._digest_day[recipient.email] = today.isoformat()
        self._on_queued("digest")
        log.info("queued the daily digest for %s", recipient.email)
        return 1

    def _top_priorities(self, recipient: Recipient) -> list[dict[str, Any]]:
        limit = self.section.digest_priorities
        if self._priorities is None or limit == 0:
            return []
        if "*" in recipient.sites:
            return self._priorities(None, limit)
        ranked = [d for site in recipient.sites for d in self._priorities(site, limit)]
        return sorted(ranked, key=lambda d: -d["score"])[:limit]


def _inhibited(active: list[Finding], rules: list[InhibitRule]) -> set[int]:
    out: set[int] = set()
    for rule in rules:
        sources = [f for f in active if f["finding"] in rule.source or f["rule"] in rule.source]
        if not sources:
            continue
        keys = {tuple(f[label] for label in rule.equal): f["id"] for f in sources}
        for finding in active:
            if "*" not in rule.target and finding["finding"] not in rule.target \
                    and finding["rule"] not in rule.target:
                continue
            source_id = keys.get(tuple(finding[label] for label in rule.equal))
            if source_id is not None and finding["id"] != source_id \
                    and finding["finding"] not in rule.source:
                out.add(finding["id"])
    return out

