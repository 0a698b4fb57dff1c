"""The webhook channel: posting a body to each subscriber's endpoint.

What the body says (Statuspage's JSON, or a Slack, Discord or Teams message) is
incidents/notify/webhook_bodies.py's; this module sends it.

Every request is signed when the subscriber has a secret, goes only to an address that
`network.resolve` allowed (the connection is made to that very address, so a second DNS
answer cannot point it elsewhere), and follows no redirect: a 3xx is a failure, as on
Statuspage.

A batch posts to all its webhooks at once, so endpoints that hang cost it one timeout, not
one each, and it answers within its deadline whatever they do.
"""

import abc
import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
import queue
import secrets
import socket
import threading
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Self

import httpx
from django.conf import settings

from incidents.notify import links, subscriptions
from incidents.notify.channels.base import SENT, Outcome, concurrent_deadline
from incidents.notify.models import Delivery, NotificationEvent, Subscriber, WebhookFormat
from incidents.notify.webhook_bodies import (
    CHAT_FORMATS,
    message,
    sample_payload,
    statuspage_payload,
    with_unsubscribe,
)
from incidents.statuspage_json import Json
from statuspage.lib import network

logger = logging.getLogger(__name__)

# httpx logs every request's URL at INFO, and a webhook's URL is often its secret (Slack's
# and Discord's are): nothing httpx logs while a webhook is posted is kept.
_posting = contextvars.ContextVar("beacon_webhook_posting", default=False)


class _WhilePosting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _posting.get()


# httpcore's own records name the host and the method, never the path or the headers.
logging.getLogger("httpx").addFilter(_WhilePosting())

USER_AGENT = "Beacon-Webhooks/1"
GONE_WHEN_MISSING = {WebhookFormat.SLACK, WebhookFormat.DISCORD}
GONE_STATUSES = {HTTPStatus.NOT_FOUND, HTTPStatus.GONE}


def _client(timeout: float | None = None) -> httpx.AsyncClient:
    # No redirects (a 3xx is a failure) and no proxy from the environment: the request must
    # go to the address that was checked.
    return httpx.AsyncClient(
        timeout=timeout or settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS,
        follow_redirects=False,
        trust_env=False,
    )


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Request:
    """One webhook POST, built before any network work (building it reads the database)."""

    url: httpx.URL
    host: str
    port: int
    body: bytes
    headers: dict[str, str]
    # Slack and Discord answer 404 or 410 for a deleted webhook, and only then.
    missing_means_gone: bool = False

    @classmethod
    def to(
        cls,
        url: httpx.URL,
        *,
        body: bytes,
        headers: dict[str, str],
        missing_means_gone: bool = False,
    ) -> "Request":
        """A POST to `url` (an http(s) URL with a host)."""
        return cls(
            url=url,
            host=url.raw_host.decode("ascii"),
            port=url.port or (443 if url.scheme == "https" else 80),
            body=body,
            headers={"Host": url.netloc.decode("ascii"), **headers},
            missing_means_gone=missing_means_gone,
        )


def webhook_request(
    subscriber: Subscriber, payload: Json, *, kind: str, delivery_id: str
) -> Request | Outcome:
    """The request to make, or the Outcome of a URL that will never be called."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        url = httpx.URL(subscriber.endpoint)
    except httpx.InvalidURL as error:
        return Outcome(sent=False, error=f"refused: invalid URL ({error})", permanent=True)
    if url.scheme not in ("http", "https") or not url.raw_host:
        return Outcome(sent=False, error="refused: not an http(s) URL", permanent=True)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"{USER_AGENT} (+{links.page_base_url()})",
        "X-Beacon-Event": kind,
        "X-Beacon-Delivery": delivery_id,
    }
    if subscriber.secret:
        headers["X-Beacon-Signature-256"] = signature(body, subscriber.secret)
    return Request.to(
        url,
        body=body,
        headers=headers,
        missing_means_gone=subscriber.webhook_format in GONE_WHEN_MISSING,
    )


async def _post(client: httpx.AsyncClient, request: Request | Outcome) -> Outcome:
    """POST the request to its endpoint, at an address that was allowed."""
    if isinstance(request, Outcome):
        return request
    token = _posting.set(True)
    try:
        try:
            addresses = await network.resolve(
                request.host, request.port, allow_private=settings.BEACON_WEBHOOKS_ALLOW_PRIVATE
            )
        except network.TargetRefused as refused:
            # A name that does not resolve now may resolve later; a forbidden address will not.
            unresolved = isinstance(refused.__cause__, socket.gaierror)
            return Outcome(sent=False, error=f"refused: {refused}", permanent=not unresolved)
        extensions = {"sni_hostname": request.host} if request.url.scheme == "https" else {}
        timeout = client.timeout.read or settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS
        failure = ""
        for address in addresses:
            try:
                # Only the status matters: the body is never read, so an endpoint that
                # answers with gigabytes costs nothing.
                async with client.stream(
                    "POST",
                    request.url.copy_with(host=address),
                    content=request.body,
                    headers=request.headers,
                    extensions=extensions,
                ) as response:
                    pass
            except httpx.TimeoutException:
                return Outcome(sent=False, error=f"timed out after {timeout:g} s")
            except httpx.ConnectError as failed:  # try the name's next address
                failure = f"cannot connect: {failed}"
                continue
            except httpx.HTTPError as failed:
                return Outcome(sent=False, error=f"connection failed: {failed}")
            if response.is_success:
                return SENT
            gone = request.missing_means_gone and response.status_code in GONE_STATUSES
            return Outcome(
                sent=False,
                error=_http_error(response),
                permanent=gone,
                gone=gone,
                status=response.status_code,
            )
        return Outcome(sent=False, error=failure or "cannot connect")
    finally:
        _posting.reset(token)


async def _post_all(
    requests: dict[int, Request | Outcome], within: float, report: Callable[[int, Outcome], None]
) -> None:
    """Every request at once, each outcome reported as it comes; after `within` seconds the
    requests still unanswered are cut off and reported as such."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with _client(min(settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS, within)) as client:
        keys = {asyncio.ensure_future(_post(client, req)): key for key, req in requests.items()}
        pending = set(keys)
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=max(deadline - loop.time(), 0), return_when=FIRST_COMPLETED
            )
            if not done:
                break
            for task in done:
                error = task.exception()
                if error is not None:
                    logger.error("webhook post raised", exc_info=error)
                    report(keys[task], Outcome(False, f"internal error: {type(error).__name__}"))
                else:
                    report(keys[task], task.result())
        for task in pending:
            task.cancel()
            report(keys[task], Outcome(False, f"no complete answer within {within:.3g} s"))
        # Let the cancelled requests close their connections before the client does.
        await asyncio.gather(*pending, return_exceptions=True)


def post_concurrently(
    requests: dict[int, Request | Outcome], within: float
) -> Iterator[tuple[int, Outcome]]:
    """(key, outcome) as each request is answered, all within `within` seconds.

    The requests run on an event loop in a thread of their own, so the caller can write
    each outcome down (in its own thread, with its database connection) the moment it is
    known: a worker killed mid-batch then resends only what it had not written down.
    """
    outcomes: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()

    def run() -> None:
        try:
            asyncio.run(_post_all(requests, within, lambda k, o: outcomes.put((k, o))))
        except BaseException as error:  # report every request, so the caller never hangs
            logger.exception("webhook posting stopped")
            reason = Outcome(False, f"internal error: {type(error).__name__}")
            for key in requests:
                outcomes.put((key, reason))

    thread = threading.Thread(target=run, name="beacon-webhooks", daemon=True)
    thread.start()
    seen: set[int] = set()
    try:
        while len(seen) < len(requests):
            key, outcome = outcomes.get()
            if key not in seen:
                seen.add(key)
                yield key, outcome
    finally:
        # Every outcome is in. A name lookup cut off at the deadline may still hold a thread
        # of the loop (asyncio.run waits for it): it ends on its own, the batch does not wait.
        thread.join(timeout=1)


def _http_error(response: httpx.Response) -> str:
    # The standard phrase, not the server's (some shout it, some leave it out).
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = ""
    error = f"HTTP {response.status_code} {phrase}".rstrip()
    if response.is_redirect:
        error += " (redirects are not followed: use the final URL)"
    return error


class PostingSender(abc.ABC):
    """A channel whose every delivery is one HTTP POST (webhooks, browser push): the batch
    is posted all at once, within its deadline. A channel says what to post (`request`) and
    may judge each answer (`judged`)."""

    def __init__(self, event: NotificationEvent):
        self.event = event

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:  # noqa: B027 - nothing to close: no connection is kept
        return None

    @abc.abstractmethod
    def request(self, delivery: Delivery) -> Request | Outcome:
        """What to post for this delivery, or the Outcome when nothing can be posted."""

    def judged(self, delivery: Delivery, outcome: Outcome) -> Outcome:
        return outcome

    def send(self, delivery: Delivery) -> Outcome:
        ((_, outcome),) = self.send_many([delivery], within=concurrent_deadline())
        return outcome

    def send_many(
        self, deliveries: list[Delivery], *, within: float
    ) -> Iterator[tuple[Delivery, Outcome]]:
        """Post every delivery of the batch at once; (delivery, outcome) as each answers."""
        by_pk = {delivery.pk: delivery for delivery in deliveries}
        requests = {pk: self.request(delivery) for pk, delivery in by_pk.items()}
        for pk, outcome in post_concurrently(requests, within):
            yield by_pk[pk], self.judged(by_pk[pk], outcome)


class WebhookSender(PostingSender):
    """Posts one event to every webhook of a batch at once, within the batch's deadline."""

    def __init__(self, event: NotificationEvent):
        super().__init__(event)
        self._payload: Json | None = None
        self._chat: dict[str, Json] = {}

    def payload(self, subscriber: Subscriber) -> Json:
        if self._payload is None:
            self._payload = self.event.payload or statuspage_payload(self.event)
            self.event.payload = self._payload
        chat = CHAT_FORMATS.get(subscriber.webhook_format)
        if chat is None:
            return with_unsubscribe(self._payload, subscriber)
        if subscriber.webhook_format not in self._chat:
            self._chat[subscriber.webhook_format] = chat(message(self.event))
        return self._chat[subscriber.webhook_format]

    def request(self, delivery: Delivery) -> Request | Outcome:
        subscriber = delivery.subscriber
        return webhook_request(
            subscriber, self.payload(subscriber), kind=self.event.kind, delivery_id=str(delivery.pk)
        )

    def judged(self, delivery: Delivery, outcome: Outcome) -> Outcome:
        if not outcome.sent:
            # The endpoint may hold a secret (Slack's URLs do): name the subscriber by code.
            logger.info("webhook %s failed: %s", delivery.subscriber.public_id, outcome.error)
        return outcome


# Test messages: from the admin, and when a visitor subscribes a channel


def webhook_test_post(
    *,
    subscriber: Subscriber,
    component_ids: Collection[int] | None = None,
    within: float | None = None,
) -> Outcome:
    """POST a test message through the address guard, writing nothing, within `within`
    seconds (by default twice the timeout: a name lookup and a request, each allowed the
    whole timeout).

    The subscriber may be unsaved: a visitor's channel is stored only once this succeeds.
    """
    request = webhook_request(
        subscriber,
        sample_payload(subscriber, component_ids=component_ids),
        kind="test",
        delivery_id=f"test-{secrets.token_hex(8)}",
    )
    within = within or 2 * settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS
    ((_, outcome),) = post_concurrently({0: request}, within)
    if not outcome.sent:
        logger.info("test webhook %s failed: %s", subscriber.public_id, outcome.error)
    return outcome


def webhook_test_delivery(*, subscriber: Subscriber) -> Outcome:
    """POST a test message; an endpoint that answers 2xx confirms the subscriber."""
    outcome = webhook_test_post(subscriber=subscriber)
    if outcome.sent:
        subscriptions.subscription_confirm(subscriber=subscriber)
    return outcome
