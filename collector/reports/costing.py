"""What each suggested action costs, and what fits a budget.

Unit prices come from the [report.prices] section (VND). The action is the cheapest that
fixes what was measured (collector/rules/priority.py chooses it); here it is only
adjusted for Windows 11: a Windows 10 PC that cannot run Windows 11 has no supported
future and is replaced, one that lacks only RAM gets RAM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from collector.reports.config import PricesSection
from collector.reports.model import IN_PLACE, REPLACE
from collector.reports.readiness import RAM_BLOCKER

# The actions of collector/rules/priority.py -> the [report.prices] key paying for it.
PRICE_OF = {
    "replace the machine": "new_pc",
    "replace the HDD with an SSD": "ssd",
    "replace the disk": "ssd",
    "add RAM": "ram_module",
    "replace the battery": "battery",
    "upgrade the operating system": "os_upgrade",
    "replace the router": "router",
    "replace the switch": "switch",
    "upgrade the link": "link_upgrade",
}
ACTIONS = tuple(PRICE_OF)


def cost(action: str, prices: PricesSection) -> int:
    return 0 if action == "none" else int(getattr(prices, PRICE_OF[action]))


def windows11_action(action: str, os_end_of_support: bool, windows: str,
                     blockers: Sequence[str]) -> str:
    """The action once Windows 11 is taken into account (see the module's docstring)."""
    if not os_end_of_support or windows not in (REPLACE, IN_PLACE):
        return action
    if windows == REPLACE:
        return "replace the machine"
    if RAM_BLOCKER in blockers and action in ("none", "upgrade the operating system"):
        return "add RAM"
    return action


class Costed(Protocol):
    """A DeviceLine, a SiteLine or anything else in the budget's queue."""

    @property
    def cost_vnd(self) -> int: ...


def within_budget(lines: Sequence[Costed], budget: int | None) -> set[int]:
    """Indexes of the lines funded: in the order given (highest priority first), as long
    as the running total stays within the budget. The first line that does not fit ends
    the funded list, so a cheaper, lower-priority line never jumps the queue; what costs
    nothing (a free OS upgrade) is always funded. No budget: all."""
    funded: set[int] = set()
    total, stopped = 0, False
    for index, line in enumerate(lines):
        if line.cost_vnd and not stopped:
            if budget is not None and total + line.cost_vnd > budget:
                stopped = True
                continue
            total += line.cost_vnd
        if line.cost_vnd == 0 or not stopped:
            funded.add(index)
    return funded
