import logging

import httpx
from celery import current_app, shared_task

from incidents import services
from incidents.automatic import staff_email, staff_notices_flush, staff_webhook
from incidents.notify import delivery, events
from incidents.notify.channels.email import MailRefused, subscription_email_send
from incidents.notify.models import Subscriber
from incidents.reminders import silent_incidents_remind
from incidents.series import services as series_services

logger = logging.getLogger("beacon.notify")


@shared_task
def advance_scheduled_maintenances() -> None:
    events.maintenance_reminders_due()
    services.maintenances_advance_due()
    # Last: occurrences are made 30 days ahead, so a series that fails here must not hold
    # back the reminders and the starts and ends that are due now.
    series_services.series_materialise()


@shared_task
def flush_staff_notices() -> None:
    """Beat: the summaries of changes held back from staff whose window has ended."""
    staff_notices_flush()


@shared_task
def remind_silent_incidents() -> None:
    """Beat: staff hear of open incidents silent past the promised update interval."""
    silent_incidents_remind()


@shared_task(autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=600, max_retries=8)
def tell_staff_by_email(subject: str, text: str, contact: str = "") -> None:
    staff_email(subject=subject, text=text, contact=contact)


@shared_task(
    autoretry_for=(OSError, httpx.HTTPError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def tell_staff_by_webhook(subject: str, text: str) -> None:
    staff_webhook(subject=subject, text=text)


# Subscriber notifications. Every task may run twice or never: the ledger and the sweeper
# make the outcome the same (incidents/notify/delivery.py).


@shared_task
def expand_notification_event(event_id: int) -> None:
    _hand_out(delivery.event_expand(event_id=event_id))


@shared_task
def send_notification_batch(event_id: int, channel: str, first_id: int, last_id: int) -> None:
    delivery.batch_send(batch=delivery.Batch(event_id, channel, first_id, last_id))


@shared_task
def sweep_notifications() -> None:
    unexpanded, batches = delivery.notifications_sweep(queue_idle=_notify_queue_is_empty())
    for event_id in unexpanded:
        expand_notification_event.delay(event_id)
    _hand_out(batches)


def _notify_queue_is_empty() -> bool:
    """Whether no doorbell waits on the notify queue; False when the broker cannot say."""
    from kombu.exceptions import ChannelError

    try:
        with current_app.connection_for_read() as conn:
            waiting = conn.default_channel.queue_declare("notify", passive=True).message_count
    except ChannelError:  # Redis drops an empty list's key: no such queue means empty
        return True
    except Exception:  # a broker that cannot count (the file system one in development)
        return False
    return waiting == 0


def _hand_out(batches: list[delivery.Batch]) -> None:
    for batch in batches:
        send_notification_batch.delay(batch.event_id, batch.channel, batch.first_id, batch.last_id)


@shared_task(
    # Whatever fails (the mail server's 4xx, a dropped connection, a timeout, the database
    # away for a moment) is tried again, a bounded number of times; only a refusal for
    # good is not.
    autoretry_for=(Exception,),
    dont_autoretry_for=(MailRefused,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def send_subscription_email(which: str, subscriber_id: int) -> None:
    """The confirmation link, or "you are already subscribed" with the manage link."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return
    try:
        subscription_email_send(which=which, subscriber=subscriber)
    except MailRefused as refused:
        logger.warning(
            "subscription email %s to subscriber %s refused for good: %s",
            which,
            subscriber.public_id,
            refused,
        )
