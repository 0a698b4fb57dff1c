"""Webhooks: Statuspage's bodies, signed, sent once, to endpoints that may be called."""

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from werkzeug import Response

from components.models import ComponentStatus
from components.services import component_set_status
from incidents import services
from incidents.models import IncidentStatus
from incidents.notify import delivery, webhook_bodies
from incidents.notify.channels import webhook
from incidents.notify.links import unsubscribe_url
from incidents.notify.models import (
    Delivery,
    DeliveryState,
    EventKind,
    NotificationEvent,
    SubscriberState,
)
from statuspage.lib import network
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import (
    StaffFactory,
    SubscriberFactory,
    open_incident,
    schedule_maintenance,
)
from tests.incidents.notify.conftest import tls_endpoint

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "statuspage"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"webhook-{name}.json").read_text())


@pytest.fixture(autouse=True)
def local_endpoints(settings):
    """pytest-httpserver listens on 127.0.0.1: allow private webhook targets by default."""
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 5


@pytest.fixture
def receiver(httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    return httpserver


def hook(httpserver, path="/hook", **kwargs):
    return SubscriberFactory(webhook=True, endpoint=httpserver.url_for(path), **kwargs)


def deliver_all(event, *, now=None):
    for batch in delivery.event_expand(event_id=event.pk, now=now):
        delivery.batch_send(batch=batch, now=now)


def received(httpserver) -> list:
    return [request for request, _ in httpserver.log]


def events(kind=None):
    rows = NotificationEvent.objects.order_by("id")
    return list(rows.filter(kind=kind) if kind else rows)


# The shape of Statuspage's bodies

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
ENUMS = {
    "status_indicator": {"none", "minor", "major", "critical", "maintenance"},
    "impact": {"none", "minor", "major", "critical", "maintenance"},
    "old_status": set(ComponentStatus.values),
    "new_status": set(ComponentStatus.values),
    "component_type": {"Component"},
}


def assert_same_shape(ours, theirs, path="$"):
    """Same keys in the same order and the same JSON types, all the way down.

    Null is accepted where the fixture has null, a string or a list (Statuspage's nullable
    fields); where the fixture has null, any scalar is accepted. List items are compared
    with the fixture's first item.
    """
    if theirs is None:
        assert not isinstance(ours, dict | list), f"{path}: {ours!r} where null"
        return
    if ours is None:
        assert isinstance(theirs, str | list), f"{path}: null where {theirs!r}"
        return
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{path}: {ours!r} is not an object"
        assert list(ours) == list(theirs), f"{path}: keys {list(ours)} != {list(theirs)}"
        for key, value in theirs.items():
            assert_same_shape(ours[key], value, f"{path}.{key}")
        return
    if isinstance(theirs, list):
        assert isinstance(ours, list), f"{path}: {ours!r} is not a list"
        for index, item in enumerate(ours):
            assert_same_shape(item, theirs[0], f"{path}[{index}]")
        return
    assert type(ours) is type(theirs), f"{path}: {ours!r} is not like {theirs!r}"


def assert_statuspage_values(body, path="$"):
    """Enum values from Statuspage's sets, and timestamps as Rails writes them."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ENUMS:
                assert value in ENUMS[key], f"{path}.{key}: {value!r}"
            if key.endswith("_at") and value is not None:
                assert TIMESTAMP.match(value), f"{path}.{key}: {value!r}"
            assert_statuspage_values(value, f"{path}.{key}")
    elif isinstance(body, list):
        for index, item in enumerate(body):
            assert_statuspage_values(item, f"{path}[{index}]")


def test_the_shape_helper_catches_reordered_keys_and_wrong_types():
    theirs = fixture("component-update")
    reordered = {**theirs, "component": dict(reversed(theirs["component"].items()))}
    with pytest.raises(AssertionError):
        assert_same_shape(reordered, theirs)
    wrong_type = {**theirs, "component": {**theirs["component"], "position": "3"}}
    with pytest.raises(AssertionError):
        assert_same_shape(wrong_type, theirs)
    assert_same_shape(theirs, theirs)


def test_an_incident_webhook_is_statuspages_incident_body(page, receiver):
    api = ComponentFactory(name="API")
    ComponentFactory(name="Website")
    subscriber = hook(receiver)
    incident = open_incident(
        status=IncidentStatus.IDENTIFIED,
        body="Queries time out.",
        component_statuses={api: ComponentStatus.PARTIAL_OUTAGE},
    )
    [event] = events(EventKind.INCIDENT_CREATED)

    deliver_all(event)

    [request] = received(receiver)
    body = request.get_json()
    assert_same_shape(body, fixture("incident-created"))
    assert_statuspage_values(body)
    assert body["meta"]["unsubscribe"] == unsubscribe_url(subscriber)
    assert body["meta"]["unsubscribe"].startswith("https://status.acme.test/")
    assert body["page"] == {
        "id": page.public_id,
        "status_indicator": "minor",
        "status_description": "Minor Service Outage",
    }
    sent = body["incident"]
    assert (sent["id"], sent["name"], sent["status"]) == (
        incident.public_id,
        incident.name,
        "identified",
    )
    assert sent["shortlink"] == f"https://status.acme.test/incidents/{incident.public_id}/"
    assert sent["incident_updates"][0]["body"] == "Queries time out."
    assert sent["incident_updates"][0]["affected_components"] == [
        {
            "code": api.public_id,
            "name": "API",
            "old_status": "operational",
            "new_status": "partial_outage",
        }
    ]
    assert [c["name"] for c in sent["components"]] == ["API"]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Beacon-Event"] == "incident_created"
    assert request.headers["X-Beacon-Delivery"] == str(Delivery.objects.get().pk)
    assert request.headers["User-Agent"] == "Beacon-Webhooks/1 (+https://status.acme.test)"
    assert Delivery.objects.get().state == DeliveryState.SENT


def test_a_resolved_incident_lists_its_updates_newest_first(page, receiver):
    api = ComponentFactory(name="API")
    hook(receiver)
    incident = open_incident(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})
    services.incident_resolve(incident=incident, body="Fixed.")
    resolved = events(EventKind.INCIDENT_RESOLVED)[0]

    deliver_all(resolved)

    [request] = received(receiver)
    body = request.get_json()
    assert_same_shape(body, fixture("incident-resolved"))
    assert_statuspage_values(body)
    sent = body["incident"]
    assert sent["status"] == "resolved"
    assert sent["resolved_at"] is not None
    assert [u["status"] for u in sent["incident_updates"]] == ["resolved", "investigating"]
    assert sent["incident_updates"][0]["body"] == "Fixed."
    assert body["page"]["status_indicator"] == "none"


def test_an_events_payload_shows_the_incident_as_its_update_left_it(page):
    incident = open_incident(body="Looking.")
    services.incident_resolve(incident=incident, body="Fixed.")
    created = events(EventKind.INCIDENT_CREATED)[0]

    sent = webhook_bodies.statuspage_payload(created)["incident"]

    assert sent["status"] == "investigating"
    assert sent["resolved_at"] is None
    assert [u["body"] for u in sent["incident_updates"]] == ["Looking."]


def test_a_component_change_is_statuspages_component_update_body(page, receiver):
    group = ComponentGroupFactory(name="Backend")
    database = ComponentFactory(name="Database", group=group, description="Primary")
    ComponentFactory(name="Website")
    hook(receiver)
    change = component_set_status(component=database, status=ComponentStatus.UNDER_MAINTENANCE)
    [event] = events()

    deliver_all(event)

    [request] = received(receiver)
    body = request.get_json()
    assert_same_shape(body, fixture("component-update"))
    assert_statuspage_values(body)
    assert request.headers["X-Beacon-Event"] == "component_update"
    assert body["page"]["status_indicator"] == "maintenance"
    assert body["component"]["id"] == database.public_id
    assert body["component"]["group_id"] == group.public_id
    assert body["component"]["status"] == "under_maintenance"
    update = body["component_update"]
    assert (update["old_status"], update["new_status"]) == ("operational", "under_maintenance")
    assert update["component_id"] == database.public_id
    assert re.fullmatch(r"[0-9a-z]{12}", update["id"])
    again = webhook_bodies.statuspage_payload(NotificationEvent.objects.get(status_change=change))
    assert again["component_update"]["id"] == update["id"]


def test_a_payload_stored_with_its_keys_reordered_is_sent_in_statuspages_order(page):
    """PostgreSQL's jsonb does not keep key order; the sender puts it back."""
    database = ComponentFactory(name="Database")
    hooked = SubscriberFactory(webhook=True)
    component_set_status(component=database, status=ComponentStatus.MAJOR_OUTAGE)
    incident = open_incident(component_statuses={database: ComponentStatus.MAJOR_OUTAGE})
    services.incident_resolve(incident=incident)
    for event, name in [
        (events(EventKind.COMPONENT_UPDATE)[0], "component-update"),
        (events(EventKind.INCIDENT_CREATED)[0], "incident-created"),
        (events(EventKind.INCIDENT_RESOLVED)[0], "incident-resolved"),
    ]:
        stored = json.loads(json.dumps(webhook_bodies.statuspage_payload(event), sort_keys=True))
        assert_same_shape(webhook_bodies.with_unsubscribe(stored, hooked), fixture(name))


def test_rendering_a_payload_takes_a_few_queries(page, django_assert_max_num_queries):
    components = ComponentFactory.create_batch(20)
    incident = open_incident(
        component_statuses=dict.fromkeys(components, ComponentStatus.MAJOR_OUTAGE)
    )
    for n in range(5):
        services.incident_post_update(incident=incident, status="identified", body=f"Step {n}")
    event = events()[-1]
    with django_assert_max_num_queries(8):
        body = webhook_bodies.statuspage_payload(event)
    assert len(body["incident"]["incident_updates"]) == 6
    assert len(body["incident"]["components"]) == 20


def test_a_draft_postmortem_stays_private_until_published(page):
    incident = open_incident()
    services.incident_resolve(incident=incident)
    incident.refresh_from_db()
    incident.postmortem_body = "Draft: a bad deploy."
    incident.save()
    resolved = events(EventKind.INCIDENT_RESOLVED)[0]
    assert webhook_bodies.statuspage_payload(resolved)["incident"]["postmortem_body"] is None

    services.postmortem_publish(incident=incident, body="A bad deploy.")
    published = events(EventKind.POSTMORTEM_PUBLISHED)[0]
    sent = webhook_bodies.statuspage_payload(published)["incident"]

    assert sent["status"] == "postmortem"
    assert sent["postmortem_body"] == "A bad deploy."
    assert sent["postmortem_published_at"] == sent["postmortem_body_last_updated_at"]
    assert sent["postmortem_notified_subscribers"] is True
    assert_same_shape({"incident": sent}, {"incident": fixture("incident-resolved")["incident"]})


def test_a_maintenance_uses_the_incident_key_with_its_schedule(page):
    schedule_maintenance(scheduled_remind_prior=True)
    [event] = events()
    body = webhook_bodies.statuspage_payload(event)
    assert_same_shape(body, {**fixture("incident-created"), "meta": body["meta"]})
    assert_statuspage_values(body)
    sent = body["incident"]
    assert sent["status"] == "scheduled"
    assert sent["impact"] == "maintenance"
    assert sent["scheduled_for"] and sent["scheduled_until"]
    assert sent["scheduled_remind_prior"] is True


def test_timestamps_are_in_the_pages_time_zone(page):
    page.time_zone = "America/Chicago"
    page.save()
    open_incident()
    body = webhook_bodies.statuspage_payload(events()[0])
    assert re.search(r"[+-]0[56]:00$", body["incident"]["created_at"])
    assert re.search(r"[+-]0[56]:00$", body["meta"]["generated_at"])


# Headers and signatures


def test_a_signed_delivery_verifies_against_the_exact_body(page, receiver):
    hook(receiver, secret="s3cret")
    open_incident()
    deliver_all(events()[0])

    [request] = received(receiver)
    expected = "sha256=" + hmac.new(b"s3cret", request.get_data(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Beacon-Signature-256"], expected)


def test_the_endpoint_and_the_secret_are_never_logged(page, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    hook(receiver, path="/hook", secret="s3cret-value")
    receiver.expect_request("/services/T000/B000/tokentoken").respond_with_data("no", status=500)
    hook(receiver, path="/services/T000/B000/tokentoken", webhook_format="slack")
    open_incident()
    caplog.clear()  # factory_boy logs what it builds

    deliver_all(events()[0])

    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 1
    ours = [r for r in caplog.records if not r.name.startswith("werkzeug")]  # the receiver's
    logged = "\n".join(record.getMessage() for record in ours)
    assert "tokentoken" not in logged
    assert "s3cret-value" not in logged
    assert "failed: HTTP 500" in logged  # failures are logged, by subscriber code


def test_a_delivery_without_a_secret_is_not_signed(page, receiver):
    hook(receiver)
    open_incident()
    deliver_all(events()[0])
    [request] = received(receiver)
    assert "X-Beacon-Signature-256" not in request.headers


def test_the_request_goes_to_the_checked_address_with_the_real_host_name(
    page, receiver, monkeypatch
):
    """No second lookup: the name is resolved once, checked, and that address is used."""
    port = receiver.port
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "hooks.beacon.test":
            return real("127.0.0.1", *args, **kwargs)
        ipaddress.ip_address(host)  # connecting to an address: no lookup of a name
        return real(host, *args, **kwargs)

    monkeypatch.setattr(network.socket, "getaddrinfo", resolve)
    SubscriberFactory(webhook=True, endpoint=f"http://hooks.beacon.test:{port}/hook")
    open_incident()
    deliver_all(events()[0])

    [request] = received(receiver)
    assert request.headers["Host"] == f"hooks.beacon.test:{port}"
    assert Delivery.objects.get().state == DeliveryState.SENT


@pytest.fixture
def tls_receiver(monkeypatch):
    """An HTTPS endpoint on 127.0.0.1 whose certificate names hooks.beacon.test only."""
    with tls_endpoint(monkeypatch, "hooks.beacon.test", "/hook") as server:
        yield server


def test_https_is_verified_against_the_real_host_name_at_the_checked_address(page, tls_receiver):
    SubscriberFactory(webhook=True, endpoint=f"https://hooks.beacon.test:{tls_receiver.port}/hook")
    open_incident()
    deliver_all(events()[0])

    [(request, _)] = tls_receiver.log
    assert request.headers["Host"] == f"hooks.beacon.test:{tls_receiver.port}"
    assert Delivery.objects.get().state == DeliveryState.SENT


# Failures and retries


def test_a_server_error_is_retried_later_and_accepted_once(page, httpserver):
    httpserver.expect_oneshot_request("/hook").respond_with_data("down", status=500)
    httpserver.expect_request("/hook").respond_with_data("ok")
    subscriber = hook(httpserver)
    open_incident()
    event = events()[0]

    deliver_all(event)

    row = Delivery.objects.get()
    assert (row.state, row.attempts) == (DeliveryState.QUEUED, 1)
    assert row.error == "HTTP 500 Internal Server Error"
    assert row.next_attempt_at > timezone.now()
    subscriber.refresh_from_db()
    assert subscriber.failing_since is not None
    assert subscriber.state == SubscriberState.ACTIVE

    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1), tick=False):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)
            delivery.batch_send(batch=batch)  # a doorbell rung twice

    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.SENT, 2)
    statuses = [response.status_code for _, response in httpserver.log]
    assert statuses == [500, 200]
    first, second = received(httpserver)
    assert first.get_data() == second.get_data()  # the same words on a retry
    assert first.headers["X-Beacon-Delivery"] == second.headers["X-Beacon-Delivery"]
    subscriber.refresh_from_db()
    assert subscriber.failing_since is None


def test_a_redirect_is_not_followed_and_counts_as_a_failure(page, httpserver):
    elsewhere = httpserver.url_for("/elsewhere")
    httpserver.expect_request("/hook").respond_with_data(
        "", status=301, headers={"Location": elsewhere}
    )
    httpserver.expect_request("/elsewhere").respond_with_data("ok")
    hook(httpserver)
    open_incident()

    deliver_all(events()[0])

    assert [request.path for request in received(httpserver)] == ["/hook"]
    row = Delivery.objects.get()
    assert row.state == DeliveryState.QUEUED
    assert row.error.startswith("HTTP 301 Moved Permanently")


def test_a_slow_endpoint_times_out_and_is_retried(page, httpserver, settings):
    settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 0.3

    answered = threading.Event()

    def slow(request):
        time.sleep(0.8)
        answered.set()
        return Response("late")

    httpserver.expect_request("/hook").respond_with_handler(slow)
    hook(httpserver)
    open_incident()

    deliver_all(events()[0])

    row = Delivery.objects.get()
    assert row.state == DeliveryState.QUEUED
    assert row.error == "timed out after 0.3 s"
    # The late answer must land in this test's log, not the next one's.
    assert answered.wait(5)
    deadline = time.monotonic() + 5
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.01)


def test_an_endpoint_that_refuses_connections_is_retried(page, httpserver):
    SubscriberFactory(webhook=True, endpoint="http://127.0.0.1:1/hook")
    open_incident()
    deliver_all(events()[0])
    row = Delivery.objects.get()
    assert row.state == DeliveryState.QUEUED
    assert row.error.startswith("cannot connect")


# Where webhooks may not go


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:{port}/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:{port}/hook",
        "https://[::1]:{port}/hook",
    ],
)
def test_private_addresses_are_refused_for_good(page, httpserver, settings, endpoint):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = False
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True  # the checks' switch is not the webhooks'
    httpserver.expect_request("/hook").respond_with_data("ok")
    SubscriberFactory(webhook=True, endpoint=endpoint.format(port=httpserver.port))
    open_incident()

    deliver_all(events()[0])

    assert received(httpserver) == []
    row = Delivery.objects.get()
    assert row.state == DeliveryState.FAILED
    assert row.error.startswith("refused: ")
    assert "private, loopback or reserved" in row.error or "metadata" in row.error


def test_metadata_addresses_are_refused_even_when_private_ones_are_allowed(page):
    subscriber = SubscriberFactory(
        webhook=True, endpoint="http://169.254.169.254/latest/meta-data/"
    )
    outcome = webhook.webhook_test_delivery(subscriber=subscriber)
    assert not outcome.sent
    assert outcome.permanent
    assert "cloud metadata address" in outcome.error


def test_a_name_that_does_not_resolve_is_tried_again(page, monkeypatch):
    def unreachable_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(network.socket, "getaddrinfo", unreachable_dns)
    SubscriberFactory(webhook=True, endpoint="https://hooks.example.test/x")
    open_incident()
    deliver_all(events()[0])
    row = Delivery.objects.get()
    assert row.state == DeliveryState.QUEUED
    assert "cannot resolve hooks.example.test" in row.error


def test_network_refusal_follows_the_callers_switch(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    assert "CHECKS_ALLOW_PRIVATE" in network.refusal("10.0.0.1")
    assert network.refusal("10.0.0.1", allow_private=True) is None
    assert network.refusal("10.0.0.1", allow_private=False)
    assert "metadata" in network.refusal("169.254.169.254", allow_private=True)
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    assert network.refusal("10.0.0.1") is None
    assert network.refusal("10.0.0.1", allow_private=False)
    with pytest.raises(network.TargetRefused):
        network.resolve_blocking("localhost", 80, allow_private=False)


def test_a_webhook_failing_for_a_day_is_disabled_and_staff_are_told(
    page, httpserver, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    StaffFactory(groups=["Responders"], email="oncall@acme.test")
    httpserver.expect_request("/hook").respond_with_data("down", status=503)
    subscriber = hook(httpserver)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        open_incident()
        deliver_all(events()[0])
    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.ACTIVE

    with (
        time_machine.travel(start + timedelta(hours=25), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        for batch in delivery.notifications_sweep()[1]:
            delivery.batch_send(batch=batch)

    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.QUARANTINED
    assert "HTTP 503" in subscriber.last_error
    row = Delivery.objects.get()
    assert row.state == DeliveryState.FAILED
    [message] = mailoutbox
    assert message.to == ["oncall@acme.test"]
    assert "Webhook disabled" in message.subject
    assert "HTTP 503" in message.body


# Chat formats


def test_slack_gets_text_and_blocks(page, receiver):
    api = ComponentFactory(name="API")
    hook(receiver, webhook_format="slack")
    incident = open_incident(
        name="Errors <on> API & more",
        body="We are investigating.",
        component_statuses={api: ComponentStatus.MAJOR_OUTAGE},
    )
    deliver_all(events(EventKind.INCIDENT_CREATED)[0])

    body = received(receiver)[0].get_json()
    assert list(body) == ["text", "blocks"]
    assert "Errors &lt;on&gt; API &amp; more" in body["text"]
    header, section, context = body["blocks"]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert len(header["text"]["text"]) <= 150
    assert section["text"]["type"] == "mrkdwn"
    assert "We are investigating." in section["text"]["text"]
    assert "API: Major outage" in section["text"]["text"]
    link = context["elements"][0]["text"]
    assert link == (f"<https://status.acme.test/incidents/{incident.public_id}/|View incident>")
    assert "unsubscribe" not in json.dumps(body)


def test_discord_gets_an_embed_within_its_limits(page, receiver):
    hook(receiver, webhook_format="discord")
    incident = open_incident(name="x" * 250, body="y" * 5000)
    deliver_all(events()[0])

    body = received(receiver)[0].get_json()
    assert list(body) == ["content", "embeds", "allowed_mentions"]
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert list(embed) == ["title", "description", "url", "color", "timestamp"]
    assert len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096
    assert len(body["content"]) <= 2000
    assert embed["url"] == f"https://status.acme.test/incidents/{incident.public_id}/"
    assert isinstance(embed["color"], int)
    assert TIMESTAMP.match(embed["timestamp"])


def test_teams_gets_an_adaptive_card(page, receiver):
    hook(receiver, webhook_format="teams")
    ComponentFactory(name="API")
    database = ComponentFactory(name="Database")
    component_set_status(component=database, status=ComponentStatus.DEGRADED_PERFORMANCE)
    deliver_all(events()[0])

    body = received(receiver)[0].get_json()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert {block["type"] for block in card["body"]} == {"TextBlock"}
    assert "Database is now degraded performance" in card["body"][1]["text"]
    [action] = card["actions"]
    assert action == {
        "type": "Action.OpenUrl",
        "title": "View status page",
        "url": "https://status.acme.test",
    }


# Test deliveries from the admin


def test_a_test_delivery_answered_with_2xx_confirms_the_webhook(page, receiver):
    ComponentFactory(name="API")
    subscriber = hook(receiver, state="unconfirmed", confirmed_at=None, secret="k")

    outcome = webhook.webhook_test_delivery(subscriber=subscriber)

    assert outcome.sent
    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.ACTIVE
    assert subscriber.confirmed_at is not None
    [request] = received(receiver)
    assert request.headers["X-Beacon-Event"] == "test"
    assert request.headers["X-Beacon-Signature-256"] == webhook.signature(request.get_data(), "k")
    body = request.get_json()
    assert_same_shape(body, fixture("component-update"))
    assert body["component"]["name"] == "API"
    update = body["component_update"]
    assert update["old_status"] == update["new_status"] == "operational"


def test_a_test_delivery_answered_with_500_leaves_the_webhook_unconfirmed(page, httpserver):
    httpserver.expect_request("/hook").respond_with_data("no", status=500)
    subscriber = hook(httpserver, state="unconfirmed", confirmed_at=None)

    outcome = webhook.webhook_test_delivery(subscriber=subscriber)

    assert not outcome.sent
    assert not outcome.permanent
    assert outcome.error == "HTTP 500 Internal Server Error"
    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.UNCONFIRMED
    assert subscriber.confirmed_at is None


def test_a_test_delivery_in_a_chat_format_says_it_is_a_test(page, receiver):
    subscriber = hook(receiver, webhook_format="slack")
    assert webhook.webhook_test_delivery(subscriber=subscriber).sent
    body = received(receiver)[0].get_json()
    assert body["text"] == "Test from Acme"
