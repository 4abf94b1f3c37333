"""Link quality per site over a window of every device's probes, and where the fault is.

    the gateway (office router) slow or lossy          -> local_network (site)
    beyond the gateway (portal, DNS) slow or lossy      -> slow_link (site)
    the portal's answer slow from most sites at once    -> portal_slow (province), and
                                                           no per-commune finding for it

Windows are in sample time: the newest probe of a site ends its window.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable
from typing import Any

from collector.ingest import Sample
from collector.rules.spec import LinkLimits

Opener = Callable[..., int]


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


@dataclasses.dataclass
class SiteWindow:
    points: collections.deque = dataclasses.field(default_factory=collections.deque)
    newest_ts: float = 0.0
    portal_slow: bool = False  # this site's view of the portal, for the province check


class LinkTracker:
    def __init__(self, limits: LinkLimits, open_finding: Opener,
                 resolve_finding: Callable[[int, float], None],
                 update_finding: Callable[..., None]) -> None:
        self.limits = limits
        self._open, self._resolve, self._update = open_finding, resolve_finding, update_finding
        self._sites: dict[str, SiteWindow] = {}
        self._active: dict[tuple[str, str | None], int] = {}  # (finding, site) -> id
        self._flags: set[tuple[str, str | None]] = set()  # over a limit, not a finding

    def restore(self, finding: str, site: str | None, finding_id: int) -> None:
        self._active[(finding, site)] = finding_id

    def observe(self, sample: Sample) -> None:
        window = self._sites.setdefault(sample.site, SiteWindow())
        if sample.ts < window.newest_ts - self.limits.window_s:
            return  # older than the window: it cannot change today's verdict
        window.newest_ts = max(window.newest_ts, sample.ts)
        for target in sample.data.get("targets") or ():
            window.points.append((sample.ts, target.get("kind"), target.get("rtt_avg_ms"),
                                  target.get("loss_percent"), target.get("http_ttfb_ms")))
        mbit = (sample.data.get("throughput") or {}).get("mbit_per_s")
        if mbit is not None:
            window.points.append((sample.ts, "throughput", None, None, None))
        while window.points and window.points[0][0] < window.newest_ts - self.limits.window_s:
            window.points.popleft()
        self._judge_site(sample.site, window, sample.ts)
        self._judge_province(sample.ts)

    def _stats(self, window: SiteWindow) -> dict[str, Any]:
        gateway_rtt, gateway_loss, beyond_rtt, beyond_loss, ttfb = [], [], [], [], []
        for _, kind, rtt, loss, first_byte in window.points:
            if kind == "gateway":
                rtts, losses = gateway_rtt, gateway_loss
            elif kind in ("portal", "dns", "collector"):
                rtts, losses = beyond_rtt, beyond_loss
            else:
                continue
            if rtt is not None:
                rtts.append(rtt)
            if loss is not None:
                losses.append(loss)
            if kind == "portal" and first_byte is not None:
                ttfb.append(first_byte)
        return {"gateway_rtt_p95_ms": p95(gateway_rtt), "gateway_loss_percent": mean(
            gateway_loss), "rtt_p95_ms": p95(beyond_rtt), "loss_percent": mean(beyond_loss),
            "portal_ttfb_p95_ms": p95(ttfb), "samples": len(beyond_loss)}

    def _judge_site(self, site: str, window: SiteWindow, ts: float) -> None:
        stats = self._stats(window)
        if stats["samples"] < self.limits.min_samples:
            return
        limits = self.limits
        local = self._over(stats, (("gateway_rtt_p95_ms", limits.gateway_rtt_p95_ms),
                                   ("gateway_loss_percent", limits.gateway_loss_percent)),
                           ("local_network", site))
        self._set("local_network", site, local, ts, stats, "warning",
                  "The office network or router is slow or losing packets: gateway p95 "
                  "{gateway_rtt_p95_ms:.0f} ms, loss {gateway_loss_percent:.1f} %",
                  "Mạng nội bộ hoặc router chậm/mất gói: gateway p95 {gateway_rtt_p95_ms:.0f} "
                  "ms, mất {gateway_loss_percent:.1f} %")
        slow = not local and self._over(stats, (("rtt_p95_ms", limits.rtt_p95_ms),
                                                ("loss_percent", limits.loss_percent)),
                                        ("slow_link", site))
        self._set("slow_link", site, slow, ts, stats, "warning",
                  "The commune's internet link is slow: p95 round trip {rtt_p95_ms:.0f} ms, "
                  "loss {loss_percent:.1f} % over the last window",
                  "Đường truyền internet của xã chậm: p95 {rtt_p95_ms:.0f} ms, mất gói "
                  "{loss_percent:.1f} %")
        window.portal_slow = self._over(stats, (("portal_ttfb_p95_ms",
                                                 limits.portal_ttfb_p95_ms),),
                                        ("portal_slow_site", site), remember=True)

    def _over(self, stats: dict[str, Any], checks: tuple[tuple[str, float], ...],
              key: tuple[str, str | None], remember: bool = False) -> bool:
        """Over a limit; once over, it stays over until under clear_ratio x limit."""
        active = key in self._active or (remember and key in self._flags)
        ratio = self.limits.clear_ratio if active else 1.0
        over = any(stats[name] is not None and stats[name] > limit * ratio
                   for name, limit in checks)
        if remember:
            (self._flags.add if over else self._flags.discard)(key)
        return over

    def _set(self, finding: str, site: str | None, on: bool, ts: float,
             stats: dict[str, Any], severity: str, summary: str, summary_vi: str) -> None:
        key = (finding, site)
        current = self._active.get(key)
        filled = {k: (v if v is not None else float("nan")) for k, v in stats.items()}
        if on and current is None:
            self._active[key] = self._open(
                finding=finding, rule=finding, severity=severity,
                scope="site" if site else "province", site=site, device=None, item="",
                started_ts=ts, value=stats.get("rtt_p95_ms"),
                summary=summary.format(**filled), summary_vi=summary_vi.format(**filled))
        elif on and current is not None:
            self._update(current, ts, stats.get("rtt_p95_ms"), summary.format(**filled),
                         summary_vi.format(**filled))
        elif not on and current is not None:
            self._resolve(current, ts)
            del self._active[key]

    def _judge_province(self, ts: float) -> None:
        fresh = [w for w in self._sites.values()
                 if w.newest_ts >= ts - self.limits.window_s]
        if len(fresh) < 2:
            return
        slow = sum(1 for w in fresh if w.portal_slow)
        share = slow / len(fresh)
        self._set("portal_slow", None, share >= self.limits.portal_sites_share, ts,
                  {"share": 100 * share, "sites": slow, "of": len(fresh), "rtt_p95_ms": None},
                  "critical",
                  "The provincial portal is slow from {sites:.0f} of {of:.0f} communes "
                  "({share:.0f} %): the portal, not the communes' links",
                  "Cổng dịch vụ công tỉnh chậm từ {sites:.0f}/{of:.0f} xã ({share:.0f} %): lỗi ở "
                  "cổng, không phải đường truyền của xã")
