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


def median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


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
    # Throughput is measured about once an hour per device: a longer window of its own.
    throughput: collections.deque = dataclasses.field(default_factory=collections.deque)


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
                                  target.get("loss_percent"), target.get("http_ttfb_ms"),
                                  target.get("dns_ms")))
        mbit = (sample.data.get("throughput") or {}).get("mbit_per_s")
        if mbit is not None:
            window.throughput.append((sample.ts, mbit))
        while window.points and window.points[0][0] < window.newest_ts - self.limits.window_s:
            window.points.popleft()
        while window.throughput and window.throughput[0][0] < (
                window.newest_ts - self.limits.throughput_window_s):
            window.throughput.popleft()
        self._judge_site(sample.site, window, sample.ts)
        self._judge_province(sample.ts)

    def _stats(self, window: SiteWindow) -> dict[str, Any]:
        gateway_rtt, gateway_loss, beyond_rtt, beyond_loss, ttfb, dns = [], [], [], [], [], []
        for _, kind, rtt, loss, first_byte, dns_ms in window.points:
            if dns_ms is not None:
                dns.append(dns_ms)
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
            "portal_ttfb_p95_ms": p95(ttfb), "dns_p95_ms": p95(dns),
            "mbit_median": median([m for _, m in window.throughput])
            if len(window.throughput) >= 2 else None, "samples": len(beyond_loss)}

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
        slow = not local and (self._over(stats, (("rtt_p95_ms", limits.rtt_p95_ms),
                                                 ("loss_percent", limits.loss_percent)),
                                         ("slow_link", site))
                              or self._under(stats["mbit_median"], limits.min_mbit_per_s,
                                             ("slow_link", site)))
        measured = [(stats["rtt_p95_ms"], "p95 round trip {:.0f} ms", "p95 {:.0f} ms"),
                    (stats["loss_percent"], "loss {:.1f} %", "mất gói {:.1f} %"),
                    (stats["mbit_median"], "throughput {:.1f} Mbit/s", "tốc độ {:.1f} Mbit/s")]
        self._set("slow_link", site, slow, ts, stats, "warning",
                  "The commune's internet link is slow: " + ", ".join(
                      en.format(v) for v, en, _ in measured if v is not None),
                  "Đường truyền internet của xã chậm: " + ", ".join(
                      vi.format(v) for v, _, vi in measured if v is not None))
        dns_slow = not local and not slow and self._over(
            stats, (("dns_p95_ms", limits.dns_p95_ms),), ("dns_slow", site))
        self._set("dns_slow", site, dns_slow, ts, stats, "info",
                  "Name lookups are slow: DNS p95 {dns_p95_ms:.0f} ms (the DNS server the "
                  "office uses, not the link)",
                  "Phân giải tên miền chậm: DNS p95 {dns_p95_ms:.0f} ms (máy chủ DNS, không "
                  "phải đường truyền)")
        window.portal_slow = self._over(stats, (("portal_ttfb_p95_ms",
                                                 limits.portal_ttfb_p95_ms),),
                                        ("portal_slow_site", site), remember=True)

    def _under(self, value: float | None, limit: float, key: tuple[str, str | None]) -> bool:
        """Under a floor; once under, it stays under until above limit / clear_ratio."""
        if value is None:
            return False
        ratio = self.limits.clear_ratio if key in self._active else 1.0
        return value < limit / ratio

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
