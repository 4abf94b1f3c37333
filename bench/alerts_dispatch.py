"""How long one notifier pass takes for a province: N active findings over S sites, one
contact per site plus the provincial team, SMTP off (the outbox only fills).

    .venv/bin/python bench/alerts_dispatch.py --sites 100 --findings 3000
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from alerts.config import AlertsSection, Recipient, SmtpSection
from alerts.service import AlertService
from collector.store.findings import FindingsStore
from collector.store.state import StateStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--findings", type=int, default=3000)
    parser.add_argument("--ticks", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(1)
    sites = [f"xa-{n:03d}" for n in range(args.sites)]
    recipients = [Recipient(email="tinh@example.vn", severities=["critical"], province=True,
                            digest=False)]
    recipients += [Recipient(email=f"{site}@example.vn", sites=[site], digest=False)
                   for site in sites]
    section = AlertsSection(enabled=True, recipients=recipients, office_hours=False,
                            digest_time="", group_wait="0s",
                            smtp=SmtpSection(host="127.0.0.1", port=9, security="none"))
    with tempfile.TemporaryDirectory() as folder:
        clock = [time.time()]
        state = StateStore(str(Path(folder) / "state.db"))
        findings = FindingsStore(state)
        for n in range(args.findings):
            kind, severity = rng.choice([("os_end_of_support", "warning"),
                                         ("disk_failing", "critical"),
                                         ("overheating", "warning"), ("cpu_saturated", "info")])
            findings.open(finding=kind, rule=kind, severity=severity, scope="device",
                          site=rng.choice(sites), device=f"pc-{n:05d}", item="",
                          started_ts=clock[0], value=1.0, summary="s", summary_vi="s")
        service = AlertService(section, state, findings, CollectorRegistry(),
                               clock=lambda: clock[0])
        started = time.perf_counter()
        queued = service.dispatch_once()
        first = time.perf_counter() - started
        quiet = []
        for _ in range(args.ticks):
            clock[0] += 1
            started = time.perf_counter()
            service.dispatch_once()
            quiet.append(time.perf_counter() - started)
        clock[0] += 300  # every group looks again (group_interval)
        started = time.perf_counter()
        service.dispatch_once()
        regroup = time.perf_counter() - started
    print(f"{args.findings} active findings, {args.sites} sites, {len(recipients)} recipients")
    print(f"first pass (renders and queues {queued} e-mails): {first * 1000:.0f} ms")
    print(f"quiet pass (nothing due): median {statistics.median(quiet) * 1000:.0f} ms, "
          f"max {max(quiet) * 1000:.0f} ms")
    print(f"group_interval pass (every group looked at, nothing new): {regroup * 1000:.0f} ms")


if __name__ == "__main__":
    main()
