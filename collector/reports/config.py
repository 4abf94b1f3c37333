"""The [report] section of the collector's config file: what a procurement report
assumes (prices, ages, budget). Every value is a setting, none a constant in the code;
deploy/collector.example.toml shows them with their defaults."""

from __future__ import annotations

import dataclasses

from cwatch.config import parse_duration


@dataclasses.dataclass(frozen=True)
class PricesSection:
    """Unit prices in VND (Vietnamese dong), tax included; set your province's."""

    new_pc: int = 15_000_000  # an office desktop: Core i5, 16 GB, 512 GB SSD, Windows 11
    ram_module: int = 900_000  # one 8 GB DDR4 module
    ssd: int = 1_200_000  # a 512 GB SATA SSD, fitted and the system cloned
    battery: int = 1_500_000  # a laptop battery
    router: int = 2_500_000  # a small-office router
    switch: int = 1_500_000  # a 16-24 port office switch
    link_upgrade: int = 6_000_000  # a faster line for a year (difference in fees)
    os_upgrade: int = 0  # Windows 10 -> 11 is free on eligible hardware

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{field.name} must be a whole number of VND, 0 or more, "
                                 f"not {value!r}")


@dataclasses.dataclass(frozen=True)
class ReportSection:
    # The province's name as the report's title shows it, e.g. "Đồng Nai".
    province: str = ""
    language: str = "vi"  # vi or en
    # How far back the measurements go: "30d", "12w", ...
    period: str = "30d"
    # A PC older than this is due for refresh (the province's policy).
    refresh_age_years: float = 4.0
    # Accounting useful life of a computer under the asset rules for state agencies
    # (5 years in the Ministry of Finance's table); check your province's.
    useful_life_years: float = 5.0
    # The money available, VND; 0 means no cap.
    budget_vnd: int = 0
    # The province's asset register (CSV): purchase dates, tags, locations.
    assets_file: str = ""
    prices: PricesSection = dataclasses.field(default_factory=PricesSection)

    def __post_init__(self) -> None:
        if self.language not in ("vi", "en"):
            raise ValueError(f"language must be vi or en, not {self.language!r}")
        if parse_duration(self.period, "period") < 86400:
            raise ValueError("period must be at least one day (e.g. 30d)")
        for name in ("refresh_age_years", "useful_life_years"):
            if not 0 < getattr(self, name) <= 50:
                raise ValueError(f"{name} must be between 0 and 50 years")
        if self.budget_vnd < 0:
            raise ValueError("budget_vnd must be 0 (no cap) or more")

    @property
    def period_s(self) -> float:
        return parse_duration(self.period, "period")
