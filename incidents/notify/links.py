"""Subscribers' links: the signed tokens, and the absolute URLs built around them.

Every token a subscriber is sent is made and checked here. Their formats and salts are part
of the links already in subscribers' inboxes: changing either breaks every one of them.

- The confirmation token is signed, timed (BEACON_SUBSCRIBE_CONFIRM_HOURS) and bound to the
  subscriber's current nonce: `<code>.<nonce>:<timestamp>:<signature>`.
- The manage token never expires (it is in every email; a new subscription gets a new code)
  and also unsubscribes: `<code>:<signature>`.
"""

from urllib.parse import urljoin

from django.conf import settings
from django.core import signing
from django.urls import reverse

from incidents.notify.models import Subscriber
from statuspage.lib.text import without_control_characters
from statuspage.models import PageSettings

_CONFIRM_SALT = "beacon.subscriber.confirm"
_MANAGE_SALT = "beacon.subscriber.manage"


def page_base_url(page: PageSettings | None = None) -> str:
    """The page's URL without its trailing slash: the base of every link Beacon sends
    (`page`: the settings the caller holds already, else loaded)."""
    # A URL saved before control characters were refused must not break a header or a link.
    url = without_control_characters((page or PageSettings.load()).url, lines=False)
    return (url or "http://127.0.0.1:8000").rstrip("/")


def absolute_url(path: str) -> str:
    """A path of the site as a link in an email or a payload, below the page's URL."""
    return urljoin(page_base_url() + "/", path.lstrip("/"))


# Tokens


def confirm_token(subscriber: Subscriber) -> str:
    """Signed, timed, and bound to the subscriber's current nonce."""
    value = f"{subscriber.public_id}.{subscriber.confirm_nonce}"
    return signing.TimestampSigner(salt=_CONFIRM_SALT).sign(value)


def confirm_token_value(token: str) -> tuple[str, int] | None:
    """The subscriber's code and the nonce a confirmation token was made with.

    None for a tampered or expired token, and for one from before tokens had a nonce.
    """
    try:
        value = signing.TimestampSigner(salt=_CONFIRM_SALT).unsign(
            token, max_age=settings.BEACON_SUBSCRIBE_CONFIRM_HOURS * 3600
        )
    except signing.BadSignature:  # SignatureExpired included
        return None
    code, _, nonce = value.partition(".")
    if not nonce.isdigit():  # a link from before links had a nonce: it no longer works
        return None
    return code, int(nonce)


def manage_token(subscriber: Subscriber) -> str:
    """Never expires: it is in every email. A new subscription gets a new code."""
    return signing.Signer(salt=_MANAGE_SALT).sign(subscriber.public_id)


def manage_token_code(token: str) -> str | None:
    """The subscriber's code a manage token was made for; None for a tampered token."""
    try:
        return signing.Signer(salt=_MANAGE_SALT).unsign(token)
    except signing.BadSignature:
        return None


# Links


def manage_path(subscriber: Subscriber) -> str:
    """The manage page's path on this site, for a redirect."""
    return reverse("subscription-manage", kwargs={"token": manage_token(subscriber)})


def confirm_url(subscriber: Subscriber) -> str:
    path = reverse("subscription-confirm", kwargs={"token": confirm_token(subscriber)})
    return absolute_url(path)


def manage_url(subscriber: Subscriber) -> str:
    return absolute_url(manage_path(subscriber))


def unsubscribe_url(subscriber: Subscriber) -> str:
    """RFC 8058's target: a POST here unsubscribes, no login, no second click."""
    path = reverse("subscription-unsubscribe", kwargs={"token": manage_token(subscriber)})
    return absolute_url(path)


def manage_url_around_token() -> tuple[str, str]:
    """manage_url() split around its token, so a message only joins three strings."""
    return _url_around_token("subscription-manage")


def unsubscribe_url_around_token() -> tuple[str, str]:
    """unsubscribe_url() split around its token, so a message only joins three strings."""
    return _url_around_token("subscription-unsubscribe")


def _url_around_token(name: str) -> tuple[str, str]:
    marker = "beacon-token-marker"
    head, _, tail = absolute_url(reverse(name, kwargs={"token": marker})).partition(marker)
    return head, tail
