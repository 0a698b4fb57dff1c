"""Uptime arithmetic on plain values: splitting time into days and weighing outages."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from django.conf import settings

from components.models import STATUS_SEVERITY, ComponentStatus, ComponentStatusValue
from components.status_choices import is_component_status


def split_by_day(start: datetime, end: datetime, zone: ZoneInfo) -> Iterator[tuple[date, float]]:
    """Seconds of [start, end) that fall on each local day of `zone` (DST days are 23 or 25 h)."""
    # Arithmetic in UTC: subtracting two times of one zone would ignore a DST shift.
    cursor, end = start.astimezone(UTC), end.astimezone(UTC)
    while cursor < end:
        local_day = cursor.astimezone(zone).date()
        next_midnight = datetime.combine(local_day + timedelta(days=1), time(), tzinfo=zone)
        segment_end = min(end, next_midnight.astimezone(UTC))
        yield local_day, (segment_end - cursor).total_seconds()
        cursor = segment_end


DERIVED = (
    "has_data",
    "counted_seconds",
    "weighted_downtime",
    "uptime_percent",
    "worst_status",
    "figures",
)


@dataclass
class DayUptime:
    """Seconds per status on one day; the figures derived from them are computed once."""

    day: date
    seconds: dict[ComponentStatusValue, float] = field(default_factory=dict)
    incidents: list = field(default_factory=list)

    def add(self, status: ComponentStatusValue, seconds: float) -> None:
        self.seconds[status] = self.seconds.get(status, 0) + seconds
        for name in DERIVED:
            self.__dict__.pop(name, None)

    @cached_property
    def has_data(self) -> bool:
        return any(self.seconds.values())

    @cached_property
    def counted_seconds(self) -> float:
        """The day's length for uptime: observed time, maintenance excluded."""
        return sum(
            seconds
            for status, seconds in self.seconds.items()
            if status != ComponentStatus.UNDER_MAINTENANCE
        )

    @cached_property
    def weighted_downtime(self) -> float:
        weights: Mapping[str, float] = settings.BEACON_UPTIME_WEIGHTS
        # The settings name statuses; one they name that is not a status was never spent.
        return sum(
            self.seconds.get(status, 0) * weight
            for status, weight in weights.items()
            if is_component_status(status)
        )

    @cached_property
    def uptime_percent(self) -> float | None:
        if not self.counted_seconds:
            return None
        return 100 * (1 - self.weighted_downtime / self.counted_seconds)

    @cached_property
    def figures(self) -> tuple[bool, ComponentStatusValue | None, float | None]:
        """What a day shows besides its date and incidents: days with equal figures look alike."""
        return self.has_data, self.worst_status, self.uptime_percent

    @cached_property
    def worst_status(self) -> ComponentStatusValue | None:
        seen = [status for status, seconds in self.seconds.items() if seconds > 0]
        if not seen:
            return None
        return max(seen, key=STATUS_SEVERITY.__getitem__)


def uptime_percent_over(days: list[DayUptime]) -> float | None:
    counted = weighted = 0.0
    for day in days:  # one pass: a page of 1,000 components sums 90,000 days
        counted += day.counted_seconds
        weighted += day.weighted_downtime
    if not counted:
        return None
    return 100 * (1 - weighted / counted)
