"""Getting each event to each subscriber exactly once.

The ledger is the truth: one Delivery row per (event, subscriber), unique in the database.
The broker carries only doorbells, and any of them may be lost or rung twice:

1. `event_expand` renders the event once, inserts the rows for its subscribers (a second run
   inserts nothing) and cuts them into batches of id ranges.
2. `batch_send` claims the due, unclaimed rows of its range with a lease, sends them over one
   connection, and marks each row sent the moment the server accepted it. A second copy of
   the same batch finds nothing left to claim. The lease is short and renewed while the
   batch works; a renewal that finds a row taken by another batch drops it, so a batch that
   stalled past its lease does not send what its successor sends.
3. `notifications_sweep` (every few seconds from beat) expands events whose doorbell was
   lost, and hands out again rows that are due: retries after a temporary failure, rows
   whose batch died with its worker (their lease ran out), and rows whose doorbell was lost
   with Redis (handed out, never claimed, and the queue is empty).

A row whose batch keeps dying (a message that crashes the worker every time) would come back
for ever: each claim counts the claims before it that ended with nothing written, and the row
is failed after `MAX_CRASHES` of them. Staff are told once per event. An event's expansion is
claimed and counted the same way.

The one window left is between the server's acceptance and the row's update: a worker killed
exactly there sends that one message again, with the same Message-ID, which mail clients
collapse. Everything else is sent once.
"""

import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, QuerySet, When
from django.utils import timezone

from incidents.automatic import admin_link, staff_alert
from incidents.notify.channels import SENDERS
from incidents.notify.channels.base import (
    ConcurrentSender,
    ConnectionLost,
    Outcome,
    concurrent_deadline,
)
from incidents.notify.content import event_render
from incidents.notify.models import (
    Channel,
    Delivery,
    DeliveryState,
    NotificationEvent,
    Subscriber,
    SubscriberState,
)
from incidents.notify.selectors import audience, event_is_internal
from incidents.notify.subscriptions import subscriber_quarantine

logger = logging.getLogger(__name__)

# An event whose doorbell has not been answered after this long is expanded by the sweeper.
EXPAND_GRACE = timedelta(seconds=30)

# A row is failed once workers died this many times while it was claimed: a message that
# kills its worker is not retried for a day, and the rows after it in its batch still go.
MAX_CRASHES = 5

# Handed out this long ago, never claimed, and the notify queue is empty: the doorbell was
# lost (Redis restarted), so the sweeper rings again without waiting NOTIFY_REDISPATCH_SECONDS.
# An idle worker claims a batch within milliseconds of its doorbell.
LOST_DOORBELL_GRACE = timedelta(seconds=15)

# A batch renews its lease when a third of it has passed, so one slow message (up to two
# thirds of the lease) never lets the sweeper hand the batch to another worker.
RENEW_FRACTION = 1 / 3


@dataclass(frozen=True)
class Batch:
    event_id: int
    channel: str
    first_id: int
    last_id: int


def batch_size(channel: str) -> int:
    size: int
    if channel == Channel.EMAIL:
        size = settings.BEACON_NOTIFY_EMAIL_BATCH_SIZE
    else:
        size = settings.BEACON_NOTIFY_WEBHOOK_BATCH_SIZE
    return size


def lease() -> timedelta:
    return timedelta(seconds=settings.BEACON_NOTIFY_LEASE_SECONDS)


# Expansion


def event_expand(*, event_id: int, now: datetime | None = None) -> list[Batch]:
    """Write the event's ledger rows and return the batches to hand out."""
    now = now or timezone.now()
    event = NotificationEvent.objects.filter(pk=event_id).first()
    if event is None:  # its incident was deleted meanwhile
        return []
    if event.expanded_at is None and not _claim_expansion(event, now):
        return []
    if event.expand_attempts > MAX_CRASHES:  # given up: its expansion kills workers
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
    NotificationEvent.objects.filter(pk=event.pk, expanded_at__isnull=True).update(
        expanded_at=now, expand_claimed_until=None
    )
    return _dispatch(event.pk, now=now, mark=False)


def _claim_expansion(event: NotificationEvent, now: datetime) -> bool:
    """Whether this worker may expand the event: nobody else is, and it has not died often.

    A doorbell rung twice finds the event claimed. An expansion whose worker died leaves its
    claim to run out; the next one counts it, and after MAX_CRASHES the event is given up.
    """
    claimed = (
        NotificationEvent.objects.filter(pk=event.pk, expanded_at__isnull=True)
        .filter(Q(expand_claimed_until__isnull=True) | Q(expand_claimed_until__lt=now))
        .update(expand_claimed_until=now + lease(), expand_attempts=F("expand_attempts") + 1)
    )
    if not claimed:
        return False
    event.refresh_from_db(fields=["expand_attempts"])
    crashes = event.expand_attempts - 1
    if crashes < MAX_CRASHES:
        return True
    NotificationEvent.objects.filter(pk=event.pk).update(expanded_at=now, expand_claimed_until=None)
    logger.error("notification %s: its expansion died %s times; given up", event.pk, crashes)
    _tell_staff_event_crashed(event, crashes)
    return False


def _tell_staff_event_crashed(event: NotificationEvent, crashes: int) -> None:
    subject = f"Notification not sent: {event}"
    link = admin_link("admin:incidents_notificationevent_change", event.pk)
    text = (
        f"Beacon gave up on “{event}”: the worker preparing it for its subscribers died "
        f"{crashes} times. Nobody was sent it.\n"
        f"It is listed here: {link}\n"
        "The workers' logs say what killed them.\n"
    )
    staff_alert(subject=subject, text=text)


def recipients(event: NotificationEvent, channel: str) -> QuerySet[Subscriber]:
    """Active subscribers of this channel who hear about the event's components."""
    return audience(event.component_ids, internal=event_is_internal(event)).filter(channel=channel)


def _insert_deliveries(event: NotificationEvent, channel: str, now: datetime) -> None:
    """One INSERT … SELECT: 100,000 rows without carrying them through Python."""
    chosen = recipients(event, channel).annotate(recipient_id=F("pk")).values("recipient_id")
    ids_sql, params = chosen.order_by("pk").query.sql_with_params()
    table = Delivery._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "
            "(event_id, subscriber_id, channel, state, attempts, crashes, next_attempt_at, "
            "dispatched_at, error) "
            # WHERE true: SQLite cannot tell ON CONFLICT from a join constraint without it.
            f"SELECT %s, r.recipient_id, %s, %s, 0, 0, %s, %s, '' FROM ({ids_sql}) AS r "
            "WHERE true "
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


def _due(now: datetime) -> QuerySet[Delivery]:
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


def notifications_sweep(
    *, now: datetime | None = None, queue_idle: bool = False
) -> tuple[list[int], list[Batch]]:
    """Events to expand again and batches to hand out again, after a loss or for a retry.

    `queue_idle`: the broker's notify queue is empty, so a row handed out and not claimed
    has lost its doorbell (the caller asks the broker; unknown counts as not idle).
    """
    now = now or timezone.now()
    unexpanded = _unexpanded(now)
    unclaimed_for = (
        LOST_DOORBELL_GRACE
        if queue_idle
        else timedelta(seconds=settings.BEACON_NOTIFY_REDISPATCH_SECONDS)
    )
    # Rows never handed out (retries); rows whose batch died (its lease ran out, and they
    # were not handed out since); rows handed out so long ago that their doorbell is lost.
    forgotten = (
        Q(dispatched_at__isnull=True)
        | Q(claimed_until__isnull=False, dispatched_at__lt=F("claimed_until"))
        | Q(dispatched_at__lt=now - unclaimed_for)
    )
    event_ids = _due(now).filter(forgotten).values_list("event_id", flat=True).distinct()
    batches = [b for event_id in event_ids for b in _dispatch(event_id, now=now, extra=forgotten)]
    return unexpanded, batches


def _unexpanded(now: datetime) -> list[int]:
    """Events whose doorbell was lost, or whose expansion died (its claim ran out)."""
    return list(
        NotificationEvent.objects.filter(
            expanded_at__isnull=True, created_at__lt=now - EXPAND_GRACE
        )
        .filter(Q(expand_claimed_until__isnull=True) | Q(expand_claimed_until__lt=now))
        .values_list("pk", flat=True)
    )


# Sending


def batch_send(*, batch: Batch, now: datetime | None = None) -> int:
    """Send the batch's rows that are still due; returns how many the server accepted."""
    event = NotificationEvent.objects.filter(pk=batch.event_id).first()
    if event is None:
        return 0
    claimed, token = _claim(batch, now or timezone.now())
    if not claimed:
        return 0
    sent = 0
    pending = deque(claimed)
    sender_class = SENDERS[batch.channel]
    try:
        with sender_class(event) as sender, _quick_commits():
            if isinstance(sender, ConcurrentSender):
                batch_outcomes = sender.send_many(list(pending), within=concurrent_deadline())
                for delivery, outcome in batch_outcomes:
                    delivery_record(delivery=delivery, outcome=outcome, event=event)
                    sent += outcome.sent
                return sent
            renew_every = settings.BEACON_NOTIFY_LEASE_SECONDS * RENEW_FRACTION
            renew_at = time.monotonic() + renew_every
            while pending:
                if time.monotonic() >= renew_at:
                    token, pending = _renew(pending, token)
                    renew_at = time.monotonic() + renew_every
                    continue
                delivery = pending[0]
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


def _claim(batch: Batch, now: datetime) -> tuple[list[Delivery], datetime]:
    """Lease the batch's due rows; returns them in the order to send, and the lease's end.

    The lease's end is also its token: a renewal keeps only rows that still carry it.
    """
    until = now + lease()
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
        if not ids:
            return [], until
        # A due row that still has a lease was claimed by a batch that wrote nothing about
        # it before the lease ran out: its worker died. Counted here, since a dead worker
        # counts nothing.
        Delivery.objects.filter(id__in=ids).update(
            claimed_until=until,
            attempts=F("attempts") + 1,
            crashes=Case(
                When(claimed_until__isnull=False, then=F("crashes") + 1),
                default=F("crashes"),
                output_field=Delivery._meta.get_field("crashes"),
            ),
        )
        _fail_crashed(batch.event_id, ids)
        _fail_inactive(Delivery.objects.filter(id__in=ids, state=DeliveryState.QUEUED))
    rows = list(
        Delivery.objects.filter(id__in=ids, state=DeliveryState.QUEUED).select_related("subscriber")
    )
    # After each death the order flips: a message that kills its worker was reached going
    # up, so going down reaches every other row of the batch before it. It is then alone.
    descending = max((row.crashes for row in rows), default=0) % 2 == 1
    rows.sort(key=lambda row: row.pk, reverse=descending)
    return rows, until


def _fail_crashed(event_id: int, ids: list[int]) -> None:
    crashed = Delivery.objects.filter(
        id__in=ids, state=DeliveryState.QUEUED, crashes__gte=MAX_CRASHES
    )
    if not crashed.exists():
        return
    # Serialises the batches of this event that find crashed rows: staff hear once.
    event = NotificationEvent.objects.select_for_update().get(pk=event_id)
    told_before = Delivery.objects.filter(
        event_id=event_id, state=DeliveryState.FAILED, crashes__gte=MAX_CRASHES
    ).exists()
    count = crashed.update(
        state=DeliveryState.FAILED,
        claimed_until=None,
        error=f"worker crashed {MAX_CRASHES} times while sending it; not tried again",
    )
    logger.error("notification %s: %s deliveries crashed their worker", event_id, count)
    if not told_before:
        _tell_staff_deliveries_crashed(event)


def _tell_staff_deliveries_crashed(event: NotificationEvent) -> None:
    subject = f"Notifications failed: {event}"
    link = admin_link("admin:incidents_notificationevent_change", event.pk)
    text = (
        f"Beacon gave up on some deliveries of “{event}”: the worker sending them died "
        f"{MAX_CRASHES} times in a row. The other subscribers got it.\n"
        f"The failed deliveries: {link}\n"
        "The workers' logs say what killed them.\n"
    )
    staff_alert(subject=subject, text=text)


def _fail_inactive(rows: QuerySet[Delivery]) -> int:
    """Rows of a subscriber disabled, unsubscribed or unconfirmed since: never sent."""
    return rows.exclude(subscriber__state=SubscriberState.ACTIVE).update(
        state=DeliveryState.FAILED,
        claimed_until=None,
        error="not sent: the subscriber was disabled",
    )


def _renew(pending: deque[Delivery], token: datetime) -> tuple[datetime, deque[Delivery]]:
    """Extend the lease of the rows still ours; drop those another batch took meanwhile."""
    until = timezone.now() + lease()
    with transaction.atomic():
        ours = Delivery.objects.select_for_update().filter(
            id__in=[d.pk for d in pending], state=DeliveryState.QUEUED, claimed_until=token
        )
        _fail_inactive(ours)
        kept = set(ours.values_list("id", flat=True))
        Delivery.objects.filter(id__in=kept).update(claimed_until=until)
    if len(kept) < len(pending):
        logger.warning("notification batch kept %s of %s rows at renewal", len(kept), len(pending))
    return until, deque(d for d in pending if d.pk in kept)


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
        _subscriber_failed(
            delivery.subscriber,
            error=error,
            permanent=outcome.permanent or outcome.gone,
            gone=outcome.gone,
            now=now,
        )


def _subscriber_failed(
    subscriber: Subscriber, *, error: str, permanent: bool, now: datetime, gone: bool = False
) -> None:
    """A bounced address or a deleted chat webhook stops at once; any other webhook stops
    after failing for a whole day."""
    failing_since = subscriber.failing_since or now
    Subscriber.objects.filter(pk=subscriber.pk, failing_since__isnull=True).update(
        failing_since=now
    )
    Subscriber.objects.filter(pk=subscriber.pk).update(last_error=error)
    bounced = (permanent and subscriber.channel == Channel.EMAIL) or gone
    given_up = now - failing_since >= timedelta(hours=settings.BEACON_NOTIFY_GIVE_UP_HOURS)
    if bounced or given_up:
        subscriber_quarantine(subscriber=subscriber, reason=error)
