"""Recurring maintenance: series, and their occurrences made as ordinary maintenances.

Each public function is one transaction. An occurrence is an `Incident` of kind
maintenance linked to its series (`series`, `series_occurrence`: the start the rule gave
it), made ahead for `HORIZON` by `series_materialise` (from the beat task that advances
maintenances), so it starts, completes, reminds and notifies as any maintenance does. A
unique constraint on (series, occurrence start) keeps two runs from making one twice.

Staff edit one occurrence (it is then `series_detached`, and the series leaves it be) or the
whole series (its future occurrences that have not started and were not edited apart are
made again); cancelling one adds its start to the series' skipped starts (EXDATE).
"""

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from components.models import Component
from components.publishing import public_write
from incidents.models import Incident, IncidentKind, IncidentStatus, MaintenanceSeries
from incidents.series.recurrence import Recurrence, RuleError, parse_rule
from incidents.services import incident_create, incident_delete, name_error
from statuspage.lib.text import control_character_error

logger = logging.getLogger("beacon")

HORIZON = timedelta(days=30)
# However short the rule's interval, at most this many occurrences are made ahead.
MAX_AHEAD = 60

# Whether occurrences start and complete by themselves, and what subscribers hear.
SERIES_FLAGS = [
    "internal",
    "deliver_notifications",
    "scheduled_auto_in_progress",
    "scheduled_auto_completed",
    "scheduled_remind_prior",
    "auto_transition_deliver_notifications_at_start",
    "auto_transition_deliver_notifications_at_end",
]
SERIES_FIELDS = ["name", "body", "time_zone", "dtstart", "duration", "rule", *SERIES_FLAGS]


def recurrence_of(series: MaintenanceSeries) -> Recurrence:
    """The series' rule as stored (checked when it was written)."""
    return Recurrence(
        text=series.rule, dtstart=series.dtstart.astimezone(ZoneInfo(series.time_zone))
    )


def skipped_starts(series: MaintenanceSeries) -> list[datetime]:
    return sorted(datetime.fromisoformat(value) for value in series.exdates)


def series_preview(
    series: MaintenanceSeries, *, count: int = 5, now: datetime | None = None
) -> list[datetime]:
    """The next `count` starts of a saved series, skipped ones left out, in UTC."""
    return recurrence_of(series).next_starts(
        now or timezone.now(), count, skipped=skipped_starts(series)
    )


def series_check(
    *,
    name: str,
    rule: str,
    dtstart: datetime,
    time_zone: str,
    duration: timedelta,
    body: str = "",
) -> Recurrence:
    """Check what a series would be; ValidationError names the field at fault."""
    errors: dict[str, str] = {}
    if refused := name_error((name or "").strip()):
        errors["name"] = refused
    if body and (refused := control_character_error(body, multiline=True)):
        errors["body"] = refused
    recurrence = None
    try:
        recurrence = parse_rule(rule, dtstart=dtstart, time_zone=time_zone, duration=duration)
    except RuleError as error:
        errors["rule"] = str(error)
    if errors or recurrence is None:
        raise ValidationError(errors)
    return recurrence


def series_create(
    *,
    name: str,
    rule: str,
    dtstart: datetime,
    duration: timedelta,
    time_zone: str = "UTC",
    body: str = "",
    components: Iterable[Component] = (),
    exdates: Iterable[datetime] = (),
    author: User | None = None,
    now: datetime | None = None,
    **flags: bool,
) -> MaintenanceSeries:
    """Write a series and make its occurrences for the horizon."""
    recurrence = series_check(
        name=name, rule=rule, dtstart=dtstart, time_zone=time_zone, duration=duration, body=body
    )
    _check_flags(flags)
    with public_write():
        series = MaintenanceSeries.objects.create(
            name=name.strip(),
            body=body.strip(),
            time_zone=time_zone,
            dtstart=recurrence.dtstart,
            duration=duration,
            rule=recurrence.text,
            exdates=_exdates(exdates),
            created_by=author,
            **flags,
        )
        series.components.set(components)
        _materialise(series, now=now or timezone.now())
    return series


def series_update(
    *,
    series: MaintenanceSeries,
    components: Iterable[Component] | None = None,
    exdates: Iterable[datetime] | None = None,
    now: datetime | None = None,
    **changes: object,
) -> MaintenanceSeries:
    """Change the whole series: its future occurrences that have not started and were not
    edited apart are made again; started, past and detached ones are never touched."""
    unknown = set(changes) - set(SERIES_FIELDS)
    if unknown:
        raise TypeError(f"Unknown series fields: {sorted(unknown)}")
    now = now or timezone.now()
    with public_write():
        series = MaintenanceSeries.objects.select_for_update().get(pk=series.pk)
        for field, value in changes.items():
            setattr(series, field, value)
        if exdates is not None:
            series.exdates = _exdates(exdates)
        recurrence = series_check(
            name=series.name,
            rule=series.rule,
            dtstart=series.dtstart,
            time_zone=series.time_zone,
            duration=series.duration,
            body=series.body,
        )
        series.name = series.name.strip()
        series.rule = recurrence.text
        series.dtstart = recurrence.dtstart
        series.updated_at = now
        series.save()
        if components is not None:
            series.components.set(components)
        remade = _regenerable(series, now=now)
        # Subscribers heard of these starts already (and maybe were reminded): the occurrence
        # made again at one of them is not announced or reminded again.
        announced = {
            start: reminded
            for start, reminded in remade.values_list("series_occurrence", "scheduled_reminded_at")
            if start is not None
        }
        remade.delete()
        _materialise(series, now=now, announced=announced)
    return series


def series_delete(*, series: MaintenanceSeries) -> None:
    """Remove a series and its occurrences that have not started; the others stay, as
    maintenances of their own."""
    with public_write():
        Incident.objects.filter(series=series, status=IncidentStatus.SCHEDULED).delete()
        MaintenanceSeries.objects.filter(pk=series.pk).delete()


def series_occurrence_detach(*, incident: Incident) -> None:
    """Staff edited this occurrence alone: the series no longer makes it again."""
    if incident.series_id is None:
        return
    with public_write():
        Incident.objects.filter(pk=incident.pk).update(series_detached=True)


def series_occurrence_cancel(*, incident: Incident) -> None:
    """Skip one occurrence: its start becomes an EXDATE of the series, and the maintenance
    is removed if it has not started (one that has is left as it is)."""
    if incident.series_id is None or incident.series_occurrence is None:
        raise ValidationError("This maintenance is not part of a series.")
    if incident.status != IncidentStatus.SCHEDULED:
        raise ValidationError("Only an occurrence that has not started can be cancelled.")
    incident_delete(incident=incident)  # which skips its start


def series_materialise(*, now: datetime | None = None) -> int:
    """Make every series' occurrences for the horizon; returns how many were made.

    Idempotent: what exists is skipped, each series is claimed with a row lock others skip,
    and the unique constraint on (series, occurrence start) holds against the rest.
    """
    now = now or timezone.now()
    made = 0
    for pk in MaintenanceSeries.objects.values_list("pk", flat=True):
        with transaction.atomic():
            series = (
                MaintenanceSeries.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            )
            if series is None:
                continue
            try:
                with transaction.atomic():
                    made += _materialise(series, now=now)
            except Exception:  # one broken series must not stop the others
                logger.exception("maintenance series %s: occurrences not made", pk)
    return made


def _materialise(
    series: MaintenanceSeries,
    *,
    now: datetime,
    announced: dict[datetime, datetime | None] | None = None,
) -> int:
    """Make the series' missing occurrences for the horizon. `announced`: starts whose
    occurrence was made before (and replaced), with when subscribers were reminded of it."""
    announced = announced or {}
    recurrence = recurrence_of(series)
    # An occurrence whose window has not ended yet is still worth showing.
    after = now - series.duration
    starts = recurrence.starts_between(after, now + HORIZON, skipped=skipped_starts(series))[
        :MAX_AHEAD
    ]
    if not starts:
        return 0
    existing = set(
        Incident.objects.filter(series=series, series_occurrence__in=starts).values_list(
            "series_occurrence", flat=True
        )
    )
    missing = [start for start in starts if start not in existing]
    components = list(series.components.all()) if missing else []
    made = 0
    for start in missing:
        try:
            with transaction.atomic():
                occurrence = _create_occurrence(
                    series, start, components, announce=start not in announced
                )
                if announced.get(start) is not None:
                    Incident.objects.filter(pk=occurrence.pk).update(
                        scheduled_reminded_at=announced[start]
                    )
        except IntegrityError:  # another run made it first
            continue
        made += 1
    return made


def _create_occurrence(
    series: MaintenanceSeries, start: datetime, components: list[Component], *, announce: bool
) -> Incident:
    return incident_create(
        kind=IncidentKind.MAINTENANCE,
        name=series.name,
        status=IncidentStatus.SCHEDULED,
        body=series.body,
        affected_components=components,
        scheduled_for=start,
        scheduled_until=start + series.duration,
        deliver_notifications=series.deliver_notifications and announce,
        scheduled_auto_in_progress=series.scheduled_auto_in_progress,
        scheduled_auto_completed=series.scheduled_auto_completed,
        scheduled_remind_prior=series.scheduled_remind_prior,
        auto_transition_deliver_notifications_at_start=(
            series.auto_transition_deliver_notifications_at_start
        ),
        auto_transition_deliver_notifications_at_end=(
            series.auto_transition_deliver_notifications_at_end
        ),
        internal=series.internal,
        author=series.created_by,
        series=series,
        series_occurrence=start,
    )


def _regenerable(series: MaintenanceSeries, *, now: datetime) -> QuerySet[Incident]:
    """Occurrences a change of the series makes again: future, not started, not detached."""
    return Incident.objects.filter(
        series=series,
        series_detached=False,
        status=IncidentStatus.SCHEDULED,
        scheduled_for__gt=now,
    )


def _exdates(moments: Iterable[datetime]) -> list[str]:
    return sorted({moment.astimezone(UTC).isoformat() for moment in moments})


def _check_flags(flags: dict[str, bool]) -> None:
    unknown = set(flags) - set(SERIES_FIELDS)
    if unknown:
        raise TypeError(f"Unknown series fields: {sorted(unknown)}")
