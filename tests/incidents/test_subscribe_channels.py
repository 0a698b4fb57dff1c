"""A visitor subscribes their own Slack, Discord or Teams channel, or a generic webhook.

Real receivers: an HTTPS one named hooks.slack.com (its name answered by the faked DNS
lookup, its certificate from a test CA), and a plain HTTP one for generic webhooks.
"""

import json
import re
import socket
from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.notify import links
from incidents.notify.models import Subscriber, SubscriberState
from tests.components.factories import ComponentFactory
from tests.incidents.factories import SubscriberFactory
from tests.incidents.notify.conftest import tls_endpoint

pytestmark = pytest.mark.django_db

SLACK_PATH = "/services/T0001/B0001/s3cr3t"
CSRF_INPUT = re.compile(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]*">')


@pytest.fixture
def components(page):
    return [ComponentFactory(name="API"), ComponentFactory(name="Website")]


@pytest.fixture
def local_endpoints(settings):
    """The receivers listen on 127.0.0.1."""
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 5


@pytest.fixture
def slack(monkeypatch, local_endpoints):
    with tls_endpoint(monkeypatch, "hooks.slack.com", SLACK_PATH) as server:
        yield server


def slack_url(server, path=SLACK_PATH) -> str:
    return f"https://hooks.slack.com:{server.port}{path}"


@pytest.fixture
def generic(httpserver, local_endpoints):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    return httpserver


@pytest.fixture
def sending(settings, mailoutbox, django_capture_on_commit_callbacks):
    """Post the form with emails sent at once; returns (post, mailbox)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True

    def post(client, **data):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("subscribe"), data)

    return post, mailoutbox


def without_csrf_token(response) -> str:
    return CSRF_INPUT.sub("", response.content.decode())


def link_in(text: str, name: str) -> str:
    prefix = reverse(name, kwargs={"token": "x"}).removesuffix("x/")
    match = re.search(rf"https?://[^/\s]+({re.escape(prefix)}[^\s/]+/)", text)
    assert match, f"no {name} link in:\n{text}"
    return match[1]


# The form, with and without JavaScript


def test_each_channel_has_a_real_link_beside_its_htmx_swap(client, components):
    html = client.get("/subscribe/").content.decode()

    for channel in ["email", "slack", "discord", "teams", "webhook"]:
        url = f"/subscribe/?channel={channel}"
        assert f'href="{url}" hx-get="{url}" hx-target="#subscribe-form"' in html
    assert 'type="email"' in html and 'name="endpoint"' not in html


@pytest.mark.parametrize(
    ("channel", "label", "has_email"),
    [
        ("slack", "Slack incoming webhook URL", False),
        ("discord", "Discord webhook URL", False),
        ("teams", "Microsoft Teams workflow URL", False),
        ("webhook", "Email address for failure notices", True),
    ],
)
def test_a_channel_gets_its_own_fields(
    client, components, channel, label, has_email, django_assert_max_num_queries
):
    with django_assert_max_num_queries(4):
        full = client.get(f"/subscribe/?channel={channel}").content.decode()
    partial = client.get(f"/subscribe/?channel={channel}", HTTP_HX_REQUEST="true")

    html = partial.content.decode()
    assert html.lstrip().startswith('<div id="subscribe-form"')
    for page in (full, html):
        assert label in page
        assert 'name="endpoint"' in page
        assert ('type="email"' in page) == has_email
        assert f'name="channel" value="{channel}"' in page
        assert 'name="website"' in page  # the honeypot


def test_an_unknown_channel_in_the_address_shows_the_email_form(client, components):
    html = client.get("/subscribe/?channel=<script>").content.decode()

    assert 'name="channel" value="email"' in html
    assert "<script>" not in html


def test_the_form_needs_its_csrf_token(components, slack):
    client = Client(enforce_csrf_checks=True)

    response = client.post(reverse("subscribe"), {"channel": "slack", "endpoint": slack_url(slack)})

    assert response.status_code == 403
    assert slack.log == [] and not Subscriber.objects.exists()


# A chat channel: a test message, then active


def test_a_slack_channel_is_active_once_its_test_message_posts(client, components, slack):
    response = client.post(
        reverse("subscribe"),
        {"channel": "slack", "endpoint": slack_url(slack), "components": [components[0].pk]},
    )

    assert response.status_code == 200
    assert "we posted a test message to your Slack channel" in response.content.decode()
    subscriber = Subscriber.objects.get()
    assert subscriber.state == SubscriberState.ACTIVE
    assert subscriber.webhook_format == "slack"
    assert list(subscriber.components.all()) == [components[0]]
    [(request, _)] = slack.log
    body = request.get_json()
    assert body["text"].startswith("Test from")
    assert links.manage_url(subscriber) in body["blocks"][1]["text"]["text"]


def test_the_test_messages_manage_link_changes_components_and_removes_in_one_click(
    client, components, slack
):
    client.post(reverse("subscribe"), {"channel": "slack", "endpoint": slack_url(slack)})
    [(request, _)] = slack.log
    manage = link_in(request.get_json()["blocks"][1]["text"]["text"], "subscription-manage")

    page = client.get(manage)
    html = page.content.decode()
    assert page.status_code == 200
    assert "https://hooks.slack.com:" in html and "/…" in html
    assert "s3cr3t" not in html  # the URL's path is its secret

    saved = client.post(manage, {"components": [components[1].pk]})
    assert saved.status_code == 200
    assert list(Subscriber.objects.get().components.all()) == [components[1]]

    unsubscribe = manage.replace("/manage/", "/unsubscribe/")
    assert Client().post(unsubscribe, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(("status", "shown"), [(404, "HTTP 404 Not Found"), (500, "HTTP 500")])
def test_a_test_message_that_is_refused_leaves_nothing_stored(
    client, components, slack, status, shown
):
    slack.expect_request("/services/T/B/dead").respond_with_data("no", status=status)

    response = client.post(
        reverse("subscribe"),
        {"channel": "slack", "endpoint": slack_url(slack, "/services/T/B/dead")},
    )

    assert response.status_code == 400
    assert shown in response.content.decode()
    assert not Subscriber.objects.exists()


def test_a_channel_that_cannot_be_reached_leaves_nothing_stored(
    client, components, monkeypatch, local_endpoints
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tls_endpoint(monkeypatch, "discord.com", "/"):
        response = client.post(
            reverse("subscribe"),
            {"channel": "discord", "endpoint": f"https://discord.com:{port}/api/webhooks/1/x"},
        )

    assert response.status_code == 400
    assert "could not connect" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    ("channel", "endpoint"),
    [
        ("slack", "https://hooks.slack.com.evil.test/services/T/B/X"),
        ("slack", "http://hooks.slack.com/services/T/B/X"),
        ("discord", "https://discord.com/channels/1"),
        ("teams", "https://evil.test/workflows/1"),
        ("webhook", "http://169.254.169.254/latest/meta-data/"),
        ("webhook", "http://[::1"),
        ("webhook", "http://example.com:99999/"),
        ("webhook", "http://user:pw@example.com/"),
        ("webhook", "x" * 3000),
    ],
)
def test_a_url_that_may_not_be_used_is_a_form_error_not_a_500(
    client, components, channel, endpoint, httpserver
):
    data = {"channel": channel, "endpoint": endpoint, "email": "owner@customer.test"}

    response = client.post(reverse("subscribe"), data)

    assert response.status_code == 400
    assert 'class="field-error"' in response.content.decode()
    assert not Subscriber.objects.exists()


def test_a_private_target_is_refused_before_anything_is_posted(client, components, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    data = {"channel": "webhook", "endpoint": httpserver.url_for("/hook"), "email": "a@b.test"}

    response = client.post(reverse("subscribe"), data)

    assert response.status_code == 400
    assert "This URL cannot be used" in response.content.decode()
    assert httpserver.log == [] and not Subscriber.objects.exists()


def test_the_same_url_again_gets_the_same_answer_and_no_second_row(client, components, slack):
    data = {"channel": "slack", "endpoint": slack_url(slack)}

    first = client.post(reverse("subscribe"), data)
    again = client.post(reverse("subscribe"), data)

    assert without_csrf_token(first) == without_csrf_token(again)
    assert Subscriber.objects.count() == 1
    assert len(slack.log) == 2  # each attempt is tested; both carry the one manage link
    bodies = [request.get_json()["blocks"][1]["text"]["text"] for request, _ in slack.log]
    assert bodies[0] == bodies[1]


def test_a_disabled_channel_subscribed_again_is_active_again(client, components, slack):
    SubscriberFactory(
        webhook=True, endpoint=slack_url(slack), webhook_format="slack", quarantined=True
    )

    client.post(reverse("subscribe"), {"channel": "slack", "endpoint": slack_url(slack)})

    assert Subscriber.objects.get().state == SubscriberState.ACTIVE


def test_a_bot_filling_the_hidden_field_is_answered_but_nothing_is_posted(
    client, components, slack
):
    data = {"channel": "slack", "endpoint": slack_url(slack), "website": "https://spam.test"}

    response = client.post(reverse("subscribe"), data)

    assert response.status_code == 200
    assert "we posted a test message" in response.content.decode()
    assert slack.log == [] and not Subscriber.objects.exists()


@time_machine.travel("2025-03-04 12:30Z", tick=False)
def test_the_same_url_is_limited_per_hour_like_an_email_address(
    client, components, slack, settings
):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_ADDRESS = 2
    data = {"channel": "slack", "endpoint": slack_url(slack, "/services/T/B/limited")}
    slack.expect_request("/services/T/B/limited").respond_with_data("ok")

    answers = [client.post(reverse("subscribe"), data) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "Too many attempts" in answers[2].content.decode()
    assert len(slack.log) == 2


@time_machine.travel("2025-03-05 12:30Z", tick=False)
def test_one_ip_is_limited_per_hour_across_urls(client, components, slack, settings):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 1
    slack.expect_request("/services/T/B/2").respond_with_data("ok")

    first = client.post(reverse("subscribe"), {"channel": "slack", "endpoint": slack_url(slack)})
    second = client.post(
        reverse("subscribe"),
        {"channel": "slack", "endpoint": slack_url(slack, "/services/T/B/2")},
    )

    assert (first.status_code, second.status_code) == (200, 429)
    assert len(slack.log) == 1


# A generic webhook: a test message, then its owner confirms by email


def subscribe_generic(sending, client, generic, email="owner@customer.test"):
    post, mailbox = sending
    response = post(client, channel="webhook", endpoint=generic.url_for("/hook"), email=email)
    return response, mailbox


def test_a_generic_webhook_waits_for_its_owner_to_confirm_by_email(
    client, components, generic, sending
):
    response, mailbox = subscribe_generic(sending, client, generic)

    assert response.status_code == 200
    assert "Check <strong>owner@customer.test</strong>" in response.content.decode()
    subscriber = Subscriber.objects.get()
    assert subscriber.state == SubscriberState.UNCONFIRMED
    assert subscriber.email == "owner@customer.test"
    [(request, _)] = generic.log
    body = json.loads(request.get_data())
    assert body["meta"]["unsubscribe"] == links.unsubscribe_url(subscriber)
    [message] = mailbox
    assert message.to == ["owner@customer.test"]
    assert generic.url_for("/hook") in message.body

    confirm = link_in(message.body, "subscription-confirm")
    asked = client.get(confirm)
    assert (
        asked.status_code == 200 and "Post status updates to the webhook" in asked.content.decode()
    )
    assert Subscriber.objects.get().state == SubscriberState.UNCONFIRMED  # a GET only asks

    confirmed = client.post(confirm)
    html = confirmed.content.decode()
    assert confirmed.status_code == 200
    assert links.manage_path(subscriber) in html
    assert Subscriber.objects.get().state == SubscriberState.ACTIVE

    assert client.post(confirm).status_code == 410  # a link works once


def test_a_tampered_confirmation_link_confirms_nothing(client, components, generic, sending):
    _, mailbox = subscribe_generic(sending, client, generic)
    confirm = link_in(mailbox[0].body, "subscription-confirm")
    token = confirm.rstrip("/").rpartition("/")[2]
    value, _, rest = token.partition(":")
    other = SubscriberFactory(webhook=True, unconfirmed=True)

    for forged in [
        token[:-2] + ("aa" if not token.endswith("aa") else "bb"),
        f"{other.public_id}.1:{rest}",
        signing.TimestampSigner(salt="another.salt").sign(value),
    ]:
        path = reverse("subscription-confirm", kwargs={"token": forged})
        assert client.post(path).status_code == 410
    assert set(Subscriber.objects.values_list("state", flat=True)) == {"unconfirmed"}


def test_an_expired_confirmation_link_confirms_nothing(
    client, components, generic, sending, settings
):
    _, mailbox = subscribe_generic(sending, client, generic)
    confirm = link_in(mailbox[0].body, "subscription-confirm")

    later = timezone.now() + timedelta(hours=settings.BEACON_SUBSCRIBE_CONFIRM_HOURS, minutes=1)
    with time_machine.travel(later):
        response = client.post(confirm)

    assert response.status_code == 410
    assert Subscriber.objects.get().state == SubscriberState.UNCONFIRMED


def test_a_generic_webhook_needs_an_address_for_failure_notices(client, components, generic):
    data = {"channel": "webhook", "endpoint": generic.url_for("/hook")}

    response = client.post(reverse("subscribe"), data)

    assert response.status_code == 400
    assert "Enter an email address for failure notices." in response.content.decode()
    assert generic.log == [] and not Subscriber.objects.exists()


def test_an_active_generic_webhook_again_tells_its_own_owner_not_the_new_address(
    client, components, generic, sending
):
    SubscriberFactory(webhook=True, endpoint=generic.url_for("/hook"), email="owner@customer.test")

    response, mailbox = subscribe_generic(sending, client, generic, email="other@evil.test")

    assert "Check <strong>other@evil.test</strong>" in response.content.decode()
    assert Subscriber.objects.count() == 1
    assert Subscriber.objects.get().email == "owner@customer.test"
    [message] = mailbox
    assert message.to == ["owner@customer.test"]
    assert "already" in message.subject
