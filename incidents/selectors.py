"""Reads of incidents shared by the public outputs, the APIs, the webhook payloads and the
staff console."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal, TypeAlias

from django.db.models import DurationField, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from components.models import (
    Component,
    ComponentStatus,
    ComponentStatusChange,
    ComponentStatusValue,
)
from components.reports.models import ReportSurge
from components.reports.selectors import report_surges_open
from components.selectors import components_held, daily_uptime, first_uptime_day
from components.uptime import DayUptime, uptime_percent_over, uptime_range
from incidents.models import (
    ACTIVE_MAINTENANCE_STATUSES,
    UNRESOLVED_STATUSES,
    AffectedComponent,
    Incident,
    IncidentDraft,
    IncidentKind,
    IncidentUpdate,
)
from statuspage.models import PageSettings


def with_timeline(
    incidents: QuerySet[Incident], *, include_internal: bool = False, translations: bool = False
) -> QuerySet[Incident]:
    """Incidents with their updates (newest first), affected components and components;
    with `translations`, the updates' translations too (pages: JSON and feeds keep the
    original).

    Internal components are left out unless `include_internal` (the management API and
    /internal/): a public incident may name them, the public never reads them. Which
    incidents are listed is the caller's `incidents`.
    """
    affected = AffectedComponent.objects.select_related("component")
    components = Component.objects.in_page_order()
    if not include_internal:
        affected = affected.exclude(component__internal=True).exclude(
            component__group__internal=True
        )
        components = components.public()
    updates = IncidentUpdate.objects.order_by("-display_at", "-id").prefetch_related(
        Prefetch("affected_components", queryset=affected)
    )
    if translations:
        updates = updates.prefetch_related("translations")
    return incidents.prefetch_related(
        Prefetch(
            "updates",
            queryset=updates,
        ),
        Prefetch("components", queryset=components),
    )


# Silence: how long an open incident has gone without a public update, against the page's
# promised update interval. Amber from AMBER_SHARE of the interval (an update is due soon),
# red from the whole interval (the promise is broken; incidents/reminders.py tells staff).
AMBER_SHARE = 0.8

SilenceState: TypeAlias = Literal["ok", "amber", "red"]


@dataclass(frozen=True)
class Silence:
    incident: Incident
    last_update_at: datetime
    since: timedelta
    state: SilenceState


def open_for_updates(incidents: QuerySet[Incident]) -> QuerySet[Incident]:
    """Incidents that owe the public updates: unresolved incidents and maintenances under
    way. A maintenance that has not started is not silent: its notice says when it will."""
    return incidents.filter(
        Q(kind=IncidentKind.INCIDENT, status__in=UNRESOLVED_STATUSES)
        | Q(kind=IncidentKind.MAINTENANCE, status__in=ACTIVE_MAINTENANCE_STATUSES)
    )


def with_last_update(incidents: QuerySet[Incident]) -> QuerySet[Incident]:
    """Annotates `last_update_at`: when the public last heard of the incident. That is the
    newest update's posting time (not its display time, which staff may set back), or the
    incident's creation when it has none; for a maintenance, no earlier than its start."""
    newest = IncidentUpdate.objects.filter(incident=OuterRef("pk")).order_by("-created_at")
    return incidents.annotate(
        last_update_at=Greatest(
            Coalesce(Subquery(newest.values("created_at")[:1]), "created_at"),
            Coalesce("scheduled_for", "created_at"),
        )
    )


def with_silence(
    incidents: QuerySet[Incident], *, interval: timedelta | None
) -> QuerySet[Incident]:
    """For a list of incidents of every state (the admin's): `last_update_at`, `owes_updates`
    (whether open_for_updates holds) and the promised `update_interval`, for silence_of."""
    owing = open_for_updates(Incident.objects.filter(pk=OuterRef("pk")))
    return with_last_update(incidents).annotate(
        owes_updates=Exists(owing),
        update_interval=Value(interval, output_field=DurationField()),
    )


def silence_of(incident: Incident, *, now: datetime | None = None) -> Silence | None:
    """The silence of an incident read through with_silence; None when it owes no updates."""
    if not incident.owes_updates:  # type: ignore[attr-defined]
        return None
    last: datetime = incident.last_update_at  # type: ignore[attr-defined]
    since = max((now or timezone.now()) - last, timedelta(0))
    return Silence(incident, last, since, silence_state(since, incident.update_interval))  # type: ignore[attr-defined]


def silence_state(since: timedelta, interval: timedelta | None) -> SilenceState:
    """ok / amber / red for a silence of `since` (always ok when reminders are off)."""
    if interval is None or since < interval * AMBER_SHARE:
        return "ok"
    return "red" if since >= interval else "amber"


def open_incidents_silence(
    *, interval: timedelta | None, now: datetime | None = None
) -> list[Silence]:
    """Every open incident (see open_for_updates) with its silence, longest first: one query,
    with each incident's author."""
    now = now or timezone.now()
    incidents = (
        with_silence(open_for_updates(Incident.objects.all()), interval=interval)
        .select_related("created_by")
        .order_by("last_update_at", "id")
    )
    return [silence for incident in incidents if (silence := silence_of(incident, now=now))]


def drafts_waiting() -> list[IncidentDraft]:
    """Drafts Beacon prepared (for checks, alerts or report surges) that nobody has published
    or discarded, newest first, with their components."""
    return list(
        IncidentDraft.objects.filter(published_at__isnull=True, discarded_at__isnull=True)
        .select_related("component")
        .prefetch_related("other_components")
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class SurgeDisagreement:
    surge: ReportSurge
    draft: IncidentDraft | None  # a waiting draft that names the surge's component


def report_surges_disagreeing(*, drafts: list[IncidentDraft]) -> list[SurgeDisagreement]:
    """Open surges of visitor reports for components the page shows operational with no open
    incident (and for "something else"), each with the first of the waiting `drafts` (as
    drafts_waiting reads them) that names its component: one query, two with such surges."""
    surges = [
        surge
        for surge in report_surges_open()
        if surge.component is None or surge.component.status == ComponentStatus.OPERATIONAL
    ]
    held = components_held([surge.component_id for surge in surges if surge.component_id])
    naming: dict[int, IncidentDraft] = {}
    for draft in drafts:
        for component in draft.all_components:
            naming.setdefault(component.pk, draft)
    return [
        SurgeDisagreement(surge=surge, draft=naming.get(surge.component_id or 0))
        for surge in surges
        if surge.component_id not in held
    ]


# Suggest resolving: an open incident whose components have all been operational for this
# long is probably over, and the page (components operational, incident open) says two things.
RESOLVE_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class ResolveSuggestion:
    incident: Incident
    healthy_since: datetime  # when the last of its components became operational


def incidents_to_resolve(
    *, now: datetime | None = None, healthy_for: timedelta = RESOLVE_AFTER
) -> list[ResolveSuggestion]:
    """Open incidents (not maintenances) whose components are all operational and none of
    which changed status in the last `healthy_for`, oldest healthy first: two queries.

    The components' recorded status history decides (ComponentStatusChange), not the
    incident's own updates: when staff, a check or an alert set a component operational
    while the incident's last update still calls it degraded, the page shows it operational,
    and that is the disagreement to settle. An incident naming no component has no evidence
    and is never suggested.
    """
    now = now or timezone.now()
    since = now - healthy_for
    changed_lately = ComponentStatusChange.objects.filter(component=OuterRef("pk"), at__gt=since)
    components = Component.objects.order_by().annotate(changed_lately=Exists(changed_lately))
    incidents = (
        Incident.objects.filter(kind=IncidentKind.INCIDENT, status__in=UNRESOLVED_STATUSES)
        .prefetch_related(Prefetch("components", queryset=components))
        .order_by("started_at", "id")
    )
    suggestions = []
    for incident in incidents:
        components = list(incident.components.all())
        if components and all(
            c.status == ComponentStatus.OPERATIONAL
            and not c.changed_lately  # annotated above
            and c.status_changed_at <= since
            for c in components
        ):
            healthy_since = max(c.status_changed_at for c in components)
            suggestions.append(ResolveSuggestion(incident, healthy_since))
    return sorted(suggestions, key=lambda s: s.healthy_since)


# Uptime over a range of days: the management API's component and group uptime, and API v2's
# public component uptime, in Statuspage's shape.


@dataclass(frozen=True)
class UptimeReport:
    """The days of a range (one list per component, pooled for a group) and the JSON object."""

    days: list[DayUptime]
    body: dict[str, object]


def uptime_report(
    *,
    public_id: str,
    name: str,
    components: list[Component],
    start: str | None,
    end: str | None,
    page: PageSettings,
    include_internal: bool = True,
) -> UptimeReport:
    """Statuspage's uptime object for one component or a group (its components' days pooled).

    Raises UptimeRangeError for a start or end that cannot be read or make no range.
    """
    zone = page.zone
    now = timezone.now()
    today = now.astimezone(zone).date()
    first_days = [first_uptime_day(component, zone) for component in components]
    first_day = min(first_days, default=today)
    range_start, range_end, warnings = uptime_range(first_day, start=start, end=end, today=today)

    first = max(range_start, first_day)  # nothing is counted before
    range_from = datetime.combine(range_start, time(), tzinfo=zone)
    range_until = datetime.combine(range_end + timedelta(days=1), time(), tzinfo=zone)
    in_range: list[DayUptime] = []
    if components and first <= range_end:
        # Read up to the range's end, not today: an old range reads only its own days.
        until = min(now, range_until)
        last = until.astimezone(zone).date() if until < now else today
        days = daily_uptime(components, days=(last - first).days + 1, now=until, zone=zone)
        in_range = [
            day
            for component in components
            for day in days[component.pk]
            if first <= day.day and day.day <= range_end
        ]
    percent = uptime_percent_over(in_range)
    if percent is None:
        warnings.append("There is no uptime data in the range.")

    incidents = Incident.objects.incidents()
    if not include_internal:
        incidents = incidents.public()
    events = (
        incidents.filter(components__in=components, started_at__lt=range_until)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=range_from))
        .order_by("started_at", "id")
        .values_list("public_id", flat=True)
        .distinct()
    )
    body: dict[str, object] = {
        "id": public_id,
        "name": name,
        "range_start": range_start.isoformat(),
        "range_end": range_end.isoformat(),
        "uptime_percentage": None if percent is None else round(percent, 4),
        "major_outage": _seconds_in(in_range, ComponentStatus.MAJOR_OUTAGE),
        "partial_outage": _seconds_in(in_range, ComponentStatus.PARTIAL_OUTAGE),
        "warnings": warnings,
        "related_events": [{"id": event} for event in events],
    }
    return UptimeReport(days=in_range, body=body)


def _seconds_in(days: list[DayUptime], status: ComponentStatusValue) -> int:
    return round(sum(day.seconds.get(status, 0) for day in days))
