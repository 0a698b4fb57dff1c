"""Hard bounces: the providers' webhooks and an RFC 3464 DSN read from standard input
suppress the address; soft bounces, strangers and bad requests change nothing."""

import base64
import hashlib
import hmac
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from incidents.notify import subscriptions
from incidents.notify.models import Subscriber, SubscriberState
from tests.incidents.factories import SubscriberFactory, sign_in_staff

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"
TOKEN = "bounce-token-0123456789"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(autouse=True)
def _token(settings):
    settings.BEACON_BOUNCE_WEBHOOK_TOKEN = TOKEN
    settings.BEACON_MAILGUN_WEBHOOK_SIGNING_KEY = ""


def post(client, provider, body, *, content_type="application/json", token=TOKEN, **extra):
    url = f"/webhooks/bounces/{provider}/"
    if token is not None:
        url += f"?token={token}"
    return client.post(url, data=body, content_type=content_type, **extra)


def state(email):
    return Subscriber.objects.get(email=email)


# Each provider's hard bounce suppresses, its soft bounce does not


@pytest.mark.parametrize(
    ("provider", "hard", "soft", "address", "content_type"),
    [
        (
            "postmark",
            "postmark-hard-bounce.json",
            "postmark-soft-bounce.json",
            "john@example.com",
            "application/json",
        ),  # noqa: E501
        (
            "mailgun",
            "mailgun-permanent-failure.json",
            "mailgun-temporary-failure.json",
            "alice@example.com",
            "application/json",
        ),  # noqa: E501
        (
            "ses",
            "ses-sns-permanent-bounce.json",
            "ses-sns-transient-bounce.json",
            "jane@example.com",
            "text/plain; charset=UTF-8",
        ),  # noqa: E501
    ],
)
def test_a_hard_bounce_suppresses_and_a_soft_one_does_not(
    client, provider, hard, soft, address, content_type
):
    subscriber = SubscriberFactory(email=address)

    soft_answer = post(client, provider, fixture(soft), content_type=content_type)
    assert soft_answer.status_code == 200
    assert state(address).state == SubscriberState.ACTIVE

    answer = post(client, provider, fixture(hard), content_type=content_type)

    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.QUARANTINED
    assert subscriber.bounced_at is not None and subscriber.quarantined_at is not None
    assert subscriber.last_error.startswith("Hard bounce: ")


def test_sendgrid_suppresses_bounces_but_not_blocks(client):
    bounced = SubscriberFactory(email="example@test.com")
    blocked = SubscriberFactory(email="blocked@test.com")

    assert post(client, "sendgrid", fixture("sendgrid-events.json")).status_code == 200

    assert state(bounced.email).state == SubscriberState.QUARANTINED
    assert "500 unknown recipient" in state(bounced.email).last_error
    assert state(blocked.email).state == SubscriberState.ACTIVE


def test_ses_suppresses_every_permanently_bounced_recipient(client):
    for address in ["jane@example.com", "richard@example.com", "mary@example.com"]:
        SubscriberFactory(email=address)

    post(client, "ses", fixture("ses-sns-permanent-bounce.json"), content_type="text/plain")

    assert state("jane@example.com").state == SubscriberState.QUARANTINED
    assert state("richard@example.com").state == SubscriberState.QUARANTINED
    assert state("mary@example.com").state == SubscriberState.ACTIVE  # not among the bounced


def test_the_sns_subscription_confirmation_is_logged_for_staff(client, caplog):
    answer = post(client, "ses", fixture("ses-sns-subscription-confirmation.json"))

    assert answer.status_code == 200
    assert "Action=ConfirmSubscription" in caplog.text


def test_an_address_in_another_case_is_suppressed(client):
    subscriber = SubscriberFactory(email="john@example.com")
    body = json.loads(fixture("postmark-hard-bounce.json"))
    body["Email"] = "  JOHN@Example.COM "

    post(client, "postmark", json.dumps(body))

    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.QUARANTINED


# What suppression means


def test_a_suppressed_address_gets_no_confirmation_and_staff_can_reactivate(
    client, settings, mailoutbox, django_capture_on_commit_callbacks, page
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    subscriber = SubscriberFactory(email="john@example.com")
    post(client, "postmark", fixture("postmark-hard-bounce.json"))

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post("/subscribe/", {"email": "john@example.com"})

    assert "Check your inbox" in answer.content.decode()  # the same answer as ever
    assert mailoutbox == []
    subscriptions.subscriber_reactivate(subscriber=subscriber)
    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.ACTIVE and subscriber.bounced_at is None


def test_the_admin_shows_when_and_why_an_address_bounced(client, admin_user):
    subscriber = SubscriberFactory(email="john@example.com")
    post(client, "postmark", fixture("postmark-hard-bounce.json"))
    sign_in_staff(client, admin_user)

    html = client.get(f"/admin/incidents/subscriber/{subscriber.pk}/change/").content.decode()

    assert "Bounced at" in html
    assert "Hard bounce: Postmark HardBounce" in html
    assert "reactivate" in html.lower()


# Hostile requests: a clear 4xx in JSON, never a 500, never a hint about an address


def test_an_unknown_address_answers_the_same_as_a_subscriber(client):
    SubscriberFactory(email="john@example.com")
    known = post(client, "postmark", fixture("postmark-hard-bounce.json"))
    body = json.loads(fixture("postmark-hard-bounce.json"))
    body["Email"] = "nobody@example.com"

    unknown = post(client, "postmark", json.dumps(body))

    assert (unknown.status_code, unknown.content) == (known.status_code, known.content)


@pytest.mark.parametrize(
    ("token", "headers", "status"),
    [
        (None, {}, 401),
        ("", {}, 401),
        ("wrong", {}, 403),
        (TOKEN[:-1], {}, 403),
        (None, {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"x:wrong").decode()}, 403),
        (None, {"HTTP_AUTHORIZATION": "Basic !!!notbase64"}, 401),
        (None, {"HTTP_AUTHORIZATION": "Bearer wrong"}, 403),
    ],
)
def test_a_missing_or_wrong_token_is_refused(client, token, headers, status):
    subscriber = SubscriberFactory(email="john@example.com")

    answer = post(client, "postmark", fixture("postmark-hard-bounce.json"), token=token, **headers)

    assert answer.status_code == status
    assert answer.json()["error"] in ("unauthorized", "forbidden")
    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.ACTIVE


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"postmark:{TOKEN}".encode()).decode()},
        {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"},
    ],
)
def test_basic_auth_or_a_bearer_token_is_accepted(client, headers):
    SubscriberFactory(email="john@example.com")

    answer = post(client, "postmark", fixture("postmark-hard-bounce.json"), token=None, **headers)

    assert answer.status_code == 200
    assert state("john@example.com").state == SubscriberState.QUARANTINED


def test_without_a_token_configured_there_is_no_endpoint(client, settings):
    settings.BEACON_BOUNCE_WEBHOOK_TOKEN = ""

    assert post(client, "postmark", fixture("postmark-hard-bounce.json")).status_code == 404
    assert post(client, "postmark", b"{}", token="").status_code == 404


def test_an_unknown_provider_or_a_get_is_refused(client):
    assert post(client, "sparkpost", b"{}").status_code == 404
    assert client.get(f"/webhooks/bounces/postmark/?token={TOKEN}").status_code == 405


@pytest.mark.parametrize(
    ("provider", "body", "content_type", "status"),
    [
        ("postmark", b"not json", "application/json", 400),
        ("postmark", b"\xff\xfe", "application/json", 400),
        ("postmark", b"[1, 2]", "application/json", 400),
        ("postmark", b'"a string"', "application/json", 400),
        ("postmark", b"null", "application/json", 400),
        ("postmark", b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        ("sendgrid", b'{"event": "bounce"}', "application/json", 400),
        ("sendgrid", b"[1, 2]", "application/json", 400),
        ("mailgun", b'{"event-data": "failed"}', "application/json", 400),
        ("ses", b'{"Type": "Notification", "Message": "not json"}', "text/plain", 400),
        ("ses", b'{"Type": "Notification", "Message": 5}', "text/plain", 400),
        ("ses", b'{"Type": "Whatever"}', "text/plain", 400),
        ("postmark", b"Email=john@example.com", "application/x-www-form-urlencoded", 415),
        ("postmark", b"{}", "text/html", 415),
        ("sendgrid", b"[]", "text/plain", 415),
    ],
)
def test_malformed_bodies_get_a_json_error(client, provider, body, content_type, status):
    SubscriberFactory(email="john@example.com")

    answer = post(client, provider, body, content_type=content_type)

    assert answer.status_code == status
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["message"]
    assert state("john@example.com").state == SubscriberState.ACTIVE


def test_odd_values_where_addresses_go_suppress_nobody(client):
    SubscriberFactory(email="john@example.com")
    for value in [None, 5, ["john@example.com"], "", "john", "%", "john@example.com\r\nX: y"]:
        body = json.loads(fixture("postmark-hard-bounce.json"))
        body["Email"] = value
        assert post(client, "postmark", json.dumps(body)).status_code == 200
    assert state("john@example.com").state == SubscriberState.ACTIVE


def test_a_huge_body_is_refused_unread(client):
    SubscriberFactory(email="john@example.com")
    padding = " " * 1_100_000
    body = fixture("postmark-hard-bounce.json").replace(b"{", b"{" + padding.encode(), 1)

    answer = post(client, "postmark", body)

    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    assert state("john@example.com").state == SubscriberState.ACTIVE


def test_mailgun_events_must_carry_a_valid_signature_when_a_key_is_set(client, settings):
    settings.BEACON_MAILGUN_WEBHOOK_SIGNING_KEY = "key-of-ours"
    SubscriberFactory(email="alice@example.com")
    body = json.loads(fixture("mailgun-permanent-failure.json"))

    assert post(client, "mailgun", json.dumps(body)).status_code == 403  # the docs' signature
    del body["signature"]
    assert post(client, "mailgun", json.dumps(body)).status_code == 400
    assert state("alice@example.com").state == SubscriberState.ACTIVE

    signature = {"timestamp": "1529006854", "token": "a8ce0edb2dd8301dee6c"}
    signature["signature"] = hmac.new(
        b"key-of-ours", (signature["timestamp"] + signature["token"]).encode(), hashlib.sha256
    ).hexdigest()
    body["signature"] = signature
    assert post(client, "mailgun", json.dumps(body)).status_code == 200
    assert state("alice@example.com").state == SubscriberState.QUARANTINED


# RFC 3464 delivery status notifications on standard input


def process_bounce(raw: bytes, monkeypatch) -> str:
    stdin = io.TextIOWrapper(io.BytesIO(raw))
    monkeypatch.setattr("sys.stdin", stdin)
    err = io.StringIO()
    call_command("process_bounce", stderr=err)
    return err.getvalue()


def test_a_dsn_suppresses_the_failed_recipient_not_the_delayed_one(monkeypatch):
    gone = SubscriberFactory(email="gone.reader@example.test")
    full = SubscriberFactory(email="full@example.test")

    report = process_bounce(fixture("dsn-postfix-hard-bounce.eml"), monkeypatch)

    gone.refresh_from_db()
    assert gone.state == SubscriberState.QUARANTINED
    assert "DSN 5.1.1" in gone.last_error and "User unknown" in gone.last_error
    assert state(full.email).state == SubscriberState.ACTIVE
    assert "1 permanent failure(s) reported, 1 subscriber(s) suppressed" in report


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not a message at all",
        b"From: a@example.test\r\nSubject: out of office\r\n\r\nI am away.\r\n",
        fixture("dsn-postfix-hard-bounce.eml").replace(
            b"report-type=delivery-status", b"report-type=disposition-notification"
        ),
        fixture("dsn-postfix-hard-bounce.eml").replace(b"Status: 5.1.1", b"Status: 4.1.1"),
        fixture("dsn-postfix-hard-bounce.eml").replace(b"Action: failed", b"Action: delivered"),
        fixture("dsn-postfix-hard-bounce.eml").replace(
            b"Final-Recipient: rfc822; Gone", b"Final-Recipient: x400; Gone"
        ),
        b"\x00\xff" * 1000,
    ],
)
def test_anything_but_a_hard_bounce_dsn_suppresses_nobody(raw, monkeypatch):
    SubscriberFactory(email="gone.reader@example.test")

    process_bounce(raw, monkeypatch)  # no exception: a mail server must not bounce the bounce

    assert state("gone.reader@example.test").state == SubscriberState.ACTIVE


def test_a_huge_message_is_ignored(monkeypatch):
    SubscriberFactory(email="gone.reader@example.test")
    raw = fixture("dsn-postfix-hard-bounce.eml") + b"x" * 10_000_001

    assert "Ignored" in process_bounce(raw, monkeypatch)
    assert state("gone.reader@example.test").state == SubscriberState.ACTIVE
