"""Browser push subscriptions: "Notify me in this browser" on the status page.

A browser's PushSubscription (its push service endpoint, its P-256 key and auth secret) is
stored as a Subscriber with channel `push`, active at once: the browser's own permission
prompt is the opt-in, and there is no address to confirm. The endpoint is the browser's
secret, so knowing it (and the auth secret) is what lets a visitor change or remove it.
When the browser renews its subscription, its service worker proves it is the same browser
with the old endpoint and auth secret, and the subscriber moves to the new one.
"""

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from components.models import Component
from incidents.notify.models import Channel, Subscriber, SubscriberState
from incidents.notify.subscriptions import webhook_endpoint_validate

# Push service URLs seen in the wild are under 500 characters; the column holds 2,000.
MAX_ENDPOINT_LENGTH = 2000
P256DH_BYTES = 65  # an uncompressed P-256 point
AUTH_BYTES = 16  # RFC 8291's authentication secret
MAX_COMPONENTS = 500


@dataclass(frozen=True)
class PushSubscription:
    """What the browser's PushSubscription.toJSON() gave, checked."""

    endpoint: str
    p256dh: str
    auth: str


def _b64url(value: object, length: int) -> bytes | None:
    if not isinstance(value, str) or len(value) > 4 * length:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == length else None


def push_subscription_parse(data: object) -> PushSubscription:
    """The subscription in a posted JSON object; ValidationError with the visitor's message.

    The endpoint must be an https URL whose host is not a private, loopback, link-local or
    metadata address (the outbound guard, as for webhooks); the key must be a point on
    P-256, the auth secret 16 bytes.
    """
    if not isinstance(data, dict):
        raise ValidationError(gettext("The subscription could not be read."))
    endpoint, keys = data.get("endpoint"), data.get("keys")
    if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
        raise ValidationError(gettext("The browser's push service must be reached over https."))
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise ValidationError(gettext("The browser's push service address is too long."))
    if not isinstance(keys, dict):
        raise ValidationError(gettext("The subscription has no keys."))
    p256dh = _b64url(keys.get("p256dh"), P256DH_BYTES)
    auth = _b64url(keys.get("auth"), AUTH_BYTES)
    if p256dh is None or auth is None or not _on_curve(p256dh):
        raise ValidationError(gettext("The subscription's keys are not valid."))
    try:
        webhook_endpoint_validate(endpoint)
    except ValidationError:
        # The reason names addresses and settings: staff's business, not the visitor's.
        raise ValidationError(gettext("This browser's push service cannot be used.")) from None
    return PushSubscription(endpoint=endpoint, p256dh=_encoded(p256dh), auth=_encoded(auth))


def _encoded(raw: bytes) -> str:
    # Re-encoded rather than kept as sent: the decoder skips characters outside the alphabet.
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _on_curve(point: bytes) -> bool:
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return False
    return True


def _components_by_public_id(public_ids: Iterable[str]) -> list[Component]:
    wanted = sorted(set(public_ids))
    if len(wanted) > MAX_COMPONENTS:
        raise ValidationError(gettext("Choose components from the list."))
    found = list(Component.objects.filter(public_id__in=wanted))
    if len(found) != len(wanted):
        raise ValidationError(gettext("Choose components from the list."))
    return found


@transaction.atomic
def push_subscribe(*, subscription: PushSubscription, component_ids: Iterable[str]) -> Subscriber:
    """Store the browser's subscription for these components (public ids; none: all).

    The same browser subscribing again replaces its keys and its components.
    """
    components = _components_by_public_id(component_ids)
    subscriber, _ = Subscriber.objects.select_for_update().update_or_create(
        channel=Channel.PUSH,
        endpoint=subscription.endpoint,
        defaults={
            "push_p256dh": subscription.p256dh,
            "push_auth": subscription.auth,
            "all_components": not components,
            "state": SubscriberState.ACTIVE,
            "confirmed_at": timezone.now(),
            "failing_since": None,
            "last_error": "",
        },
    )
    subscriber.components.set(components)
    return subscriber


class UnknownSubscription(ValidationError):
    """A renewal whose old endpoint and auth secret match no subscriber."""

    def __init__(self) -> None:
        # The service worker shows nobody this; the visitor-facing wording is an existing one.
        super().__init__(gettext("The subscription could not be read."), code="unknown")


@transaction.atomic
def push_resubscribe(
    *, old_endpoint: str, old_auth: str, subscription: PushSubscription
) -> Subscriber:
    """Move the subscriber at the old endpoint (proved by its auth secret) to the renewed one.

    Its components stay as chosen. Posting the same renewal again finds it done and changes
    nothing; anything else raises UnknownSubscription, so that without the old secret nobody
    can take over a subscription or make one through a renewal.
    """
    secret = _b64url(old_auth, AUTH_BYTES)
    push = Subscriber.objects.select_for_update().filter(channel=Channel.PUSH)
    rows = {
        row.endpoint: row
        for row in push.filter(endpoint__in=[old_endpoint, subscription.endpoint]).order_by("pk")
    }
    old = rows.get(old_endpoint)
    if old is None or secret is None or old.push_auth != _encoded(secret):
        renewed = rows.get(subscription.endpoint)
        keys = (subscription.p256dh, subscription.auth)
        if renewed is None or (renewed.push_p256dh, renewed.push_auth) != keys:
            raise UnknownSubscription()
        return renewed  # this renewal, posted before
    stale = rows.get(subscription.endpoint)
    if stale is not None and stale.pk != old.pk:
        # Only the browser knows its new endpoint: a row there is its own, and the choice it
        # made before the renewal is the one it keeps.
        stale.delete()
    old.endpoint = subscription.endpoint
    old.push_p256dh = subscription.p256dh
    old.push_auth = subscription.auth
    old.state = SubscriberState.ACTIVE
    old.failing_since = None
    old.last_error = ""
    old.save(
        update_fields=[
            "endpoint",
            "push_p256dh",
            "push_auth",
            "state",
            "failing_since",
            "last_error",
        ]
    )
    return old


def push_unsubscribe(*, endpoint: str, auth: str) -> bool:
    """Remove the browser's subscription; whether there was one with this auth secret."""
    secret = _b64url(auth, AUTH_BYTES)
    if secret is None:
        return False
    deleted, _ = Subscriber.objects.filter(
        channel=Channel.PUSH, endpoint=endpoint, push_auth=_encoded(secret)
    ).delete()
    return deleted > 0


def push_subscriber_expired(*, subscriber: Subscriber) -> None:
    """The push service says the subscription is gone (404/410): nothing will reach it."""
    Subscriber.objects.filter(pk=subscriber.pk, channel=Channel.PUSH).delete()
