"""The ledger: every subscriber of an event gets it once, whatever is lost or repeated."""

from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from components.models import ComponentStatus
from incidents.notify import delivery
from incidents.notify.models import Delivery, DeliveryState, NotificationEvent, SubscriberState
from tests.components.factories import ComponentFactory
from tests.incidents.factories import SubscriberFactory, open_incident

pytestmark = pytest.mark.django_db


def announce(**kwargs):
    incident = open_incident(**kwargs)
    return incident, NotificationEvent.objects.get(update__incident=incident)


def deliver_all(event, *, now=None):
    for batch in delivery.event_expand(event_id=event.pk, now=now):
        delivery.batch_send(batch=batch, now=now)


def recipients(smtp_server):
    return Counter(message["To"] for message in smtp_server.messages)


def test_only_subscribers_of_the_affected_components_hear_of_an_incident(page, smtp_server):
    api, db = ComponentFactory(name="API"), ComponentFactory(name="Database")
    everyone = SubscriberFactory(email="all@example.test")
    api_reader = SubscriberFactory(email="api@example.test", components=[api])
    SubscriberFactory(email="db@example.test", components=[db])
    SubscriberFactory(email="pending@example.test", unconfirmed=True)
    SubscriberFactory(email="bounced@example.test", quarantined=True)
    SubscriberFactory(webhook=True, state="unconfirmed")
    _, event = announce(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})

    deliver_all(event)

    assert recipients(smtp_server) == {everyone.email: 1, api_reader.email: 1}
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}


def test_an_incident_without_components_reaches_those_who_follow_everything(page, smtp_server):
    SubscriberFactory(email="all@example.test")
    SubscriberFactory(email="api@example.test", components=[ComponentFactory()])
    _, event = announce()
    deliver_all(event)
    assert recipients(smtp_server) == {"all@example.test": 1}


def test_expanding_twice_writes_each_delivery_once(page, smtp_server):
    SubscriberFactory.create_batch(3)
    _, event = announce()
    first = delivery.event_expand(event_id=event.pk)
    second = delivery.event_expand(event_id=event.pk)
    assert Delivery.objects.filter(event=event).count() == 3
    assert first == second  # the same batches, handed out again: harmless
    event.refresh_from_db()
    assert event.subject and event.expanded_at


def test_a_batch_sent_twice_sends_each_message_once(page, smtp_server, settings):
    settings.BEACON_NOTIFY_EMAIL_BATCH_SIZE = 4
    SubscriberFactory.create_batch(10)
    _, event = announce()
    batches = delivery.event_expand(event_id=event.pk)
    assert len(batches) == 3
    for batch in batches + batches:
        delivery.batch_send(batch=batch)
    assert len(smtp_server.messages) == 10
    assert set(recipients(smtp_server).values()) == {1}


def test_a_temporary_refusal_is_retried_later_and_sent_once(page, smtp_server):
    reader = SubscriberFactory(email="busy@example.test")
    smtp_server.refuse[reader.email] = "451 4.3.2 Try again later"
    _, event = announce()
    deliver_all(event)
    row = Delivery.objects.get(subscriber=reader)
    assert row.state == DeliveryState.QUEUED
    assert row.attempts == 1
    assert row.error.startswith("451")
    assert row.next_attempt_at > timezone.now()
    assert delivery.notifications_sweep() == ([], [])  # not due yet

    del smtp_server.refuse[reader.email]
    later = timezone.now() + timedelta(minutes=2)
    with time_machine.travel(later, tick=False):
        unexpanded, batches = delivery.notifications_sweep()
        assert unexpanded == []
        assert [(b.event_id, b.channel) for b in batches] == [(event.pk, "email")]
        for batch in batches:
            delivery.batch_send(batch=batch)
    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.SENT, 2)
    assert recipients(smtp_server) == {reader.email: 1}


def test_a_permanent_refusal_is_recorded_and_the_address_stops(page, smtp_server):
    reader = SubscriberFactory(email="gone@example.test")
    other = SubscriberFactory(email="here@example.test")
    smtp_server.refuse[reader.email] = "550 5.1.1 No such user"
    _, event = announce()
    deliver_all(event)
    row = Delivery.objects.get(subscriber=reader)
    assert row.state == DeliveryState.FAILED
    assert "550" in row.error
    reader.refresh_from_db()
    assert reader.state == SubscriberState.QUARANTINED
    assert recipients(smtp_server) == {other.email: 1}


def test_a_failure_after_a_day_of_trying_is_final(page, smtp_server):
    reader = SubscriberFactory(email="busy@example.test")
    smtp_server.refuse[reader.email] = "452 4.2.2 Mailbox full"
    _, event = announce()
    deliver_all(event)
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)
    row = Delivery.objects.get(subscriber=reader)
    assert row.state == DeliveryState.FAILED
    assert "452" in row.error


def test_a_mail_server_that_is_down_loses_nothing(page, smtp_server, settings):
    SubscriberFactory.create_batch(3)
    _, event = announce()
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nothing listens there
    deliver_all(event)
    assert Delivery.objects.filter(state=DeliveryState.QUEUED).count() == 3
    assert not SubscriberFactory._meta.model.objects.exclude(failing_since=None).exists()

    settings.EMAIL_PORT = port
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)
    assert len(smtp_server.messages) == 3
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 3


def test_an_event_whose_doorbell_was_lost_is_expanded_by_the_sweeper(page, smtp_server):
    SubscriberFactory()
    _, event = announce()
    assert delivery.notifications_sweep() == ([], [])  # give the doorbell its chance
    with time_machine.travel(timezone.now() + timedelta(minutes=1), tick=False):
        assert delivery.notifications_sweep()[0] == [event.pk]


def test_a_batch_whose_worker_died_is_handed_out_again_when_its_lease_ends(page, smtp_server):
    SubscriberFactory.create_batch(2)
    _, event = announce()
    (batch,) = delivery.event_expand(event_id=event.pk)
    # A worker claimed the rows and died before sending anything.
    claimed, _ = delivery._claim(batch, timezone.now())
    assert len(claimed) == 2
    assert delivery.batch_send(batch=batch) == 0  # the rows are still leased
    assert delivery.notifications_sweep()[1] == []
    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=False):
        (again,) = delivery.notifications_sweep()[1]
        assert delivery.batch_send(batch=again) == 2
    assert len(smtp_server.messages) == 2


def test_unsubscribing_before_the_batch_runs_means_no_message(page, smtp_server):
    leaving = SubscriberFactory()
    _, event = announce()
    (batch,) = delivery.event_expand(event_id=event.pk)
    leaving.delete()
    assert delivery.batch_send(batch=batch) == 0
    assert smtp_server.messages == []


def test_retry_delays_double_up_to_an_hour():
    assert [delivery.retry_delay(n).total_seconds() for n in (1, 2, 3, 7, 20)] == [
        60,
        120,
        240,
        3600,
        3600,
    ]


def test_batches_lost_with_the_broker_are_handed_out_again(page, smtp_server):
    SubscriberFactory.create_batch(2)
    _, event = announce()
    lost = delivery.event_expand(event_id=event.pk)  # Redis restarted: never delivered
    assert delivery.notifications_sweep()[1] == []  # they may still be waiting in a queue
    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=False):
        again = delivery.notifications_sweep()[1]
        assert again == lost
        for batch in again:
            delivery.batch_send(batch=batch)
    assert len(smtp_server.messages) == 2
