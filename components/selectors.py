"""Reads of components for the public page: order, rollup status and uptime."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from components.models import Component, ComponentStatus, DailyUptime
from components.uptime import DayUptime, split_by_day, uptime_percent_over


@dataclass(frozen=True)
class OverallStatus:
    indicator: str
    description: str


ALL_OPERATIONAL = OverallStatus("none", "All Systems Operational")
UNDER_MAINTENANCE = OverallStatus("maintenance", "Service Under Maintenance")
DEGRADED = OverallStatus("minor", "Partially Degraded Service")
MINOR_OUTAGE = OverallStatus("minor", "Minor Service Outage")
PARTIAL_OUTAGE = OverallStatus("major", "Partial System Outage")
MAJOR_OUTAGE = OverallStatus("critical", "Major System Outage")


def overall_status(statuses: Iterable[str]) -> OverallStatus:
    """The page rollup, from component statuses as Statuspage computes it.

    Incident impact does not enter: Statuspage shows `minor` while a `major` incident is open
    if no component is worse than a partial outage. Maintenance shows only when nothing is
    broken; a page where more than half the components are down is a major system outage.
    """
    statuses = list(statuses)
    major = statuses.count(ComponentStatus.MAJOR_OUTAGE)
    if major and major * 2 > len(statuses):
        return MAJOR_OUTAGE
    if major:
        return PARTIAL_OUTAGE
    if ComponentStatus.PARTIAL_OUTAGE in statuses:
        return MINOR_OUTAGE
    if ComponentStatus.DEGRADED_PERFORMANCE in statuses:
        return DEGRADED
    if ComponentStatus.UNDER_MAINTENANCE in statuses:
        return UNDER_MAINTENANCE
    return ALL_OPERATIONAL


def page_components() -> list[Component]:
    """Every component in page order, groups joined."""
    return list(Component.objects.in_page_order())


def first_uptime_day(component: Component, zone: ZoneInfo) -> date:
    created = component.created_at.astimezone(zone).date()
    return max(component.start_date, created) if component.start_date else created


def daily_uptime(
    components: list[Component], *, days: int, now: datetime, zone: ZoneInfo
) -> dict[int, list[DayUptime]]:
    """The last `days` days of uptime per component id, oldest first, today included.

    Stored rollups cover time up to each component's `uptime_accounted_until`; the rest,
    spent in the current status, is added here so today's cell is never stale.
    """
    today = now.astimezone(zone).date()
    first_day = today - timedelta(days=days - 1)
    by_component: dict[int, dict[date, DayUptime]] = defaultdict(dict)
    statuses = list(ComponentStatus)
    rows = DailyUptime.objects.filter(
        component__in=[c.pk for c in components], day__gte=first_day, day__lte=today
    ).values_list("component_id", "day", *(DailyUptime.seconds_field(s) for s in statuses))
    # Tuples, not model instances: a page of 1,000 components reads 90,000 rows. Most days
    # of most components are alike (a whole day operational), so equal rows share one
    # DayUptime whose figures and cell are then computed once for the whole page.
    shared: dict[tuple, DayUptime] = {}
    for component_id, day, *seconds in rows:
        key = (day, *seconds)
        entry = shared.get(key)
        if entry is None:
            entry = shared[key] = DayUptime(
                day, {s: value for s, value in zip(statuses, seconds, strict=True) if value}
            )
        by_component[component_id][day] = entry
    empty = {
        first_day + timedelta(days=i): DayUptime(first_day + timedelta(days=i)) for i in range(days)
    }

    result = {}
    for component in components:
        stored = by_component[component.pk]
        for local_day, elapsed in split_by_day(component.uptime_accounted_until, now, zone):
            if local_day >= first_day:
                existing = stored.get(local_day)
                live = DayUptime(local_day, dict(existing.seconds) if existing else {})
                live.add(component.status, elapsed)
                stored[local_day] = live  # a copy: the stored entry may be shared
        result[component.pk] = [stored.get(day) or empty[day] for day in empty]
    return result


__all__ = ["overall_status", "page_components", "daily_uptime", "uptime_percent_over"]
