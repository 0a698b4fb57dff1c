"""What subscribers are told about: one NotificationEvent per thing that happened.

Each event is written in the transaction that caused it (the outbox), so an update that was
posted always has its notification, and one that rolled back never does. After commit the
broker is asked to expand it; the sweeper (delivery.notifications_sweep) covers a lost ask.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from components.models import ComponentStatusChange
from incidents import enqueue
from incidents.models import Incident, IncidentStatus, IncidentUpdate
from incidents.notify.models import (
    Channel,
    EventKind,
    NotificationEvent,
    Subscriber,
    SubscriberState,
)
from statuspage.lib.signals import announce_rows_changed


def event_for_update(
    *, incident: Incident, update: IncidentUpdate, previous_status: str | None
) -> NotificationEvent | None:
    """The event an update announces, when it asks to notify subscribers."""
    if not update.deliver_notifications or incident.backfilled:
        return None
    event = NotificationEvent.objects.create(
        kind=_kind_of_update(incident, update.status, previous_status),
        incident=incident,
        update=update,
        component_ids=sorted(incident.components.values_list("pk", flat=True)),
        created_at=update.created_at,
    )
    _ring_after_commit(event)
    return event


def _kind_of_update(incident: Incident, status: str, previous_status: str | None) -> str:
    first = previous_status is None
    if not incident.is_maintenance:
        if status == IncidentStatus.RESOLVED:
            return EventKind.INCIDENT_RESOLVED
        return EventKind.INCIDENT_CREATED if first else EventKind.INCIDENT_UPDATED
    if status == IncidentStatus.COMPLETED:
        return EventKind.MAINTENANCE_COMPLETED
    if status == IncidentStatus.SCHEDULED and first:
        return EventKind.MAINTENANCE_SCHEDULED
    if status == IncidentStatus.IN_PROGRESS and previous_status in (None, IncidentStatus.SCHEDULED):
        return EventKind.MAINTENANCE_STARTED
    return EventKind.MAINTENANCE_UPDATED


def event_for_postmortem(*, incident: Incident) -> NotificationEvent | None:
    """The postmortem's announcement: once per incident, however often it is republished."""
    return _event_once_per_incident(incident, EventKind.POSTMORTEM_PUBLISHED)


def maintenance_reminders_due(*, now: datetime | None = None) -> int:
    """Remind subscribers of maintenances starting soon; returns how many were reminded."""
    now = now or timezone.now()
    lead = timedelta(minutes=settings.BEACON_MAINTENANCE_REMINDER_MINUTES)
    due = Incident.objects.upcoming_maintenances().filter(
        scheduled_remind_prior=True,
        scheduled_reminded_at__isnull=True,
        scheduled_for__gt=now,
        scheduled_for__lte=now + lead,
    )
    reminded = 0
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            claimed = (
                Incident.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, scheduled_reminded_at__isnull=True)
                .first()
            )
            if claimed is None:
                continue
            Incident.objects.filter(pk=pk).update(scheduled_reminded_at=now)
            announce_rows_changed(Incident, [pk])
            if _event_once_per_incident(claimed, EventKind.MAINTENANCE_REMINDER):
                reminded += 1
    return reminded


def _event_once_per_incident(incident: Incident, kind: str) -> NotificationEvent | None:
    try:
        with transaction.atomic():
            event = NotificationEvent.objects.create(
                kind=kind,
                incident=incident,
                component_ids=sorted(incident.components.values_list("pk", flat=True)),
            )
    except IntegrityError:  # announced before
        return None
    _ring_after_commit(event)
    return event


def event_for_status_change(change: ComponentStatusChange) -> NotificationEvent | None:
    """Statuspage's component_update webhook; only webhook subscribers hear of these.

    Health checks can move components often: no row is written while nobody listens.
    """
    listening = Subscriber.objects.filter(channel=Channel.WEBHOOK, state=SubscriberState.ACTIVE)
    if not listening.exists():
        return None
    event = NotificationEvent.objects.create(
        kind=EventKind.COMPONENT_UPDATE,
        status_change=change,
        component_ids=[change.component_id],
        created_at=timezone.now(),
    )
    _ring_after_commit(event)
    return event


def on_component_status_changed(
    sender: object, *, change: ComponentStatusChange, **kwargs: object
) -> None:
    """Receives components.signals.status_changed, in the transaction of the change."""
    event_for_status_change(change)


def _ring_after_commit(event: NotificationEvent) -> None:
    def ring() -> None:
        enqueue.expand_notification_event(event.pk)

    # robust: a broker that is away must not fail the request; the sweeper rings again.
    transaction.on_commit(ring, robust=True)
