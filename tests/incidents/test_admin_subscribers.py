import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident, IncidentStatus
from incidents.notify import delivery
from incidents.notify.models import (
    Channel,
    Delivery,
    DeliveryState,
    EventKind,
    NotificationEvent,
    Subscriber,
    SubscriberState,
)
from tests.components.factories import ComponentFactory
from tests.incidents.factories import (
    StaffFactory,
    SubscriberFactory,
    open_incident,
    schedule_maintenance,
    sign_in_staff,
)
from tests.incidents.test_admin import change_data

pytestmark = pytest.mark.django_db

CHANGELIST_URL = reverse("admin:incidents_subscriber_changelist")
ADD_URL = reverse("admin:incidents_subscriber_add")
IMPORT_URL = reverse("admin:incidents_subscriber_import")
EXPORT_URL = reverse("admin:incidents_subscriber_export")
EVENTS_URL = reverse("admin:incidents_notificationevent_changelist")


def subscriber_url(subscriber):
    return reverse("admin:incidents_subscriber_change", args=[subscriber.pk])


def csv_file(text: str, name="subscribers.csv", encoding="utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def streamed_rows(response) -> list[dict]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def webhook_change_data(subscriber, **fields):
    """What the webhook's change page posts when nothing is touched."""
    return {
        "endpoint": subscriber.endpoint,
        "contact_email": subscriber.email,
        "webhook_format": subscriber.webhook_format,
        "new_secret": "",
        "state": subscriber.state,
        **fields,
    }


# The list


def test_changelist_counts_active_subscribers_per_component(
    client, responder, django_assert_max_num_queries
):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    SubscriberFactory.create_batch(3)  # every component
    SubscriberFactory(components=[api])
    SubscriberFactory(components=[api, web])
    SubscriberFactory(webhook=True, components=[web])
    SubscriberFactory(unconfirmed=True)  # not counted: not active
    SubscriberFactory(quarantined=True, components=[api])
    SubscriberFactory.create_batch(20, components=[web])

    with django_assert_max_num_queries(15):
        response = client.get(CHANGELIST_URL)

    assert response.status_code == 200
    audience = {component.name: count for component, count in response.context["audience"]}
    assert audience == {"API": 3 + 2, "Web": 3 + 2 + 20}
    assert response.context["active_all_components"] == 3
    assert dict(response.context["state_totals"]) == {
        "Unconfirmed": 1,
        "Active": 26,
        "Disabled (failing)": 1,
    }
    assert "All components" in response.text


def test_changelist_queries_do_not_grow_with_subscribers(
    client, responder, django_assert_max_num_queries
):
    api = ComponentFactory(name="API")
    SubscriberFactory.create_batch(5, components=[api])
    with django_assert_max_num_queries(15) as few:
        client.get(CHANGELIST_URL)

    SubscriberFactory.create_batch(60, components=[api])
    SubscriberFactory.create_batch(30, webhook=True)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(CHANGELIST_URL)

    assert {c.name: n for c, n in response.context["audience"]} == {"API": 95}


def test_search_finds_addresses_and_webhook_urls(client, responder):
    SubscriberFactory(email="ada@example.test")
    SubscriberFactory(email="grace@example.test")
    SubscriberFactory(webhook=True, endpoint="https://hooks.acme.test/beacon")

    response = client.get(CHANGELIST_URL, {"q": "ada@"})
    assert [str(s) for s in response.context["cl"].result_list] == ["ada@example.test"]

    response = client.get(CHANGELIST_URL, {"q": "acme.test"})
    assert [str(s) for s in response.context["cl"].result_list] == [
        "https://hooks.acme.test/beacon"
    ]


def test_component_filter_includes_subscribers_to_every_component(client, responder):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    SubscriberFactory(email="all@example.test")
    SubscriberFactory(email="api@example.test", components=[api])
    SubscriberFactory(email="web@example.test", components=[web])

    response = client.get(CHANGELIST_URL, {"component": api.pk})
    assert sorted(str(s) for s in response.context["cl"].result_list) == [
        "all@example.test",
        "api@example.test",
    ]

    response = client.get(CHANGELIST_URL, {"component": "all"})
    assert [str(s) for s in response.context["cl"].result_list] == ["all@example.test"]


# Export


def test_export_all_streams_every_subscriber_as_csv(client, responder):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    SubscriberFactory(email="all@example.test")
    SubscriberFactory(email="two@example.test", components=[web, api])
    SubscriberFactory(webhook=True, endpoint="https://hooks.example.test/x", unconfirmed=True)

    response = client.get(EXPORT_URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith("attachment;")
    rows = streamed_rows(response)
    assert list(rows[0]) == [
        "email",
        "channel",
        "endpoint",
        "state",
        "components",
        "created_at",
        "confirmed_at",
    ]
    assert [
        (r["email"], r["channel"], r["endpoint"], r["state"], r["components"]) for r in rows
    ] == [
        ("all@example.test", "email", "", "active", ""),
        ("two@example.test", "email", "", "active", "API;Web"),
        ("", "webhook", "https://hooks.example.test/x", "unconfirmed", ""),
    ]
    assert rows[0]["confirmed_at"] and not rows[2]["confirmed_at"]


def test_export_selected_streams_only_those(client, responder):
    chosen = SubscriberFactory(email="chosen@example.test")
    SubscriberFactory(email="other@example.test")

    response = client.post(
        CHANGELIST_URL,
        {"action": "export_selected_csv", "_selected_action": [chosen.pk]},
    )

    assert [row["email"] for row in streamed_rows(response)] == ["chosen@example.test"]


def test_export_defuses_cells_a_spreadsheet_would_run(client, responder):
    SubscriberFactory(email="=cmd@example.test")

    rows = streamed_rows(client.get(EXPORT_URL))

    assert rows[0]["email"] == "'=cmd@example.test"


# Import


def test_import_makes_addresses_active_and_counts_those_already_subscribed(client, responder):
    api = ComponentFactory(name="API")
    SubscriberFactory(email="known@example.test")

    response = client.post(
        IMPORT_URL,
        {
            "file": csv_file(
                "email,components\nNew@Example.test,API\nknown@example.test,\nsecond@example.test,\n"
            )
        },
        follow=True,
    )

    assert response.redirect_chain[-1][0] == CHANGELIST_URL
    assert "Imported 2 subscribers; 1 already subscribed." in messages_of(response)
    new = Subscriber.objects.get(email="new@example.test")
    assert new.state == SubscriberState.ACTIVE
    assert new.confirmed_at is not None
    assert list(new.components.all()) == [api]
    assert Subscriber.objects.get(email="second@example.test").all_components


def test_import_with_a_bad_line_writes_nothing_and_names_the_line(client, responder):
    response = client.post(
        IMPORT_URL,
        {"file": csv_file("email\ngood@example.test\nnot-an-address\n")},
    )

    assert response.status_code == 200
    assert "Nothing was imported" in response.text
    assert "Line 3" in response.text
    assert not Subscriber.objects.exists()


def test_import_of_a_file_that_is_not_utf8_says_so(client, responder):
    response = client.post(
        IMPORT_URL, {"file": csv_file("email\nrené@example.test\n", encoding="latin-1")}
    )

    assert response.status_code == 200
    assert "not UTF-8" in response.text
    assert not Subscriber.objects.exists()


def test_import_of_a_spreadsheet_asks_for_csv(client, responder):
    response = client.post(
        IMPORT_URL,
        {"file": SimpleUploadedFile("subscribers.xlsx", b"PK\x03\x04\x00\x00binary")},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["file"] == ["Choose a .csv file (UTF-8 text)."]

    response = client.post(
        IMPORT_URL, {"file": csv_file("email\nann@example.test\n", "x.csv", "utf-16")}
    )
    assert "save it as “CSV UTF-8”" in response.context["form"].errors["file"][0]
    assert not Subscriber.objects.exists()


def test_import_needs_the_add_permission(client):
    viewer = StaffFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
    sign_in_staff(client, viewer)

    assert client.get(IMPORT_URL).status_code == 403


# Adding and changing


def test_staff_add_a_confirmed_webhook_whose_secret_is_never_shown_again(client, responder):
    api = ComponentFactory(name="API")

    response = client.post(
        ADD_URL,
        {
            "channel": Channel.WEBHOOK,
            "email": "Ops@Example.test",
            "endpoint": "https://hooks.example.test/beacon",
            "webhook_format": "slack",
            "secret": "s3cret-value-42",
            "confirmed_by_staff": "on",
            "components": [api.pk],
        },
    )

    assert response.status_code == 302
    webhook = Subscriber.objects.get()
    assert webhook.channel == Channel.WEBHOOK
    assert webhook.state == SubscriberState.ACTIVE
    assert webhook.confirmed_at is not None
    assert webhook.email == "ops@example.test"
    assert webhook.secret == "s3cret-value-42"
    assert webhook.webhook_format == "slack"
    assert list(webhook.components.all()) == [api]

    page = client.get(subscriber_url(webhook))
    assert "s3cret-value-42" not in page.text
    assert "•••• set" in page.text


def test_staff_cannot_add_a_browser_push_subscriber_by_hand(client, responder):
    response = client.post(ADD_URL, {"channel": Channel.PUSH, "email": "someone@example.test"})

    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert not Subscriber.objects.exists()


def test_staff_see_a_browser_push_subscriber_and_choose_its_components(client, responder):
    api = ComponentFactory(name="API")
    push = SubscriberFactory(
        channel=Channel.PUSH,
        email="",
        endpoint="https://push.example.test/abc",
        push_p256dh="B" * 87,
        push_auth="A" * 22,
    )

    page = client.get(subscriber_url(push))
    assert page.status_code == 200
    assert "https://push.example.test/abc" in page.text
    assert 'name="email"' not in page.text
    assert 'name="endpoint"' not in page.text

    response = client.post(subscriber_url(push), {"components": [api.pk], "state": "active"})

    assert response.status_code == 302
    push.refresh_from_db()
    assert list(push.components.all()) == [api]
    assert (push.endpoint, push.push_auth) == ("https://push.example.test/abc", "A" * 22)


def test_saving_a_webhook_with_a_blank_secret_keeps_it(client, responder):
    webhook = SubscriberFactory(webhook=True, secret="keep-me")

    response = client.post(
        subscriber_url(webhook), webhook_change_data(webhook, webhook_format="discord")
    )

    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.secret == "keep-me"
    assert webhook.webhook_format == "discord"


def test_a_webhook_secret_is_replaced_or_removed(client, responder):
    webhook = SubscriberFactory(webhook=True, secret="old")

    client.post(subscriber_url(webhook), webhook_change_data(webhook, new_secret="new"))
    webhook.refresh_from_db()
    assert webhook.secret == "new"

    client.post(subscriber_url(webhook), webhook_change_data(webhook, clear_secret="on"))
    webhook.refresh_from_db()
    assert webhook.secret == ""


def test_changing_a_webhook_to_some_components(client, responder):
    api = ComponentFactory(name="API")
    webhook = SubscriberFactory(webhook=True)

    client.post(subscriber_url(webhook), webhook_change_data(webhook, components=[api.pk]))

    webhook.refresh_from_db()
    assert not webhook.all_components
    assert list(webhook.components.all()) == [api]


def test_a_webhook_needs_an_http_url(client, responder):
    response = client.post(
        ADD_URL,
        {
            "channel": Channel.WEBHOOK,
            "endpoint": "ftp://files.example.test",
            "webhook_format": "slack",
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["endpoint"]
    assert not Subscriber.objects.exists()


def test_staff_add_an_email_subscriber_who_is_asked_to_confirm(client, responder):
    response = client.post(
        ADD_URL,
        {"channel": Channel.EMAIL, "email": "  Ada@Example.TEST ", "webhook_format": "statuspage"},
    )

    assert response.status_code == 302
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "ada@example.test"
    assert subscriber.state == SubscriberState.UNCONFIRMED
    assert subscriber.all_components


def test_adding_an_address_already_subscribed_is_a_form_error(client, responder):
    SubscriberFactory(email="ada@example.test")

    response = client.post(
        ADD_URL,
        {"channel": Channel.EMAIL, "email": "ADA@example.test", "webhook_format": "statuspage"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["email"] == [
        "ada@example.test is already a subscriber."
    ]
    assert Subscriber.objects.count() == 1


def test_staff_confirm_an_unconfirmed_subscriber_from_its_page(client, responder):
    subscriber = SubscriberFactory(unconfirmed=True)

    response = client.post(reverse("admin:incidents_subscriber_confirm", args=[subscriber.pk]))

    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.ACTIVE
    assert subscriber.confirmed_at is not None


def test_confirm_and_re_enable_actions(client, responder):
    unconfirmed = SubscriberFactory(unconfirmed=True)
    disabled = SubscriberFactory(webhook=True, quarantined=True, last_error="HTTP 500")

    client.post(
        CHANGELIST_URL, {"action": "confirm_selected", "_selected_action": [unconfirmed.pk]}
    )
    client.post(
        CHANGELIST_URL, {"action": "reactivate_selected", "_selected_action": [disabled.pk]}
    )

    unconfirmed.refresh_from_db()
    disabled.refresh_from_db()
    assert unconfirmed.state == SubscriberState.ACTIVE
    assert disabled.state == SubscriberState.ACTIVE
    assert disabled.last_error == ""


def test_changelist_warns_of_disabled_webhooks_and_re_enables_them(client, responder):
    webhook = SubscriberFactory(
        webhook=True,
        endpoint="https://hooks.example.test/broken",
        quarantined=True,
        quarantined_at=timezone.now(),
        last_error="HTTP 503 after 8 attempts",
    )

    response = client.get(CHANGELIST_URL)

    assert 'id="quarantined-webhooks"' in response.text
    assert "https://hooks.example.test/broken" in response.text
    assert "HTTP 503 after 8 attempts" in response.text

    response = client.post(
        reverse("admin:incidents_subscriber_reactivate", args=[webhook.pk]),
        {"next": CHANGELIST_URL},
    )
    assert response["Location"] == CHANGELIST_URL
    webhook.refresh_from_db()
    assert webhook.state == SubscriberState.ACTIVE
    assert 'id="quarantined-webhooks"' not in client.get(CHANGELIST_URL).text


def test_deleting_a_subscriber_removes_it(client, responder):
    subscriber = SubscriberFactory()

    response = client.post(
        reverse("admin:incidents_subscriber_delete", args=[subscriber.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Subscriber.objects.exists()


# Notifications


def test_event_list_counts_queued_sent_and_failed_deliveries(
    client, responder, page, django_assert_max_num_queries
):
    # `page`: the page settings exist and are cached, as on a running site (the admin's
    # header names the page).
    incident = open_incident(name="API errors")
    event = NotificationEvent.objects.get(incident=incident)
    subscribers = SubscriberFactory.create_batch(6)
    states = [DeliveryState.QUEUED] * 1 + [DeliveryState.SENT] * 3 + [DeliveryState.FAILED] * 2
    for subscriber, state in zip(subscribers, states, strict=True):
        Delivery.objects.create(
            event=event, subscriber=subscriber, channel=Channel.EMAIL, state=state
        )
    for _ in range(10):
        NotificationEvent.objects.create(kind=EventKind.INCIDENT_UPDATED, incident=incident)

    with django_assert_max_num_queries(10):
        response = client.get(EVENTS_URL)

    assert response.status_code == 200
    shown = {e.pk: e.delivery_counts for e in response.context["cl"].result_list}
    assert shown[event.pk] == {"queued": 1, "sent": 3, "failed": 2}
    assert len(shown) == 11
    assert "API errors" in response.text


def test_event_list_filters_by_incident(client, responder):
    first = open_incident(name="First")
    open_incident(name="Second")

    response = client.get(EVENTS_URL, {"incident__id__exact": first.pk})

    assert response.status_code == 200
    assert {e.incident_id for e in response.context["cl"].result_list} == {first.pk}
    assert "Notifications about “First”" in response.text


def test_event_page_shows_failed_deliveries_with_their_errors(client, responder):
    incident = open_incident()
    event = NotificationEvent.objects.get(incident=incident)
    NotificationEvent.objects.filter(pk=event.pk).update(subject="[Acme] Elevated error rates")
    failed = SubscriberFactory(email="bounce@example.test")
    Delivery.objects.create(
        event=event,
        subscriber=failed,
        channel=Channel.EMAIL,
        state=DeliveryState.FAILED,
        error="550 mailbox unavailable",
    )
    Delivery.objects.create(
        event=event, subscriber=SubscriberFactory(), channel=Channel.EMAIL, state="sent"
    )

    response = client.get(reverse("admin:incidents_notificationevent_change", args=[event.pk]))

    assert response.status_code == 200
    assert "[Acme] Elevated error rates" in response.text
    assert "bounce@example.test" in response.text
    assert "550 mailbox unavailable" in response.text
    assert response.context["delivery_counts"] == {"queued": 0, "sent": 1, "failed": 1}


def test_notifications_are_read_only(client, responder):
    event = NotificationEvent.objects.get(incident=open_incident())

    assert client.get(reverse("admin:incidents_notificationevent_add")).status_code == 403
    response = client.post(
        reverse("admin:incidents_notificationevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert NotificationEvent.objects.filter(pk=event.pk).exists()


# Maintenances and postmortems


def test_maintenance_form_saves_whether_subscribers_are_reminded_and_told(client, responder):
    start = timezone.localtime() + timedelta(days=1)
    end = start + timedelta(hours=2)

    response = client.post(
        reverse("admin:incidents_scheduledmaintenance_add"),
        {
            "name": "Database upgrade",
            "status": IncidentStatus.SCHEDULED,
            "body": "We will upgrade the database.",
            "scheduled_for_0": start.strftime("%Y-%m-%d"),
            "scheduled_for_1": start.strftime("%H:%M:%S"),
            "scheduled_until_0": end.strftime("%Y-%m-%d"),
            "scheduled_until_1": end.strftime("%H:%M:%S"),
            "scheduled_auto_in_progress": "on",
            "scheduled_auto_completed": "on",
            "auto_transition_deliver_notifications_at_start": "on",
        },
    )

    assert response.status_code == 302
    maintenance = Incident.objects.get()
    assert maintenance.scheduled_remind_prior is False
    assert maintenance.auto_transition_deliver_notifications_at_start is True
    assert maintenance.auto_transition_deliver_notifications_at_end is False


def test_maintenance_change_page_changes_the_notification_flags(client, responder):
    maintenance = schedule_maintenance()
    url = reverse("admin:incidents_scheduledmaintenance_change", args=[maintenance.pk])

    response = client.post(
        url,
        change_data(
            maintenance,
            auto_transition_deliver_notifications_at_start="on",
            name="Renamed upgrade",
        ),
    )

    assert response.status_code == 302
    maintenance.refresh_from_db()
    assert maintenance.name == "Renamed upgrade"
    assert maintenance.scheduled_remind_prior is False
    assert maintenance.auto_transition_deliver_notifications_at_start is True
    assert maintenance.auto_transition_deliver_notifications_at_end is False
    assert maintenance.updates.count() == 1  # no update posted


def resolved_incident(client):
    incident = open_incident()
    client.post(reverse("admin:incidents_incident_resolve", args=[incident.pk]))
    incident.refresh_from_db()
    return incident


def test_publishing_a_postmortem_without_notifying_subscribers(client, responder):
    incident = resolved_incident(client)

    response = client.post(
        reverse("admin:incidents_incident_change", args=[incident.pk]),
        change_data(incident, postmortem_body="What happened.", publish_postmortem="on"),
    )

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.postmortem_published_at is not None
    assert not NotificationEvent.objects.filter(kind=EventKind.POSTMORTEM_PUBLISHED).exists()


def test_publishing_a_postmortem_notifies_subscribers_when_ticked(client, responder):
    incident = resolved_incident(client)

    response = client.post(
        reverse("admin:incidents_incident_change", args=[incident.pk]),
        change_data(
            incident,
            postmortem_body="What happened.",
            publish_postmortem="on",
            postmortem_notify_subscribers="on",
        ),
    )

    assert response.status_code == 302
    assert NotificationEvent.objects.get(kind=EventKind.POSTMORTEM_PUBLISHED).incident == incident


# Test deliveries


@pytest.fixture
def private_webhooks_allowed(settings):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True  # pytest-httpserver listens on 127.0.0.1


def test_send_a_test_delivery_from_the_webhook_page(
    client, responder, page, httpserver, private_webhooks_allowed
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    webhook = SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook"), secret="k")

    response = client.post(
        reverse("admin:incidents_subscriber_test_delivery", args=[webhook.pk]), follow=True
    )

    assert len(httpserver.log) == 1
    request, _ = httpserver.log[0]
    assert request.headers["X-Beacon-Signature-256"].startswith("sha256=")
    assert f"Test delivery to {webhook.endpoint}: sent." in messages_of(response)


def test_a_failed_test_delivery_shows_the_error(
    client, responder, page, httpserver, private_webhooks_allowed
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("nope", status=500)
    webhook = SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook"))

    response = client.post(
        CHANGELIST_URL,
        {"action": "send_test_delivery", "_selected_action": [webhook.pk]},
        follow=True,
    )

    [message] = messages_of(response)
    assert message.startswith(f"Test delivery to {webhook.endpoint} failed: ")
    assert "500" in message


def test_an_email_subscriber_page_keeps_the_address_and_changes_components(client, responder):
    api = ComponentFactory(name="API")
    subscriber = SubscriberFactory(email="ada@example.test", unconfirmed=True)
    assert client.get(ADD_URL).status_code == 200

    page = client.get(subscriber_url(subscriber))
    assert page.status_code == 200
    assert "ada@example.test" in page.text
    assert "email" not in page.context["adminform"].form.fields

    response = client.post(
        subscriber_url(subscriber),
        {"email": "mallory@example.test", "components": [api.pk], "state": "active"},
    )

    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.email == "ada@example.test"
    assert list(subscriber.components.all()) == [api]
    assert subscriber.state == SubscriberState.ACTIVE
    assert subscriber.confirmed_at is not None


def test_the_incident_page_says_how_many_subscribers_were_told(client, responder, page):
    SubscriberFactory.create_batch(2)
    incident = open_incident()
    for batch in delivery.event_expand(event_id=NotificationEvent.objects.get().pk):
        delivery.batch_send(batch=batch)

    response = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))

    assert "1 notification</a>: 2 sent, 0 queued, 0 failed" in response.content.decode()
    assert f"?incident__id__exact={incident.pk}" in response.content.decode()


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        ("http://10.0.0.8/hook", "private, loopback or reserved address"),
        ("http://[::ffff:127.0.0.1]:9000/hook", "private, loopback or reserved address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata address"),
    ],
)
def test_staff_cannot_add_a_webhook_at_a_private_or_metadata_address(
    client, responder, settings, endpoint, error
):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = False
    response = client.post(
        ADD_URL,
        {
            "channel": Channel.WEBHOOK,
            "endpoint": endpoint,
            "webhook_format": "statuspage",
            "confirmed_by_staff": "on",
        },
    )

    assert response.status_code == 200
    assert error in " ".join(response.context["adminform"].form.errors["endpoint"])
    assert not Subscriber.objects.exists()


def test_staff_cannot_move_a_webhook_to_a_metadata_address_even_when_private_is_allowed(
    client, responder, settings
):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    webhook = SubscriberFactory(webhook=True, endpoint="https://hooks.example.test/beacon")

    refused = client.post(
        subscriber_url(webhook),
        webhook_change_data(webhook, endpoint="http://[::ffff:169.254.169.254]/latest/"),
    )
    allowed = client.post(
        subscriber_url(webhook), webhook_change_data(webhook, endpoint="http://10.0.0.8/hook")
    )

    assert refused.status_code == 200
    assert "cloud metadata address" in " ".join(
        refused.context["adminform"].form.errors["endpoint"]
    )
    assert allowed.status_code == 302
    webhook.refresh_from_db()
    assert webhook.endpoint == "http://10.0.0.8/hook"
