"""An event's words, rendered once at expansion and kept on the event."""

from incidents.notify.channels.email import email_content
from incidents.notify.models import NotificationEvent
from incidents.notify.webhook_bodies import statuspage_payload


def event_render(event: NotificationEvent) -> None:
    """Fill the event's subject, email bodies and webhook payload (not saved here)."""
    event.subject, event.text_body, event.html_body = email_content(event)
    event.payload = statuspage_payload(event)
