"""Writes to incidents and maintenances. Each public function is one transaction."""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from components.models import Component, ComponentStatus, StatusChangeCause
from components.publishing import public_write
from components.status import component_status_state
from components.status_choices import as_component_status
from incidents.models import (
    MAX_POSTMORTEM_BODY,
    AffectedComponent,
    Impact,
    ImpactOverride,
    Incident,
    IncidentKind,
    IncidentKindValue,
    IncidentStatus,
    IncidentStatusValue,
    IncidentUpdate,
    IncidentUpdateTranslation,
    MaintenanceSeries,
    is_impact_override,
    is_incident_status,
)
from incidents.notify.events import event_for_postmortem, event_for_update
from incidents.postmortems import Postmortem, postmortem_markdown
from statuspage.lib.signals import announce_rows_changed
from statuspage.lib.text import control_character_error

MAINTENANCE_STARTED_BODY = (
    "Scheduled maintenance is currently in progress. We will provide updates as necessary."
)
MAINTENANCE_COMPLETED_BODY = "The scheduled maintenance has been completed."
RESOLVED_BODY = "This incident has been resolved."
MAINTENANCE_SCHEDULED_BODY = "Maintenance has been scheduled."

ComponentStatuses = Mapping[Component, str]


def incident_create(
    *,
    name: str,
    status: IncidentStatusValue,
    body: str = "",
    kind: IncidentKindValue = IncidentKind.INCIDENT,
    component_statuses: ComponentStatuses | None = None,
    affected_components: Iterable[Component] = (),
    impact_override: ImpactOverride = "",
    deliver_notifications: bool = True,
    started_at: datetime | None = None,
    backfilled: bool = False,
    scheduled_for: datetime | None = None,
    scheduled_until: datetime | None = None,
    scheduled_auto_in_progress: bool = True,
    scheduled_auto_completed: bool = True,
    scheduled_remind_prior: bool = True,
    auto_transition_deliver_notifications_at_start: bool = True,
    auto_transition_deliver_notifications_at_end: bool = True,
    created_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    auto_component: Component | None = None,
    internal: bool = False,
    author: User | None = None,
    series: MaintenanceSeries | None = None,
    series_occurrence: datetime | None = None,
) -> Incident:
    """Open an incident (or schedule a maintenance) together with its first update.

    Past times are allowed for history: `started_at` for an incident, `created_at` for when
    a maintenance was announced. `auto_component` marks an incident health checks opened for
    that component (at most one open per component: IntegrityError otherwise).
    """
    name = (name or "").strip()
    errors: dict[str, str] = {}
    if refused := name_error(name):
        errors["name"] = refused
    if impact_override and impact_override not in Impact.values:
        errors["impact_override"] = _unknown_impact(impact_override)
    if kind == IncidentKind.MAINTENANCE:
        if not scheduled_for or not scheduled_until:
            errors["scheduled_for"] = "A maintenance needs a start and an end time."
        elif scheduled_until <= scheduled_for:
            errors["scheduled_until"] = "The maintenance must end after it starts."
    elif scheduled_for or scheduled_until:
        errors["scheduled_for"] = "Only a maintenance has a schedule; this is an incident."
    if backfilled and component_statuses:
        errors["components"] = "A backfilled incident is history: it cannot change components."
    if kind == IncidentKind.INCIDENT and started_at and started_at > timezone.now():
        errors["started_at"] = "An incident cannot start in the future."
    if errors:
        raise ValidationError(errors)

    now = timezone.now()
    if kind == IncidentKind.MAINTENANCE:
        started_at = started_at or scheduled_for or now
        created_at = min(created_at or now, now)
        first_update_at = created_at if status == IncidentStatus.SCHEDULED else min(started_at, now)
    else:
        started_at = started_at or now
        created_at = min(created_at or started_at, now)
        first_update_at = min(started_at, now)
    with public_write():
        incident = Incident.objects.create(
            kind=kind,
            name=name,
            status=status,
            impact_override=impact_override,
            created_at=created_at,
            started_at=started_at,
            updated_at=now,
            backfilled=backfilled,
            scheduled_for=scheduled_for,
            scheduled_until=scheduled_until,
            scheduled_auto_in_progress=scheduled_auto_in_progress,
            scheduled_auto_completed=scheduled_auto_completed,
            scheduled_remind_prior=scheduled_remind_prior,
            auto_transition_deliver_notifications_at_start=(
                auto_transition_deliver_notifications_at_start
            ),
            auto_transition_deliver_notifications_at_end=(
                auto_transition_deliver_notifications_at_end
            ),
            metadata=metadata or {},
            auto_component=auto_component,
            internal=internal,
            created_by=author,
            series=series,
            series_occurrence=series_occurrence,
        )
        incident.components.add(*affected_components)
        incident_post_update(
            incident=incident,
            status=status,
            body=body,
            component_statuses=component_statuses,
            deliver_notifications=deliver_notifications,
            display_at=first_update_at,
            author=author,
        )
    incident.refresh_from_db()
    return incident


def name_error(name: str) -> str | None:
    """Why a (stripped) incident or maintenance name is refused, or None."""
    if not name:
        return "Give the incident a name."
    if len(name) > 255:
        return "Keep the name under 256 characters."
    return control_character_error(name)


def incident_post_update(
    *,
    incident: Incident,
    status: IncidentStatusValue,
    body: str = "",
    component_statuses: ComponentStatuses | None = None,
    deliver_notifications: bool = True,
    display_at: datetime | None = None,
    author: User | None = None,
    cause: StatusChangeCause | None = None,
    locked: bool = False,
) -> IncidentUpdate:
    """Post an update and apply its component statuses, all or nothing.

    Closing an incident returns the components it affected to operational, and completing a
    maintenance returns them to what they were before it, unless the update sets them itself.
    Starting a maintenance puts its components under maintenance the same way.
    `locked`: `incident` is its row as the caller read it with its lock, in the caller's
    transaction, so it is neither locked nor read again.
    """
    if locked and not transaction.get_connection().in_atomic_block:
        raise ValidationError("A locked row is only locked inside its transaction.")
    now = timezone.now()
    display_at = display_at or now
    component_statuses = dict(component_statuses or {})
    with public_write():
        if not locked:
            incident = Incident.objects.select_for_update().get(pk=incident.pk)
        _validate_update(incident, status, component_statuses)
        previous_status = (
            incident.status if IncidentUpdate.objects.filter(incident=incident).exists() else None
        )
        cause = cause or (
            StatusChangeCause.MAINTENANCE if incident.is_maintenance else StatusChangeCause.INCIDENT
        )
        if not incident.backfilled:
            component_statuses = {
                **_implied_component_statuses(incident, status),
                **component_statuses,
            }

        update = IncidentUpdate.objects.create(
            incident=incident,
            status=status,
            body=body.strip(),
            display_at=display_at,
            created_at=now,
            updated_at=now,
            deliver_notifications=deliver_notifications,
            author=author,
        )
        change_at = min(display_at, now)
        for component, stated in component_statuses.items():
            new_status = as_component_status(stated)  # _validate_update checked it
            component.refresh_from_db(
                fields=["status", "status_changed_at", "uptime_accounted_until"]
            )
            old_status = component.status
            component_status_state(
                component=component,
                source=cause,
                status=new_status,
                actor=author,
                at=max(change_at, component.status_changed_at),
                note=f"{incident.name} ({update.get_status_display()})",
                notify=deliver_notifications and not incident.backfilled,
            )
            AffectedComponent.objects.create(
                update=update, component=component, old_status=old_status, new_status=new_status
            )
        incident.components.add(*component_statuses)

        incident.status = status
        incident.updated_at = now
        if status == IncidentStatus.MONITORING and not incident.monitoring_at:
            incident.monitoring_at = display_at
        if status in (IncidentStatus.RESOLVED, IncidentStatus.COMPLETED):
            incident.resolved_at = display_at
        elif incident.resolved_at:
            incident.resolved_at = None  # reopened
        if status == IncidentStatus.IN_PROGRESS and incident.started_at > display_at:
            incident.started_at = display_at
        incident.impact = incident.derived_impact(
            AffectedComponent.objects.filter(update__incident=incident).values_list(
                "new_status", flat=True
            )
        )
        incident.save()
        event_for_update(incident=incident, update=update, previous_status=previous_status)
    return update


def incident_status_from_input(value: str, *, maintenance: bool) -> IncidentStatusValue:
    """`value` (a JSON body's) as a status the services take; an unknown one is refused as
    incident_post_update refuses a status its incident does not have."""
    if not is_incident_status(value):
        raise _status_refused(value, maintenance=maintenance)
    return value


def impact_override_from_input(value: str) -> ImpactOverride:
    """`value` (a JSON body's) as an impact override, "" for none; an unknown one is refused
    as incident_create and incident_edit refuse it."""
    if not is_impact_override(value):
        raise ValidationError({"impact_override": _unknown_impact(value)})
    return value


def _status_refused(status: str, *, maintenance: bool) -> ValidationError:
    kind = "a maintenance" if maintenance else "an incident"
    return ValidationError({"status": f"{status!r} is not a status of {kind}."})


def _unknown_impact(impact: str) -> str:
    return f"Unknown impact {impact!r}."


def _validate_update(
    incident: Incident, status: IncidentStatusValue, component_statuses: dict[Component, str]
) -> None:
    if status not in incident.allowed_statuses:
        raise _status_refused(status, maintenance=incident.is_maintenance)
    unknown = [s for s in component_statuses.values() if s not in ComponentStatus.values]
    if unknown:
        raise ValidationError({"components": f"Unknown component status {unknown[0]!r}."})
    if incident.backfilled and component_statuses:
        raise ValidationError(
            {"components": "A backfilled incident is history: it cannot change components."}
        )


def _implied_component_statuses(
    incident: Incident, status: IncidentStatusValue
) -> dict[Component, str]:
    """Component statuses that a status move implies when the update does not say otherwise."""
    if status == IncidentStatus.RESOLVED:
        return dict.fromkeys(
            incident.components.exclude(status=ComponentStatus.OPERATIONAL),
            ComponentStatus.OPERATIONAL,
        )
    if status == IncidentStatus.IN_PROGRESS:
        return dict.fromkeys(
            incident.components.exclude(status=ComponentStatus.UNDER_MAINTENANCE),
            ComponentStatus.UNDER_MAINTENANCE,
        )
    if status == IncidentStatus.COMPLETED:
        before = _statuses_before_maintenance(incident)
        return {
            component: before.get(component.pk, ComponentStatus.OPERATIONAL)
            for component in incident.components.filter(status=ComponentStatus.UNDER_MAINTENANCE)
        }
    return {}


def _statuses_before_maintenance(incident: Incident) -> dict[int, str]:
    """Each component's status just before the maintenance first put it under maintenance."""
    before: dict[int, str] = {}
    entries = AffectedComponent.objects.filter(
        update__incident=incident, new_status=ComponentStatus.UNDER_MAINTENANCE
    ).order_by("update__created_at", "id")
    for entry in entries:
        if entry.old_status != ComponentStatus.UNDER_MAINTENANCE:
            before.setdefault(entry.component_id, entry.old_status)
    return before


def incident_edit(
    *,
    incident: Incident,
    name: str,
    impact_override: ImpactOverride = "",
    internal: bool | None = None,
) -> Incident:
    """Rename an incident, change its impact override (the impact follows at once) or, with
    `internal`, move it between the public page and /internal/ only."""
    name = (name or "").strip()
    if not name or len(name) > 255:
        raise ValidationError({"name": "Give the incident a name of at most 255 characters."})
    # Only a new name: an old one saved before the rule must not block a change of impact.
    if name != incident.name and (refused := control_character_error(name)):
        raise ValidationError({"name": refused})
    if impact_override and impact_override not in Impact.values:
        raise ValidationError({"impact_override": _unknown_impact(impact_override)})
    with public_write():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        incident.name = name
        incident.impact_override = impact_override
        if internal is not None:
            incident.internal = internal
        incident.impact = incident.derived_impact(
            AffectedComponent.objects.filter(update__incident=incident).values_list(
                "new_status", flat=True
            )
        )
        incident.updated_at = timezone.now()
        incident.save()
    return incident


def incident_resolve(
    *, incident: Incident, author: User | None = None, body: str = ""
) -> IncidentUpdate:
    """The one-click close: resolve an incident, or complete a maintenance."""
    if incident.is_closed:
        raise ValidationError(f"“{incident.name}” is already closed.")
    if incident.is_maintenance:
        status, default_body = IncidentStatus.COMPLETED, MAINTENANCE_COMPLETED_BODY
    else:
        status, default_body = IncidentStatus.RESOLVED, RESOLVED_BODY
    return incident_post_update(
        incident=incident, status=status, body=body or default_body, author=author
    )


def postmortem_publish(
    *,
    incident: Incident,
    body: str | None = None,
    structured: Postmortem | None = None,
    notify_subscribers: bool = True,
) -> Incident:
    """Publish the postmortem; subscribers hear of it once, the first time it is published,
    and only if `notify_subscribers`. A `body` or a `structured` postmortem given is saved
    first, as postmortem_save_draft would."""
    with public_write():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if body is not None or structured is not None:
            _write_postmortem(incident, body=body or "", structured=structured)
        if not incident.postmortem_body:
            raise ValidationError({"postmortem_body": "Write the postmortem before publishing it."})
        if incident.is_maintenance or incident.status not in (
            IncidentStatus.RESOLVED,
            IncidentStatus.POSTMORTEM,
        ):
            raise ValidationError("Only a resolved incident can have a postmortem.")
        now = timezone.now()
        incident.postmortem_published_at = incident.postmortem_published_at or now
        incident.status = IncidentStatus.POSTMORTEM
        incident.updated_at = now
        incident.save()
        if notify_subscribers and not incident.backfilled:
            event_for_postmortem(incident=incident)
    return incident


def maintenances_advance_due(*, now: datetime | None = None) -> int:
    """Start and complete the maintenances whose times have come; returns updates posted.

    Safe to run from several schedulers at once: each maintenance is claimed with a row lock
    that others skip, and its status is checked again under the lock.
    """
    now = now or timezone.now()
    posted = 0
    due_to_start = Incident.objects.maintenances().filter(
        status=IncidentStatus.SCHEDULED, scheduled_auto_in_progress=True, scheduled_for__lte=now
    )
    for pk in due_to_start.values_list("pk", flat=True):
        posted += _advance(pk, IncidentStatus.SCHEDULED, IncidentStatus.IN_PROGRESS, now)
    due_to_end = Incident.objects.active_maintenances().filter(
        scheduled_auto_completed=True, scheduled_until__lte=now
    )
    for pk in due_to_end.values_list("pk", flat=True):
        posted += _advance(pk, None, IncidentStatus.COMPLETED, now)
    return posted


def _advance(
    pk: int,
    from_status: IncidentStatusValue | None,
    to_status: IncidentStatusValue,
    now: datetime,
) -> int:
    with transaction.atomic():  # the claim; incident_post_update writes and publishes
        claimed = Incident.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
        if claimed is None or (from_status and claimed.status != from_status) or claimed.is_closed:
            return 0
        display_at = (
            claimed.scheduled_for
            if to_status == IncidentStatus.IN_PROGRESS
            else claimed.scheduled_until
        )
        incident_post_update(
            incident=claimed,
            status=to_status,
            body=MAINTENANCE_STARTED_BODY
            if to_status == IncidentStatus.IN_PROGRESS
            else MAINTENANCE_COMPLETED_BODY,
            display_at=min(display_at, now),
            cause=StatusChangeCause.MAINTENANCE,
            deliver_notifications=claimed.auto_transition_deliver_notifications_at_start
            if to_status == IncidentStatus.IN_PROGRESS
            else claimed.auto_transition_deliver_notifications_at_end,
        )
    return 1


def incident_add_components(*, incident: Incident, components: Iterable[Component]) -> Incident:
    """Name more components as affected, without changing their statuses."""
    with public_write():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        incident.components.add(*components)
        incident.updated_at = timezone.now()
        incident.save(update_fields=["updated_at"])
    return incident


def maintenance_reschedule(
    *,
    incident: Incident,
    scheduled_for: datetime | None = None,
    scheduled_until: datetime | None = None,
    scheduled_remind_prior: bool | None = None,
    scheduled_auto_in_progress: bool | None = None,
    scheduled_auto_completed: bool | None = None,
    auto_transition_deliver_notifications_at_start: bool | None = None,
    auto_transition_deliver_notifications_at_end: bool | None = None,
) -> Incident:
    """Move a maintenance's window or change its automatic steps; None leaves a field as is."""
    changes = {
        "scheduled_for": scheduled_for,
        "scheduled_until": scheduled_until,
        "scheduled_remind_prior": scheduled_remind_prior,
        "scheduled_auto_in_progress": scheduled_auto_in_progress,
        "scheduled_auto_completed": scheduled_auto_completed,
        "auto_transition_deliver_notifications_at_start": (
            auto_transition_deliver_notifications_at_start
        ),
        "auto_transition_deliver_notifications_at_end": (
            auto_transition_deliver_notifications_at_end
        ),
    }
    changes = {field: value for field, value in changes.items() if value is not None}
    if not changes:
        return Incident.objects.get(pk=incident.pk)
    with public_write():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if not incident.is_maintenance:
            raise ValidationError(
                {"scheduled_for": "Only a maintenance has a schedule; this is an incident."}
            )
        for field, value in changes.items():
            setattr(incident, field, value)
        starts, ends = incident.scheduled_for, incident.scheduled_until
        if starts is None or ends is None or ends <= starts:
            raise ValidationError({"scheduled_until": "The maintenance must end after it starts."})
        if incident.status == IncidentStatus.SCHEDULED:
            incident.started_at = starts
        incident.updated_at = timezone.now()
        incident.save()
    return incident


def maintenance_set_notifications(
    *,
    incident: Incident,
    scheduled_remind_prior: bool | None = None,
    auto_transition_deliver_notifications_at_start: bool | None = None,
    auto_transition_deliver_notifications_at_end: bool | None = None,
) -> None:
    """Turn a maintenance's reminder and automatic-step notifications on or off; None leaves a
    flag as is. Settings of this row alone, read when reminders and automatic steps come due."""
    flags = {
        "scheduled_remind_prior": scheduled_remind_prior,
        "auto_transition_deliver_notifications_at_start": (
            auto_transition_deliver_notifications_at_start
        ),
        "auto_transition_deliver_notifications_at_end": (
            auto_transition_deliver_notifications_at_end
        ),
    }
    flags = {name: value for name, value in flags.items() if value is not None}
    if flags:
        with public_write():
            Incident.objects.filter(pk=incident.pk).update(**flags)
            announce_rows_changed(Incident, [incident.pk])


def incident_update_edit(
    *,
    update: IncidentUpdate,
    body: str | None = None,
    display_at: datetime | None = None,
    deliver_notifications: bool | None = None,
) -> IncidentUpdate:
    """Correct a posted update's words or time; nothing is sent again.

    `deliver_notifications` only records the flag: the update was announced (or not) when it
    was posted. None leaves a field as is.
    """
    now = timezone.now()
    if display_at is not None and display_at > now:
        raise ValidationError({"display_at": "An update cannot be dated in the future."})
    with public_write():
        update = IncidentUpdate.objects.select_for_update().get(pk=update.pk)
        if body is not None:
            update.body = body.strip()
        if display_at is not None:
            update.display_at = display_at
        if deliver_notifications is not None:
            update.deliver_notifications = deliver_notifications
        update.updated_at = now
        update.save()
        Incident.objects.filter(pk=update.incident_id).update(updated_at=now)
    return update


def update_translations_save(
    *,
    update: IncidentUpdate,
    saved: Iterable[IncidentUpdateTranslation] = (),
    deleted: Iterable[IncidentUpdateTranslation] = (),
) -> None:
    """Write staff's translations of an update (one per language), or remove them: what
    readers of those languages see, so a public change."""
    with public_write():
        for translation in saved:
            translation.update = update
            translation.body = translation.body.strip()
            translation.full_clean()
            translation.save()
        for translation in deleted:
            translation.delete()


def incident_delete(*, incident: Incident) -> None:
    """Remove an incident with its updates; component statuses stay as they are.

    An occurrence of a maintenance series is skipped by its series from then on (its start
    becomes an EXDATE), so the series does not make it again.
    """
    with public_write():
        if incident.series_id is not None and incident.series_occurrence is not None:
            series_skip_start(series_id=incident.series_id, start=incident.series_occurrence)
        Incident.objects.filter(pk=incident.pk).delete()


def series_skip_start(*, series_id: int, start: datetime) -> None:
    """Add `start` to a maintenance series' skipped starts (EXDATE)."""
    with public_write():
        series = MaintenanceSeries.objects.select_for_update().filter(pk=series_id).first()
        if series is None:
            return
        skipped = {datetime.fromisoformat(value) for value in series.exdates} | {start}
        series.exdates = sorted({moment.astimezone(UTC).isoformat() for moment in skipped})
        series.updated_at = timezone.now()
        series.save(update_fields=["exdates", "updated_at"])


def postmortem_save_draft(
    *, incident: Incident, body: str = "", structured: Postmortem | None = None
) -> Incident:
    """Write the postmortem without publishing it (a published one shows the new text).

    A `structured` postmortem is stored with its Markdown as the body; a free-form `body`
    replaces any structured one.
    """
    with public_write():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        _write_postmortem(incident, body=body, structured=structured)
        incident.updated_at = timezone.now()
        incident.save(update_fields=["postmortem_body", "postmortem", "updated_at"])
    return incident


def _write_postmortem(incident: Incident, *, body: str, structured: Postmortem | None) -> None:
    if incident.is_maintenance:
        raise ValidationError("A maintenance has no postmortem.")
    if structured is not None and not structured.is_empty:
        body = postmortem_markdown(structured)
        incident.postmortem = structured.to_json()
    else:
        incident.postmortem = {}
    body = (body or "").strip()
    if len(body) > MAX_POSTMORTEM_BODY:
        raise ValidationError(
            {
                "postmortem_body": f"The postmortem is too long: at most {MAX_POSTMORTEM_BODY:,} "
                f"characters of Markdown, this one is {len(body):,}."
            }
        )
    incident.postmortem_body = body


def postmortem_revert(*, incident: Incident) -> Incident:
    """Unpublish the postmortem: the text stays as a draft, the incident is resolved again."""
    with public_write():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.postmortem_published_at is None:
            raise ValidationError("The postmortem is not published.")
        incident.postmortem_published_at = None
        if incident.status == IncidentStatus.POSTMORTEM:
            incident.status = IncidentStatus.RESOLVED
        incident.updated_at = timezone.now()
        incident.save(update_fields=["postmortem_published_at", "status", "updated_at"])
    return incident


def postmortem_delete(*, incident: Incident) -> Incident:
    """Remove the postmortem, published or not; the incident is resolved again."""
    with public_write():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if not incident.postmortem_body and incident.postmortem_published_at is None:
            raise ValidationError("The incident has no postmortem.")
        incident.postmortem_body = ""
        incident.postmortem = {}
        incident.postmortem_published_at = None
        if incident.status == IncidentStatus.POSTMORTEM:
            incident.status = IncidentStatus.RESOLVED
        incident.updated_at = timezone.now()
        incident.save(
            update_fields=[
                "postmortem_body",
                "postmortem",
                "postmortem_published_at",
                "status",
                "updated_at",
            ]
        )
    return incident


def incident_merge_metadata(*, incident: Incident, metadata: dict[str, Any]) -> Incident:
    """Set the tools' objects named in `metadata`; the other tools' objects stay.

    A tool's object is replaced whole, and `{"tool": {}}` empties it: each tool owns its key.
    """
    with public_write():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        incident.metadata = {**incident.metadata, **metadata}
        incident.updated_at = timezone.now()
        incident.save(update_fields=["metadata", "updated_at"])
    return incident
