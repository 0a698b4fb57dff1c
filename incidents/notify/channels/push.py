"""The browser push channel: Web Push (RFC 8030) with VAPID (RFC 8292).

Each push carries a small JSON message (title, body, url, tag) encrypted to the browser's
key with aes128gcm (RFC 8291; pywebpush and http_ece do the cryptography), so the push
service relays what it cannot read. The request goes out like a webhook's: to an address
the outbound guard allowed, no redirects, every push of a batch at once
(channels/webhook.py's post_concurrently).

What the push service answers decides the rest: 201 sent; 404 or 410, the browser dropped
the subscription, which is removed at once; 429 and 5xx are tried again through the ledger;
any other refusal (a key the service rejects, a payload too large) is final for the event.
"""

import json
import logging
from http import HTTPStatus

import httpx
from django.conf import settings
from pywebpush import WebPusher

from incidents.notify import vapid
from incidents.notify.channels.base import SENT, Outcome
from incidents.notify.channels.webhook import PostingSender, Request
from incidents.notify.models import Delivery, NotificationEvent
from incidents.notify.push import push_subscriber_expired
from incidents.notify.webhook_bodies import message
from incidents.statuspage_json import Json

logger = logging.getLogger(__name__)

# Push services take 4,096 bytes of encrypted payload; the body is cut well below that.
MAX_BODY_CHARACTERS = 1000
# Incident impacts a visitor should hear of at once, even on a phone saving its battery.
HIGH_URGENCY_IMPACTS = {"major", "critical"}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def push_message(event: NotificationEvent) -> Json:
    """What the service worker shows: the notification's title, body, link and tag (a later
    push with the same tag replaces the earlier notification of the same incident)."""
    said = message(event)
    payload = event.payload or {}
    incident = payload.get("incident") or {}
    tag = f"incident-{incident['id']}" if incident.get("id") else f"event-{event.pk}"
    return {
        "title": said.title,
        "body": _clip(said.text, MAX_BODY_CHARACTERS),
        "url": said.url,
        "tag": tag,
    }


def urgency(event: NotificationEvent) -> str:
    incident = (event.payload or {}).get("incident") or {}
    return "high" if incident.get("impact") in HIGH_URGENCY_IMPACTS else "normal"


class PushSender(PostingSender):
    """Encrypts the event's message to each browser of a batch and pushes them all at once."""

    def __init__(self, event: NotificationEvent):
        super().__init__(event)
        self._data: bytes | None = None
        self._authorization: dict[str, str] = {}

    def data(self) -> bytes:
        if self._data is None:
            self._data = json.dumps(push_message(self.event), ensure_ascii=False).encode()
        return self._data

    def _vapid_header(self, url: httpx.URL) -> str:
        # One signature per push service (its origin is the token's audience) and batch.
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        if origin not in self._authorization:
            self._authorization[origin] = vapid.authorization(origin)
        return self._authorization[origin]

    def request(self, delivery: Delivery) -> Request | Outcome:
        subscriber = delivery.subscriber
        try:
            url = httpx.URL(subscriber.endpoint)
        except httpx.InvalidURL as error:
            return Outcome(sent=False, error=f"refused: invalid URL ({error})", permanent=True)
        if not url.raw_host:
            return Outcome(sent=False, error="refused: no host", permanent=True)
        info = {
            "endpoint": subscriber.endpoint,
            "keys": {"p256dh": subscriber.push_p256dh, "auth": subscriber.push_auth},
        }
        try:
            body = WebPusher(info).encode(self.data(), content_encoding="aes128gcm")["body"]
        except Exception as error:  # a key that is not a point: nothing will ever work
            return Outcome(
                sent=False, error=f"cannot encrypt: {type(error).__name__}", permanent=True
            )
        headers = {
            "Authorization": self._vapid_header(url),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(settings.BEACON_PUSH_TTL_SECONDS),
            "Urgency": urgency(self.event),
        }
        return Request.to(url, body=body, headers=headers, missing_means_gone=True)

    def judged(self, delivery: Delivery, outcome: Outcome) -> Outcome:
        if outcome.sent:
            return SENT
        # The endpoint is the browser's secret: the subscriber is named by code.
        logger.info("push %s failed: %s", delivery.subscriber.public_id, outcome.error)
        if outcome.gone:  # 404 or 410: the browser dropped the subscription
            push_subscriber_expired(subscriber=delivery.subscriber)
            return outcome
        retried = outcome.status == HTTPStatus.TOO_MANY_REQUESTS or outcome.status >= 500
        if outcome.status and not retried:
            return Outcome(sent=False, error=outcome.error, permanent=True, status=outcome.status)
        return outcome
