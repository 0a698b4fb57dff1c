"""Beside "Notify subscribers": how many subscribers the update will reach, per channel,
counted by the rule delivery uses and asked again (htmx) as the chosen components change."""

from collections import Counter

import pytest
from django.urls import reverse

from components.models import ComponentStatus
from incidents.models import Incident
from incidents.notify import delivery
from incidents.notify.models import Delivery, NotificationEvent
from incidents.notify.subscriptions import subscription_cancel
from tests.components.factories import ComponentFactory
from tests.incidents.factories import (
    IncidentTemplateFactory,
    StaffFactory,
    SubscriberFactory,
    open_incident,
    sign_in_staff,
)
from tests.incidents.test_admin import ADD_URL, add_data, change_data, change_url

pytestmark = pytest.mark.django_db

ADD_REACH = reverse("admin:incidents_incident_reach")


def change_reach(incident):
    return reverse("admin:incidents_incident_reach", args=[incident.pk])


@pytest.fixture
def audience():
    """Subscribers of every kind: who follows what, confirmed or not, failing or not."""
    api, db, web = ComponentFactory(name="API"), ComponentFactory(name="DB"), ComponentFactory()
    SubscriberFactory.create_batch(3)  # every component
    SubscriberFactory(components=[api])
    SubscriberFactory(components=[db])
    SubscriberFactory(components=[api, db])  # counted once
    SubscriberFactory(unconfirmed=True)
    SubscriberFactory(quarantined=True)
    SubscriberFactory(webhook=True)
    SubscriberFactory(webhook=True, components=[db])
    SubscriberFactory(webhook=True, quarantined=True)
    return api, db, web


def delivered(incident):
    """The channels of every recipient of the incident's newest update, as delivery sees them."""
    event = NotificationEvent.objects.filter(incident=incident).latest("created_at", "pk")
    delivery.event_expand(event_id=event.pk)
    return Counter(Delivery.objects.filter(event=event).values_list("channel", flat=True))


def test_the_count_for_a_new_incident_matches_who_is_notified(client, responder, audience):
    api, db, _ = audience
    answer = client.get(
        ADD_REACH, {f"component_{api.pk}": "major_outage", "deliver_notifications": "on"}
    )
    assert answer.status_code == 200
    assert answer.text == "Will notify 6 subscribers: 5 by email, 1 by webhook."

    response = client.post(ADD_URL, add_data(**{f"component_{api.pk}": "major_outage"}))
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert delivered(incident) == {"email": 5, "webhook": 1}


def test_an_update_reaches_the_incidents_components_and_the_newly_chosen(
    client, responder, audience, django_assert_max_num_queries
):
    api, db, web = audience
    incident = open_incident(component_statuses={api: ComponentStatus.MAJOR_OUTAGE})
    # The page as it comes: the incident's own components.
    page = client.get(change_url(incident)).text
    assert 'class="notify-reach"' in page and f'hx-get="{change_reach(incident)}"' in page
    assert "Will notify 6 subscribers: 5 by email, 1 by webhook." in page

    chosen = {
        f"component_{api.pk}": "partial_outage",
        f"component_{db.pk}": "degraded_performance",
        f"component_{web.pk}": "",
        "deliver_notifications": "on",
    }
    with django_assert_max_num_queries(10):
        answer = client.get(change_reach(incident), chosen)
    assert answer.text == "Will notify 8 subscribers: 6 by email, 2 by webhook."

    data = change_data(incident, body="Spreading to the database.", **chosen)
    assert client.post(change_url(incident), data).status_code == 302
    assert delivered(incident) == {"email": 6, "webhook": 2}


def test_the_answer_follows_the_checkbox_and_says_zero_sensibly(client, responder):
    api = ComponentFactory()
    assert client.get(ADD_REACH, {"deliver_notifications": "on"}).text == (
        "Will notify nobody: no confirmed subscriber hears about these components."
    )
    SubscriberFactory()
    SubscriberFactory(components=[api])
    assert client.get(ADD_REACH, {"deliver_notifications": "on"}).text == (
        "Will notify 1 subscriber: 1 by email, none by webhook."
    )
    assert client.get(ADD_REACH, {f"component_{api.pk}": "major_outage"}).text == (
        "Nobody will be notified (2 subscribers would be)."
    )
    backfilled = {"deliver_notifications": "on", "backfilled": "on"}
    assert client.get(ADD_REACH, backfilled).text == "A backfilled incident notifies nobody."


def test_the_page_counts_what_it_comes_prefilled_with_or_sent_back_with(
    client, responder, audience
):
    api, db, _ = audience
    template = IncidentTemplateFactory(component_status=ComponentStatus.PARTIAL_OUTAGE)
    template.components.set([db])
    page = client.get(ADD_URL, {"template": template.pk}).text
    assert "Will notify 7 subscribers: 5 by email, 2 by webhook." in page
    # Sent back with an error (no name): the components ticked, and the box left unticked.
    data = add_data(name="", **{f"component_{api.pk}": "major_outage"})
    del data["deliver_notifications"]
    page = client.post(ADD_URL, data).text
    assert "Nobody will be notified (6 subscribers would be)." in page


def test_unsubscribed_and_unconfirmed_are_not_counted(client, responder):
    staying, leaving = SubscriberFactory(), SubscriberFactory(webhook=True)
    SubscriberFactory(unconfirmed=True)
    query = {"deliver_notifications": "on"}
    assert client.get(ADD_REACH, query).text == (
        "Will notify 2 subscribers: 1 by email, 1 by webhook."
    )
    subscription_cancel(subscriber=leaving)
    assert client.get(ADD_REACH, query).text == (
        "Will notify 1 subscriber: 1 by email, none by webhook."
    )
    assert staying.is_active


def test_browser_push_is_counted_once_a_browser_is_subscribed(client, responder):
    SubscriberFactory()
    SubscriberFactory(
        channel="push",
        email="",
        endpoint="https://push.example.test/abc",
        push_p256dh="B" * 87,
        push_auth="A" * 22,
    )
    query = {"deliver_notifications": "on"}
    assert client.get(ADD_REACH, query).text == (
        "Will notify 2 subscribers: 1 by email, none by webhook, 1 by browser push."
    )


@pytest.mark.parametrize(
    "query",
    [
        {"component_1x": "major_outage"},
        {"component_999999": "major_outage"},
        {"component_{api}": "on fire"},
        {"affected_components": "abc"},
    ],
)
def test_bad_input_is_a_400(client, responder, query):
    api = ComponentFactory()
    query = {key.format(api=api.pk): value for key, value in query.items()}
    response = client.get(ADD_REACH, query)
    assert response.status_code == 400


def test_a_maintenances_affected_components_count_too(client, responder, audience):
    api, db, _ = audience
    url = reverse("admin:incidents_scheduledmaintenance_reach")
    answer = client.get(url, {"affected_components": [db.pk], "deliver_notifications": "on"})
    assert answer.text == "Will notify 7 subscribers: 5 by email, 2 by webhook."


def test_staff_without_the_permission_cannot_ask(client):
    incident = open_incident()
    sign_in_staff(client, StaffFactory())
    assert client.get(ADD_REACH).status_code == 403
    assert client.get(change_reach(incident)).status_code == 403
    client.logout()
    assert client.get(ADD_REACH).status_code == 302  # to the sign-in page


def test_it_is_a_read(client, responder):
    assert client.post(ADD_REACH).status_code == 405
