"""The notifier inside the collector: two threads over the collector's SQLite file.

    cwatch-alerts  every tick: Dispatcher.tick (dispatch.py) -> outbox
    cwatch-mail    every tick: due outbox items -> Mailer (smtp.py) -> sent
                   | retry later (doubling from retry_min up to retry_max)
                   | failed (a permanent refusal)

Its health is on /metrics (cwatch_alert_*), so a Prometheus that watches the
collector also sees when e-mail stops getting through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from alerts.calendar import WorkCalendar
from alerts.config import AlertsSection
from alerts.dispatch import Dispatcher, Priorities
from alerts.render import Renderer
from alerts.smtp import DeliveryError, Mailer
from alerts.store import AlertStore
from collector.store.findings import FindingsStore
from collector.store.state import StateStore

log = logging.getLogger(__name__)

# Alertmanager's timers are 30 s and more: a pass every 2 s is precise enough, and a
# province's pass costs tens of milliseconds (bench/alerts_dispatch.py).
TICK_S = 2.0


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry, store: AlertStore) -> None:
        self.queued = Counter("cwatch_alert_emails_queued", "E-mails put in the outbox, by "
                              "kind (firing, resolved, digest, test)", ["kind"],
                              registry=registry)
        self.deliveries = Counter("cwatch_alert_delivery_attempts", "SMTP delivery attempts "
                                  "by result (sent, retry, failed)", ["result"],
                                  registry=registry)
        for result in ("sent", "retry", "failed"):
            self.deliveries.labels(result)
        self.failures = Gauge("cwatch_alert_delivery_failures", "Failed SMTP attempts in a "
                              "row (0 once one gets through)", registry=registry)
        pending = Gauge("cwatch_alert_outbox_pending", "E-mails waiting to be sent",
                        registry=registry)
        pending.set_function(lambda: store.outbox_counts().get("pending", 0))
        failed = Gauge("cwatch_alert_outbox_failed", "E-mails the server refused for good",
                       registry=registry)
        failed.set_function(lambda: store.outbox_counts().get("failed", 0))
        self.oldest = Gauge("cwatch_alert_outbox_oldest_seconds", "Age of the oldest e-mail "
                            "still waiting (0 when none)", registry=registry)
        self.oldest.set_function(lambda: max(0.0, time.time() - (store.oldest_pending_ts()
                                                                  or time.time())))
        self.silenced = Gauge("cwatch_alert_findings_silenced", "Active findings a silence "
                              "holds back", registry=registry)
        self.inhibited = Gauge("cwatch_alert_findings_inhibited", "Active findings an "
                               "inhibit rule holds back", registry=registry)


class AlertService:
    def __init__(self, section: AlertsSection, state: StateStore, findings: FindingsStore,
                 registry: CollectorRegistry, *, priorities: Priorities | None = None,
                 site_names: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.time, tick_s: float = TICK_S) -> None:
        self.section = section
        self.store = AlertStore(state, clock)
        self.calendar = WorkCalendar.from_config(section)
        self.renderer = Renderer(section.smtp.sender, site_names=site_names,
                                 timezone=section.timezone, link=section.link,
                                 role_of=state.role_of)
        self.metrics = AlertMetrics(registry, self.store)
        self.dispatcher = Dispatcher(section, self.store, findings, self.renderer,
                                     self.calendar, priorities,
                                     on_queued=lambda kind: self.metrics.queued.labels(kind).inc())
        self.mailer = Mailer(section.smtp)
        self._clock = clock
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._wake_mail = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failures = 0

    def start(self) -> None:
        for target, name in ((self._dispatch_loop, "cwatch-alerts"),
                             (self._mail_loop, "cwatch-mail")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("alerts on: %d recipient(s), SMTP %s:%d (%s)", len(self.section.recipients),
                 self.section.smtp.host, self.section.smtp.port, self.section.smtp.security)

    def stop(self) -> None:
        self._stop.set()
        self._wake_mail.set()
        for thread in self._threads:
            thread.join(timeout=self.section.smtp.timeout_s + 5)
        self._threads.clear()

    # --- one pass each (the loops call these; tests may too) --------------------------------

    def dispatch_once(self) -> int:
        queued = self.dispatcher.tick(self._clock())
        self.metrics.silenced.set(self.dispatcher.silenced_count)
        self.metrics.inhibited.set(self.dispatcher.inhibited_count)
        if queued:
            self._wake_mail.set()
        return queued

    def deliver_due(self) -> int:
        """Try every due outbox item once; returns how many got through."""
        sent = 0
        retry_min, retry_max = self.section.seconds("retry_min"), self.section.seconds(
            "retry_max")
        for item in self.store.due(self._clock()):
            if self._stop.is_set():
                break
            try:
                self.mailer.send(item.recipient, item.message)
            except DeliveryError as exc:
                self._failures += 1
                self.metrics.failures.set(self._failures)
                if not exc.retryable:
                    self.store.mark_failed(item.id, str(exc), None)
                    self.metrics.deliveries.labels("failed").inc()
                    log.error("e-mail %d to %s (%s) refused for good: %s", item.id,
                              item.recipient, item.subject, exc)
                    continue
                delay = min(retry_max, retry_min * 2 ** item.attempts)
                self.store.mark_failed(item.id, str(exc), self._clock() + delay)
                self.metrics.deliveries.labels("retry").inc()
                level = logging.ERROR if self._failures == self.section.failures_before_error \
                    else logging.WARNING
                log.log(level, "e-mail to %s not sent (%d failure(s) in a row; %d waiting), "
                        "retrying in %.0f s: %s", item.recipient, self._failures,
                        self.store.outbox_counts().get("pending", 0), delay, exc)
                break  # the server is likely down for the others too: wait for the next tick
            self.store.mark_sent(item.id)
            self.metrics.deliveries.labels("sent").inc()
            if self._failures:
                log.info("e-mail is getting through again after %d failure(s)", self._failures)
            self._failures = 0
            self.metrics.failures.set(0)
            sent += 1
        return sent

    def send_test(self, email: str) -> None:
        """Send a test e-mail now (not through the outbox): raises DeliveryError."""
        recipient = next((r for r in self.section.recipients if r.email == email), None)
        if recipient is None:
            raise ValueError(f"{email} is not one of the [[alerts.recipients]]")
        _, message = self.renderer.test_message(recipient, self._clock())
        self.mailer.send(recipient.email, message)

    def status(self) -> dict[str, Any]:
        return {"outbox": self.store.outbox_counts(), "failures_in_a_row": self._failures,
                "silenced": self.dispatcher.silenced_count,
                "inhibited": self.dispatcher.inhibited_count}

    # --- threads --------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stop.wait(self._tick_s):
            try:
                self.dispatch_once()
            except Exception:  # a bad template or a locked database must not end alerting
                log.exception("alert dispatch failed; trying again in %g s", self._tick_s)

    def _mail_loop(self) -> None:
        while not self._stop.is_set():
            self._wake_mail.wait(self._tick_s)
            self._wake_mail.clear()
            try:
                self.deliver_due()
            except Exception:
                log.exception("alert delivery failed; trying again in %g s", self._tick_s)
