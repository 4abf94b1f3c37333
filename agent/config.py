"""The agent's config file: [agent], [broker] and [asset] sections."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional

from cwatch.config import build, read_toml
from cwatch.mqtt import BrokerConfig
from cwatch.protocol import is_valid_id


@dataclasses.dataclass(frozen=True)
class AgentSection:
    site: str
    device: str
    interval_s: float = 60.0
    # Seq counter and (later) the offline queue live here; must survive reboots.
    data_dir: str = "cwatch-agent-data"
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("site", "device"):
            if not is_valid_id(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} must match "
                                 "[a-z0-9][a-z0-9._-]{0,63}")
        if not 1 <= self.interval_s <= 86400:
            raise ValueError("interval_s must be between 1 and 86400")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError("log_level must be debug, info, warning or error")


@dataclasses.dataclass(frozen=True)
class AssetSection:
    """What only people know about the machine; sent in the inventory."""

    tag: Optional[str] = None
    role: Optional[str] = None
    purchase_date: Optional[str] = None
    location: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    agent: AgentSection
    broker: BrokerConfig = dataclasses.field(default_factory=BrokerConfig)
    asset: AssetSection = dataclasses.field(default_factory=AssetSection)


def load(path: Optional[Path], overrides: Dict[str, Dict[str, Any]]) -> AgentConfig:
    """Read the file (if any), then apply command-line overrides per section."""
    data = read_toml(path) if path else {}  # type: Dict[str, Any]
    for section, values in overrides.items():
        table = data.setdefault(section, {})
        if isinstance(table, dict):
            table.update({k: v for k, v in values.items() if v is not None})
    return build(AgentConfig, data, str(path) if path else "command line")
