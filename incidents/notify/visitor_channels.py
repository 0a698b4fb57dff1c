"""Channels visitors add themselves: a Slack, Discord or Teams webhook, or a generic one.

A visitor's URL is vetted at once (its syntax, the chat service's own host over https, and
the outbound address guard), then a test message is posted through the guard. Only when the
endpoint answers 2xx is anything stored: a chat channel is active at once (the test message
carries its manage link), a generic webhook waits for its contact address to confirm by
email, as Statuspage asks. The guard is applied again at every send
(channels/webhook.py resolves, checks and connects to the checked address).

A URL that is already subscribed gets the same answer as a new one, and no second row.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, QuerySet, TextChoices
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from incidents.notify import subscriptions
from incidents.notify.channels.base import Outcome
from incidents.notify.channels.webhook import webhook_test_post
from incidents.notify.models import Channel, Subscriber, SubscriberState, WebhookFormat
from statuspage.lib import network

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 2000  # Subscriber.endpoint's


class VisitorChannel(TextChoices):
    EMAIL = "email", gettext_lazy("Email")
    SLACK = "slack", gettext_lazy("Slack")
    DISCORD = "discord", gettext_lazy("Discord")
    TEAMS = "teams", gettext_lazy("Microsoft Teams")
    WEBHOOK = "webhook", gettext_lazy("Webhook")


FORMAT_OF_CHANNEL = {
    VisitorChannel.SLACK: WebhookFormat.SLACK,
    VisitorChannel.DISCORD: WebhookFormat.DISCORD,
    VisitorChannel.TEAMS: WebhookFormat.TEAMS,
    VisitorChannel.WEBHOOK: WebhookFormat.STATUSPAGE,
}


# Where each chat service's webhooks live. A chat URL anywhere else is refused: the visitor
# pasted the wrong thing, or someone is using the form to make Beacon post elsewhere.
def _slack_host(host: str, path: str) -> bool:
    # Incoming webhooks (/services/…) and Workflow Builder webhooks (/triggers/…).
    return host == "hooks.slack.com" and path.startswith(("/services/", "/triggers/"))


def _discord_host(host: str, path: str) -> bool:
    hosts = {"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}
    return host in hosts and path.startswith("/api/webhooks/")


def _teams_host(host: str, path: str) -> bool:
    # Workflows (Power Automate) URLs, and the older Office 365 connector webhooks.
    suffixes = (".logic.azure.com", ".powerplatform.com", ".webhook.office.com")
    return host.endswith(suffixes)


CHAT_HOSTS: dict[str, tuple[Callable[[str, str], bool], str]] = {
    WebhookFormat.SLACK: (_slack_host, "https://hooks.slack.com/services/…"),
    WebhookFormat.DISCORD: (_discord_host, "https://discord.com/api/webhooks/…"),
    WebhookFormat.TEAMS: (
        _teams_host,
        "https://….logic.azure.com/…, https://….powerplatform.com/… "
        "or https://….webhook.office.com/…",
    ),
}


def visitor_endpoint_problem(endpoint: str, *, webhook_format: str) -> str | None:
    """What is wrong with a visitor's URL for this format; None when Beacon may post to it.

    Resolves the host now: a name that points at a private, loopback, link-local or
    metadata address is refused here, and again at every send.
    """
    if not endpoint:
        return gettext("Enter the webhook URL.")
    if len(endpoint) > MAX_URL_LENGTH:
        return gettext("A webhook URL has at most %(limit)d characters.") % {
            "limit": MAX_URL_LENGTH
        }
    # Syntax only here: whether the address may be reached is webhook_endpoint_validate's.
    problem = network.url_problem(endpoint, allow_private=True)
    if problem == network.NOT_HTTP:
        return gettext("Enter an http:// or https:// URL.")
    if problem is None:
        parts = urlsplit(endpoint)
        if parts.username is not None or parts.password is not None:
            return gettext("Leave the user name and password out of the URL.")
        rule = CHAT_HOSTS.get(webhook_format)
        if rule is not None:
            matches, example = rule
            # Any port: the host is the service's own, and its name is resolved and
            # guarded like every other.
            if parts.scheme != "https" or not matches(parts.hostname or "", parts.path):
                return gettext("Enter the service's own webhook URL, e.g. %(example)s") % {
                    "example": example
                }
    if problem is None:
        try:
            subscriptions.webhook_endpoint_validate(endpoint)
        except ValidationError as error:
            problem = error.messages[0]
    if problem:
        return gettext("This URL cannot be used: %(reason)s") % {"reason": problem}
    return None


@dataclass(frozen=True)
class ChannelAnswer:
    """What the visitor is told: the same for a new URL and one already subscribed."""

    needs_confirmation: bool
    email: str = ""


def test_failure_text(outcome: Outcome) -> str:
    """Why the test message did not post, for the form: a status, a refusal, or no answer."""
    if outcome.error.startswith("HTTP "):
        return gettext("The test message was refused: the endpoint answered %(status)s.") % {
            "status": outcome.error
        }
    if outcome.error.startswith(("timed out", "no complete answer")):
        return gettext("The test message could not be posted: the endpoint did not answer in time.")
    if outcome.error.startswith("refused:"):
        return gettext("This URL cannot be used: %(reason)s") % {
            "reason": outcome.error.removeprefix("refused:").strip()
        }
    return gettext("The test message could not be posted: could not connect to the endpoint.")


def channel_subscription_request(
    *,
    channel: str,
    endpoint: str,
    email: str = "",
    component_ids: Iterable[int] | None = None,
) -> ChannelAnswer:
    """A visitor's chat channel or generic webhook: vet, post a test message, then store.

    Raises ValidationError (by field) for a URL that may not be used, a missing contact
    address, and a test message that did not post; nothing is stored then.
    """
    webhook_format = FORMAT_OF_CHANNEL[VisitorChannel(channel)]
    endpoint = (endpoint or "").strip()
    generic = webhook_format == WebhookFormat.STATUSPAGE
    errors: dict[str, str] = {}
    problem = visitor_endpoint_problem(endpoint, webhook_format=webhook_format)
    if problem:
        errors["endpoint"] = problem
    address = ""
    if generic:
        try:
            address = subscriptions.normalise_email(email)
        except ValidationError as error:
            errors["email"] = error.messages[0]
    if errors:
        raise ValidationError(errors)
    components = subscriptions.components_chosen(component_ids)
    existing = _same_channel(endpoint, webhook_format).first()
    subject = existing or Subscriber(
        channel=Channel.WEBHOOK,
        endpoint=endpoint,
        email=address,
        webhook_format=webhook_format,
        all_components=not components,
    )
    # A visitor waits for the answer: the lookup and the request share one timeout.
    outcome = webhook_test_post(
        subscriber=subject,
        component_ids=[c.pk for c in components],
        within=settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS,
    )
    if not outcome.sent:
        raise ValidationError({"endpoint": test_failure_text(outcome)})
    with transaction.atomic():
        # Two submissions of one URL at once: the second waits here and finds the first.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [endpoint])
        found = _same_channel(endpoint, webhook_format).select_for_update().first()
        if found is not None and found.state == SubscriberState.ACTIVE:
            if generic and found.email:
                subscriptions.send_after_commit("already_subscribed", found)
            return ChannelAnswer(needs_confirmation=generic, email=address)
        subscriber = found or subject
        if generic and subscriber.email != address:
            # A new contact address: an old one's hard bounce says nothing about it.
            subscriber.email, subscriber.bounced_at = address, None
        subscriber.all_components = not components
        if generic:
            subscriber.state = SubscriberState.UNCONFIRMED
            subscriber.confirmation_sent_at = timezone.now()
        else:
            subscriber.state = SubscriberState.ACTIVE
            subscriber.confirmed_at = subscriber.confirmed_at or timezone.now()
        subscriber.quarantined_at = None
        subscriber.failing_since = None
        subscriber.last_error = ""
        subscriber.save()
        if generic:
            # The link about to be sent is the only one that works.
            Subscriber.objects.filter(pk=subscriber.pk).update(confirm_nonce=F("confirm_nonce") + 1)
            subscriber.refresh_from_db(fields=["confirm_nonce"])
        subscriber.components.set(components)
        if generic:
            subscriptions.send_after_commit("confirm", subscriber)
    logger.info("visitor channel %s (%s) subscribed", subscriber.public_id, webhook_format)
    return ChannelAnswer(needs_confirmation=generic, email=address)


def _same_channel(endpoint: str, webhook_format: str) -> QuerySet[Subscriber]:
    return Subscriber.objects.filter(
        channel=Channel.WEBHOOK, endpoint=endpoint, webhook_format=webhook_format
    ).order_by("pk")
