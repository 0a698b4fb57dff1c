"""Subscribing from the public page: the form, the emailed links, one-click unsubscribe."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.urls import reverse

from incidents.notify import links, subscriptions
from incidents.notify.delivery import recipients
from incidents.notify.models import (
    Channel,
    EventKind,
    NotificationEvent,
    Subscriber,
    SubscriberState,
)
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
CSRF_INPUT = re.compile(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]*">')
# Half past noon: an hour's rate-limit window has 30 minutes left.
HALF_PAST_NOON = datetime(2025, 3, 4, 12, 30, tzinfo=UTC)


@pytest.fixture
def components(page):
    platform = ComponentGroupFactory(name="Platform")
    return {
        "api": ComponentFactory(name="API", group=platform),
        "workers": ComponentFactory(name="Background workers", group=platform),
        "website": ComponentFactory(name="Website"),
    }


@pytest.fixture
def eager_email(settings, mailoutbox):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return mailoutbox


def subscribe(client, email="reader@example.test", components=(), **extra):
    data = {"email": email, "components": [c.pk for c in components]}
    return client.post(reverse("subscribe"), data, **extra)


def link_in(message, name: str) -> str:
    """The path of the first link to the URL named `name` in an email's text."""
    prefix = reverse(name, kwargs={"token": "x"}).removesuffix("x/")
    match = re.search(rf"https?://[^/\s]+({re.escape(prefix)}[^\s/]+/)", message.body)
    assert match, f"no {name} link in:\n{message.body}"
    return match[1]


def without_csrf_token(response) -> str:
    return CSRF_INPUT.sub("", response.content.decode())


# The form


def test_the_subscribe_page_shows_the_form_with_components_by_group(client, components):
    response = client.get("/subscribe/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1" in html and "Subscribe to updates" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'type="email"' in html
    assert "<legend>Platform</legend>" in html
    for component in components.values():
        assert f'name="components" value="{component.pk}"' in html
    assert "Leave all unticked for every component" in html
    assert response["Cache-Control"].startswith("max-age=0")
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_htmx_gets_the_form_alone_with_its_own_csrf_token(client, components):
    response = client.get("/subscribe/", **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="subscribe-form"')
    assert "<html" not in html and "<h1" not in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'hx-post="/subscribe/"' in html
    assert "csrftoken" in response.cookies  # the snapshot page has none: this sets it
    assert "no-store" in response["Cache-Control"]


def test_the_status_page_links_to_the_form_outside_the_refreshed_region(client, components):
    html = client.get("/").content.decode()

    button = re.search(r'<a [^>]*href="/subscribe/"[^>]*>', html)
    assert button, "no subscribe link on the status page"
    assert 'hx-get="/subscribe/"' in button[0]
    assert 'hx-target="#subscribe-panel"' in button[0]
    assert html.index('id="subscribe-panel"') < html.index('id="status-body"')
    assert "csrfmiddlewaretoken" not in html  # the page is one snapshot for everybody


def test_subscribing_says_check_your_inbox_and_stores_an_unconfirmed_subscriber(client, components):
    response = subscribe(client, "  Reader@Example.TEST ", components=[components["api"]])

    assert response.status_code == 200
    assert "Check your inbox: we sent a link to confirm" in response.content.decode()
    assert "reader@example.test" in response.content.decode()
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "reader@example.test"
    assert subscriber.state == SubscriberState.UNCONFIRMED
    assert not subscriber.all_components
    assert list(subscriber.components.all()) == [components["api"]]


def test_no_component_ticked_means_every_component(client, components):
    subscribe(client, "reader@example.test")

    subscriber = Subscriber.objects.get()
    assert subscriber.all_components
    assert subscriber.components.count() == 0


def test_htmx_subscribing_swaps_the_message_in_place(client, components):
    response = subscribe(client, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="subscribe-form"')
    assert "Check your inbox: we sent a link to confirm" in html
    assert "<html" not in html


def test_the_answer_is_the_same_for_a_new_an_unconfirmed_and_a_subscribed_address(
    client, components
):
    SubscriberFactory(email="waiting@example.test", unconfirmed=True)
    SubscriberFactory(email="reading@example.test")

    bodies = {}
    for address in ["new@example.test", "waiting@example.test", "reading@example.test"]:
        for name, extra in [("page", {}), ("htmx", HTMX)]:
            response = subscribe(Client(), address, **extra)
            assert response.status_code == 200
            body = without_csrf_token(response).replace(address, "ADDRESS")
            bodies.setdefault(name, set()).add(body)

    assert len(bodies["page"]) == 1
    assert len(bodies["htmx"]) == 1
    assert Subscriber.objects.get(email="reading@example.test").state == SubscriberState.ACTIVE


def test_an_active_subscribers_choices_are_not_changed_by_the_public_form(client, components):
    subscriber = SubscriberFactory(email="reading@example.test")

    subscribe(client, "reading@example.test", components=[components["website"]])

    subscriber.refresh_from_db()
    assert subscriber.all_components
    assert subscriber.components.count() == 0


def test_an_invalid_address_shows_the_form_again_with_the_error(client, components):
    response = subscribe(client, "not an address", components=[components["api"]])

    html = response.content.decode()
    assert response.status_code == 400
    assert "Enter a valid email address." in html
    assert 'value="not an address"' in html
    assert f'value="{components["api"].pk}" checked' in html
    assert Subscriber.objects.count() == 0


def test_htmx_gets_form_errors_as_a_200_partial(client, components):
    response = subscribe(client, "", **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="subscribe-form"')
    assert "Enter your email address." in html
    assert 'name="csrfmiddlewaretoken"' in html


@pytest.mark.parametrize("value", ["999999", "abc", "-1"])
def test_an_unknown_component_is_a_form_error(client, components, value):
    response = client.post("/subscribe/", {"email": "reader@example.test", "components": value})

    assert response.status_code == 400
    assert "Choose components from the list." in response.content.decode()
    assert Subscriber.objects.count() == 0


def error_descriptions(html: str) -> dict[str, str]:
    """What each aria-describedby on the page points at: id -> that element's text."""
    found = {}
    for refs in re.findall(r'aria-describedby="([^"]*)"', html):
        for ref in refs.split():
            target = re.search(rf'<(\w+) [^>]*id="{ref}"[^>]*>(.*?)</\1>', html, re.S)
            assert target, f"aria-describedby names {ref!r}, which is not on the page"
            found[ref] = re.sub(r"<[^>]+>", "", target[2])
    return found


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"email": "not an address"}, "Enter a valid email address."),
        ({"email": ""}, "Enter your email address."),
        ({"email": "a" * 250 + "@example.test"}, "at most 254 characters"),
        ({"email": "reader@example.test", "components": "999999"}, "Choose components"),
    ],
)
@pytest.mark.parametrize("extra", [{}, HTMX], ids=["page", "htmx"])
def test_a_form_error_is_what_its_field_is_described_by(client, components, data, error, extra):
    response = client.post(reverse("subscribe"), data, **extra)

    described = error_descriptions(response.content.decode())
    assert any(error in text for text in described.values()), described


def test_a_preferences_error_is_what_the_choices_are_described_by(client, components):
    subscriber = SubscriberFactory()
    path = reverse("subscription-manage", kwargs={"token": links.manage_token(subscriber)})

    response = client.post(path, {"components": "abc"})

    described = error_descriptions(response.content.decode())
    assert any("Choose components" in text for text in described.values()), described


def test_typed_markup_comes_back_escaped(client, components):
    response = subscribe(client, "<script>alert(1)</script>@example.test")

    html = response.content.decode()
    assert response.status_code == 400
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_the_form_needs_its_csrf_token(components):
    client = Client(enforce_csrf_checks=True)

    response = subscribe(client)

    assert response.status_code == 403
    assert Subscriber.objects.count() == 0


def test_the_htmx_form_posts_with_the_token_it_was_rendered_with(components):
    client = Client(enforce_csrf_checks=True)
    html = client.get("/subscribe/", **HTMX).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]

    response = client.post(
        "/subscribe/", {"email": "reader@example.test", "csrfmiddlewaretoken": token}, **HTMX
    )

    assert response.status_code == 200
    assert Subscriber.objects.filter(email="reader@example.test").exists()


# Rate limits: a sliding hour, and an answer that looks like any other


def confirmations_sent(mailbox) -> list[str]:
    return [m.to[0] for m in mailbox if "Confirm your subscription" in m.subject]


@pytest.fixture
def sending(eager_email, django_capture_on_commit_callbacks):
    """Subscribe with the emails sent at once; returns (subscribe, mailbox)."""

    def post(client, email="reader@example.test", **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return subscribe(client, email, **extra)

    return post, eager_email


@time_machine.travel(HALF_PAST_NOON, tick=False)
def test_one_ip_address_is_limited_per_hour_without_saying_so(
    client, components, settings, sending, caplog
):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 2
    post, mailbox = sending

    answers = [post(client, f"reader{n}@example.test") for n in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    bodies = {without_csrf_token(a).replace(f"reader{n}@", "X@") for n, a in enumerate(answers)}
    assert len(bodies) == 1  # the refused one reads exactly like the others
    assert "Check your inbox" in answers[2].content.decode()
    assert "Retry-After" not in answers[2]
    assert confirmations_sent(mailbox) == ["reader0@example.test", "reader1@example.test"]
    assert not Subscriber.objects.filter(email="reader2@example.test").exists()
    assert "rate limit per IP reached for 127.0.0.1" in caplog.text
    # Another visitor is not held up.
    post(client, "reader2@example.test", REMOTE_ADDR="192.0.2.7")
    assert confirmations_sent(mailbox)[-1] == "reader2@example.test"


@time_machine.travel(HALF_PAST_NOON, tick=False)
def test_htmx_gets_the_same_fragment_over_the_limit(client, components, settings, sending):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 1
    post, mailbox = sending
    sent = post(client, "reader@example.test", **HTMX)

    held = post(client, "reader@example.test", **HTMX)

    assert held.status_code == sent.status_code == 200
    assert held.content == sent.content
    assert held.content.decode().lstrip().startswith('<div id="subscribe-form"')
    assert len(confirmations_sent(mailbox)) == 1


@time_machine.travel(HALF_PAST_NOON, tick=False)
def test_one_address_is_limited_per_hour_from_any_ip(client, components, settings, sending, caplog):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_ADDRESS = 2
    post, mailbox = sending
    spellings = ["victim@example.test", "Victim@Example.test", " VICTIM@example.TEST"]

    answers = [
        post(client, spelling, REMOTE_ADDR=f"198.51.100.{n}").status_code
        for n, spelling in enumerate(spellings)
    ]

    assert answers == [200, 200, 200]
    assert confirmations_sent(mailbox) == ["victim@example.test"] * 2
    assert "rate limit per address reached" in caplog.text
    assert "victim@example.test" not in caplog.text.lower()  # the log holds a digest
    post(client, "someone@example.test", REMOTE_ADDR="198.51.100.9")
    assert confirmations_sent(mailbox)[-1] == "someone@example.test"


def test_a_burst_across_the_hour_boundary_is_not_a_second_allowance(
    client, components, settings, sending
):
    """A clock hour let one address get 6 confirmations in 43 s: 3 at :59:40, 3 at :00:23."""
    settings.BEACON_SUBSCRIBE_LIMIT_PER_ADDRESS = 3
    post, mailbox = sending

    def burst(at):
        with time_machine.travel(at, tick=False):
            for n in range(3):
                post(client, REMOTE_ADDR=f"198.51.100.{n}")
        return len(confirmations_sent(mailbox))

    assert burst(datetime(2025, 3, 4, 12, 59, 40, tzinfo=UTC)) == 3
    assert burst(datetime(2025, 3, 4, 13, 0, 23, tzinfo=UTC)) == 3
    assert burst(datetime(2025, 3, 4, 13, 59, 39, tzinfo=UTC)) == 3
    # An hour after the first three, the slots they took are free again.
    assert burst(datetime(2025, 3, 4, 13, 59, 41, tzinfo=UTC)) == 6


def test_no_sixty_minutes_ever_hold_more_than_the_limit(client, components, settings, sending):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_ADDRESS = 3
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 4
    post, mailbox = sending
    start = datetime(2025, 3, 4, 11, 50, tzinfo=UTC).timestamp()
    # Uneven attempts over three hours, bunched around each hour's end and start.
    offsets = [0, 60, 500, 540, 590, 600, 610, 1900, 3500, 3599, 3600, 3601, 3700, 4000]
    offsets += [6500, 7150, 7199, 7200, 7201, 7800, 9000, 10500, 10790, 10800, 10810]
    sent_at, sent_by_ip = [], []
    for offset in offsets:
        with time_machine.travel(start + offset, tick=False):
            before = len(mailbox)
            post(client, "victim@example.test", REMOTE_ADDR=f"198.51.100.{offset % 7}")
            if len(mailbox) > before:
                sent_at.append(offset)
            before = len(mailbox)
            post(client, f"reader{offset}@example.test", REMOTE_ADDR="203.0.113.9")
            if len(mailbox) > before:
                sent_by_ip.append(offset)

    for times, limit in [(sent_at, 3), (sent_by_ip, 4)]:
        assert len(times) > limit  # the limit let some through in later hours
        for first in times:
            assert len([t for t in times if first <= t < first + 3600]) <= limit, times


@time_machine.travel(HALF_PAST_NOON, tick=False)
def test_behind_a_trusted_proxy_the_address_it_saw_is_the_one_limited(client, components, settings):
    settings.BEACON_TRUSTED_PROXY_HOPS = 1
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 1
    # Every request comes from the proxy; what the client wrote first is not trusted.
    forwarded = {"REMOTE_ADDR": "10.0.0.2"}

    subscribe(client, "a@example.test", HTTP_X_FORWARDED_FOR="203.0.113.5", **forwarded)
    subscribe(client, "b@example.test", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.5", **forwarded)
    subscribe(client, "c@example.test", HTTP_X_FORWARDED_FOR="203.0.113.6", **forwarded)

    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "a@example.test",
        "c@example.test",
    ]


def test_with_the_cache_unreachable_subscribing_still_works(client, components, settings, caplog):
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 1
    settings.CACHES = {"default": {"BACKEND": "tests.statuspage.broken_cache.UnreachableCache"}}

    answers = [subscribe(client, f"reader{n}@example.test").status_code for n in range(3)]

    assert answers == [200, 200, 200]
    assert Subscriber.objects.count() == 3
    assert "the cache is unreachable" in caplog.text


# Confirming


def test_the_emailed_link_confirms_only_when_the_button_is_pressed(
    client, components, eager_email, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(client, "reader@example.test", components=[components["api"]])
    assert [m.to for m in eager_email] == [["reader@example.test"]]
    path = link_in(eager_email[0], "subscription-confirm")

    # Mail scanners open links: a GET only asks.
    page = client.get(path)
    assert page.status_code == 200
    assert "Confirm your subscription to Acme" in page.content.decode()
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    assert page["Referrer-Policy"] == "same-origin"
    assert "no-store" in page["Cache-Control"]
    assert Subscriber.objects.get().state == SubscriberState.UNCONFIRMED

    done = client.post(path)

    html = done.content.decode()
    assert done.status_code == 200
    assert "You're subscribed" in html
    subscriber = Subscriber.objects.get()
    assert subscriber.state == SubscriberState.ACTIVE
    assert subscriber.confirmed_at is not None
    manage = reverse("subscription-manage", kwargs={"token": links.manage_token(subscriber)})
    assert f'href="{manage}"' in html
    assert done["Referrer-Policy"] == "same-origin"


def test_nobody_hears_of_incidents_before_confirming(client, components):
    subscribe(client, "reader@example.test")
    event = NotificationEvent(kind=EventKind.INCIDENT_CREATED, component_ids=[components["api"].pk])

    assert list(recipients(event, Channel.EMAIL)) == []

    subscriptions.subscription_confirm(subscriber=Subscriber.objects.get())
    assert [s.email for s in recipients(event, Channel.EMAIL)] == ["reader@example.test"]


def confirm_path(subscriber) -> str:
    token = links.confirm_token(subscriber)
    return reverse("subscription-confirm", kwargs={"token": token})


def assert_dead_link(client, path):
    """Both methods get the 410 page, which names no manage or unsubscribe link."""
    for response in (client.get(path), client.post(path)):
        html = response.content.decode()
        assert response.status_code == 410
        assert "This link no longer works" in html
        assert "/subscriptions/manage/" not in html
        assert "/subscriptions/unsubscribe/" not in html
        assert 'href="/subscribe/"' in html


def test_a_used_confirmation_link_never_shows_the_manage_link_again(
    client, components, eager_email, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(client, "reader@example.test")
    path = link_in(eager_email[0], "subscription-confirm")
    assert "/subscriptions/manage/" in client.post(path).content.decode()

    assert_dead_link(client, path)
    assert_dead_link(Client(), path)  # nor to anybody else who finds the link later
    assert Subscriber.objects.get().state == SubscriberState.ACTIVE


def test_an_older_link_dies_when_a_newer_one_is_sent(
    client, components, eager_email, django_capture_on_commit_callbacks
):
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            subscribe(client, "reader@example.test")
    first, second = (link_in(m, "subscription-confirm") for m in eager_email)
    assert first != second

    assert_dead_link(client, first)
    assert Subscriber.objects.get().state == SubscriberState.UNCONFIRMED
    assert client.post(second).status_code == 200
    assert Subscriber.objects.get().state == SubscriberState.ACTIVE


def test_a_link_resent_by_the_api_replaces_the_emailed_one(client, components):
    subscriber = SubscriberFactory(unconfirmed=True)
    emailed = confirm_path(subscriber)

    assert subscriptions.subscription_resend_confirmation(subscriber=subscriber)

    assert_dead_link(client, emailed)
    subscriber.refresh_from_db()
    assert client.get(confirm_path(subscriber)).status_code == 200


@pytest.mark.parametrize(
    "staff_action", [subscriptions.subscription_confirm, subscriptions.subscriber_reactivate]
)
def test_a_link_dies_when_staff_confirm_the_subscriber(client, components, staff_action):
    subscriber = SubscriberFactory(unconfirmed=True)
    path = confirm_path(subscriber)

    staff_action(subscriber=subscriber)

    assert_dead_link(client, path)


def test_a_link_for_an_active_or_disabled_subscriber_is_dead(client, components):
    for subscriber in (SubscriberFactory(), SubscriberFactory(quarantined=True)):
        assert_dead_link(client, confirm_path(subscriber))


def test_a_link_for_a_deleted_subscriber_is_dead(client, components):
    subscriber = SubscriberFactory(unconfirmed=True)
    path = confirm_path(subscriber)
    subscriptions.subscription_cancel(subscriber=subscriber)

    assert_dead_link(client, path)
    assert not Subscriber.objects.exists()


def test_a_link_for_a_webhook_never_sent_one_is_dead(client, components):
    assert_dead_link(client, confirm_path(SubscriberFactory(webhook=True, unconfirmed=True)))


def test_a_link_edited_to_name_another_subscriber_or_nonce_is_dead(client, components):
    mine = SubscriberFactory(unconfirmed=True)
    other = SubscriberFactory(unconfirmed=True)
    token = links.confirm_token(mine)
    value, _, stamp_and_signature = token.partition(":")
    assert value == f"{mine.public_id}.0"

    for forged in (f"{other.public_id}.0", f"{mine.public_id}.1", mine.public_id):
        assert_dead_link(client, f"/subscriptions/confirm/{forged}:{stamp_and_signature}/")
    assert set(Subscriber.objects.values_list("state", flat=True)) == {SubscriberState.UNCONFIRMED}


def test_a_link_signed_before_links_had_a_nonce_is_dead(client, components):
    subscriber = SubscriberFactory(unconfirmed=True)
    # What an email sent before this release holds: the code alone, correctly signed.
    old = signing.TimestampSigner(salt="beacon.subscriber.confirm").sign(subscriber.public_id)

    assert_dead_link(client, f"/subscriptions/confirm/{old}/")


def test_an_expired_confirmation_link_suggests_subscribing_again(client, components, settings):
    subscriber = SubscriberFactory(unconfirmed=True)
    path = reverse("subscription-confirm", kwargs={"token": links.confirm_token(subscriber)})
    later = datetime.now(UTC).timestamp() + (settings.BEACON_SUBSCRIBE_CONFIRM_HOURS + 1) * 3600

    with time_machine.travel(later):
        assert_dead_link(client, path)
    assert Subscriber.objects.get().state == SubscriberState.UNCONFIRMED


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "abc:def:ghi",
        "x" * 500,
        "%00",
        "..",
        signing.TimestampSigner(salt="other").sign("abc"),
    ],
)
def test_a_tampered_confirmation_link_is_410(client, components, token):
    SubscriberFactory(unconfirmed=True)
    path = f"/subscriptions/confirm/{token}/"

    assert client.get(path).status_code == 410
    assert client.post(path).status_code == 410
    assert Subscriber.objects.get().state == SubscriberState.UNCONFIRMED


def test_a_manage_token_does_not_confirm(client, components):
    subscriber = SubscriberFactory(unconfirmed=True)
    token = links.manage_token(subscriber)

    assert client.post(f"/subscriptions/confirm/{token}/").status_code == 410
    assert Subscriber.objects.get().state == SubscriberState.UNCONFIRMED


# Managing


def manage_path(subscriber) -> str:
    return reverse("subscription-manage", kwargs={"token": links.manage_token(subscriber)})


def test_the_manage_page_shows_the_current_choices(client, components):
    everything = SubscriberFactory()
    some = SubscriberFactory(components=[components["website"]])

    html = client.get(manage_path(everything)).content.decode()
    assert everything.email in html
    assert " checked" not in html

    response = client.get(manage_path(some))
    html = response.content.decode()
    assert f'value="{components["website"].pk}" checked' in html
    assert f'value="{components["api"].pk}" checked' not in html
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]
    unsubscribe = reverse("subscription-unsubscribe", kwargs={"token": links.manage_token(some)})
    assert f'action="{unsubscribe}"' in html


def test_the_manage_page_saves_new_choices(client, components):
    subscriber = SubscriberFactory()
    path = manage_path(subscriber)

    response = client.post(path, {"components": [components["api"].pk, components["workers"].pk]})

    assert response.status_code == 200
    assert "Saved." in response.content.decode()
    subscriber.refresh_from_db()
    assert not subscriber.all_components
    assert set(subscriber.components.all()) == {components["api"], components["workers"]}

    client.post(path, {}, **HTMX)  # nothing ticked: everything again
    subscriber.refresh_from_db()
    assert subscriber.all_components
    assert subscriber.components.count() == 0


def test_htmx_saves_in_place(client, components):
    subscriber = SubscriberFactory()

    response = client.post(manage_path(subscriber), {"components": [components["api"].pk]}, **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="preferences-form"')
    assert "Saved." in html
    assert f'value="{components["api"].pk}" checked' in html


def test_the_manage_page_refuses_an_unknown_component(client, components):
    subscriber = SubscriberFactory()

    response = client.post(manage_path(subscriber), {"components": "424242"})

    assert response.status_code == 400
    assert "Choose components from the list." in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.all_components


@pytest.mark.parametrize("token", ["nonsense", "a:b", "y" * 500])
def test_a_tampered_manage_link_is_a_friendly_404(client, components, token):
    SubscriberFactory()
    path = f"/subscriptions/manage/{token}/"

    for response in (client.get(path), client.post(path, {"components": ""})):
        assert response.status_code == 404
        assert "Subscription not found" in response.content.decode()


def test_a_confirmation_token_does_not_open_the_manage_page(client, components):
    subscriber = SubscriberFactory()
    token = links.confirm_token(subscriber)

    assert client.get(f"/subscriptions/manage/{token}/").status_code == 404


# Unsubscribing


def unsubscribe_path(subscriber) -> str:
    return reverse("subscription-unsubscribe", kwargs={"token": links.manage_token(subscriber)})


def test_one_click_unsubscribe_needs_no_cookie_or_csrf_token(components):
    subscriber = SubscriberFactory()
    SubscriberFactory(email="stays@example.test")
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        unsubscribe_path(subscriber),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["stays@example.test"]
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]


def test_the_unsubscribe_link_asks_before_unsubscribing(client, components):
    subscriber = SubscriberFactory()
    path = unsubscribe_path(subscriber)

    response = client.get(path)

    html = response.content.decode()
    assert response.status_code == 200
    assert subscriber.email in html
    assert f'<form method="post" action="{path}">' in html
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()

    client.post(path, {"List-Unsubscribe": "One-Click"})
    assert not Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_the_manage_pages_unsubscribe_button_unsubscribes(client, components):
    subscriber = SubscriberFactory()
    html = client.get(manage_path(subscriber)).content.decode()
    action = re.search(r'<form class="unsubscribe-form" method="post" action="([^"]+)"', html)[1]

    response = client.post(action, {"List-Unsubscribe": "One-Click"})

    assert "You are unsubscribed" in response.content.decode()
    assert Subscriber.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "post"])
def test_unsubscribing_twice_or_with_a_bad_link_says_unsubscribed(client, components, method):
    gone = SubscriberFactory()
    path = unsubscribe_path(gone)
    client.post(path)

    for url in (
        path,
        "/subscriptions/unsubscribe/nonsense/",
        f"/subscriptions/unsubscribe/{'z' * 400}/",
    ):
        response = getattr(client, method)(url)
        assert response.status_code == 200
        assert "You are unsubscribed" in response.content.decode()


def test_the_subscription_pages_are_never_snapshots(client, components):
    subscriber = SubscriberFactory()
    paths = [
        "/subscribe/",
        reverse("subscription-confirm", kwargs={"token": links.confirm_token(subscriber)}),
        manage_path(subscriber),
        unsubscribe_path(subscriber),
    ]
    first = {path: client.get(path) for path in paths}

    for path, response in first.items():
        assert "no-store" in response["Cache-Control"], path
        assert "ETag" not in response, path
    # Each answer is made for its request: two visitors get two CSRF tokens.
    tokens = {CSRF_INPUT.search(Client().get("/subscribe/").content.decode())[0] for _ in range(2)}
    assert len(tokens) == 2


def test_a_page_that_takes_no_subscribers_has_no_form(client, components, page):
    page.allow_email_subscribers = False
    page.save()

    assert client.get(reverse("subscribe")).status_code == 404
    assert client.post(reverse("subscribe"), {"email": "a@example.test"}).status_code == 404
    assert "Subscribe to updates" not in client.get(reverse("status-page")).content.decode()
    assert not Subscriber.objects.exists()
