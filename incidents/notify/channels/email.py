"""Email: an event's words, rendered once, and a sender that reuses one SMTP connection.

The bodies are rendered once per event (incidents/notify/content.py) with placeholders where each
subscriber's own links go. The sender fills them in and writes the MIME message itself: per
message that is a few string replacements and one quoted-printable encoding in C, not a
template render and a pass through the email package, so a worker sends thousands a second.
"""

import binascii
import contextlib
import re
import secrets
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.encoding import punycode
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.utils.translation import get_language, gettext_lazy, ngettext
from django.utils.translation import gettext as _

from components.models import Component, ComponentStatus
from incidents.models import AffectedComponent, Incident, IncidentUpdate
from incidents.notify import links
from incidents.notify.channels.base import SENT, ConnectionLost, Outcome
from incidents.notify.models import (
    Channel,
    Delivery,
    EventKind,
    NotificationEvent,
    Subscriber,
)
from statuspage.lib.local_format import format_date
from statuspage.lib.markdown import render_markdown
from statuspage.lib.text import one_line, without_control_characters
from statuspage.models import PageSettings

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrOrPromise

# Where each subscriber's links go in the bodies rendered once per event. A "<" never
# survives escaping (user text) or nh3 (Markdown), and _clean() takes them out of the raw
# text that the plain-text part carries, so only the templates can put them there.
MANAGE_URL_PLACEHOLDER = "<beacon:manage-url>"
UNSUBSCRIBE_URL_PLACEHOLDER = "<beacon:unsubscribe-url>"
_PLACEHOLDERS = (MANAGE_URL_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER)

DEFAULT_BRAND_COLOR = "#2563eb"

# The page's text-safe status colours (static/css), for white backgrounds.
STATUS_COLORS: dict[str, str] = {
    ComponentStatus.OPERATIONAL: "#1a7f37",
    ComponentStatus.DEGRADED_PERFORMANCE: "#8a6100",
    ComponentStatus.PARTIAL_OUTAGE: "#bc4c00",
    ComponentStatus.MAJOR_OUTAGE: "#cf222e",
    ComponentStatus.UNDER_MAINTENANCE: "#0969da",
}
# Lazy labels: each is read in the language active when an email is rendered.
STATUS_LABELS: dict[str, "StrOrPromise"] = dict(ComponentStatus.choices)

# A template's context: values of every type the templates print.
Context = dict[str, Any]

SUBSCRIPTION_EMAILS = {
    "confirm": (gettext_lazy("Confirm your subscription"), "emails/subscription_confirm"),
    "already_subscribed": (
        gettext_lazy("You are already subscribed"),
        "emails/subscription_already_subscribed",
    ),
}


# The words


def email_content(event: NotificationEvent, *, language: str = "") -> tuple[str, str, str]:
    """The event's subject, plain-text body and HTML body, the same for every subscriber
    who reads `language` (by default the page's)."""
    page = PageSettings.load()
    with translation.override(language or page.default_language):
        return _email_content(event, page)


def _email_content(event: NotificationEvent, page: PageSettings) -> tuple[str, str, str]:
    context = _page_context(page)
    context.update(_event_context(event, page, link_color=context["link_color"]))
    subject = _one_line(f"[{page.name}] {context['title']} – {context['label']}")[:400]
    context["subject"] = subject
    text = _tidy_text(render_to_string("emails/notification.txt", context))
    html = render_to_string(
        "emails/notification.html",
        {
            **context,
            "manage_url": mark_safe(MANAGE_URL_PLACEHOLDER),  # noqa: S308 - our own constant
            "unsubscribe_url": mark_safe(UNSUBSCRIBE_URL_PLACEHOLDER),  # noqa: S308
        },
    )
    return subject, text, html


def personalise(body: str, *, manage: str, unsubscribe: str, html: bool) -> str:
    """A rendered body with one subscriber's links in place of the placeholders."""
    if html:
        manage, unsubscribe = escape(manage), escape(unsubscribe)
    return body.replace(MANAGE_URL_PLACEHOLDER, manage).replace(
        UNSUBSCRIBE_URL_PLACEHOLDER, unsubscribe
    )


def _page_context(page: PageSettings) -> Context:
    brand = page.brand_color if re.fullmatch(r"#[0-9a-fA-F]{6}", page.brand_color or "") else ""
    brand = brand or DEFAULT_BRAND_COLOR
    light = _luminance(brand) > 0.45
    footer = _clean(page.footer_text)
    return {
        "page_name": _clean(page.name),
        "page_url": links.page_base_url() + "/",
        "brand": brand,
        "on_brand": "#111827" if light else "#ffffff",
        "link_color": "#0969da" if light else brand,
        "footer_text": footer,
        "footer_html": mark_safe(_styled(render_markdown(footer), "#6b7280")),  # noqa: S308
        "manage_url": MANAGE_URL_PLACEHOLDER,
        "unsubscribe_url": UNSUBSCRIBE_URL_PLACEHOLDER,
    }


def _event_context(event: NotificationEvent, page: PageSettings, *, link_color: str) -> Context:
    zone = page.zone
    if event.kind == EventKind.COMPONENT_UPDATE:
        change = event.status_change
        assert change is not None  # a component_update event has its change
        name = _clean(change.component.name)
        old, new = STATUS_LABELS[change.from_status], STATUS_LABELS[change.to_status]
        return {
            "title": name,
            "label": new,
            "intro": _("%(name)s changed from %(old)s to %(new)s.")
            % {"name": name, "old": old, "new": new},
            "components": [_component_row(name, change.to_status)],
            **_when(change.at, zone),
            "link": links.page_base_url() + "/",
            "link_text": _("View the status page"),
        }

    incident = event.incident
    assert incident is not None  # every other kind is about an incident
    update: IncidentUpdate | None = event.update
    context = {
        "title": _clean(incident.name),
        "status_label": incident.get_status_display(),
        "components": _components(incident, update),
        "window": _window(incident, zone),
        "link": links.page_base_url() + incident.get_absolute_url(),
        "link_text": _("View the maintenance")
        if incident.is_maintenance
        else _("View the incident"),
    }
    if update is not None:
        body = _clean(update.body_in(get_language()))
        # The update's status is what the incident's status was when it was posted.
        context.update(label=update.get_status_display(), status_label="")
        context.update(_when(update.display_at, zone))
    elif event.kind == EventKind.POSTMORTEM_PUBLISHED:
        body = _clean(incident.postmortem_body)
        context.update(label=_("Postmortem"), status_label="")
        context.update(_when(incident.postmortem_published_at or event.created_at, zone))
    else:  # the maintenance reminder: what the maintenance announced, and when it starts
        latest = incident.updates.first()
        body = _clean(latest.body) if latest else ""
        assert incident.scheduled_for is not None  # a maintenance has its window
        starts_in = _starts_in(incident.scheduled_for - event.created_at)
        context.update(_when(incident.scheduled_for, zone))
        if starts_in:
            context["label"] = _("Starts %(starts_in)s") % {"starts_in": starts_in}
            context["intro"] = _("This scheduled maintenance starts %(starts_in)s.") % {
                "starts_in": starts_in
            }
        else:
            context["label"] = _("Reminder")
            context["intro"] = _("A reminder of this scheduled maintenance.")
    context["body_text"] = body
    body_html = _styled(render_markdown(body), link_color)
    context["body_html"] = mark_safe(body_html)  # noqa: S308 - sanitised by nh3
    return context


def _components(incident: Incident, update: IncidentUpdate | None) -> list[dict[str, str]]:
    """What the update set each component to, or, without an update, where they stand now.

    The message is rendered once for every recipient: a public incident's leaves out its
    internal components, which only an internal incident's (told to internal subscribers
    alone) may name."""
    if update is not None:
        rows = AffectedComponent.objects.filter(update=update).select_related("component")
        if not incident.internal:
            rows = rows.filter(component__in=Component.objects.public())
        if rows:
            return [_component_row(_clean(row.component.name), row.new_status) for row in rows]
    components = incident.components.in_page_order()
    return [
        _component_row(_clean(component.name), component.status)
        for component in (components if incident.internal else components.public())
    ]


def _component_row(name: str, status: str) -> dict[str, str]:
    return {"name": name, "label": str(STATUS_LABELS[status]), "color": STATUS_COLORS[status]}


def _when(at: datetime, zone: tzinfo) -> dict[str, str]:
    return {"when": format_date(at.astimezone(zone), "datetime"), "when_iso": at.isoformat()}


def _window(incident: Incident, zone: tzinfo) -> str:
    if not (incident.is_maintenance and incident.scheduled_for and incident.scheduled_until):
        return ""
    start = incident.scheduled_for.astimezone(zone)
    end = incident.scheduled_until.astimezone(zone)
    if start.date() == end.date():
        return f"{format_date(start, 'datetime_no_zone')} – {format_date(end, 'time')}"
    return f"{format_date(start, 'datetime')} – {format_date(end, 'datetime')}"


def _starts_in(delta: timedelta) -> str:
    """ "in 1 hour", "in 45 minutes"; empty once the start has passed."""
    minutes = round(delta.total_seconds() / 60)
    if minutes < 1:
        return ""
    if minutes >= 10:
        minutes = round(minutes / 5) * 5
    hours, rest = divmod(minutes, 60)
    if not hours:
        return ngettext("in %(minutes)d minute", "in %(minutes)d minutes", minutes) % {
            "minutes": minutes
        }
    if not rest:
        return ngettext("in %(hours)d hour", "in %(hours)d hours", hours) % {"hours": hours}
    # rest is a multiple of 5 here, never 1: the plural follows the hours.
    return ngettext(
        "in %(hours)d hour %(minutes)d minutes", "in %(hours)d hours %(minutes)d minutes", hours
    ) % {"hours": hours, "minutes": rest}


def _clean(text: str) -> str:
    text = text or ""
    for placeholder in _PLACEHOLDERS:
        text = text.replace(placeholder, "")
    return text


def _one_line(text: str) -> str:
    # Names written before they were validated may still hold a line break or a control
    # character: a header gets a space instead, so the mail library never refuses it.
    return one_line(text)


def _tidy_text(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _luminance(color: str) -> float:
    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


# Mail clients drop <style> blocks: sanitised Markdown gets its styles inline. nh3 writes
# every tag in one canonical form, so plain replacements find them all.
_MARKDOWN_STYLES = {
    "<p>": '<p style="margin:0 0 12px;">',
    "<ul>": '<ul style="margin:0 0 12px;padding-left:22px;">',
    "<ol>": '<ol style="margin:0 0 12px;padding-left:22px;">',
    "<blockquote>": '<blockquote style="margin:0 0 12px;padding-left:12px;'
    'border-left:3px solid #d0d7de;color:#57606a;">',
    "<pre>": '<pre style="margin:0 0 12px;padding:10px;background-color:#f6f8fa;'
    'white-space:pre-wrap;font-size:13px;">',
    "<code>": '<code style="font-family:Menlo,Consolas,monospace;font-size:13px;">',
    "<table>": '<table style="border-collapse:collapse;margin:0 0 12px;">',
    "<th>": '<th style="border:1px solid #d0d7de;padding:4px 8px;text-align:left;">',
    "<td>": '<td style="border:1px solid #d0d7de;padding:4px 8px;">',
}


def _styled(html: str, link_color: str | None) -> str:
    for tag, styled in _MARKDOWN_STYLES.items():
        html = html.replace(tag, styled)
    if link_color:
        html = html.replace("<a ", f'<a style="color:{link_color};" ')
    return html


# Sending


class EmailSender:
    """Sends one event to a batch of subscribers over one connection to the mail server.

    With Django's SMTP backend the messages go through its smtplib connection one at a time,
    so each recipient's refusal is its own; any other backend (files in development, memory
    in tests) gets Django's messages.
    """

    def __init__(self, event: NotificationEvent):
        if not event.subject:
            event.subject, event.text_body, event.html_body = email_content(event)
        page = PageSettings.load()
        self.event = event
        self._from_address = sanitize_address(parseaddr(settings.DEFAULT_FROM_EMAIL)[1], "utf-8")
        self._from = sanitize_address((_one_line(page.name), self._from_address), "utf-8")
        domain = _domain(self._from_address, page)
        self._message_id = f"<beacon.event-{event.pk}.{{}}@{domain}>"
        self._list_id = list_id(page, self._from_address)
        self._manage = links.manage_url_around_token()
        self._unsubscribe = links.unsubscribe_url_around_token()
        # The event keeps its words in the page's language; other languages are rendered
        # once per batch, at the first subscriber who reads them.
        self._default_language = page.default_language
        self._versions: dict[str, _LanguageVersion] = {
            page.default_language: self._version(event.subject, event.text_body, event.html_body)
        }
        self._connection: BaseEmailBackend | None = None
        self._smtp: smtplib.SMTP | None = None

    def _version(self, subject: str, text: str, html: str) -> "_LanguageVersion":
        head, parts = self._mime_frame(subject)
        return _LanguageVersion(
            subject=subject,
            text_body=text,
            html_body=html,
            text=_QuotedPrintableBody(text, html=False),
            html=_QuotedPrintableBody(html, html=True),
            head=head,
            parts=parts,
        )

    def _in_language(self, language: str) -> "_LanguageVersion":
        language = language or self._default_language
        version = self._versions.get(language)
        if version is None:
            version = self._version(*email_content(self.event, language=language))
            self._versions[language] = version
        return version

    def __enter__(self) -> "EmailSender":
        connection = get_connection(fail_silently=False)
        try:
            connection.open()
            if isinstance(connection, SMTPBackend):
                smtp = connection.connection
                assert smtp is not None  # open() connected it
                smtp.ehlo_or_helo_if_needed()
                self._smtp = smtp
        except OSError as error:  # smtplib's errors included
            with contextlib.suppress(OSError):
                connection.close()
            raise ConnectionLost(f"Cannot reach the mail server: {error}") from error
        self._connection = connection
        return self

    def __exit__(self, *exc: object) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        self._connection = self._smtp = None

    def send(self, delivery: Delivery) -> Outcome:
        subscriber = delivery.subscriber
        try:
            to = _address(subscriber.email)
        except ValueError:
            return Outcome(False, f"Invalid address {subscriber.email!r}", permanent=True)
        token = links.manage_token(subscriber)
        manage = self._manage[0] + token + self._manage[1]
        unsubscribe = self._unsubscribe[0] + token + self._unsubscribe[1]
        message_id = self._message_id.format(subscriber.public_id)
        version = self._in_language(subscriber.language)
        if self._smtp is None:
            return self._send_with_backend(version, to, message_id, manage, unsubscribe)
        message = self.message_bytes(to, message_id, manage, unsubscribe, subscriber.language)
        try:
            self._smtp.sendmail(self._from_address, [to], message)
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = next(iter(error.recipients.values()))
            return _refused(code, reply)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPHeloError) as error:
            # Our side of the conversation, not the subscriber's address.
            raise ConnectionLost(_reply_text(error.smtp_code, error.smtp_error)) from error
        except smtplib.SMTPResponseException as error:  # SMTPDataError among them
            return _refused(error.smtp_code, error.smtp_error)
        except OSError as error:  # disconnected, reset, timed out; SMTPException is one too
            raise ConnectionLost(f"Mail server connection lost: {error!r}") from error
        return SENT

    def message_bytes(
        self, to: str, message_id: str, manage: str, unsubscribe: str, language: str = ""
    ) -> bytes:
        """The whole message as it goes over the wire (CRLF line ends, 7-bit), in
        `language` (by default the page's)."""
        version = self._in_language(language)
        return b"".join(
            (
                b"To: ",
                to.encode(),
                b"\r\nMessage-ID: ",
                message_id.encode(),
                b"\r\nList-Unsubscribe: <",
                unsubscribe.encode(),
                b">\r\n",
                version.head,
                version.parts[0],
                version.text.head,
                version.text.tail(manage, unsubscribe),
                version.parts[1],
                version.html.head,
                version.html.tail(manage, unsubscribe),
                version.parts[2],
            )
        )

    def _mime_frame(self, subject: str) -> tuple[bytes, tuple[bytes, bytes, bytes]]:
        """Everything that is the same in every message of the batch in one language,
        encoded once."""
        headers = EmailMessage(policy=policy.SMTP)
        headers["From"] = self._from
        headers["Subject"] = _one_line(subject)
        headers["Date"] = format_datetime(timezone.now())
        headers["List-Id"] = self._list_id
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        headers["Auto-Submitted"] = "auto-generated"
        headers["MIME-Version"] = "1.0"
        # "==" never occurs in quoted-printable text, so no body line can match it.
        boundary = f"==beacon-{secrets.token_hex(12)}=="
        head = b"".join(policy.SMTP.fold_binary(name, value) for name, value in headers.items())
        head += f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
        part = "--{}\r\nContent-Type: text/{}; charset=utf-8\r\n"
        part += "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        return head, (
            part.format(boundary, "plain").encode(),
            f"\r\n{part.format(boundary, 'html')}".encode(),
            f"\r\n--{boundary}--\r\n".encode(),
        )

    def _send_with_backend(
        self, version: "_LanguageVersion", to: str, message_id: str, manage: str, unsubscribe: str
    ) -> Outcome:
        message = EmailMultiAlternatives(
            subject=_one_line(version.subject),
            body=personalise(version.text_body, manage=manage, unsubscribe=unsubscribe, html=False),
            from_email=self._from,
            to=[to],
            headers={
                "Message-ID": message_id,
                "List-Id": self._list_id,
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Auto-Submitted": "auto-generated",
            },
        )
        message.attach_alternative(
            personalise(version.html_body, manage=manage, unsubscribe=unsubscribe, html=True),
            "text/html",
        )
        assert self._connection is not None  # opened by __enter__
        try:
            sent = self._connection.send_messages([message])
        except OSError as error:
            raise ConnectionLost(f"Mail backend failed: {error!r}") from error
        return SENT if sent else Outcome(False, "The mail backend sent nothing.")


@dataclass(frozen=True)
class _LanguageVersion:
    """An event's message in one language: its words and their encoded parts."""

    subject: str
    text_body: str
    html_body: str
    text: "_QuotedPrintableBody"
    html: "_QuotedPrintableBody"
    head: bytes
    parts: tuple[bytes, bytes, bytes]


def _refused(code: int, reply: bytes | str) -> Outcome:
    """A reply about this one message: 5xx is final, 4xx is worth another try."""
    text = _reply_text(code, reply)
    if code == 421 or not 400 <= code < 600:  # the server is closing the connection
        raise ConnectionLost(text)
    return Outcome(False, text, permanent=code >= 500)


def _reply_text(code: int, reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode(errors="replace")
    return f"{code} {reply}"


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


def _address(address: str) -> str:
    """The address as it may appear in a header and the envelope; ValueError if it cannot."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return sanitize_address(address, "utf-8")  # an internationalised domain: punycode


def _domain(from_address: str, page: PageSettings) -> str:
    """Message-ID's right-hand side: the sender's domain, or the page's when that is local."""
    domain = from_address.rpartition("@")[2]
    host = urlsplit(without_control_characters(page.url, lines=False)).hostname
    if host and "." not in domain:
        domain = punycode(host)
    return domain or "localhost"


def list_id(page: PageSettings, from_address: str) -> str:
    """RFC 2919's List-Id, the same on every email a page sends: `Name <page-slug.host>`.

    The host is the page URL's (the sender's domain when the URL has none or is an IPv6
    address), so two pages on one mail domain are two lists that filters tell apart.
    """
    label = slugify(_one_line(page.name))[:63].strip("-_") or "status"
    host = urlsplit(links.page_base_url()).hostname or ""
    if not host or ":" in host:
        host = from_address.rpartition("@")[2] or "localhost"
    return f"{_list_id_phrase(page.name)} <{label}.{punycode(host)}>".strip()


def _list_id_phrase(name: str) -> str:
    """RFC 2919's description: an atom, a quoted string, or nothing."""
    name = _one_line(name)
    if not name.isascii():
        return ""
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _QuotedPrintableBody:
    """A body in quoted-printable, of which only the lines from the first subscriber link on
    are encoded per message. Quoted-printable encodes each line on its own, so the head
    encoded once and the tail encoded each time join into the bytes of the whole."""

    def __init__(self, body: str, *, html: bool):
        body = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
        if not body.endswith("\r\n"):
            body += "\r\n"  # so every line, the last one too, ends the way the others do
        found = [at for placeholder in _PLACEHOLDERS if (at := body.find(placeholder)) >= 0]
        line_end = body.rfind("\r\n", 0, min(found, default=len(body)))
        cut = line_end + 2 if line_end >= 0 else 0
        self.head = _quoted_printable(body[:cut])
        self._tail = body[cut:]
        self._html = html

    def tail(self, manage: str, unsubscribe: str) -> bytes:
        text = personalise(self._tail, manage=manage, unsubscribe=unsubscribe, html=self._html)
        return _quoted_printable(text)


def _quoted_printable(text: str) -> bytes:
    """RFC 2045: lines of at most 76 characters, soft breaks as CRLF like the text's own."""
    return binascii.b2a_qp(text.encode(), istext=True)


# Subscribing


class MailRefused(Exception):
    """The mail server refused this message for good (a 5xx about the recipient or the
    message): sending it again would be refused again."""


def _subscription_headers(which: str, subscriber: Subscriber, page: PageSettings) -> dict[str, str]:
    """RFC 3834 (no vacation replies) and RFC 2919 (the page's list) on every one; the
    one-click unsubscribe headers on "already subscribed", whose reader is subscribed."""
    headers = {
        "Auto-Submitted": "auto-generated",
        "List-Id": list_id(page, parseaddr(settings.DEFAULT_FROM_EMAIL)[1]),
    }
    if which == "already_subscribed":
        headers["List-Unsubscribe"] = f"<{links.unsubscribe_url(subscriber)}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def subscription_email_send(*, which: str, subscriber: Subscriber) -> None:
    """The double opt-in's confirmation link, or "you are already subscribed".

    MailRefused when the server refuses it for good; any other error is worth another try.
    """
    if which not in SUBSCRIPTION_EMAILS:
        raise ValueError(f"Unknown subscription email {which!r}.")
    page = PageSettings.load()
    # In the language they subscribed in, dates included.
    with translation.override(subscriber.language or page.default_language):
        _subscription_email_send(which, subscriber, page)


def _subscription_email_send(which: str, subscriber: Subscriber, page: PageSettings) -> None:
    title, template = SUBSCRIPTION_EMAILS[which]
    if subscriber.all_components:
        components = []
    else:
        components = [_clean(c.name) for c in subscriber.components.in_page_order()]
    context = {
        **_page_context(page),
        "title": title,
        "address": _clean(
            subscriber.email if subscriber.channel == Channel.EMAIL else subscriber.endpoint
        ),
        "components": components,
        "confirm_url": links.confirm_url(subscriber) if which == "confirm" else "",
        "manage_url": links.manage_url(subscriber),
        "hours": settings.BEACON_SUBSCRIBE_CONFIRM_HOURS,
    }
    subject = _one_line(f"[{page.name}] {title}")
    context["subject"] = subject
    message = EmailMultiAlternatives(
        subject=subject,
        body=_tidy_text(render_to_string(f"{template}.txt", context)),
        from_email=sanitize_address(
            (_one_line(page.name), parseaddr(settings.DEFAULT_FROM_EMAIL)[1]), "utf-8"
        ),
        to=[subscriber.email],
        headers=_subscription_headers(which, subscriber, page),
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(500 <= code < 600 for code in codes):
            code, reply = next(iter(error.recipients.values()))
            raise MailRefused(_reply_text(code, reply)) from error
        raise
    except (smtplib.SMTPSenderRefused, smtplib.SMTPHeloError, smtplib.SMTPAuthenticationError):
        raise  # our side of the conversation, as in EmailSender.send: worth another try
    except smtplib.SMTPResponseException as error:  # SMTPDataError among them
        if 500 <= error.smtp_code < 600:
            raise MailRefused(_reply_text(error.smtp_code, error.smtp_error)) from error
        raise
