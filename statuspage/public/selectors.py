"""Page assembly: the data behind every public page, built in one place.

The HTML pages use these today; the JSON API, feeds and snapshots reuse them, so what a
visitor reads and what a client parses always agree.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import F
from django.utils import timezone
from django.utils.translation import get_language, gettext

from components import charts
from components.models import (
    CheckRollup,
    Component,
    ComponentGroup,
    ComponentStatusValue,
    HealthCheck,
    worst_status,
)
from components.selectors import (
    OverallStatus,
    daily_uptime,
    first_uptime_day,
    monthly_totals,
    monthly_uptime,
    overall_status,
    page_components,
    uptime_percent_over,
)
from components.uptime import DayUptime, MonthTotals, MonthUptime
from incidents.models import Incident, IncidentKind, IncidentQuerySet, IncidentStatus
from incidents.selectors import with_timeline
from statuspage.lib.shared_reads import shared
from statuspage.models import PageSettings


@dataclass
class ComponentRow:
    component: Component
    days: list[DayUptime]
    uptime_percent: float | None

    @property
    def status(self) -> ComponentStatusValue:
        return self.component.status


@dataclass
class GroupRow:
    group: ComponentGroup
    rows: list[ComponentRow] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst_status(row.status for row in self.rows)

    @property
    def is_degraded(self) -> bool:
        return any(row.status != "operational" for row in self.rows)


@dataclass
class PastDay:
    day: date
    incidents: list[Incident]


@dataclass(frozen=True)
class Chart:
    range: charts.Range
    svg: str


@dataclass
class CheckMetrics:
    """A check shown on the page, with its rollups for every chart range."""

    check: HealthCheck
    component: Component
    rollups: list[CheckRollup]
    dom_id: str
    now: datetime
    zone: tzinfo
    _charts: dict[str, list[Chart]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def charts(self) -> list[Chart]:
        """Drawn once per language: their words are the active language's, and a rebuild hands
        one read of the page to every language's render (statuspage/lib/shared_reads.py)."""
        language = get_language() or ""
        if language not in self._charts:
            self._charts[language] = self._drawn()
        return self._charts[language]

    def _drawn(self) -> list[Chart]:
        return [
            Chart(
                spec,
                charts.response_time_svg(
                    charts.series(self.rollups, spec, self.now),
                    title=gettext("%(component)s %(check)s: response times, last %(span)s")
                    % {
                        "component": self.component.name,
                        "check": self.check.name,
                        "span": spec.spoken,
                    },
                    zone=self.zone,
                    chart_id=f"{self.dom_id}-{spec.key}",
                ),
            )
            for spec in charts.RANGES.values()
        ]


@dataclass
class StatusPage:
    page: PageSettings
    generated_at: datetime
    status: OverallStatus
    components: list[Component]
    sections: list[ComponentRow | GroupRow]
    active_incidents: list[Incident]
    active_maintenances: list[Incident]
    upcoming_maintenances: list[Incident]
    past_days: list[PastDay]
    metrics: list[CheckMetrics] = field(default_factory=list)


def _incidents(include_internal: bool) -> IncidentQuerySet:
    """Where every read of incidents for a page starts: the public never gets internal ones."""
    return Incident.objects.all() if include_internal else Incident.objects.public()


@shared
def build_status_page(*, now: datetime | None = None, include_internal: bool = False) -> StatusPage:
    now = now or timezone.now()
    page = PageSettings.load()
    zone = page.zone
    components = page_components(include_internal=include_internal)
    incidents_shown = _incidents(include_internal)
    uptime_days = daily_uptime(components, days=settings.BEACON_UPTIME_DAYS, now=now, zone=zone)
    today = now.astimezone(zone).date()
    first_day = today - timedelta(days=settings.BEACON_UPTIME_DAYS - 1)

    recent = list(
        with_timeline(
            incidents_shown.filter(
                started_at__gte=datetime.combine(first_day, datetime.min.time(), tzinfo=zone),
                started_at__lte=now,
            )
            | incidents_shown.filter(resolved_at__isnull=True, started_at__lte=now)
            | incidents_shown.upcoming_maintenances(),
            include_internal=include_internal,
            translations=True,
        )
        .select_related("series")
        .order_by("-started_at", "-id")
    )
    _attach_incidents_to_days(recent, uptime_days, zone=zone, now=now)

    sections: list[ComponentRow | GroupRow] = []
    groups: dict[int, GroupRow] = {}
    for component in components:
        first = first_uptime_day(component, zone)
        days = [
            day if day.day >= first else DayUptime(day.day) for day in uptime_days[component.pk]
        ]
        row = ComponentRow(component, days, uptime_percent_over(days))
        if not component.is_visible:
            continue
        group = component.group
        if group is None:
            sections.append(row)
            continue
        if group.pk not in groups:
            groups[group.pk] = GroupRow(group)
            sections.append(groups[group.pk])
        groups[group.pk].rows.append(row)

    incidents = [i for i in recent if i.kind == IncidentKind.INCIDENT]
    maintenances = [i for i in recent if i.kind == IncidentKind.MAINTENANCE]
    return StatusPage(
        page=page,
        generated_at=now,
        status=overall_status(c.status for c in components),
        components=components,
        sections=sections,
        active_incidents=[i for i in incidents if not i.is_closed],
        active_maintenances=[i for i in maintenances if i.status in ("in_progress", "verifying")],
        upcoming_maintenances=next_of_each_series(
            sorted(
                (i for i in maintenances if i.status == "scheduled"),
                key=lambda i: i.scheduled_for or i.started_at,
            )
        ),
        past_days=_past_days(recent, today=today, zone=zone),
        metrics=check_metrics(components, now=now, zone=zone),
    )


def next_of_each_series(maintenances: list[Incident]) -> list[Incident]:
    """Upcoming maintenances with a series' later occurrences left out: the page shows the
    next one, saying it repeats."""
    seen: set[int] = set()
    shown = []
    for maintenance in maintenances:
        if maintenance.series_id is not None and not maintenance.series_detached:
            if maintenance.series_id in seen:
                continue
            seen.add(maintenance.series_id)
        shown.append(maintenance)
    return shown


def check_metrics(
    components: list[Component], *, now: datetime, zone: tzinfo
) -> list[CheckMetrics]:
    """Response times of the enabled checks shown on the page, in page order: two queries
    (one when no check is shown), however many checks there are."""
    order = {component.pk: (index, component) for index, component in enumerate(components)}
    checks = sorted(
        (
            check
            for check in HealthCheck.objects.filter(enabled=True, show_on_page=True)
            .only("pk", "name", "component_id")
            .order_by()  # sorted below by the page's order, without joining components
            if check.component_id in order
        ),
        key=lambda check: (order[check.component_id][0], check.name),
    )
    if not checks:
        return []
    rollups: dict[int, list[CheckRollup]] = defaultdict(list)
    for rollup in CheckRollup.objects.filter(
        charts.rollups_filter(now), health_check_id__in=[check.pk for check in checks]
    ):
        rollups[rollup.health_check_id].append(rollup)
    return [
        CheckMetrics(
            check=check,
            component=order[check.component_id][1],
            rollups=rollups[check.pk],
            dom_id=f"metric-{index}",
            now=now,
            zone=zone,
        )
        for index, check in enumerate(checks, start=1)
    ]


def _attach_incidents_to_days(
    incidents: list[Incident],
    uptime_days: dict[int, list[DayUptime]],
    *,
    zone: tzinfo,
    now: datetime,
) -> None:
    """Name each incident on every uptime day it was open, for the bar's tooltips."""
    for incident in incidents:
        if incident.kind != IncidentKind.INCIDENT:
            continue
        first = incident.started_at.astimezone(zone).date()
        last = (incident.resolved_at or now).astimezone(zone).date()
        for component in incident.components.all():
            days = uptime_days.get(component.pk, [])
            for index, day in enumerate(days):
                if first <= day.day <= last:
                    # Days are shared between components (see daily_uptime): copy, then add.
                    days[index] = DayUptime(day.day, day.seconds, [*day.incidents, incident])


def _past_days(incidents: list[Incident], *, today: date, zone: tzinfo) -> list[PastDay]:
    by_day: dict[date, list[Incident]] = defaultdict(list)
    for incident in incidents:
        if incident.status == "scheduled":
            continue
        by_day[incident.started_at.astimezone(zone).date()].append(incident)
    return [
        PastDay(day, by_day.get(day, []))
        for day in (today - timedelta(days=i) for i in range(settings.BEACON_PAST_INCIDENT_DAYS))
    ]


@shared
def incident_detail(code: str, *, include_internal: bool = False) -> Incident | None:
    return (
        with_timeline(
            _incidents(include_internal).filter(public_id=code),
            include_internal=include_internal,
            translations=True,
        )
        .select_related("created_by")
        .first()
    )


HISTORY_PAGE_SIZE = 25


def history_page_count(*, include_internal: bool = False) -> int:
    past = (
        _incidents(include_internal)
        .filter(started_at__lte=timezone.now())
        .exclude(status="scheduled")
    )
    return max(1, -(-past.count() // HISTORY_PAGE_SIZE))


@dataclass
class HistoryMonth:
    month: date
    incidents: list[Incident]


@shared
def incident_history(
    *, page_number: int, per_page: int = HISTORY_PAGE_SIZE, include_internal: bool = False
) -> tuple[Page[Incident], list[HistoryMonth]]:
    """Past incidents and maintenances, newest first, grouped by month of the page zone.

    Raises EmptyPage past the last page, so made-up page numbers cannot fill the cache.
    """
    zone = PageSettings.load().zone
    past = with_timeline(
        _incidents(include_internal)
        .filter(started_at__lte=timezone.now())
        .exclude(status="scheduled"),
        include_internal=include_internal,
        translations=True,
    ).order_by("-started_at", "-id")
    page = Paginator(past, per_page, allow_empty_first_page=True).page(page_number)
    months: list[HistoryMonth] = []
    for incident in page.object_list:
        month = incident.started_at.astimezone(zone).date().replace(day=1)
        if not months or months[-1].month != month:
            months.append(HistoryMonth(month, []))
        months[-1].incidents.append(incident)
    return page, months


# The public JSON API (statuspage/public/api_v2.py): lists as Statuspage's API v2 returns them.

API_LIST_LIMIT = 50


def recent_incidents(
    *, limit: int | None = API_LIST_LIMIT, unresolved: bool = False
) -> list[Incident]:
    """The most recent incidents (not maintenances), newest first, with their timelines.

    `limit=None` lists them all (for the unresolved ones, which are few).
    """
    public = Incident.objects.public()
    incidents = public.unresolved() if unresolved else public.incidents()
    return list(with_timeline(incidents).order_by("-started_at", "-id")[:limit])


def recent_maintenances(
    *, limit: int | None = API_LIST_LIMIT, statuses: Sequence[IncidentStatus] | None = None
) -> list[Incident]:
    """The most recent maintenances (by start time), newest first, with their timelines."""
    maintenances = Incident.objects.public().maintenances()
    if statuses is not None:
        maintenances = maintenances.filter(status__in=statuses)
    return list(
        with_timeline(maintenances).order_by(
            F("scheduled_for").desc(nulls_last=True), "-started_at", "-id"
        )[:limit]
    )


# The uptime history (/uptime/)

UPTIME_MONTHS = 12


@dataclass
class UptimeHistory:
    """A component's last twelve months, and for its own page the incidents of each month."""

    component: Component
    months: Sequence[MonthUptime | MonthTotals]  # MonthTotals: the overview, without days
    incidents: dict[date, list[Incident]] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        return any(month.has_data for month in self.months)

    @property
    def uptime_percent(self) -> float | None:
        return uptime_percent_over(self.months)


def _components(*, public_id: str | None = None) -> list[Component]:
    components = [c for c in page_components() if c.showcase]
    if public_id is not None:
        components = [c for c in components if c.public_id == public_id]
    return components


def uptime_histories(*, now: datetime | None = None) -> list[UptimeHistory]:
    """Every showcased public component's last twelve months, in page order."""
    now = now or timezone.now()
    components = _components()
    zone = PageSettings.load().zone
    months = monthly_totals(components, months=UPTIME_MONTHS, now=now, zone=zone)
    return [UptimeHistory(c, months[c.pk]) for c in components]


def component_uptime_history(
    public_id: str, *, now: datetime | None = None
) -> UptimeHistory | None:
    """One showcased public component's months and the public incidents of each (None when
    there is no such component)."""
    now = now or timezone.now()
    zone = PageSettings.load().zone
    components = _components(public_id=public_id)
    if not components:
        return None
    component = components[0]
    months = monthly_uptime(components, months=UPTIME_MONTHS, now=now, zone=zone)[component.pk]
    since = datetime.combine(months[0].month, time(), tzinfo=zone)
    incidents = (
        Incident.objects.public()
        .incidents()
        .filter(components=component, started_at__gte=since, started_at__lte=now)
        .order_by("-started_at", "-id")
        .distinct()
    )
    by_month: dict[date, list[Incident]] = {}
    for incident in incidents:
        by_month.setdefault(incident.started_at.astimezone(zone).date().replace(day=1), []).append(
            incident
        )
    return UptimeHistory(component, months, by_month)
