"""Uptime arithmetic on plain values: splitting time into days and weighing outages."""

import calendar
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
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


def uptime_percent_over(days: "Sequence[DayUptime | MonthUptime]") -> float | None:
    counted = weighted = 0.0
    for day in days:  # one pass: a page of 1,000 components sums 90,000 days
        counted += day.counted_seconds
        weighted += day.weighted_downtime
    if not counted:
        return None
    return 100 * (1 - weighted / counted)


# Months: the public uptime history (/uptime/) shows a component's past twelve.


def months_back(day: date, months: int) -> date:
    """The first day of the month `months` before the month of `day`."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def next_month(first: date) -> date:
    return months_back(first, -1)


@dataclass
class MonthUptime:
    """One calendar month of a component: every day of it, those before the component's first
    day and after today without data, and the month's figures over the days counted."""

    month: date  # its first day
    days: list[DayUptime]

    @cached_property
    def counted_seconds(self) -> float:
        return sum(day.counted_seconds for day in self.days)

    @cached_property
    def weighted_downtime(self) -> float:
        return sum(day.weighted_downtime for day in self.days)

    @cached_property
    def uptime_percent(self) -> float | None:
        return uptime_percent_over([self])

    @cached_property
    def has_data(self) -> bool:
        return any(day.has_data for day in self.days)

    @cached_property
    def worst_status(self) -> ComponentStatusValue | None:
        seen = [day.worst_status for day in self.days if day.worst_status is not None]
        if not seen:
            return None
        worst: ComponentStatusValue = max(seen, key=STATUS_SEVERITY.__getitem__)
        return worst

    @cached_property
    def weeks(self) -> list[list[DayUptime | None]]:
        """The month as weeks from Monday, None where a week reaches into another month."""
        lead = self.month.weekday()
        cells: list[DayUptime | None] = [None] * lead + list(self.days)
        cells += [None] * (-len(cells) % 7)
        return [cells[i : i + 7] for i in range(0, len(cells), 7)]


def months_of(
    days: list[DayUptime],
    *,
    first_day: date,
    last_day: date,
    empty: dict[date, DayUptime] | None = None,
) -> list[MonthUptime]:
    """Consecutive days from the first of a month cut into calendar months, the last filled
    to its end: days before `first_day` (the component's first) and after `last_day` (today)
    have no data. `empty` may hand out days without data shared between components (a page
    of 1,000 components slices 365,000 days: lists are cut, days never copied)."""
    if not days:
        return []
    start = days[0].day
    calendar_days, spans = _calendar(start, days[-1].day)
    empty = empty if empty is not None else {}
    shown_from = min(max((first_day - start).days, 0), len(days))
    shown_until = min(max((last_day - start).days + 1, shown_from), len(days))

    def blank(day: date) -> DayUptime:
        entry = empty.get(day)
        if entry is None:
            entry = empty[day] = DayUptime(day)
        return entry

    full = [
        *(blank(day) for day in calendar_days[:shown_from]),
        *days[shown_from:shown_until],
        *(blank(day) for day in calendar_days[shown_until:]),
    ]
    return [MonthUptime(month, full[begin:end]) for month, begin, end in spans]


@lru_cache(maxsize=8)
def _calendar(start: date, last: date) -> tuple[list[date], list[tuple[date, int, int]]]:
    """Every date from `start` to the end of the month of `last`, and each month's first
    day with where it begins and ends in that list (the first may begin mid-month)."""
    end = next_month(last.replace(day=1))
    calendar_days = [start + timedelta(days=n) for n in range((end - start).days)]
    spans = []
    month = start.replace(day=1)
    while month < end:
        following = next_month(month)
        begin = max((month - start).days, 0)
        spans.append((month, begin, (following - start).days))
        month = following
    return calendar_days, spans


@dataclass
class MonthTotals(DayUptime):
    """A month's seconds per status summed over its counted days: its uptime, worst status
    and whether it has data are those of its days together (the weights are linear), without
    the days (the /uptime/ overview, 1,000 components by 12 months)."""

    @property
    def month(self) -> date:
        return self.day


# The range of an uptime report (the management API's and API v2's): Statuspage's rules.

EARLIEST = date(1970, 1, 1)
DEFAULT_DAYS = 90
RANGE_MONTHS = 6
_PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")


class UptimeRangeError(ValueError):
    """A start or end that cannot be read."""


class UptimeRangeRefused(UptimeRangeError):
    """A start and end that read as dates but make no range (the end before 1970 or before
    the start): the management API answers 422 rather than 400."""


def partial_date(value: str, name: str, *, last: bool) -> date:
    """`2024` / `2024-05` / `2024-05-17`: a year or month means its first (or last) day."""
    match = _PARTIAL_DATE.fullmatch(value.strip())
    if not match:
        raise UptimeRangeError(f"{name}: expected YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}.")
    year = int(match.group(1))  # the pattern always has the year
    month, day = (int(part) if part else None for part in match.groups()[1:])
    try:
        if month is None:
            return date(year, 12, 31) if last else date(year, 1, 1)
        if day is None:
            return date(year, month, calendar.monthrange(year, month)[1] if last else 1)
        return date(year, month, day)
    except ValueError as error:
        raise UptimeRangeError(f"{name}: {error}.") from error


def _months_before(day: date, months: int) -> date:
    first = months_back(day, months)
    return first.replace(day=min(day.day, calendar.monthrange(first.year, first.month)[1]))


def uptime_range(
    first_day: date, *, start: str | None, end: str | None, today: date
) -> tuple[date, date, list[str]]:
    """Statuspage's rules: end defaults to today, start to the component's first day or 90
    days before, whichever is later; at most six calendar months, none before 1970. Returns
    the range and the warnings of what was moved."""
    warnings: list[str] = []
    last = partial_date(end, "end", last=True) if end else today
    if last < EARLIEST:
        raise UptimeRangeRefused("The end date must not be before 1970-01-01.")
    if last > today:
        warnings.append(f"The end date was moved to today, {today.isoformat()}.")
        last = today
    if start:
        first = partial_date(start, "start", last=False)
    else:
        first = min(max(last - timedelta(days=DEFAULT_DAYS - 1), first_day), last)
    if first > last:
        raise UptimeRangeRefused("The start date must not be after the end date.")
    earliest = max(EARLIEST, _months_before(last, RANGE_MONTHS))
    if first < earliest:
        warnings.append(
            f"The start date was moved to {earliest.isoformat()}: "
            "the range is at most six calendar months."
        )
        first = earliest
    return first, last, warnings
