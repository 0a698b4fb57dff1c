"""The contract every notification channel keeps, and delivery uses.

A channel's Sender is opened once per batch and answers each delivery with an Outcome;
delivery.py claims the rows, calls the sender, and writes down what each attempt came to.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from django.conf import settings

from incidents.notify.models import Delivery, NotificationEvent


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. Not sent and not permanent: try again later."""

    sent: bool
    error: str = ""
    permanent: bool = False
    # The endpoint says it no longer exists (a deleted Slack or Discord webhook): its
    # subscriber is disabled at once rather than after a day of failures.
    gone: bool = False
    # The HTTP status the endpoint answered with, 0 when none (refused, timed out, not HTTP).
    status: int = 0


SENT = Outcome(sent=True)


class ConnectionLost(Exception):
    """The channel's connection failed: the rest of the batch is retried later."""


class Sender(Protocol):
    """One per channel; made for one event and opened once per batch, so a batch reuses
    one connection."""

    def __init__(self, event: NotificationEvent) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def send(self, delivery: Delivery) -> Outcome: ...


@runtime_checkable
class ConcurrentSender(Sender, Protocol):
    """A channel whose requests are independent (webhooks) sends a batch all at once.

    It yields (delivery, outcome) as each is answered, every one within `within` seconds
    (being cut off is an outcome).
    """

    def send_many(
        self, deliveries: list[Delivery], *, within: float
    ) -> Iterator[tuple[Delivery, Outcome]]: ...


def concurrent_deadline() -> float:
    """Seconds a concurrent batch may post for: two thirds of its lease, so it keeps it."""
    seconds: int = settings.BEACON_NOTIFY_LEASE_SECONDS
    return seconds * 2 / 3
