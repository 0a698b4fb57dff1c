"""Getting each event to each subscriber exactly once.

The ledger is the truth: one Delivery row per (event, subscriber), unique in the database.
The broker carries only doorbells, and any of them may be lost or rung twice:

1. `event_expand` renders the event once, inserts the rows for its subscribers (a second run
   inserts nothing) and cuts them into batches of id ranges.
2. `batch_send` claims the due, unclaimed rows of its range with a lease, sends them over one
   connection, and marks each row sent the moment the server accepted it. A second copy of
   the same batch finds nothing left to claim.
3. `notifications_sweep` (every few seconds from beat) expands events whose doorbell was
   lost, and hands out again rows that are due: retries after a temporary failure, and rows
   whose batch died with its worker (their lease ran out).

The one window left is between the server's acceptance and the row's update: a worker killed
exactly there sends that one message again, with the same Message-ID, which mail clients
collapse. Everything else is sent once.
"""

import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from incidents.notify.models import (
    Channel,
    Delivery,
    DeliveryState,
    NotificationEvent,
    Subscriber,
    SubscriberState,
)

logger = logging.getLogger(__name__)

# An event whose doorbell has not been answered after this long is expanded by the sweeper.
EXPAND_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Batch:
    event_id: int
    channel: str
    first_id: int
    last_id: int


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. Not sent and not permanent: try again later."""

    sent: bool
    error: str = ""
    permanent: bool = False


SENT = Outcome(sent=True)


class ConnectionLost(Exception):
    """The channel's connection failed: the rest of the batch is retried later."""


class Sender(Protocol):
    """One per channel; opened once per batch, so a batch reuses one connection."""

    def __enter__(self) -> "Sender": ...

    def __exit__(self, *exc) -> None: ...

    def send(self, delivery: Delivery) -> Outcome: ...


def _senders() -> dict[str, type]:
    from incidents.notify.email import EmailSender
    from incidents.notify.webhooks import WebhookSender

    return {Channel.EMAIL: EmailSender, Channel.WEBHOOK: WebhookSender}


def batch_size(channel: str) -> int:
    if channel == Channel.EMAIL:
        return settings.BEACON_NOTIFY_EMAIL_BATCH_SIZE
    return settings.BEACON_NOTIFY_WEBHOOK_BATCH_SIZE


def lease() -> timedelta:
    return timedelta(seconds=settings.BEACON_NOTIFY_LEASE_SECONDS)


# Expansion


def event_expand(*, event_id: int, now: datetime | None = None) -> list[Batch]:
    """Write the event's ledger rows and return the batches to hand out."""
    from incidents.notify.content import event_render

    now = now or timezone.now()
    event = NotificationEvent.objects.filter(pk=event_id).first()
    if event is None:  # its incident was deleted meanwhile
        return []
    if not event.subject:
        event_render(event)
        NotificationEvent.objects.filter(pk=event.pk).update(
            subject=event.subject,
            text_body=event.text_body,
            html_body=event.html_body,
            payload=event.payload,
        )
    for channel in event.channels:
        _insert_deliveries(event, channel, now)
    NotificationEvent.objects.filter(pk=event.pk, expanded_at__isnull=True).update(expanded_at=now)
    return _dispatch(event.pk, now=now, mark=False)


def recipients(event: NotificationEvent, channel: str):
    """Active subscribers of this channel who hear about the event's components."""
    chosen = Subscriber.components.through.objects.filter(
        subscriber_id=OuterRef("pk"), component_id__in=event.component_ids
    )
    subscribers = Subscriber.objects.filter(channel=channel, state=SubscriberState.ACTIVE)
    return subscribers.filter(Q(all_components=True) | Exists(chosen))


def _insert_deliveries(event: NotificationEvent, channel: str, now: datetime) -> None:
    """One INSERT … SELECT: 100,000 rows without carrying them through Python."""
    chosen = recipients(event, channel).annotate(recipient_id=F("pk")).values("recipient_id")
    ids_sql, params = chosen.order_by("pk").query.sql_with_params()
    table = Delivery._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "
            "(event_id, subscriber_id, channel, state, attempts, next_attempt_at, "
            "dispatched_at, error) "
            # WHERE true: SQLite cannot tell ON CONFLICT from a join constraint without it.
            f"SELECT %s, r.recipient_id, %s, %s, 0, %s, %s, '' FROM ({ids_sql}) AS r WHERE true "
            "ON CONFLICT (event_id, subscriber_id) DO NOTHING",
            [
                event.pk,
                channel,
                DeliveryState.QUEUED,
                connection.ops.adapt_datetimefield_value(now),
                connection.ops.adapt_datetimefield_value(now),  # handed out below
                *params,
            ],
        )


def _due(now: datetime):
    return Delivery.objects.filter(state=DeliveryState.QUEUED, next_attempt_at__lte=now).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


def _dispatch(
    event_id: int, *, now: datetime, extra: Q | None = None, mark: bool = True
) -> list[Batch]:
    """Cut the event's due rows into id ranges per channel and note when they went out.

    New rows are inserted already marked (`mark=False`): one pass over 100,000 rows saved.
    """
    rows = _due(now).filter(event_id=event_id)
    if extra is not None:
        rows = rows.filter(extra)
    batches: list[Batch] = []
    for channel in Channel.values:
        ids = list(rows.filter(channel=channel).order_by("id").values_list("id", flat=True))
        size = batch_size(channel)
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            batches.append(Batch(event_id, channel, chunk[0], chunk[-1]))
        if ids and mark:
            rows.filter(channel=channel).update(dispatched_at=now)
    return batches


# The sweeper


def notifications_sweep(*, now: datetime | None = None) -> tuple[list[int], list[Batch]]:
    """Events to expand again and batches to hand out again, after a loss or for a retry."""
    now = now or timezone.now()
    unexpanded = list(
        NotificationEvent.objects.filter(
            expanded_at__isnull=True, created_at__lt=now - EXPAND_GRACE
        ).values_list("pk", flat=True)
    )
    # Rows never handed out (retries) or handed out long enough ago that their batch is
    # lost: a batch in the queue has not claimed them, a batch that died lets its lease end.
    forgotten = Q(dispatched_at__isnull=True) | Q(
        dispatched_at__lt=now - timedelta(seconds=settings.BEACON_NOTIFY_REDISPATCH_SECONDS)
    )
    event_ids = _due(now).filter(forgotten).values_list("event_id", flat=True).distinct()
    batches = [b for event_id in event_ids for b in _dispatch(event_id, now=now, extra=forgotten)]
    return unexpanded, batches


# Sending


def batch_send(*, batch: Batch, now: datetime | None = None) -> int:
    """Send the batch's rows that are still due; returns how many the server accepted."""
    event = NotificationEvent.objects.filter(pk=batch.event_id).first()
    if event is None:
        return 0
    claimed = _claim(batch, now or timezone.now())
    if not claimed:
        return 0
    sent = 0
    pending = deque(claimed)
    sender_class = _senders()[batch.channel]
    try:
        with sender_class(event) as sender, _quick_commits():
            lease_ends = timezone.now() + lease()
            while pending:
                delivery = pending[0]
                if timezone.now() > lease_ends - lease() / 2:
                    lease_ends = _extend_lease(batch, delivery.pk)
                outcome = sender.send(delivery)
                delivery_record(delivery=delivery, outcome=outcome, event=event)
                pending.popleft()
                sent += outcome.sent
    except ConnectionLost as lost:
        # Nothing in `pending` was accepted, the delivery in hand included: retry them all.
        logger.warning("notification batch %s stopped: %s", batch, lost)
        for delivery in pending:
            delivery_record(
                delivery=delivery,
                outcome=Outcome(False, str(lost)),
                event=event,
                blame_subscriber=False,
            )
    return sent


def _claim(batch: Batch, now: datetime) -> list[Delivery]:
    with transaction.atomic():
        ids = list(
            _due(now)
            .select_for_update(skip_locked=True)
            .filter(
                event_id=batch.event_id,
                channel=batch.channel,
                id__gte=batch.first_id,
                id__lte=batch.last_id,
            )
            .values_list("id", flat=True)
        )
        Delivery.objects.filter(id__in=ids).update(
            claimed_until=now + lease(), attempts=F("attempts") + 1
        )
    return list(Delivery.objects.filter(id__in=ids).select_related("subscriber").order_by("id"))


def _extend_lease(batch: Batch, from_id: int) -> datetime:
    until = timezone.now() + lease()
    Delivery.objects.filter(
        event_id=batch.event_id,
        channel=batch.channel,
        id__gte=from_id,
        id__lte=batch.last_id,
        state=DeliveryState.QUEUED,
    ).update(claimed_until=until)
    return until


def retry_delay(attempts: int) -> timedelta:
    base = settings.BEACON_NOTIFY_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 3600))


_MARK_SENT = (
    f"UPDATE {Delivery._meta.db_table} SET state = %s, sent_at = %s, claimed_until = NULL, "
    "error = '' WHERE id = %s AND state = %s"
)


def _mark_sent(delivery_id: int, now: datetime) -> None:
    """Once per message, between two messages: plain SQL, prepared on PostgreSQL.

    Planning the statement each time cost PostgreSQL more than running it.
    """
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        connection.connection.execute(
            _MARK_SENT,
            [DeliveryState.SENT, now, delivery_id, DeliveryState.QUEUED],
            prepare=True,
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _MARK_SENT,
            [
                DeliveryState.SENT,
                connection.ops.adapt_datetimefield_value(now),
                delivery_id,
                DeliveryState.QUEUED,
            ],
        )


@contextmanager
def _quick_commits() -> Iterator[None]:
    """While a batch sends, its commits do not wait for the disk (PostgreSQL only).

    Each "sent" mark is its own commit, and waiting for the WAL flush was 40 % of the time
    per message. A worker that dies loses nothing this way (the server has the commits); only
    a crash of PostgreSQL itself can lose the last fraction of a second of marks, and those
    few messages are then sent again, with the same Message-ID.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def delivery_record(
    *,
    delivery: Delivery,
    outcome: Outcome,
    event: NotificationEvent,
    blame_subscriber: bool = True,
) -> None:
    """Write down what one attempt came to; after 24 h of trying, a failure is final."""
    now = timezone.now()
    rows = Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.QUEUED)
    if outcome.sent:
        _mark_sent(delivery.pk, now)
        delivery.state = DeliveryState.SENT
        if delivery.subscriber.failing_since:
            Subscriber.objects.filter(pk=delivery.subscriber_id).update(
                failing_since=None, last_error=""
            )
        return
    error = outcome.error[:500]
    give_up = now - event.created_at > timedelta(hours=settings.BEACON_NOTIFY_GIVE_UP_HOURS)
    if outcome.permanent or give_up:
        rows.update(state=DeliveryState.FAILED, claimed_until=None, error=error)
        delivery.state = DeliveryState.FAILED
    else:
        rows.update(
            next_attempt_at=now + retry_delay(delivery.attempts),
            claimed_until=None,
            dispatched_at=None,
            error=error,
        )
    if blame_subscriber:
        _subscriber_failed(delivery.subscriber, error=error, permanent=outcome.permanent, now=now)


def _subscriber_failed(subscriber: Subscriber, *, error: str, permanent: bool, now) -> None:
    """A bounced address stops at once; a webhook stops after failing for a whole day."""
    from incidents.notify.subscriptions import subscriber_quarantine

    failing_since = subscriber.failing_since or now
    Subscriber.objects.filter(pk=subscriber.pk, failing_since__isnull=True).update(
        failing_since=now
    )
    Subscriber.objects.filter(pk=subscriber.pk).update(last_error=error)
    bounced = permanent and subscriber.channel == Channel.EMAIL
    given_up = now - failing_since >= timedelta(hours=settings.BEACON_NOTIFY_GIVE_UP_HOURS)
    if bounced or given_up:
        subscriber_quarantine(subscriber=subscriber, reason=error)
