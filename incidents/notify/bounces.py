"""Hard bounces, as mail providers' webhooks and RFC 3464 delivery status notifications
report them: each reader turns a report into the (address, reason) pairs of permanent
failures, and the caller hands each to subscriptions.subscriber_suppress_bounced.

Soft bounces (a full mailbox, a greylisting server, a block) are left to the retries: only
a permanent failure stops the mail. One small class per provider, registered in PROVIDERS.
"""

import email
import email.policy
import hashlib
import hmac
import json
from dataclasses import dataclass
from email.message import Message
from typing import Any

from django.conf import settings


class BadReport(ValueError):
    """The body is not the provider's report: the webhook answers 400 with this message."""


@dataclass(frozen=True)
class Bounce:
    email: str
    reason: str


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadReport(f"Expected a JSON object for {what}.")
    return value


class Postmark:
    """The Bounce webhook: one object per bounce (RecordType "Bounce")."""

    content_types = ("application/json",)
    HARD = {"HardBounce", "BadEmailAddress"}

    def bounces(self, payload: Any) -> list[Bounce]:
        report = _object(payload, "the bounce")
        if report.get("RecordType", "Bounce") != "Bounce" or report.get("Type") not in self.HARD:
            return []
        reason = _text(report.get("Description")) or _text(report.get("Type"))
        return [Bounce(_text(report.get("Email")), f"Postmark {report['Type']}: {reason}")]


class Mailgun:
    """The events webhook: `event-data` with event "failed" and severity "permanent",
    signed with the webhook signing key (HMAC-SHA256 of timestamp and token)."""

    content_types = ("application/json",)

    def bounces(self, payload: Any) -> list[Bounce]:
        report = _object(payload, "the event")
        signing_key = settings.BEACON_MAILGUN_WEBHOOK_SIGNING_KEY
        if signing_key:
            _verify_mailgun(signing_key, _object(report.get("signature"), "signature"))
        data = _object(report.get("event-data"), "event-data")
        if data.get("event") != "failed" or data.get("severity") != "permanent":
            return []
        status = data.get("delivery-status")
        status = status if isinstance(status, dict) else {}
        detail = _text(status.get("description")) or _text(status.get("message"))
        code = status.get("code")
        reason = f"Mailgun {code if isinstance(code, int) else ''} {detail}".replace("  ", " ")
        return [Bounce(_text(data.get("recipient")), reason.strip())]


def _verify_mailgun(signing_key: str, signature: dict[str, Any]) -> None:
    timestamp, token = _text(signature.get("timestamp")), _text(signature.get("token"))
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, _text(signature.get("signature"))):
        raise PermissionError("The Mailgun signature does not match the signing key.")


class SendGrid:
    """The Event Webhook: an array of events; a bounce is event "bounce" and type "bounce"
    ("blocked" is a temporary refusal)."""

    content_types = ("application/json",)

    def bounces(self, payload: Any) -> list[Bounce]:
        if not isinstance(payload, list):
            raise BadReport("Expected a JSON array of events.")
        found = []
        for event in payload:
            event = _object(event, "each event")
            if event.get("event") != "bounce" or event.get("type", "bounce") != "bounce":
                continue
            reason = _text(event.get("reason")) or _text(event.get("status"))
            found.append(Bounce(_text(event.get("email")), f"SendGrid bounce: {reason}"))
        return found


class AmazonSES:
    """SES bounce notifications delivered by an SNS HTTP(S) subscription (SNS posts them as
    text/plain). The SNS subscription confirmation carries a SubscribeURL that staff open
    once (docs/notifications.md); the webhook logs it and suppresses nothing."""

    content_types = ("text/plain", "application/json")

    def bounces(self, payload: Any) -> list[Bounce]:
        envelope = _object(payload, "the SNS message")
        kind = envelope.get("Type")
        if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
            raise SubscriptionConfirmation(_text(envelope.get("SubscribeURL")))
        if kind != "Notification":
            raise BadReport("Expected an SNS Notification.")
        try:
            message = _object(json.loads(_text(envelope.get("Message"))), "Message")
        except ValueError as error:
            raise BadReport("The SNS Message is not JSON.") from error
        kind = message.get("notificationType") or message.get("eventType")
        bounce = message.get("bounce")
        if kind != "Bounce" or not isinstance(bounce, dict):
            return []
        if bounce.get("bounceType") != "Permanent":
            return []
        recipients = bounce.get("bouncedRecipients")
        found = []
        for recipient in recipients if isinstance(recipients, list) else []:
            recipient = _object(recipient, "each bounced recipient")
            detail = _text(recipient.get("diagnosticCode")) or _text(bounce.get("bounceSubType"))
            found.append(Bounce(_text(recipient.get("emailAddress")), f"SES Permanent: {detail}"))
        return found


class SubscriptionConfirmation(Exception):
    """An SNS subscription asks to be confirmed at this URL."""

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


PROVIDERS: dict[str, Any] = {
    "postmark": Postmark,
    "mailgun": Mailgun,
    "sendgrid": SendGrid,
    "ses": AmazonSES,
}


# RFC 3464: a delivery status notification in a mailbox


def dsn_bounces(raw: bytes) -> list[Bounce]:
    """The permanent failures a DSN reports: `Action: failed` with a 5.x.x status.

    BadReport for anything that is not a multipart/report of report-type delivery-status.
    """
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    report_type = message.get_param("report-type")
    # An RFC 2231-encoded parameter comes as a tuple: no DSN writes its report-type that way.
    if not isinstance(report_type, str):
        report_type = ""
    if message.get_content_type() != "multipart/report" or (
        report_type.lower() != "delivery-status"
    ):
        raise BadReport("Not a delivery status notification (multipart/report).")
    found = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        # The first block is about the message; each later one about one recipient.
        blocks = part.get_payload()
        for block in blocks[1:] if isinstance(blocks, list) else []:
            if not isinstance(block, Message):  # each block is parsed as a header block
                continue
            bounce = _dsn_recipient(block)
            if bounce is not None:
                found.append(bounce)
    return found


def _dsn_recipient(block: Message) -> Bounce | None:
    action = (block.get("Action") or "").strip().lower()
    status = (block.get("Status") or "").strip()
    if action != "failed" or not status.startswith("5."):
        return None
    recipient = block.get("Final-Recipient") or block.get("Original-Recipient") or ""
    address_type, _, address = str(recipient).partition(";")
    if address_type.strip().lower() != "rfc822" or not address.strip():
        return None
    diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
    return Bounce(address.strip().strip("<>"), f"DSN {status}: {diagnostic}".strip())
