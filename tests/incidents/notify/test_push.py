"""Browser push: each update encrypted to each browser, signed with the page's VAPID key,
sent once, and a subscription the push service has dropped removed at once.

The push service is a local pytest-httpserver: it checks the VAPID signature against the key
the page serves and decrypts the payload with the key pair the test's "browser" made.
"""

import os
import stat
import threading
from datetime import timedelta

import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.urls import reverse
from django.utils import timezone

from components.models import ComponentStatus
from incidents import services
from incidents.notify import delivery, push, vapid
from incidents.notify.models import (
    Channel,
    Delivery,
    DeliveryState,
    NotificationEvent,
    Subscriber,
    SubscriberState,
)
from tests.components.factories import ComponentFactory
from tests.incidents.factories import SubscriberFactory, open_incident, schedule_maintenance
from tests.incidents.notify.push_service import Browser, b64url, verify_vapid

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_push_service(settings, tmp_path):
    """pytest-httpserver listens on 127.0.0.1; each test has its own var dir, so its own key."""
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 5
    settings.VAR_DIR = tmp_path


def push_subscriber(httpserver, browser, path="/push/abc", **kwargs):
    # Stored as push_subscribe stores it; the endpoint is http because the test's push
    # service is (push_subscribe itself refuses anything but https: see test_push_views).
    return SubscriberFactory(
        channel=Channel.PUSH,
        email="",
        endpoint=httpserver.url_for(path),
        push_p256dh=browser.p256dh,
        push_auth=browser.subscription("")["keys"]["auth"],
        **kwargs,
    )


def deliver_all():
    for event in NotificationEvent.objects.order_by("id"):
        for batch in delivery.event_expand(event_id=event.pk):
            delivery.batch_send(batch=batch)


def served_key(client) -> str:
    return client.get(reverse("push-key")).json()["public_key"]


def test_an_update_reaches_the_browser_encrypted_and_signed_with_the_served_key(
    page, client, httpserver
):
    httpserver.expect_request("/push/abc", method="POST").respond_with_data("", status=201)
    browser = Browser()
    push_subscriber(httpserver, browser)
    api = ComponentFactory(name="API")
    incident = open_incident(
        name="API errors",
        body="We are looking into failing requests.",
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE},
    )

    deliver_all()

    (request,) = [request for request, _ in httpserver.log]
    claims = verify_vapid(
        request.headers["Authorization"],
        public_key=served_key(client),
        audience=httpserver.url_for("/").rstrip("/"),
    )
    assert claims["sub"] == "mailto:status@localhost"
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert request.headers["TTL"] == str(24 * 3600)
    assert request.headers["Urgency"] == "high"  # a major outage
    shown = browser.decrypt(request.get_data())
    assert shown["title"] == NotificationEvent.objects.get().subject
    assert "API errors" in shown["title"]
    assert "We are looking into failing requests." in shown["body"]
    assert shown["url"].startswith("https://status.acme.test/")
    assert incident.public_id in shown["url"]
    assert shown["tag"].startswith("incident-")
    assert Delivery.objects.get().state == DeliveryState.SENT


def test_each_browser_gets_its_own_encryption(page, httpserver):
    httpserver.expect_request("/push/one").respond_with_data("", status=201)
    httpserver.expect_request("/push/two").respond_with_data("", status=201)
    first, second = Browser(), Browser()
    push_subscriber(httpserver, first, "/push/one")
    push_subscriber(httpserver, second, "/push/two")
    open_incident(name="Slow logins")

    deliver_all()

    bodies = {request.path: request.get_data() for request, _ in httpserver.log}
    assert (
        first.decrypt(bodies["/push/one"])["title"] == second.decrypt(bodies["/push/two"])["title"]
    )
    with pytest.raises(Exception):  # noqa: B017 - http_ece's own error for a wrong key
        first.decrypt(bodies["/push/two"])
    assert b"Slow logins" not in bodies["/push/one"]


def test_a_minor_incident_is_pushed_with_normal_urgency(page, httpserver):
    httpserver.expect_request("/push/abc").respond_with_data("", status=201)
    push_subscriber(httpserver, Browser())
    open_incident(component_statuses={ComponentFactory(): ComponentStatus.DEGRADED_PERFORMANCE})

    deliver_all()

    (request,) = [request for request, _ in httpserver.log]
    assert request.headers["Urgency"] == "normal"


def test_exactly_one_push_per_update_when_the_tasks_run_twice(page, httpserver):
    httpserver.expect_request("/push/abc").respond_with_data("", status=201)
    browser = Browser()
    push_subscriber(httpserver, browser)
    incident = open_incident(name="Queue backlog")
    services.incident_post_update(incident=incident, status="identified", body="Found it.")

    deliver_all()
    deliver_all()

    bodies = [browser.decrypt(request.get_data()) for request, _ in httpserver.log]
    assert len(bodies) == 2
    assert "Found it." in bodies[1]["body"]
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 2


@pytest.mark.parametrize("status", [404, 410])
def test_a_subscription_the_push_service_dropped_is_removed_at_once(page, httpserver, status):
    httpserver.expect_request("/push/gone").respond_with_data("", status=status)
    httpserver.expect_request("/push/live").respond_with_data("", status=201)
    gone = push_subscriber(httpserver, Browser(), "/push/gone")
    live = push_subscriber(httpserver, Browser(), "/push/live")
    incident = open_incident()

    deliver_all()

    assert not Subscriber.objects.filter(pk=gone.pk).exists()
    assert Delivery.objects.get().subscriber == live
    services.incident_resolve(incident=incident)
    deliver_all()
    paths = [request.path for request, _ in httpserver.log]
    assert paths.count("/push/gone") == 1
    assert paths.count("/push/live") == 2


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_busy_push_service_is_tried_again_through_the_ledger(page, httpserver, status):
    httpserver.expect_oneshot_request("/push/abc").respond_with_data("", status=status)
    httpserver.expect_request("/push/abc").respond_with_data("", status=201)
    browser = Browser()
    subscriber = push_subscriber(httpserver, browser)
    open_incident(name="Retry me")

    deliver_all()

    row = Delivery.objects.get()
    assert (row.state, row.attempts) == (DeliveryState.QUEUED, 1)
    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1), tick=False):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)
            delivery.batch_send(batch=batch)

    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.SENT, 2)
    first, second = [request for request, _ in httpserver.log]
    assert browser.decrypt(second.get_data())["title"] == browser.decrypt(first.get_data())["title"]
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_a_push_the_service_refuses_for_good_fails_without_retries(page, httpserver):
    httpserver.expect_request("/push/abc").respond_with_data("", status=413)
    subscriber = push_subscriber(httpserver, Browser())
    open_incident()

    deliver_all()

    row = Delivery.objects.get()
    assert row.state == DeliveryState.FAILED
    assert row.error.startswith("HTTP 413 ")
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_a_push_to_a_private_address_is_refused_at_send_time(page, settings, httpserver):
    httpserver.expect_request("/push/abc").respond_with_data("", status=201)
    push_subscriber(httpserver, Browser())
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = False
    open_incident()

    deliver_all()

    row = Delivery.objects.get()
    assert row.state == DeliveryState.FAILED
    assert "private, loopback or reserved" in row.error
    assert httpserver.log == []


def test_push_subscribers_hear_what_email_subscribers_hear(page, httpserver):
    httpserver.expect_request("/push/api").respond_with_data("", status=201)
    httpserver.expect_request("/push/web").respond_with_data("", status=201)
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    push_subscriber(httpserver, Browser(), "/push/api", components=[api])
    push_subscriber(httpserver, Browser(), "/push/web", components=[web])
    open_incident(component_statuses={api: ComponentStatus.PARTIAL_OUTAGE})
    schedule_maintenance(component_statuses={web: ComponentStatus.UNDER_MAINTENANCE})

    deliver_all()

    events = NotificationEvent.objects.order_by("id")
    for event in events:
        email_like = set(event.channels) >= {Channel.EMAIL}
        assert (Channel.PUSH in event.channels) == email_like
    paths = sorted(request.path for request, _ in httpserver.log)
    assert paths == ["/push/api", "/push/web"]


def test_the_vapid_key_is_made_once_and_kept_private(tmp_path, settings):
    settings.VAR_DIR = tmp_path / "fresh"
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(vapid.public_key())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(keys)) == 1
    path = settings.VAR_DIR / vapid.KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    vapid._load.cache_clear()  # another process: reads the file, makes no new key
    assert vapid.public_key() == keys[0]


def test_a_configured_key_is_used_and_no_file_is_made(tmp_path, settings, client):
    settings.VAR_DIR = tmp_path / "pod"
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    settings.BEACON_PUSH_VAPID_PRIVATE_KEY = pem

    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert served_key(client) == b64url(point)
    assert not (settings.VAR_DIR / vapid.KEY_FILE).exists()


# The browser renews its subscription: the service worker posts the new one with the old
# endpoint and auth secret (test_push_views.py for the endpoint, test_push_browser.py for the
# worker). Endpoints here are the local push service's, so http: built as push_subscription_parse
# would build them, which refuses http.
def renewal(httpserver, browser, path):
    made = browser.subscription(httpserver.url_for(path))
    return push.PushSubscription(
        endpoint=made["endpoint"], p256dh=made["keys"]["p256dh"], auth=made["keys"]["auth"]
    )


def test_a_renewed_subscription_keeps_its_components_and_gets_the_next_push(page, httpserver):
    httpserver.expect_request("/push/old").respond_with_data("", status=410)
    httpserver.expect_request("/push/new").respond_with_data("", status=201)
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    before, after = Browser(), Browser()
    subscriber = push_subscriber(httpserver, before, "/push/old", components=[api])

    moved = push.push_resubscribe(
        old_endpoint=subscriber.endpoint,
        old_auth=subscriber.push_auth,
        subscription=renewal(httpserver, after, "/push/new"),
    )

    assert moved.pk == subscriber.pk
    assert Subscriber.objects.get().endpoint == httpserver.url_for("/push/new")
    assert list(moved.components.all()) == [api]
    assert not moved.all_components
    open_incident(name="API errors", component_statuses={api: ComponentStatus.MAJOR_OUTAGE})
    open_incident(name="Web slow", component_statuses={web: ComponentStatus.DEGRADED_PERFORMANCE})
    deliver_all()
    (request,) = [request for request, _ in httpserver.log]
    assert request.path == "/push/new"
    assert "API errors" in after.decrypt(request.get_data())["title"]
    with pytest.raises(Exception):  # noqa: B017 - http_ece's own error for a wrong key
        before.decrypt(request.get_data())
    assert Delivery.objects.get().state == DeliveryState.SENT


def test_the_same_renewal_posted_twice_changes_nothing_the_second_time(page, httpserver):
    api = ComponentFactory()
    subscriber = push_subscriber(httpserver, Browser(), "/push/old", components=[api])
    renewed = renewal(httpserver, Browser(), "/push/new")

    first = push.push_resubscribe(
        old_endpoint=subscriber.endpoint, old_auth=subscriber.push_auth, subscription=renewed
    )
    second = push.push_resubscribe(
        old_endpoint=subscriber.endpoint, old_auth=subscriber.push_auth, subscription=renewed
    )

    assert first.pk == second.pk == subscriber.pk
    assert Subscriber.objects.count() == 1
    assert list(Subscriber.objects.get().components.all()) == [api]


def test_a_renewal_with_only_new_keys_at_the_same_endpoint_takes_them(page, httpserver):
    subscriber = push_subscriber(httpserver, Browser(), "/push/same")
    renewed = renewal(httpserver, Browser(), "/push/same")

    push.push_resubscribe(
        old_endpoint=subscriber.endpoint, old_auth=subscriber.push_auth, subscription=renewed
    )

    row = Subscriber.objects.get()
    assert (row.push_p256dh, row.push_auth) == (renewed.p256dh, renewed.auth)


def test_a_renewal_revives_a_subscriber_that_was_failing(page, httpserver):
    subscriber = push_subscriber(
        httpserver,
        Browser(),
        "/push/old",
        state=SubscriberState.QUARANTINED,
        failing_since=timezone.now(),
        last_error="HTTP 500",
    )

    push.push_resubscribe(
        old_endpoint=subscriber.endpoint,
        old_auth=subscriber.push_auth,
        subscription=renewal(httpserver, Browser(), "/push/new"),
    )

    row = Subscriber.objects.get()
    assert (row.state, row.failing_since, row.last_error) == (SubscriberState.ACTIVE, None, "")


def test_a_row_already_at_the_new_endpoint_gives_way_to_the_renewed_choice(page, httpserver):
    api = ComponentFactory()
    subscriber = push_subscriber(httpserver, Browser(), "/push/old", components=[api])
    after = Browser()
    push_subscriber(httpserver, after, "/push/new")

    push.push_resubscribe(
        old_endpoint=subscriber.endpoint,
        old_auth=subscriber.push_auth,
        subscription=renewal(httpserver, after, "/push/new"),
    )

    row = Subscriber.objects.get()
    assert (row.pk, row.endpoint) == (subscriber.pk, httpserver.url_for("/push/new"))
    assert list(row.components.all()) == [api]


@pytest.mark.parametrize(
    "old_auth",
    [b64url(b"w" * 16), b64url(b"w" * 15), "", "not base64 at all!", "A" * 5000],
)
def test_a_renewal_with_the_wrong_auth_secret_is_refused_and_changes_nothing(
    page, httpserver, old_auth
):
    subscriber = push_subscriber(httpserver, Browser(), "/push/old")

    with pytest.raises(push.UnknownSubscription):
        push.push_resubscribe(
            old_endpoint=subscriber.endpoint,
            old_auth=old_auth,
            subscription=renewal(httpserver, Browser(), "/push/new"),
        )

    row = Subscriber.objects.get()
    assert (row.endpoint, row.push_auth) == (subscriber.endpoint, subscriber.push_auth)


def test_a_renewal_of_an_unknown_subscription_creates_nothing(page, httpserver):
    subscriber = push_subscriber(httpserver, Browser(), "/push/old")

    for old_endpoint in [httpserver.url_for("/push/other"), "", subscriber.endpoint + "x"]:
        with pytest.raises(push.UnknownSubscription):
            push.push_resubscribe(
                old_endpoint=old_endpoint,
                old_auth=subscriber.push_auth,
                subscription=renewal(httpserver, Browser(), "/push/new"),
            )

    assert list(Subscriber.objects.values_list("endpoint", flat=True)) == [subscriber.endpoint]


def test_a_renewal_cannot_take_over_another_browsers_endpoint_without_its_keys(page, httpserver):
    """Someone else's old secret and a stranger's endpoint with made-up keys: no row moves."""
    theirs = push_subscriber(httpserver, Browser(), "/push/theirs")
    mine = push_subscriber(httpserver, Browser(), "/push/mine")

    with pytest.raises(push.UnknownSubscription):
        push.push_resubscribe(
            old_endpoint=theirs.endpoint,
            old_auth=mine.push_auth,
            subscription=renewal(httpserver, Browser(), "/push/mine"),
        )

    assert set(Subscriber.objects.values_list("endpoint", "push_auth")) == {
        (theirs.endpoint, theirs.push_auth),
        (mine.endpoint, mine.push_auth),
    }
