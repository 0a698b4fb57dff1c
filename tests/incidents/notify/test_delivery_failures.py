"""Deliveries under failure: workers that die, batches that stall, subscribers that go away."""

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from incidents import tasks
from incidents.notify import delivery
from incidents.notify.channels.email import EmailSender
from incidents.notify.models import Delivery, DeliveryState, NotificationEvent, Subscriber
from incidents.notify.subscriptions import subscriber_quarantine
from statuspage.celery import app
from tests.incidents.factories import StaffFactory, SubscriberFactory, open_incident
from tests.incidents.notify.conftest import CapturingHandler, serving_smtp


def announce():
    incident = open_incident()
    return NotificationEvent.objects.get(update__incident=incident)


def to_readers(smtp_server) -> Counter:
    readers = [m for m in smtp_server.messages if "Notifications failed" not in m["Subject"]]
    return Counter(m["To"] for m in readers)


def staff_notices(smtp_server) -> list:
    return [m for m in smtp_server.messages if "Notifications failed" in m["Subject"]]


def after_the_lease(at):
    return at + delivery.lease() + timedelta(seconds=1)


class WorkerDied(BaseException):
    """What a worker killed mid-send amounts to in-process: nothing after it runs."""


@pytest.fixture
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    StaffFactory(groups=["Responders"], email="oncall@acme.test")


# A worker that dies every time


@pytest.mark.django_db
def test_rows_whose_worker_dies_at_every_claim_fail_after_the_limit_and_staff_hear_once(
    page, smtp_server, settings, eager, django_capture_on_commit_callbacks
):
    settings.BEACON_NOTIFY_EMAIL_BATCH_SIZE = 2
    SubscriberFactory.create_batch(3)
    event = announce()
    batches = delivery.event_expand(event_id=event.pk)
    assert len(batches) == 2
    at = timezone.now()
    for _ in range(delivery.MAX_CRASHES):
        for batch in batches:  # claimed by a worker that dies before writing anything
            assert delivery._claim(batch, at)[0]
        at = after_the_lease(at)
        with time_machine.travel(at, tick=False):
            batches = delivery.notifications_sweep()[1]
        assert len(batches) == 2  # handed out again, every time

    with (
        time_machine.travel(at, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        for batch in batches:
            assert delivery.batch_send(batch=batch) == 0

    rows = Delivery.objects.all()
    assert {row.state for row in rows} == {DeliveryState.FAILED}
    assert {row.error for row in rows} == {
        "worker crashed 5 times while sending it; not tried again"
    }
    assert to_readers(smtp_server) == {}
    [notice] = staff_notices(smtp_server)  # two batches found crashed rows: one email
    assert notice["To"] == "oncall@acme.test"
    assert event.subject in notice["Subject"]
    with time_machine.travel(after_the_lease(at), tick=False):
        assert delivery.notifications_sweep() == ([], [])  # nothing comes back


@pytest.mark.django_db
def test_a_crash_is_counted_only_when_nothing_was_written_about_the_row(page, smtp_server):
    """Temporary failures are outcomes: a day of retries is not cut short by the crash limit."""
    reader = SubscriberFactory(email="busy@example.test")
    smtp_server.refuse[reader.email] = "451 4.3.2 Try again later"
    event = announce()
    for batch in delivery.event_expand(event_id=event.pk):
        delivery.batch_send(batch=batch)
    at = timezone.now()
    for _ in range(delivery.MAX_CRASHES + 2):
        at += timedelta(hours=1, seconds=1)
        with time_machine.travel(at, tick=False):
            for batch in delivery.notifications_sweep()[1]:
                delivery.batch_send(batch=batch)
    row = Delivery.objects.get()
    assert (row.state, row.crashes, row.attempts) == (DeliveryState.QUEUED, 0, 8)
    del smtp_server.refuse[reader.email]
    with time_machine.travel(at + timedelta(hours=1, seconds=1), tick=False):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)
    assert Delivery.objects.get().state == DeliveryState.SENT


@pytest.mark.django_db
def test_a_message_that_kills_its_worker_is_cornered_and_the_rest_of_its_batch_is_sent(
    page, smtp_server, settings, eager, monkeypatch, django_capture_on_commit_callbacks
):
    readers = SubscriberFactory.create_batch(7)
    poison = readers[2]
    real_send = EmailSender.send
    deaths = []

    def send(self, row):
        if row.subscriber_id == poison.pk:
            deaths.append(row.pk)
            raise WorkerDied
        return real_send(self, row)

    monkeypatch.setattr(EmailSender, "send", send)
    event = announce()
    batches = delivery.event_expand(event_id=event.pk)
    at = timezone.now()
    poisoned = Delivery.objects.filter(subscriber=poison, state=DeliveryState.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            with time_machine.travel(at, tick=False):
                for batch in batches:
                    with contextlib.suppress(WorkerDied):
                        delivery.batch_send(batch=batch)
            if not poisoned.exists():
                break
            at = after_the_lease(at)
            with time_machine.travel(at, tick=False):
                batches = delivery.notifications_sweep()[1]

    assert len(deaths) == delivery.MAX_CRASHES
    assert to_readers(smtp_server) == {r.email: 1 for r in readers if r != poison}
    row = Delivery.objects.get(subscriber=poison)
    assert (row.state, row.crashes) == (DeliveryState.FAILED, delivery.MAX_CRASHES)
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 6
    assert len(staff_notices(smtp_server)) == 1


# Lost batches come back within a lease and a sweep


@pytest.mark.django_db
def test_a_batch_whose_worker_died_is_handed_out_again_as_soon_as_its_lease_ends(page, smtp_server):
    SubscriberFactory.create_batch(2)
    event = announce()
    (batch,) = delivery.event_expand(event_id=event.pk)
    start = timezone.now()
    delivery._claim(batch, start)
    with time_machine.travel(start + delivery.lease() - timedelta(seconds=1), tick=False):
        assert delivery.notifications_sweep()[1] == []  # still its worker's
    assert delivery.lease() <= timedelta(seconds=30)
    with time_machine.travel(after_the_lease(start), tick=False):
        assert delivery.notifications_sweep()[1] == [batch]
        # Handed out: the next sweeps leave it to its doorbell, no flood of copies.
        assert delivery.notifications_sweep()[1] == []
        assert delivery.notifications_sweep(queue_idle=False)[1] == []
        assert delivery.batch_send(batch=batch) == 2
    assert len(smtp_server.messages) == 2


@pytest.mark.django_db
def test_doorbells_lost_with_redis_are_rung_again_once_the_queue_is_empty(page, smtp_server):
    SubscriberFactory.create_batch(3)
    event = announce()
    lost = delivery.event_expand(event_id=event.pk)
    start = timezone.now()
    grace = delivery.LOST_DOORBELL_GRACE
    with time_machine.travel(start + grace - timedelta(seconds=1), tick=False):
        assert delivery.notifications_sweep(queue_idle=True)[1] == []
    with time_machine.travel(start + grace + timedelta(seconds=1), tick=False):
        # Doorbells still in the queue: they will be answered, nothing is rung twice.
        assert delivery.notifications_sweep(queue_idle=False)[1] == []
        assert delivery.notifications_sweep(queue_idle=True)[1] == lost
        assert delivery.notifications_sweep(queue_idle=True)[1] == []
        for batch in lost + lost:
            delivery.batch_send(batch=batch)
    assert Counter(m["To"] for m in smtp_server.messages).most_common(1)[0][1] == 1
    assert len(smtp_server.messages) == 3


class SlowHandler(CapturingHandler):
    """Takes `pause` seconds to accept each message; `on_data` runs before it answers."""

    pause = 0.0
    stall_first = 0.0
    on_data = None

    async def handle_DATA(self, server, session, envelope):
        first = not self.messages and self.stall_first
        await asyncio.sleep(self.stall_first if first else self.pause)
        if self.on_data:
            await asyncio.to_thread(self.on_data, envelope)
        return await super().handle_DATA(server, session, envelope)


class Competitor(threading.Thread):
    """Another worker: sweeps every 0.1 s and sends whatever it is handed."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.sent = 0

    def run(self):
        try:
            while not self.stop.wait(0.1):
                for batch in delivery.notifications_sweep(queue_idle=True)[1]:
                    self.sent += delivery.batch_send(batch=batch)
        finally:
            connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_batch_slower_than_its_lease_keeps_it_while_it_works(page, settings):
    # Renewed every 0.67 s, between messages of 0.45 s: nearly a second to spare for a
    # loaded machine.
    settings.BEACON_NOTIFY_LEASE_SECONDS = 2
    handler = SlowHandler()
    handler.pause = 0.45
    with serving_smtp(handler, settings):
        readers = SubscriberFactory.create_batch(7)
        event = announce()
        (batch,) = delivery.event_expand(event_id=event.pk)
        competitor = Competitor()
        competitor.start()
        try:
            started = time.monotonic()
            assert delivery.batch_send(batch=batch) == 7
            assert time.monotonic() - started > 3  # one lease and a half
        finally:
            competitor.stop.set()
            competitor.join(5)
    assert competitor.sent == 0
    assert Counter(m["To"] for m in handler.messages) == {r.email: 1 for r in readers}


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_stalled_past_its_lease_leaves_the_rest_to_its_successor(page, settings):
    """Only the message in hand during the stall can go twice; the rest go once."""
    settings.BEACON_NOTIFY_LEASE_SECONDS = 1
    handler = SlowHandler()
    handler.stall_first = 2.5
    with serving_smtp(handler, settings):
        readers = SubscriberFactory.create_batch(6)
        event = announce()
        (batch,) = delivery.event_expand(event_id=event.pk)
        competitor = Competitor()
        competitor.start()
        try:
            stalled = delivery.batch_send(batch=batch)
        finally:
            competitor.stop.set()
            competitor.join(5)
    assert stalled == 1  # the message it held; its renewal found the others taken
    assert competitor.sent >= 5
    received = Counter(m["To"] for m in handler.messages)
    assert set(received) == {r.email for r in readers}
    assert sum(received.values()) <= 7
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 6


# Subscribers that go away


@pytest.mark.django_db
def test_rows_of_subscribers_disabled_after_the_event_are_never_sent(page, smtp_server):
    kept = SubscriberFactory(email="kept@example.test")
    bounced = SubscriberFactory(email="bounced@example.test")
    pending = SubscriberFactory(email="pending@example.test")
    event = announce()
    batches = delivery.event_expand(event_id=event.pk)
    subscriber_quarantine(subscriber=bounced, reason="550 No such user")
    Subscriber.objects.filter(pk=pending.pk).update(state="unconfirmed")
    for batch in batches:
        assert delivery.batch_send(batch=batch) == 1
    assert to_readers(smtp_server) == {kept.email: 1}
    for subscriber in (bounced, pending):
        row = Delivery.objects.get(subscriber=subscriber)
        assert row.state == DeliveryState.FAILED
        assert row.error == "not sent: the subscriber was disabled"


@pytest.mark.django_db(transaction=True)
def test_a_subscriber_disabled_while_its_batch_runs_is_not_sent_to(page, settings):
    settings.BEACON_NOTIFY_LEASE_SECONDS = 1
    handler = SlowHandler()
    handler.pause = 0.2
    with serving_smtp(handler, settings):
        readers = SubscriberFactory.create_batch(8)
        leaving = readers[-1]

        def disable_the_last_once_the_first_is_in(envelope):
            if readers[0].email in envelope.rcpt_tos:
                Subscriber.objects.filter(pk=leaving.pk).update(state="quarantined")
                connection.close()

        handler.on_data = disable_the_last_once_the_first_is_in
        event = announce()
        (batch,) = delivery.event_expand(event_id=event.pk)
        assert delivery.batch_send(batch=batch) == 7
    assert leaving.email not in {m["To"] for m in handler.messages}
    assert Delivery.objects.get(subscriber=leaving).state == DeliveryState.FAILED


needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="asks a real Redis broker for its queue's length"
)


@needs_redis
@pytest.mark.django_db
def test_the_sweeper_rings_again_only_when_no_doorbell_waits_in_the_queue(page, smtp_server):
    SubscriberFactory.create_batch(2)
    event = announce()
    delivery.event_expand(event_id=event.pk)  # its doorbells never reach the queue
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("notify")
        try:
            assert tasks._notify_queue_is_empty()
            with time_machine.travel(timezone.now() + timedelta(seconds=20), tick=False):
                tasks.sweep_notifications()  # rings again: one doorbell now waits
                assert not tasks._notify_queue_is_empty()
                tasks.sweep_notifications()  # a doorbell waits: nothing rung twice
            assert conn.default_channel.queue_declare("notify", passive=True).message_count == 1
        finally:
            conn.default_channel.queue_purge("notify")


@pytest.mark.django_db
def test_a_mail_server_that_never_answers_costs_a_batch_its_timeout_and_loses_nothing(
    page, settings
):
    from django.conf import settings as configured

    # The default leaves a message room to be sent between two renewals of the lease.
    assert 0 < configured.EMAIL_TIMEOUT <= configured.BEACON_NOTIFY_LEASE_SECONDS / 3
    SubscriberFactory.create_batch(3)
    event = announce()
    with contextlib.closing(socket.socket()) as silent:  # takes connections, says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = silent.getsockname()
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 0.5
        started = time.monotonic()
        for batch in delivery.event_expand(event_id=event.pk):
            assert delivery.batch_send(batch=batch) == 0
        assert time.monotonic() - started < 3
    rows = Delivery.objects.all()
    assert {(row.state, row.claimed_until) for row in rows} == {(DeliveryState.QUEUED, None)}
    assert all("timed out" in row.error for row in rows)


@pytest.mark.django_db
def test_an_event_whose_expansion_kills_its_worker_is_given_up_after_the_limit(
    page, settings, eager, monkeypatch, mailoutbox, django_capture_on_commit_callbacks
):
    SubscriberFactory.create_batch(2)
    event = announce()

    def dies(*args, **kwargs):
        raise WorkerDied

    monkeypatch.setattr(delivery, "_insert_deliveries", dies)
    at = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(delivery.MAX_CRASHES):
            with time_machine.travel(at, tick=False):
                with pytest.raises(WorkerDied):
                    delivery.event_expand(event_id=event.pk)
                # The doorbell redelivered at once (prefork requeues it) finds it claimed.
                assert delivery.event_expand(event_id=event.pk) == []
                assert delivery.notifications_sweep()[0] == []
            at = after_the_lease(at) + delivery.EXPAND_GRACE
            with time_machine.travel(at, tick=False):
                assert delivery.notifications_sweep()[0] == [event.pk]
        with time_machine.travel(at, tick=False):
            assert delivery.event_expand(event_id=event.pk) == []  # given up, not run
            assert delivery.event_expand(event_id=event.pk) == []

    event.refresh_from_db()
    assert event.expanded_at is not None
    assert not Delivery.objects.exists()
    [notice] = mailoutbox
    assert notice.to == ["oncall@acme.test"]
    assert "Notification not sent" in notice.subject
    assert f"died {delivery.MAX_CRASHES} times" in notice.body
    with time_machine.travel(after_the_lease(at), tick=False):
        assert delivery.notifications_sweep() == ([], [])


@pytest.mark.django_db
def test_an_event_expanded_once_is_not_counted_as_a_crash_by_its_second_doorbell(page, smtp_server):
    SubscriberFactory.create_batch(2)
    event = announce()
    first = delivery.event_expand(event_id=event.pk)
    assert delivery.event_expand(event_id=event.pk) == first  # harmless, as before
    event.refresh_from_db()
    assert (event.expand_attempts, event.expand_claimed_until) == (1, None)
