"""Reads of components for the public page: order, rollup status and uptime."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, F, Max, Min, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import TruncMonth
from django.utils.translation import gettext, gettext_noop

from components.alerts.models import AlertState
from components.models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    ComponentStatusValue,
    DailyUptime,
    HealthCheck,
    StatusChangeCause,
    Verdict,
    worst_status,
)
from components.status import NOT_HOLDING_INCIDENT_STATUSES
from components.uptime import (
    DayUptime,
    MonthTotals,
    MonthUptime,
    months_back,
    months_of,
    split_by_day,
    uptime_percent_over,
)
from statuspage.models import PageSettings


@dataclass(frozen=True)
class OverallStatus:
    indicator: str
    # Statuspage's own English words: the JSON APIs and webhooks give them as they are.
    description: str

    @property
    def label(self) -> str:
        """The description in the active language, for the page people read."""
        return gettext(self.description)


ALL_OPERATIONAL = OverallStatus("none", gettext_noop("All Systems Operational"))
UNDER_MAINTENANCE = OverallStatus("maintenance", gettext_noop("Service Under Maintenance"))
DEGRADED = OverallStatus("minor", gettext_noop("Partially Degraded Service"))
MINOR_OUTAGE = OverallStatus("minor", gettext_noop("Minor Service Outage"))
PARTIAL_OUTAGE = OverallStatus("major", gettext_noop("Partial System Outage"))
MAJOR_OUTAGE = OverallStatus("critical", gettext_noop("Major System Outage"))


def overall_status(statuses: Iterable[ComponentStatusValue]) -> OverallStatus:
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


def page_components(*, include_internal: bool = False) -> list[Component]:
    """Every component in page order, groups joined; internal ones only if asked for (the
    management API, /internal/)."""
    components = Component.objects.in_page_order()
    return list(components if include_internal else components.public())


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
    statuses = list(ComponentStatus)
    window = DailyUptime.objects.filter(
        component__in=[c.pk for c in components], day__gte=first_day, day__lte=today
    )
    by_component = _eventful_days(window, statuses)
    window_days = [first_day + timedelta(days=i) for i in range(days)]
    _add_operational_days(by_component, window, window_days)
    empty = {day: DayUptime(day) for day in window_days}

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


def monthly_uptime(
    components: list[Component], *, months: int, now: datetime, zone: ZoneInfo
) -> dict[int, list[MonthUptime]]:
    """The last `months` calendar months of uptime per component id, oldest first, the current
    month included and filled to its end: days before a component's first day and after today
    have no data."""
    today = now.astimezone(zone).date()
    first_month = months_back(today, months - 1)
    days = daily_uptime(components, days=(today - first_month).days + 1, now=now, zone=zone)
    empty: dict[date, DayUptime] = {}  # days without data, shared
    return {
        component.pk: months_of(
            days[component.pk],
            first_day=first_uptime_day(component, zone),
            last_day=today,
            empty=empty,
        )
        for component in components
    }


def monthly_totals(
    components: list[Component], *, months: int, now: datetime, zone: ZoneInfo
) -> dict[int, list[MonthTotals]]:
    """monthly_uptime's figures without the days: each month's seconds summed in SQL (one
    row per component and month rather than per day), today's live time added here. A
    component with rows before its first day (imported history) is read day by day, as
    monthly_uptime reads it, so both always agree."""
    today = now.astimezone(zone).date()
    first_month = months_back(today, months - 1)
    month_starts = [months_back(today, months - 1 - n) for n in range(months)]
    statuses = list(ComponentStatus)
    fields = {s: DailyUptime.seconds_field(s) for s in statuses}
    first_days = {c.pk: first_uptime_day(c, zone) for c in components}
    rows = (
        DailyUptime.objects.filter(
            component__in=list(first_days), day__gte=first_month, day__lte=today
        )
        .annotate(month=TruncMonth("day"))
        .values("component_id", "month")
        .annotate(first=Min("day"), **{f"sum_{s}": Sum(field) for s, field in fields.items()})
        .values_list("component_id", "month", "first", *(f"sum_{s}" for s in statuses))
    )
    seconds: dict[int, dict[date, MonthTotals]] = defaultdict(dict)
    read_by_day = set()
    for component_id, month, first, *sums in rows:
        if first < first_days[component_id]:
            read_by_day.add(component_id)
        seconds[component_id][month] = MonthTotals(
            month, {s: value for s, value in zip(statuses, sums, strict=True) if value}
        )
    result = {}
    for component in components:
        totals = seconds[component.pk]
        start = max(first_days[component.pk], first_month)
        for local_day, elapsed in split_by_day(component.uptime_accounted_until, now, zone):
            if local_day >= start:
                month = local_day.replace(day=1)
                totals.setdefault(month, MonthTotals(month)).add(component.status, elapsed)
        result[component.pk] = [totals.get(month) or MonthTotals(month) for month in month_starts]
    if read_by_day:
        exact = monthly_uptime(
            [c for c in components if c.pk in read_by_day], months=months, now=now, zone=zone
        )
        for component_id, month_list in exact.items():
            result[component_id] = [_summed(month) for month in month_list]
    return result


def _summed(month: MonthUptime) -> MonthTotals:
    totals = MonthTotals(month.month)
    for day in month.days:
        for status, value in day.seconds.items():
            totals.add(status, value)
    return totals


WHOLE_DAY = 24 * 3600
# A whole day spent operational (not a first, last or DST day: those are read as stored).
_ALL_OPERATIONAL = {
    **{
        DailyUptime.seconds_field(s): 0 for s in ComponentStatus if s != ComponentStatus.OPERATIONAL
    },
    DailyUptime.seconds_field(ComponentStatus.OPERATIONAL): WHOLE_DAY,
}


def _eventful_days(
    window: QuerySet[DailyUptime], statuses: list[ComponentStatus]
) -> dict[int, dict[date, DayUptime]]:
    """Rows of every day but whole operational ones, as DayUptime per component and day.

    A page of 1,000 components spans 90,000 rows, nearly all of them whole operational days;
    reading those one by one was most of the page's build time, so they are counted in SQL
    (`_add_operational_days`) and only the others are read.
    """
    by_component: dict[int, dict[date, DayUptime]] = defaultdict(dict)
    rows = window.exclude(**_ALL_OPERATIONAL).values_list(
        "component_id", "day", *(DailyUptime.seconds_field(s) for s in statuses)
    )
    # Equal rows share one DayUptime, computed once.
    shared: dict[tuple[object, ...], DayUptime] = {}
    for component_id, *key in rows:
        entry = shared.get(tuple(key))
        if entry is None:
            day, *seconds = key
            entry = shared[tuple(key)] = DayUptime(
                day, {s: value for s, value in zip(statuses, seconds, strict=True) if value}
            )
        by_component[component_id][key[0]] = entry
    return by_component


def _add_operational_days(
    by_component: dict[int, dict[date, DayUptime]],
    window: QuerySet[DailyUptime],
    window_days: list[date],
) -> None:
    """Fill in the whole operational days of each component from one aggregate query.

    Rollups write a row for every day from a component's first accounted day on, so its whole
    operational days are those between the first and last such row that were not read as
    others. A component whose rows have gaps (imported or edited history) is read row by row.
    """
    aggregates = (
        window.filter(**_ALL_OPERATIONAL)
        .values("component_id")
        .annotate(first=Min("day"), last=Max("day"), count=Count("id"))
        .values_list("component_id", "first", "last", "count")
    )
    whole_days: dict[date, DayUptime] = {}  # one per date, shared by every component
    gapped = []
    for component_id, first, last, count in aggregates:
        read = by_component[component_id]
        start = (first - window_days[0]).days
        span = window_days[start : start + (last - first).days + 1]
        quiet = [day for day in span if day not in read] if read else span
        if len(quiet) != count:
            gapped.append(component_id)
            continue
        for day in quiet:
            entry = whole_days.get(day)
            if entry is None:
                entry = whole_days[day] = DayUptime(day, {ComponentStatus.OPERATIONAL: WHOLE_DAY})
            read[day] = entry
    if gapped:
        days = window.filter(component__in=gapped, **_ALL_OPERATIONAL).values_list(
            "component_id", "day"
        )
        for component_id, day in days:
            by_component[component_id][day] = whole_days.get(day) or DayUptime(
                day, {ComponentStatus.OPERATIONAL: WHOLE_DAY}
            )


@dataclass
class ComponentTree:
    """Every component in page order and every group, hidden ones included, with the rollup."""

    page: PageSettings
    components: list[Component]
    groups: list[ComponentGroup]
    status: OverallStatus


def component_tree(*, include_internal: bool = False) -> ComponentTree:
    components = page_components(include_internal=include_internal)
    groups = ComponentGroup.objects.order_by("position", "name")
    return ComponentTree(
        page=PageSettings.load(),
        components=components,
        groups=list(groups if include_internal else groups.filter(internal=False)),
        status=overall_status(c.status for c in components),
    )


__all__ = ["overall_status", "page_components", "daily_uptime", "uptime_percent_over"]


@dataclass(frozen=True)
class ComponentStatusSource:
    """A component's status, who set it and since when (the staff console's first table)."""

    component: Component
    cause: str | None  # a StatusChangeCause value; None when it never changed
    cause_label: str
    actor: str  # the staff member's username when a person set it, else ""
    since: datetime | None


def component_status_sources() -> list[ComponentStatusSource]:
    """Every component in page order with the last change of its status: one query."""
    last = ComponentStatusChange.objects.filter(component=OuterRef("pk")).order_by("-at", "-id")
    components = Component.objects.in_page_order().annotate(
        last_cause=Subquery(last.values("cause")[:1]),
        last_at=Subquery(last.values("at")[:1]),
        last_actor=Subquery(last.values("actor__username")[:1]),
    )
    labels = dict(StatusChangeCause.choices)
    return [
        ComponentStatusSource(
            component=component,
            cause=component.last_cause,
            cause_label=str(labels.get(component.last_cause, "Never changed")),
            actor=component.last_actor or "",
            since=component.last_at or component.created_at,
        )
        for component in components
    ]


@dataclass(frozen=True)
class Disagreement:
    """A component the page shows operational, with no open incident, while checks or alerts
    say otherwise: what the page does not say yet."""

    component: Component
    wanted: ComponentStatusValue  # the worst status the failing sources call for
    reasons: tuple[str, ...]  # each failing source, in words

    @property
    def wanted_label(self) -> str:
        return str(ComponentStatus(self.wanted).label)


def components_held(component_ids: list[int], *, checks_own_holds: bool = True) -> set[int]:
    """Those of these components an open incident names (a scheduled maintenance does not
    hold them yet): visitors already read that Beacon knows. One row of the incidents' link
    table per (incident, component), so an old resolved incident beside an open one does not
    hide the open one. Without `checks_own_holds`, an incident the checks opened for a
    component does not count for that component."""
    if not component_ids:
        return set()
    links = Component.incidents.through.objects.filter(component_id__in=component_ids)
    links = links.exclude(incident__status__in=NOT_HOLDING_INCIDENT_STATUSES)
    if not checks_own_holds:
        links = links.exclude(incident__auto_component_id=F("component_id"))
    return set(links.values_list("component_id", flat=True))


def disagreements() -> list[Disagreement]:
    """Operational components without an open incident whose enabled checks fail or whose
    alerts fire: four queries, however many components."""
    operational = list(Component.objects.in_page_order().filter(status=ComponentStatus.OPERATIONAL))
    ids = [c.pk for c in operational]
    claims: dict[int, list[tuple[ComponentStatusValue, str]]] = defaultdict(list)
    failing = HealthCheck.objects.filter(
        component_id__in=ids, enabled=True, verdict__in=[Verdict.DOWN, Verdict.DEGRADED]
    ).order_by("name")
    for check in failing:
        status = (
            check.down_status
            if check.verdict == Verdict.DOWN
            else ComponentStatus.DEGRADED_PERFORMANCE
        )
        claims[check.component_id].append(
            (status, f"Health check “{check.name}”: {check.get_verdict_display().lower()}")
        )
    firing = (
        AlertState.objects.filter(component_id__in=ids, firing=True)
        .exclude(status=ComponentStatus.OPERATIONAL)
        .select_related("integration")
        .order_by("fingerprint")
    )
    for alert in firing:
        claims[alert.component_id].append(
            (alert.status, f"Alert from {alert.integration.name}: {alert.get_status_display()}")
        )
    # As the arbiter reads it (component_claims), the checks' own incident holds nothing.
    held = components_held(list(claims), checks_own_holds=False)
    return [
        Disagreement(
            component=component,
            wanted=worst_status([status for status, _ in claims[component.pk]]),
            reasons=tuple(reason for _, reason in claims[component.pk]),
        )
        for component in operational
        if claims.get(component.pk) and component.pk not in held
    ]
