"""The one module through which incidents' code asks the worker for something.

Tasks are named here, never imported: incidents/tasks.py imports the services that call these
functions, so importing it back would close a cycle. `signature(name).delay()` sends the same
message as `task.delay()`: routed by `task_routes` (statuspage/celery.py), and run at once when
CELERY_TASK_ALWAYS_EAGER is on.
"""

from celery import current_app


def _delay(task: str, *args: object) -> None:
    current_app.signature(f"incidents.tasks.{task}", args=args).delay()


def expand_notification_event(event_id: int) -> None:
    _delay("expand_notification_event", event_id)


def send_subscription_email(which: str, subscriber_id: int) -> None:
    _delay("send_subscription_email", which, subscriber_id)


def tell_staff_by_email(subject: str, text: str, contact: str = "") -> None:
    _delay("tell_staff_by_email", subject, text, contact)


def tell_staff_by_webhook(subject: str, text: str) -> None:
    _delay("tell_staff_by_webhook", subject, text)
