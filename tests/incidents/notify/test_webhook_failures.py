"""Webhooks under failure: endpoints that hang or drip, webhooks that are disabled."""

import contextlib
import socket
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Response

from incidents import services
from incidents.notify import delivery
from incidents.notify.models import Delivery, DeliveryState, NotificationEvent, SubscriberState
from incidents.notify.subscriptions import subscriber_quarantine
from statuspage.lib import network
from tests.incidents.factories import StaffFactory, SubscriberFactory, open_incident

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_endpoints(settings):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 0.5


@contextlib.contextmanager
def hanging_endpoints(count):
    """Endpoints that take the connection and never answer (the kernel accepts for them)."""
    sockets = []
    try:
        for _ in range(count):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            sockets.append(listener)
        yield [f"http://127.0.0.1:{s.getsockname()[1]}/hook" for s in sockets]
    finally:
        for listener in sockets:
            listener.close()


@contextlib.contextmanager
def dripping_endpoint():
    """Answers one byte every 0.1 s, for ever: no single read ever times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def drip(conn):
        with conn:
            conn.recv(65536)
            for chunk in [b"HTTP/1.1 200 OK\r\n", *[b"X"] * 100]:
                if stop.is_set():
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(chunk)
                time.sleep(0.1)

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def event_of(incident):
    return NotificationEvent.objects.filter(update__incident=incident).latest("pk")


def deliver(event):
    """Expand and send the event; returns how long the sending took."""
    batches = delivery.event_expand(event_id=event.pk)
    started = time.monotonic()
    for batch in batches:
        delivery.batch_send(batch=batch)
    return time.monotonic() - started


# Concurrent posts within a deadline


@pytest.mark.parametrize("hanging", [4, 7])
def test_hanging_endpoints_cost_a_batch_one_timeout_not_one_each(
    page, httpserver, settings, hanging
):
    # A whole second for the healthy posts to finish on a busy machine; one after another,
    # the hanging ones alone would take four or more.
    settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 1.0
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    healthy = [
        SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook")) for _ in range(3)
    ]
    with hanging_endpoints(hanging) as endpoints:
        stuck = [SubscriberFactory(webhook=True, endpoint=url) for url in endpoints]
        elapsed = deliver(event_of(open_incident()))

    assert elapsed < 3.0  # one after another: hanging × 1 s, 4 s or more
    assert len(httpserver.log) == 3
    for subscriber in healthy:
        assert Delivery.objects.get(subscriber=subscriber).state == DeliveryState.SENT
    for subscriber in stuck:
        row = Delivery.objects.get(subscriber=subscriber)
        assert (row.state, row.error) == (DeliveryState.QUEUED, "timed out after 1 s")
        assert row.next_attempt_at > timezone.now()  # retried later
        assert row.claimed_until is None


def test_an_endpoint_that_drips_its_answer_is_cut_off_at_the_batch_deadline(
    page, httpserver, settings
):
    settings.BEACON_NOTIFY_LEASE_SECONDS = 1  # a deadline of two thirds of a second
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    fine = SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook"))
    with dripping_endpoint() as url:
        dripping = SubscriberFactory(webhook=True, endpoint=url)
        elapsed = deliver(event_of(open_incident()))

    assert elapsed < 1.5
    assert Delivery.objects.get(subscriber=fine).state == DeliveryState.SENT
    row = Delivery.objects.get(subscriber=dripping)
    assert row.state == DeliveryState.QUEUED
    assert row.error == "no complete answer within 0.667 s"
    dripping.refresh_from_db()
    assert dripping.failing_since is not None


def test_a_name_lookup_that_hangs_is_cut_off_at_the_batch_deadline(
    page, httpserver, settings, monkeypatch
):
    settings.BEACON_NOTIFY_LEASE_SECONDS = 1
    real = socket.getaddrinfo

    def slow_dns(host, *args, **kwargs):
        if host == "slow-dns.example.test":
            time.sleep(3)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(network.socket, "getaddrinfo", slow_dns)
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook"))
    stuck = SubscriberFactory(webhook=True, endpoint="https://slow-dns.example.test/hook")
    elapsed = deliver(event_of(open_incident()))
    assert elapsed < 2.5
    assert len(httpserver.log) == 1
    row = Delivery.objects.get(subscriber=stuck)
    assert (row.state, row.error) == (DeliveryState.QUEUED, "no complete answer within 0.667 s")


@contextlib.contextmanager
def flooding_endpoint():
    """Answers 200 and then sends body bytes as fast as it can, for ever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def flood(conn):
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
            chunk = b"x" * 65536
            while not stop.is_set():
                conn.sendall(chunk)

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=flood, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def test_an_endpoint_that_floods_its_answer_is_done_at_its_status_line(page, settings):
    settings.BEACON_NOTIFY_LEASE_SECONDS = 3  # a deadline of two seconds
    with flooding_endpoint() as url:
        flooding = SubscriberFactory(webhook=True, endpoint=url)
        elapsed = deliver(event_of(open_incident()))
    assert elapsed < 1.5
    assert Delivery.objects.get(subscriber=flooding).state == DeliveryState.SENT


def test_hanging_endpoints_are_retried_and_the_healthy_ones_are_not_posted_again(page, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook"))
    with hanging_endpoints(2) as endpoints:
        for url in endpoints:
            SubscriberFactory(webhook=True, endpoint=url)
        deliver(event_of(open_incident()))
        later = timezone.now() + timedelta(minutes=2)
        with time_machine.travel(later, tick=False):
            batches = delivery.notifications_sweep()[1]
            assert len(batches) == 1
            for batch in batches:
                assert delivery.batch_send(batch=batch) == 0
    assert len(httpserver.log) == 1
    assert Delivery.objects.filter(state=DeliveryState.QUEUED, attempts=2).count() == 2


@pytest.mark.django_db(transaction=True)
def test_each_outcome_is_written_down_as_soon_as_its_endpoint_answers(page, httpserver, settings):
    """A worker killed while one endpoint is slow reposts only that one."""
    settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 5
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    fast = SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook"))
    seen_sent = []

    def slow(request):
        deadline = time.monotonic() + 3
        try:
            while time.monotonic() < deadline:
                if Delivery.objects.filter(subscriber=fast, state=DeliveryState.SENT).exists():
                    seen_sent.append(time.monotonic())
                    break
                time.sleep(0.05)
        finally:
            connection.close()
        return Response("ok")

    slow_server = HTTPServer(host="127.0.0.1", port=0)
    slow_server.expect_request("/hook", method="POST").respond_with_handler(slow)
    slow_server.start()
    try:
        SubscriberFactory(webhook=True, endpoint=slow_server.url_for("/hook"))
        deliver(event_of(open_incident()))
    finally:
        slow_server.clear()
        slow_server.stop()
    assert len(seen_sent) == 1  # the fast one was recorded while the slow one still waited
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 2


# Disabled webhooks


def test_a_webhook_disabled_after_the_event_is_not_posted(page, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    disabled = SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook"))
    event = event_of(open_incident())
    batches = delivery.event_expand(event_id=event.pk)
    subscriber_quarantine(subscriber=disabled, reason="HTTP 503 Service Unavailable")
    for batch in batches:
        delivery.batch_send(batch=batch)
    assert httpserver.log == []
    row = Delivery.objects.get()
    assert (row.state, row.error) == (
        DeliveryState.FAILED,
        "not sent: the subscriber was disabled",
    )


def fail_for_a_day(httpserver, subscriber_kwargs, events=2):
    """A webhook that fails for a day, with `events` events queued for it; returns it."""
    httpserver.expect_request("/hook").respond_with_data("down", status=503)
    subscriber = SubscriberFactory(
        webhook=True, endpoint=httpserver.url_for("/hook"), **subscriber_kwargs
    )
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        incident = open_incident()
        for n in range(events - 1):
            services.incident_post_update(incident=incident, status="identified", body=f"{n}")
        for event in NotificationEvent.objects.all():
            deliver(event)
    assert Delivery.objects.filter(state=DeliveryState.QUEUED).count() == events
    return subscriber, start + timedelta(hours=25)


@pytest.fixture
def staff(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return StaffFactory(groups=["Responders"], email="oncall@acme.test")


def test_a_disabled_webhook_is_posted_once_more_at_most_and_its_owner_hears_once(
    page, httpserver, staff, mailoutbox, django_capture_on_commit_callbacks
):
    subscriber, later = fail_for_a_day(httpserver, {"email": "owner@customer.test"}, events=3)
    posts_before = len(httpserver.log)
    with (
        time_machine.travel(later, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)
        for batch in delivery.notifications_sweep()[1]:  # nothing left for it
            delivery.batch_send(batch=batch)

    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.QUARANTINED
    # The batch that disabled it posted; the other events' rows were not posted again.
    assert len(httpserver.log) - posts_before == 1
    assert Delivery.objects.filter(state=DeliveryState.FAILED).count() == 3
    [notice] = mailoutbox
    assert notice.to == ["owner@customer.test"]
    assert notice.cc == ["oncall@acme.test"]
    assert "Webhook disabled" in notice.subject
    assert "HTTP 503" in notice.body


def test_a_disabled_webhook_without_a_contact_is_reported_to_staff(
    page, httpserver, staff, mailoutbox, django_capture_on_commit_callbacks
):
    _, later = fail_for_a_day(httpserver, {}, events=1)
    with (
        time_machine.travel(later, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)
    [notice] = mailoutbox
    assert (notice.to, notice.cc) == (["oncall@acme.test"], [])


def test_a_contact_who_is_also_staff_gets_the_notice_once(
    page, httpserver, staff, mailoutbox, django_capture_on_commit_callbacks
):
    StaffFactory(groups=["Admins"], email="admin@acme.test")
    _, later = fail_for_a_day(httpserver, {"email": "OnCall@acme.test"}, events=1)
    with (
        time_machine.travel(later, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)
    [notice] = mailoutbox
    assert (notice.to, notice.cc) == (["OnCall@acme.test"], ["admin@acme.test"])
