"""The contract every notification channel keeps (email.py, webhooks.py), and delivery uses.

A channel's Sender is opened once per batch and answers each delivery with an Outcome;
delivery.py claims the rows, calls the sender, and writes down what each attempt came to.
"""

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from incidents.notify.models import Delivery


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
    """One per channel; opened once per batch, so a batch reuses one connection.

    A channel whose requests are independent (webhooks) may also offer
    `send_many(deliveries, *, within: float)`, which sends them all at once and yields
    (delivery, outcome) as each is answered, every one within `within` seconds (being cut
    off is an outcome).
    """

    def __enter__(self) -> "Sender": ...

    def __exit__(self, *exc) -> None: ...

    def send(self, delivery: Delivery) -> Outcome: ...


def concurrent_deadline() -> float:
    """Seconds a concurrent batch may post for: two thirds of its lease, so it keeps it."""
    return settings.BEACON_NOTIFY_LEASE_SECONDS * 2 / 3
