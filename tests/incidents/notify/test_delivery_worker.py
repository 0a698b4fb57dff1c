"""Exactly once with real workers: one killed in the middle of a batch, a batch run twice."""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker

from incidents import tasks
from incidents.notify import delivery
from incidents.notify.models import Channel, Delivery, DeliveryState, NotificationEvent
from statuspage.celery import app
from tests.incidents.factories import StaffFactory, SubscriberFactory, open_incident
from tests.incidents.notify.conftest import CapturingHandler, serving_smtp
from tests.processes import database_env

ROOT = Path(__file__).resolve().parents[3]


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def purge_notify_queue():
    """Empty the queues these workers read: a message another test left there (a staff
    email, say) would otherwise be sent here too."""
    with app.connection_for_write() as conn:
        for queue in ("notify", "default"):
            conn.default_channel.queue_purge(queue)


class KillingHandler(CapturingHandler):
    """Kills the sending worker while it waits for the server to accept message `kill_at`.

    That message is never accepted, so the killed worker leaves: messages it sent (marked
    sent), the rest of its batch (claimed until its lease ends), and later batches (queued).
    """

    kill_at = 0
    worker: subprocess.Popen | None = None
    killed = False

    async def handle_DATA(self, server, session, envelope):
        if not self.killed and len(self.messages) + 1 == self.kill_at:
            self.killed = True
            self.worker.kill()
            self.worker.wait()
            return "451 4.3.0 The worker died before this was accepted"
        return await super().handle_DATA(server, session, envelope)


# The worker with a lower crash limit, so that a test needs two deaths rather than five.
WITH_CRASH_LIMIT = (
    "import sys, django; django.setup(); "
    "from incidents.notify import delivery; delivery.MAX_CRASHES = int(sys.argv.pop(1)); "
    "from celery.__main__ import main; sys.argv[0] = 'celery'; main()"
)


def worker_process(settings, tmp_path, *, max_crashes=None, queues="notify") -> subprocess.Popen:
    env = {
        **os.environ,
        **database_env(),
        "EMAIL_URL": f"smtp://{settings.EMAIL_HOST}:{settings.EMAIL_PORT}",
        "NOTIFY_EMAIL_BATCH_SIZE": "10",
        "NOTIFY_LEASE_SECONDS": "3",
        "NOTIFY_REDISPATCH_SECONDS": "3",
        "BEACON_VAR_DIR": str(tmp_path / "var"),
        "SNAPSHOT_RENDER_ON_WRITE": "0",
        # The test's own cache keys: no other test's page settings or generation apply.
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX") or "beacon",
    }
    celery = [sys.executable, "-m", "celery"]
    if max_crashes is not None:
        celery = [sys.executable, "-c", WITH_CRASH_LIMIT, str(max_crashes)]
        env["DJANGO_SETTINGS_MODULE"] = "statuspage.settings"
    command = [
        *(*celery, "-A", "statuspage", "worker", "-Q", queues),
        *("--pool", "solo", "--without-heartbeat", "--without-mingle", "--without-gossip"),
        *("--loglevel", "warning"),
    ]
    return subprocess.Popen(command, cwd=ROOT, env=env)


needs_postgres_and_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL") or "postgres" not in os.environ.get("DATABASE_URL", ""),
    reason="a worker in another process shares PostgreSQL and Redis with the test",
)


@needs_postgres_and_redis
def test_a_worker_killed_mid_batch_still_gives_each_subscriber_one_message(
    transactional_db, page, settings, tmp_path
):
    with serving_smtp(KillingHandler(), settings) as smtp_server:
        smtp_server.kill_at = 14  # in the middle of the second batch of ten
        _kill_a_worker_and_finish_with_another(smtp_server, settings, tmp_path)


def _kill_a_worker_and_finish_with_another(smtp_server, settings, tmp_path):
    settings.BEACON_NOTIFY_LEASE_SECONDS = 3
    settings.BEACON_NOTIFY_REDISPATCH_SECONDS = 3
    readers = SubscriberFactory.create_batch(35)
    purge_notify_queue()

    first = worker_process(settings, tmp_path)
    smtp_server.worker = first
    try:
        open_incident(name="Checkout is down")  # rings the doorbell after commit
        assert wait_for(lambda: smtp_server.killed), "the worker was never killed"
        assert len(smtp_server.messages) == 13

        second = worker_process(settings, tmp_path)
        try:

            def everyone_has_it():
                tasks.sweep_notifications.delay()
                return (
                    len(smtp_server.messages) >= len(readers)
                    and not Delivery.objects.filter(state=DeliveryState.QUEUED).exists()
                )

            assert wait_for(everyone_has_it, timeout=90)
            time.sleep(1)  # anything sent twice would arrive now
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        purge_notify_queue()

    received = Counter(message["To"] for message in smtp_server.messages)
    assert received == {reader.email: 1 for reader in readers}
    event = NotificationEvent.objects.get()
    assert event.deliveries.filter(state=DeliveryState.SENT).count() == 35


class PoisonHandler(CapturingHandler):
    """Kills the sending worker whenever a message for `poison` arrives, every time."""

    poison = ""
    worker: subprocess.Popen | None = None
    deaths = 0

    async def handle_DATA(self, server, session, envelope):
        if self.poison in envelope.rcpt_tos:
            self.deaths += 1
            self.worker.kill()
            self.worker.wait()
            return "451 4.3.0 The worker died before this was accepted"
        return await super().handle_DATA(server, session, envelope)


@needs_postgres_and_redis
def test_a_message_that_kills_every_worker_fails_after_the_limit_and_the_rest_go_once(
    transactional_db, page, settings, tmp_path
):
    settings.BEACON_NOTIFY_LEASE_SECONDS = 3
    # A superuser: an earlier transactional test may have flushed the groups' migration rows.
    StaffFactory(is_superuser=True, email="oncall@acme.test")
    readers = SubscriberFactory.create_batch(14)
    poison = readers[4]  # in the first batch of ten, with readers after it
    purge_notify_queue()
    with serving_smtp(PoisonHandler(), settings) as smtp_server:
        smtp_server.poison = poison.email
        smtp_server.worker = worker_process(
            settings, tmp_path, max_crashes=2, queues="notify,default"
        )
        try:
            open_incident(name="Checkout is down")
            row = Delivery.objects.filter(subscriber=poison)
            swept = [0.0]

            def poison_given_up():
                if smtp_server.worker.poll() is not None:  # restarted, as systemd would
                    smtp_server.worker = worker_process(
                        settings, tmp_path, max_crashes=2, queues="notify,default"
                    )
                # As beat would: now and then, and never piling up behind a busy worker.
                if time.monotonic() - swept[0] > 1:
                    tasks.sweep_notifications.apply_async(expires=2)
                    swept[0] = time.monotonic()
                return row.filter(state=DeliveryState.FAILED).exists() and any(
                    "Notifications failed" in m["Subject"] for m in smtp_server.messages
                )

            assert wait_for(poison_given_up, timeout=90)
            time.sleep(1)  # anything sent twice would arrive now
        finally:
            smtp_server.worker.terminate()
            smtp_server.worker.wait(timeout=30)
            purge_notify_queue()

    assert smtp_server.deaths == 2
    assert row.get().error == "worker crashed 2 times while sending it; not tried again"
    to_readers = Counter(
        m["To"] for m in smtp_server.messages if "Notifications failed" not in m["Subject"]
    )
    sent = [(m["To"], m["Subject"]) for m in smtp_server.messages]
    assert to_readers == {r.email: 1 for r in readers if r != poison}, sent
    notices = [m for m in smtp_server.messages if "Notifications failed" in m["Subject"]]
    assert len(notices) == 1


@pytest.fixture
def notify_worker(transactional_db):
    purge_notify_queue()
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=["notify"]
    ) as worker:
        yield worker
    purge_notify_queue()


def test_a_batch_delivered_twice_by_the_broker_sends_once(page, smtp_server, notify_worker):
    readers = SubscriberFactory.create_batch(5)
    incident = open_incident()
    event = NotificationEvent.objects.get(update__incident=incident)
    # The worker may have expanded the event already (its doorbell rang at the commit): an
    # expansion is claimed once, so the rows, not this call's answer, say what the batch is.
    delivery.event_expand(event_id=event.pk)
    assert wait_for(lambda: event.deliveries.count() == 5, timeout=30)
    first, *_, last = event.deliveries.order_by("id").values_list("id", flat=True)
    for _ in range(2):
        tasks.send_notification_batch.delay(event.pk, Channel.EMAIL, first, last)

    def all_sent():
        return event.deliveries.filter(state=DeliveryState.SENT).count() == 5

    assert wait_for(all_sent, timeout=30)
    time.sleep(0.5)
    assert Counter(m["To"] for m in smtp_server.messages) == {r.email: 1 for r in readers}
