"""Internal subscribers hear of internal incidents and components; public ones never do."""

import json

from components.models import ComponentStatus
from components.services import component_set_status
from incidents.notify import delivery, webhook_bodies
from incidents.notify.models import Audience, NotificationEvent
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import (
    StaffFactory,
    SubscriberFactory,
    open_incident,
    schedule_maintenance,
    sign_in_staff,
)
from tests.incidents.notify.test_email import deliver_all, html_of, text_of


def deliver_everything():
    for event in NotificationEvent.objects.filter(expanded_at__isnull=True).order_by("pk"):
        deliver_all(event)


def test_an_internal_incident_reaches_internal_subscribers_only(page, smtp_server):
    public = SubscriberFactory(email="reader@example.test")
    staff = SubscriberFactory(email="oncall@example.test", audience=Audience.INTERNAL)
    open_incident(name="Walrusoutage in the build farm", internal=True)
    schedule_maintenance(name="Narwhalupgrade of the runners", internal=True)

    deliver_everything()

    assert smtp_server.to(public.email) == []
    subjects = sorted(message["Subject"] for message in smtp_server.to(staff.email))
    assert len(subjects) == 2
    assert "Walrusoutage" in subjects[1] and "Narwhalupgrade" in subjects[0]


def test_a_public_incident_reaches_both_and_names_no_internal_component(page, smtp_server):
    public = SubscriberFactory(email="reader@example.test")
    staff = SubscriberFactory(email="oncall@example.test", audience=Audience.INTERNAL)
    api = ComponentFactory(name="API")
    secret = ComponentFactory(name="Zebracorn", internal=True)
    hidden_group = ComponentGroupFactory(name="Backstage", internal=True)
    grouped = ComponentFactory(name="Marmotcache", group=hidden_group)
    open_incident(
        name="Slow requests",
        component_statuses={
            api: ComponentStatus.DEGRADED_PERFORMANCE,
            secret: ComponentStatus.MAJOR_OUTAGE,
            grouped: ComponentStatus.MAJOR_OUTAGE,
        },
    )

    deliver_everything()

    for address in (public.email, staff.email):
        [message] = smtp_server.to(address)
        for text in (text_of(message), html_of(message)):
            assert "API" in text
            assert "Zebracorn" not in text and "Marmotcache" not in text


def test_an_internal_components_change_reaches_no_public_webhook(page):
    public = SubscriberFactory(channel="webhook", endpoint="https://hooks.example.test/a")
    staff = SubscriberFactory(
        channel="webhook", endpoint="https://hooks.example.test/b", audience=Audience.INTERNAL
    )
    api = ComponentFactory(name="API")
    secret = ComponentFactory(name="Zebracorn", internal=True)

    changes = [
        component_set_status(component=c, status=ComponentStatus.MAJOR_OUTAGE)
        for c in (api, secret)
    ]

    public_event, internal_event = (NotificationEvent.objects.get(status_change=c) for c in changes)
    assert set(delivery.recipients(public_event, "webhook")) == {public, staff}
    assert set(delivery.recipients(internal_event, "webhook")) == {staff}


def test_a_public_incidents_webhook_payload_names_no_internal_component(page):
    api = ComponentFactory(name="API")
    secret = ComponentFactory(name="Zebracorn", internal=True)
    incident = open_incident(
        name="Slow requests",
        component_statuses={
            api: ComponentStatus.DEGRADED_PERFORMANCE,
            secret: ComponentStatus.MAJOR_OUTAGE,
        },
    )
    event = NotificationEvent.objects.get(incident=incident)

    payload = json.dumps(webhook_bodies.statuspage_payload(event))

    assert "API" in payload
    assert "Zebracorn" not in payload and secret.public_id not in payload
    assert json.loads(payload)["page"]["status_indicator"] == "minor"


def test_staff_make_a_subscriber_internal_in_the_admin(page, client):
    sign_in_staff(client, StaffFactory(is_superuser=True))
    admin_client = client
    subscriber = SubscriberFactory(email="oncall@example.test")
    url = f"/admin/incidents/subscriber/{subscriber.pk}/change/"
    form = admin_client.get(url)
    assert form.status_code == 200
    assert 'name="audience"' in form.content.decode()

    response = admin_client.post(url, {"audience": "internal", "state": "active"})

    assert response.status_code == 302, response.content.decode()[:2000]
    subscriber.refresh_from_db()
    assert subscriber.audience == Audience.INTERNAL
    listed = admin_client.get("/admin/incidents/subscriber/?audience__exact=internal")
    assert "oncall@example.test" in listed.content.decode()
