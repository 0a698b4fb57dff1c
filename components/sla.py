"""A month's uptime against an SLA: "did you meet it, and what do we get?"

Pure arithmetic on plain values (`month_bounds`, `month_figures`) and one selector that reads
the daily rollups (`month_uptime`). A month is a calendar month of the page's time zone, so
a month with a DST change has 743 or 745 hours. Uptime is the page's formula
(docs/sla.md): 1 − weighted downtime / counted time, maintenance not counted, the weights
`settings.BEACON_UPTIME_WEIGHTS`; it is computed in decimals, so a month exactly at a
threshold is not below it. The incidents of the month are the incidents layer's
(incidents/sla.py); nothing here knows of them.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from components.models import Component, ComponentGroup, ComponentStatus, ComponentStatusValue
from components.selectors import daily_uptime, first_uptime_day
from components.sla_terms import (
    CreditTier,
    breached,
    credit_for,
    credit_tiers,
    parse_month,
    percent_text,
)
from components.status_choices import is_component_status
from components.uptime import DayUptime, next_month

DOWN_STATUSES: tuple[ComponentStatusValue, ...] = (
    ComponentStatus.DEGRADED_PERFORMANCE,
    ComponentStatus.PARTIAL_OUTAGE,
    ComponentStatus.MAJOR_OUTAGE,
)


@dataclass(frozen=True)
class SlaTerms:
    target: Decimal | None
    tiers: list[CreditTier]
    inherited: bool = False  # a component's terms taken from its group

    @property
    def target_text(self) -> str:
        return "" if self.target is None else percent_text(self.target)


NO_TERMS = SlaTerms(target=None, tiers=[])


def group_terms(group: ComponentGroup) -> SlaTerms:
    return SlaTerms(target=group.sla_target, tiers=credit_tiers(group.sla_credit_tiers))


def component_terms(component: Component) -> SlaTerms:
    """Its own target and tiers; with neither, its group's."""
    if component.sla_target is not None or component.sla_credit_tiers:
        return SlaTerms(target=component.sla_target, tiers=credit_tiers(component.sla_credit_tiers))
    if component.group is not None:
        terms = group_terms(component.group)
        return SlaTerms(target=terms.target, tiers=terms.tiers, inherited=True)
    return NO_TERMS


def month_bounds(year: int, month: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's: local midnights of `zone`, in UTC
    (Python subtracts and compares two times of one zone by their wall clocks, DST ignored)."""
    following = next_month(date(year, month, 1))
    return (
        datetime.combine(date(year, month, 1), time(), tzinfo=zone).astimezone(UTC),
        datetime.combine(following, time(), tzinfo=zone).astimezone(UTC),
    )


@dataclass(frozen=True)
class MonthFigures:
    """Seconds per status summed over a month's days, and what they come to."""

    seconds: dict[ComponentStatusValue, Decimal]
    counted_seconds: Decimal  # maintenance excluded
    weighted_downtime: Decimal
    uptime_percent: Decimal | None  # None: nothing was counted

    def minutes(self, status: ComponentStatusValue) -> Decimal:
        return self.seconds.get(status, Decimal(0)) / 60

    @property
    def counted_minutes(self) -> Decimal:
        return self.counted_seconds / 60

    @property
    def maintenance_minutes(self) -> Decimal:
        return self.minutes(ComponentStatus.UNDER_MAINTENANCE)


def month_figures(days: list[DayUptime], weights: Mapping[str, float]) -> MonthFigures:
    """Pool the days (of one component or several) as the page's uptime does, in decimals."""
    seconds: dict[ComponentStatusValue, Decimal] = {
        status: Decimal(0) for status in ComponentStatus
    }
    for day in days:
        for status, spent in day.seconds.items():
            seconds[status] += Decimal(str(spent))
    counted = sum(
        (spent for status, spent in seconds.items() if status != ComponentStatus.UNDER_MAINTENANCE),
        Decimal(0),
    )
    weighted = sum(
        (
            seconds[status] * Decimal(str(weight))
            for status, weight in weights.items()
            if is_component_status(status)
        ),
        Decimal(0),
    )
    uptime = 100 * (1 - weighted / counted) if counted else None
    return MonthFigures(seconds, counted, weighted, uptime)


@dataclass(frozen=True)
class SlaMonth:
    """One component's or group's month against its SLA terms."""

    month: str  # YYYY-MM
    zone: ZoneInfo  # the page's: the month's days are its days
    start: datetime
    end: datetime  # the next month's first instant
    until: datetime  # counted up to: `end`, or now in the current month
    counted_from: date | None  # set when the first counted day is after the 1st
    figures: MonthFigures
    terms: SlaTerms
    breached: bool
    credit: CreditTier | None
    component_count: int = 1

    @property
    def partial(self) -> bool:
        """The current month, counted up to now (a month still to come is not partial: it
        has no data)."""
        return self.start < self.until < self.end

    @property
    def has_data(self) -> bool:
        return self.figures.uptime_percent is not None


def month_uptime(
    *, components: list[Component], terms: SlaTerms, month: str, now: datetime, zone: ZoneInfo
) -> SlaMonth:
    """The month's uptime of these components pooled (one, or a group's), from the daily
    rollups and the live part not yet rolled up. ValueError for a month not YYYY-MM."""
    year, number = parse_month(month)
    start, end = month_bounds(year, number, zone)
    until = max(start, min(now.astimezone(UTC), end))
    first_day, following = start.astimezone(zone).date(), end.astimezone(zone).date()
    starts = {component.pk: first_uptime_day(component, zone) for component in components}
    days: list[DayUptime] = []
    if components and until > start:
        # daily_uptime counts back from `until`'s day: at the month's end that is the next 1st.
        last_day = until.astimezone(zone).date()
        by_component = daily_uptime(
            components, days=(last_day - first_day).days + 1, now=until, zone=zone
        )
        days = [
            day
            for component in components
            for day in by_component[component.pk]
            if max(first_day, starts[component.pk]) <= day.day < following
        ]
    earliest = min(starts.values(), default=None)
    counted_from = earliest if earliest and first_day < earliest < following else None
    figures = month_figures(days, settings.BEACON_UPTIME_WEIGHTS)
    return SlaMonth(
        month=f"{year:04d}-{number:02d}",
        zone=zone,
        start=start,
        end=end,
        until=until,
        counted_from=counted_from,
        figures=figures,
        terms=terms,
        breached=breached(figures.uptime_percent, terms.target),
        credit=credit_for(figures.uptime_percent, terms.tiers),
        component_count=len(components),
    )
