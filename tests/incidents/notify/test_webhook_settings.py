"""A webhook's own settings change through webhook_subscriber_update, checked as on creation."""

import pytest
from django.core.exceptions import ValidationError

from incidents.notify.subscriptions import webhook_subscriber_update
from tests.incidents.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_it_changes_only_the_settings_it_is_given():
    webhook = SubscriberFactory(webhook=True, secret="keep-me", webhook_format="statuspage")

    webhook_subscriber_update(
        subscriber=webhook, endpoint="  https://hooks.example.com/new  ", webhook_format="slack"
    )

    webhook.refresh_from_db()
    assert webhook.endpoint == "https://hooks.example.com/new"
    assert webhook.webhook_format == "slack"
    assert webhook.secret == "keep-me"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"endpoint": "http://127.0.0.1:8000/hook"}, "endpoint"),
        ({"endpoint": "http://169.254.169.254/latest/meta-data/"}, "endpoint"),
        ({"endpoint": "ftp://hooks.example.com/"}, "endpoint"),
        ({"endpoint": "not a url"}, "endpoint"),
        ({"webhook_format": "carrier-pigeon"}, "webhook_format"),
    ],
)
def test_it_refuses_what_creation_refuses_and_writes_nothing(changes, field):
    webhook = SubscriberFactory(webhook=True, secret="s", email="ops@example.com")
    before = (webhook.endpoint, webhook.webhook_format, webhook.secret, webhook.email)

    with pytest.raises(ValidationError) as refused:
        webhook_subscriber_update(subscriber=webhook, secret="other", **changes)

    assert field in refused.value.message_dict
    webhook.refresh_from_db()
    assert (webhook.endpoint, webhook.webhook_format, webhook.secret, webhook.email) == before
