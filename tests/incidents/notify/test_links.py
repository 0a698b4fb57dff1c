"""Subscribers' links: every token made and checked in one place, in the formats already sent.

The tokens below were made by incidents/notify/subscriptions.py before they moved to
links.py (commit 004cce2), with the key and time fixed here: links in subscribers' inboxes
must keep working whatever the code that reads them becomes.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from incidents.notify import links, subscriptions
from incidents.notify.models import Subscriber, SubscriberState
from tests.incidents.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

SECRET_KEY = "beacon-test-fixed-key-for-links-0123456789abcdef"
CODE = "k2n4p6q8r0s1"
MADE_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CONFIRM_TOKEN = "k2n4p6q8r0s1.3:1xNUEC:A9IkC1ipvqEii_fT7EEzGQsWdau05EL2qGtlRYGgX3Y"
MANAGE_TOKEN = "k2n4p6q8r0s1:0QixjFBqJTcOgoVcBpo8968b_m0LWEnXy9MkIjqBu48"


@pytest.fixture
def fixed_key(settings):
    settings.SECRET_KEY = SECRET_KEY


def test_a_manage_link_sent_before_the_move_opens_the_subscription(page, client, fixed_key):
    subscriber = SubscriberFactory(public_id=CODE, email="reader@example.test")

    assert links.manage_token(subscriber) == MANAGE_TOKEN
    assert links.manage_url(subscriber) == (
        f"https://status.acme.test/subscriptions/manage/{MANAGE_TOKEN}/"
    )
    assert subscriptions.subscriber_by_manage_token(MANAGE_TOKEN) == subscriber
    response = client.get(reverse("subscription-manage", kwargs={"token": MANAGE_TOKEN}))
    assert response.status_code == 200
    assert "reader@example.test" in response.content.decode()


def test_an_unsubscribe_link_sent_before_the_move_unsubscribes(page, client, fixed_key):
    subscriber = SubscriberFactory(public_id=CODE)

    assert links.unsubscribe_url(subscriber) == (
        f"https://status.acme.test/subscriptions/unsubscribe/{MANAGE_TOKEN}/"
    )
    client.post(reverse("subscription-unsubscribe", kwargs={"token": MANAGE_TOKEN}))
    assert not Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_a_confirmation_link_sent_before_the_move_confirms(page, client, fixed_key):
    subscriber = SubscriberFactory(public_id=CODE, unconfirmed=True, confirm_nonce=3)
    with time_machine.travel(MADE_AT, tick=False):
        assert links.confirm_token(subscriber) == CONFIRM_TOKEN
        assert links.confirm_url(subscriber) == (
            f"https://status.acme.test/subscriptions/confirm/{CONFIRM_TOKEN}/"
        )

    with time_machine.travel(MADE_AT + timedelta(hours=1), tick=False):
        assert links.confirm_token_value(CONFIRM_TOKEN) == (CODE, 3)
        client.post(reverse("subscription-confirm", kwargs={"token": CONFIRM_TOKEN}))
    subscriber.refresh_from_db()
    assert subscriber.state == SubscriberState.ACTIVE


def test_a_tampered_token_finds_nobody(page, fixed_key):
    SubscriberFactory(public_id=CODE, unconfirmed=True, confirm_nonce=3)
    with time_machine.travel(MADE_AT, tick=False):
        assert links.confirm_token_value(CONFIRM_TOKEN[:-1] + "A") is None
    assert links.manage_token_code(MANAGE_TOKEN.replace(CODE, "k2n4p6q8r0s2")) is None


def test_an_email_joins_the_same_links_around_each_token(page):
    subscriber = SubscriberFactory()
    token = links.manage_token(subscriber)

    head, tail = links.manage_url_around_token()
    assert head + token + tail == links.manage_url(subscriber)
    head, tail = links.unsubscribe_url_around_token()
    assert head + token + tail == links.unsubscribe_url(subscriber)
