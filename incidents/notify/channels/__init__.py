"""Notification channels: one module per channel, each a Sender keeping `base.py`'s contract.

A new channel is a module here with its Sender class, registered in SENDERS under its
`Channel` value; delivery.py looks the sender of each batch up here.
"""

from incidents.notify.channels.base import Sender
from incidents.notify.channels.email import EmailSender
from incidents.notify.channels.push import PushSender
from incidents.notify.channels.webhook import WebhookSender
from incidents.notify.models import Channel

SENDERS: dict[str, type[Sender]] = {
    Channel.EMAIL: EmailSender,
    Channel.WEBHOOK: WebhookSender,
    Channel.PUSH: PushSender,
}
