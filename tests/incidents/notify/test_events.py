from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from components.models import ComponentStatus, ComponentStatusChange
from components.services import component_set_status
from incidents import services
from incidents.models import IncidentStatus
from incidents.notify.events import maintenance_reminders_due
from incidents.notify.models import EventKind, NotificationEvent
from tests.components.factories import ComponentFactory
from tests.incidents.factories import SubscriberFactory, open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db


def kinds():
    return list(NotificationEvent.objects.order_by("id").values_list("kind", flat=True))


def test_an_incident_announces_its_creation_updates_and_resolution(page):
    api = ComponentFactory(name="API")
    incident = open_incident(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})
    services.incident_post_update(
        incident=incident, status=IncidentStatus.IDENTIFIED, body="A bad deploy."
    )
    services.incident_resolve(incident=incident)
    assert kinds() == [
        EventKind.INCIDENT_CREATED,
        EventKind.INCIDENT_UPDATED,
        EventKind.INCIDENT_RESOLVED,
    ]
    first = NotificationEvent.objects.order_by("id").first()
    assert first.incident == incident
    assert first.update == incident.updates.order_by("created_at", "id").first()
    assert first.component_ids == [api.pk]
    assert first.expanded_at is None


def test_an_update_that_does_not_notify_subscribers_writes_no_event(page):
    incident = open_incident(deliver_notifications=False)
    services.incident_post_update(
        incident=incident, status=IncidentStatus.MONITORING, deliver_notifications=False
    )
    assert kinds() == []


def test_a_backfilled_incident_tells_nobody(page):
    open_incident(backfilled=True, started_at=timezone.now() - timedelta(days=3))
    assert kinds() == []


def test_an_update_that_fails_validation_leaves_no_event(page):
    incident = open_incident()
    with pytest.raises(ValidationError):
        services.incident_post_update(incident=incident, status=IncidentStatus.IN_PROGRESS)
    assert kinds() == [EventKind.INCIDENT_CREATED]


def test_a_maintenance_announces_schedule_start_and_completion(page):
    db = ComponentFactory(name="Database")
    maintenance = schedule_maintenance(
        starts_in=timedelta(minutes=-1), lasts=timedelta(minutes=30), affected_components=[db]
    )
    services.maintenances_advance_due()
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        services.maintenances_advance_due()
    maintenance.refresh_from_db()
    assert maintenance.status == IncidentStatus.COMPLETED
    assert kinds() == [
        EventKind.MAINTENANCE_SCHEDULED,
        EventKind.MAINTENANCE_STARTED,
        EventKind.MAINTENANCE_COMPLETED,
    ]


def test_automatic_maintenance_moves_can_be_silent(page):
    schedule_maintenance(
        starts_in=timedelta(minutes=-1),
        auto_transition_deliver_notifications_at_start=False,
        affected_components=[ComponentFactory()],
    )
    services.maintenances_advance_due()
    assert kinds() == [EventKind.MAINTENANCE_SCHEDULED]


def test_subscribers_are_reminded_once_an_hour_before_a_maintenance(page):
    maintenance = schedule_maintenance(starts_in=timedelta(minutes=90))
    assert maintenance_reminders_due() == 0
    soon = timezone.now() + timedelta(minutes=31)
    assert maintenance_reminders_due(now=soon) == 1
    assert maintenance_reminders_due(now=soon + timedelta(minutes=1)) == 0
    maintenance.refresh_from_db()
    assert maintenance.scheduled_reminded_at == soon
    assert kinds().count(EventKind.MAINTENANCE_REMINDER) == 1


def test_a_maintenance_without_reminder_is_not_reminded(page):
    schedule_maintenance(starts_in=timedelta(minutes=30), scheduled_remind_prior=False)
    assert maintenance_reminders_due() == 0


def test_a_started_maintenance_is_not_reminded(page):
    schedule_maintenance(starts_in=timedelta(minutes=-5))
    assert maintenance_reminders_due() == 0


def test_a_postmortem_is_announced_once_however_often_it_is_published(page):
    incident = open_incident()
    services.incident_resolve(incident=incident)
    services.postmortem_publish(incident=incident, body="What happened.")
    services.postmortem_publish(incident=incident, body="What happened, corrected.")
    assert kinds().count(EventKind.POSTMORTEM_PUBLISHED) == 1


def test_a_postmortem_can_be_published_quietly(page):
    incident = open_incident()
    services.incident_resolve(incident=incident)
    services.postmortem_publish(incident=incident, body="Quiet.", notify_subscribers=False)
    assert EventKind.POSTMORTEM_PUBLISHED not in kinds()


def test_component_changes_are_events_only_while_a_webhook_listens(page):
    api = ComponentFactory(name="API")
    component_set_status(component=api, status=ComponentStatus.DEGRADED_PERFORMANCE)
    assert kinds() == []
    SubscriberFactory(webhook=True)
    change = component_set_status(component=api, status=ComponentStatus.MAJOR_OUTAGE)
    event = NotificationEvent.objects.get(kind=EventKind.COMPONENT_UPDATE)
    assert event.status_change == change
    assert event.component_ids == [api.pk]
    assert event.channels == ["webhook"]


def test_a_silent_update_does_not_announce_its_component_changes_either(page):
    SubscriberFactory(webhook=True)
    api = ComponentFactory(name="API")
    open_incident(
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE}, deliver_notifications=False
    )
    assert kinds() == []


def test_the_event_is_rung_after_commit(page, django_capture_on_commit_callbacks, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with django_capture_on_commit_callbacks() as callbacks:
        open_incident()
    assert len(callbacks) >= 1


# Components sit below incidents: the change is signalled (components.signals.status_changed)
# and written by incidents in the transaction of the change.


def test_a_component_change_that_rolls_back_announces_nothing(page):
    SubscriberFactory(webhook=True)
    api = ComponentFactory(name="API")
    with pytest.raises(RuntimeError), transaction.atomic():
        component_set_status(component=api, status=ComponentStatus.MAJOR_OUTAGE)
        raise RuntimeError("the caller fails after the change")
    assert kinds() == []
    assert not ComponentStatusChange.objects.filter(component=api).exists()


def test_a_component_change_asked_not_to_notify_announces_nothing(page):
    SubscriberFactory(webhook=True)
    api = ComponentFactory(name="API")
    component_set_status(component=api, status=ComponentStatus.MAJOR_OUTAGE, notify=False)
    assert kinds() == []


def test_a_component_change_to_its_own_status_announces_nothing(page):
    SubscriberFactory(webhook=True)
    api = ComponentFactory(name="API")
    assert component_set_status(component=api, status=api.status) is None
    assert kinds() == []


def test_each_component_change_is_announced_once(page):
    SubscriberFactory(webhook=True)
    api = ComponentFactory(name="API")
    changes = [
        component_set_status(component=api, status=status)
        for status in (ComponentStatus.MAJOR_OUTAGE, ComponentStatus.OPERATIONAL)
    ]
    events = NotificationEvent.objects.filter(kind=EventKind.COMPONENT_UPDATE).order_by("id")
    assert [event.status_change for event in events] == changes
