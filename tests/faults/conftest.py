"""Loss accounting for the fault tests: each test records what was published, stored,
duplicated and dropped; the lines are printed as the test runs (visible with -s) and
again in a section of the terminal summary, so CI logs show them without -s."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

_LINES = pytest.StashKey[list[str]]()


@dataclasses.dataclass(frozen=True)
class Loss:
    fault: str
    published: int
    stored: int
    duplicates: int
    dropped: int
    bound: str = "none"
    unit: str = "envelopes"
    notes: str = ""

    def line(self) -> str:
        text = (f"fault: {self.fault:<28} published {self.published:>6}  "
                f"stored {self.stored:>6}  duplicates {self.duplicates:>4}  "
                f"dropped {self.dropped:>5} (bound: {self.bound})  [{self.unit}]")
        return text + (f"\n       {self.notes}" if self.notes else "")


@pytest.fixture
def loss_report(request: pytest.FixtureRequest) -> Callable[[Loss], None]:
    """Record one accounting line (a test may record several)."""
    lines = request.config.stash.setdefault(_LINES, [])

    def record(loss: Loss) -> None:
        text = loss.line()
        print("\n" + text)
        lines.append(f"{request.node.name}\n  {text}")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_LINES, [])
    if not lines:
        return
    terminalreporter.write_sep("=", "fault injection: loss accounting")
    for text in lines:
        terminalreporter.write_line(text)
