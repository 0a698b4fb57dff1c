"""Management API v1: subscribers."""

import json

import pytest

from incidents.notify.models import Subscriber
from statuspage.api_v1.keys import api_key_create
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

SUBSCRIBER_KEYS = {
    "id",
    "mode",
    "email",
    "endpoint",
    "phone_number",
    "phone_country",
    "display_phone_number",
    "obfuscated_channel_name",
    "workspace_name",
    "quarantined_at",
    "purge_at",
    "components",
    "page_access_user_id",
    "created_at",
    "skip_confirmation_notification",
}


@pytest.fixture
def api(manage_api):
    return manage_api


def test_listing_shows_active_subscribers_by_default(api):
    component = ComponentFactory()
    narrow = SubscriberFactory(email="b@example.test", components=[component])
    everything = SubscriberFactory(email="a@example.test")
    SubscriberFactory(unconfirmed=True)
    response = api("get", "/subscribers")
    assert response.status_code == 200
    data = response.json()
    assert [s["id"] for s in data] == [everything.public_id, narrow.public_id]
    assert data[0].keys() == SUBSCRIBER_KEYS
    assert data[0]["mode"] == "email" and data[0]["phone_number"] is None
    assert data[0]["components"] == [component.public_id]  # every component, listed
    assert data[1]["components"] == [component.public_id]


def test_listing_filters_searches_and_pages_from_zero(api):
    SubscriberFactory(email="ann@example.test")
    SubscriberFactory(email="bob@example.test")
    hook = SubscriberFactory(webhook=True, endpoint="https://hooks.example.test/ops")
    quarantined = SubscriberFactory(email="old@example.test", quarantined=True)

    def emails(**params):
        response = api("get", "/subscribers", **params)
        assert response.status_code == 200
        return [s["email"] or s["endpoint"] for s in response.json()]

    assert emails(type="webhook") == [hook.endpoint]
    assert emails(type="sms") == []
    assert emails(state="quarantined") == [quarantined.email]
    assert len(emails(state="all")) == 4
    assert emails(q="bob") == ["bob@example.test"]
    assert emails(type="email", limit=1, page=0) == ["ann@example.test"]
    assert emails(type="email", limit=1, page=1) == ["bob@example.test"]
    assert emails(type="email", sort_direction="desc") == ["bob@example.test", "ann@example.test"]


def test_unknown_filter_values_are_400(api):
    assert api("get", "/subscribers", state="gone").status_code == 400
    assert api("get", "/subscribers", page=-1).status_code == 400


def test_creating_without_skipping_sends_the_confirmation(
    api, settings, django_capture_on_commit_callbacks, mailoutbox
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    component = ComponentFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = api(
            "post",
            "/subscribers",
            {"subscriber": {"email": "New@Example.test", "component_ids": [component.public_id]}},
        )
    assert response.status_code == 201
    data = response.json()
    assert data["email"] == "new@example.test" and data["components"] == [component.public_id]
    subscriber = Subscriber.objects.get()
    assert subscriber.state == "unconfirmed" and subscriber.public_id == data["id"]
    [message] = mailoutbox
    assert message.to == ["new@example.test"]


def test_skipping_the_confirmation_creates_an_active_subscriber_silently(
    api, settings, django_capture_on_commit_callbacks, mailoutbox
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        response = api(
            "post",
            "/subscribers",
            {"subscriber": {"email": "known@example.test", "skip_confirmation_notification": True}},
        )
    assert response.status_code == 201
    assert Subscriber.objects.get().state == "active"
    assert mailoutbox == []


def test_an_address_already_subscribed_cannot_be_added_again_silently(api):
    SubscriberFactory(email="known@example.test")
    response = api(
        "post",
        "/subscribers",
        {"subscriber": {"email": "known@example.test", "skip_confirmation_notification": True}},
    )
    assert response.status_code == 422
    assert Subscriber.objects.count() == 1


def test_creating_a_webhook_subscriber(api):
    response = api(
        "post",
        "/subscribers",
        {"subscriber": {"endpoint": "https://hooks.example.test/x", "email": "ops@example.test"}},
    )
    assert response.status_code == 201
    data = response.json()
    assert data["mode"] == "webhook" and data["endpoint"] == "https://hooks.example.test/x"
    subscriber = Subscriber.objects.get()
    assert subscriber.channel == "webhook" and subscriber.state == "active"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"subscriber": {"email": "not-an-address"}}, 422),
        ({"subscriber": {"endpoint": "ftp://x"}}, 422),
        ({"subscriber": {"phone_number": "5555555"}}, 422),
        ({"subscriber": {}}, 422),
        ({"subscriber": {"email": "a@example.test", "component_ids": ["nope"]}}, 422),
        ({"subscriber": {"email": "a@example.test", "component_ids": "nope"}}, 400),
        ({"subscriber": "a@example.test"}, 400),
    ],
)
def test_bad_subscribers_write_nothing(api, body, status):
    response = api("post", "/subscribers", body)
    assert response.status_code == status
    assert response.json()["message"]
    assert not Subscriber.objects.exists()


def test_get_patch_and_delete_one(api):
    first, second = ComponentFactory(), ComponentFactory()
    subscriber = SubscriberFactory()
    path = f"/subscribers/{subscriber.public_id}"
    assert api("get", path).json()["id"] == subscriber.public_id

    response = api("patch", path, {"component_ids": [second.public_id]})
    assert response.status_code == 200
    assert response.json()["components"] == [second.public_id]
    subscriber.refresh_from_db()
    assert not subscriber.all_components

    response = api("patch", path, {"subscriber": {"component_ids": []}})
    assert response.json()["components"] == [first.public_id, second.public_id]

    response = api("delete", path)
    assert response.status_code == 200 and response.json()["id"] == subscriber.public_id
    assert not Subscriber.objects.exists()
    assert api("get", path).status_code == 404


def test_bulk_unsubscribe(api):
    keep, drop_one, drop_two = SubscriberFactory(), SubscriberFactory(), SubscriberFactory()
    response = api(
        "post",
        "/subscribers/unsubscribe",
        {"subscribers": [drop_one.public_id, drop_two.public_id]},
    )
    assert response.status_code == 202
    assert list(Subscriber.objects.all()) == [keep]


def test_bulk_unsubscribe_with_an_unknown_code_removes_nobody(api):
    subscriber = SubscriberFactory()
    response = api(
        "post", "/subscribers/unsubscribe", {"subscribers": [subscriber.public_id, "nope"]}
    )
    assert response.status_code == 422
    assert Subscriber.objects.count() == 1


def test_bulk_unsubscribe_all_of_a_type(api):
    SubscriberFactory()
    SubscriberFactory(webhook=True)
    response = api("post", "/subscribers/unsubscribe", {"subscribers": "all", "type": "webhook"})
    assert response.status_code == 202
    assert list(Subscriber.objects.values_list("channel", flat=True)) == ["email"]


def test_bulk_unsubscribe_takes_at_most_100_codes(api):
    response = api("post", "/subscribers/unsubscribe", {"subscribers": ["x"] * 101})
    assert response.status_code == 400


def test_counting(api):
    SubscriberFactory()
    SubscriberFactory(unconfirmed=True)
    SubscriberFactory(webhook=True)
    assert api("get", "/subscribers/count").json() == {"count": 2}
    assert api("get", "/subscribers/count", type="webhook").json() == {"count": 1}
    assert api("get", "/subscribers/count", state="all").json() == {"count": 3}
    histogram = api("get", "/subscribers/histogram_by_state").json()
    assert histogram["email"] == {"active": 1, "unconfirmed": 1, "quarantined": 0}


def test_a_key_without_subscriber_permissions_is_403(client, page):
    raw = api_key_create(owner=StaffFactory(), name="No role")[1]
    headers = {"HTTP_AUTHORIZATION": f"OAuth {raw}"}
    base = f"/api/v1/pages/{page.public_id}/subscribers"
    assert client.get(base, **headers).status_code == 403
    response = client.post(
        base,
        json.dumps({"subscriber": {"email": "a@example.test"}}),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 403
    assert not Subscriber.objects.exists()


def test_reactivating_quarantined_subscribers(api):
    bounced = SubscriberFactory(email="bounced@example.test", quarantined=True)
    waiting = SubscriberFactory(email="waiting@example.test", unconfirmed=True)

    refused = api("post", "/subscribers/reactivate", {"subscribers": [waiting.public_id]})
    assert refused.status_code == 422  # not quarantined, so not among those chosen
    assert api("post", "/subscribers/reactivate", {"subscribers": "all"}).status_code == 202

    bounced.refresh_from_db()
    waiting.refresh_from_db()
    assert bounced.state == "active" and bounced.quarantined_at is None
    assert waiting.state == "unconfirmed"  # its owner has still not said yes


def test_resending_confirmations_only_to_the_unconfirmed(
    api, settings, django_capture_on_commit_callbacks, mailoutbox
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    waiting = SubscriberFactory(email="waiting@example.test", unconfirmed=True)
    active = SubscriberFactory(email="active@example.test")

    with django_capture_on_commit_callbacks(execute=True):
        bulk = api("post", "/subscribers/resend_confirmation", {"subscribers": "all"})
        one = api("post", f"/subscribers/{waiting.public_id}/resend_confirmation")
        refused = api("post", f"/subscribers/{active.public_id}/resend_confirmation")

    assert bulk.status_code == 202 and one.status_code == 201
    assert refused.status_code == 422 and "confirmation" in refused.json()["error"]
    assert [m.to for m in mailoutbox] == [["waiting@example.test"]] * 2
    assert api("post", "/subscribers/nope/resend_confirmation").status_code == 404


def test_unsubscribed_addresses_are_forgotten(api):
    gone = SubscriberFactory(email="gone@example.test")
    api("delete", f"/subscribers/{gone.public_id}")

    response = api("get", "/subscribers/unsubscribed")

    assert response.status_code == 200 and response.json() == []


@pytest.fixture
def hooks_dns(monkeypatch):
    """Names of webhook hosts as a resolver would answer them (the edge: getaddrinfo)."""
    import socket

    real = socket.getaddrinfo
    answers = {"internal.hooks.test": "10.0.0.5", "meta.hooks.test": "169.254.169.254"}

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        return real(answers.get(name, host), port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


PRIVATE_ENDPOINTS = [
    "http://127.0.0.1:8080/hook",
    "http://10.1.2.3/hook",
    "http://[::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
    "http://localhost:8000/hook",
    "https://internal.hooks.test/hook",  # resolves to 10.0.0.5
]
METADATA_ENDPOINTS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "https://meta.hooks.test/hook",  # resolves to 169.254.169.254
]


@pytest.mark.parametrize("endpoint", PRIVATE_ENDPOINTS)
def test_a_webhook_at_a_private_address_is_refused_when_created(api, settings, hooks_dns, endpoint):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = False
    response = api("post", "/subscribers", {"subscriber": {"endpoint": endpoint}})
    assert response.status_code == 422
    message = response.json()["message"]
    assert "private, loopback or reserved address" in message
    assert "WEBHOOKS_ALLOW_PRIVATE" in message
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("endpoint", PRIVATE_ENDPOINTS)
def test_a_webhook_at_a_private_address_is_accepted_when_the_operator_allows_it(
    api, settings, hooks_dns, endpoint
):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    response = api("post", "/subscribers", {"subscriber": {"endpoint": endpoint}})
    assert response.status_code == 201
    assert Subscriber.objects.get().endpoint == endpoint


@pytest.mark.parametrize("allow_private", [True, False])
@pytest.mark.parametrize("endpoint", METADATA_ENDPOINTS)
def test_a_webhook_at_a_metadata_address_is_always_refused(
    api, settings, hooks_dns, endpoint, allow_private
):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = allow_private
    response = api("post", "/subscribers", {"subscriber": {"endpoint": endpoint}})
    assert response.status_code == 422
    assert "cloud metadata address" in response.json()["message"]
    assert not Subscriber.objects.exists()


def test_a_webhook_whose_name_does_not_resolve_yet_is_accepted(api, settings):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = False
    response = api(
        "post", "/subscribers", {"subscriber": {"endpoint": "https://hooks.example.invalid/x"}}
    )
    assert response.status_code == 201


def test_browser_push_subscribers_are_not_in_statuspages_api(api):
    email = SubscriberFactory(email="a@example.test")
    push = SubscriberFactory(
        channel="push",
        email="",
        endpoint="https://push.example.test/abc",
        push_p256dh="B" * 87,
        push_auth="A" * 22,
    )

    listed = api("get", "/subscribers").json()
    assert [s["id"] for s in listed] == [email.public_id]
    assert api("get", "/subscribers", type="push").status_code == 400  # not a Statuspage mode
    assert api("get", "/subscribers/count").json() == {"count": 1}
    histogram = api("get", "/subscribers/histogram_by_state").json()
    assert set(histogram) == {"email", "webhook"}
    assert api("get", f"/subscribers/{push.public_id}").status_code == 404
    assert Subscriber.objects.filter(pk=push.pk).exists()
