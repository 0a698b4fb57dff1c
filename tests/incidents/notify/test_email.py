"""Email: what a subscriber finds in their inbox, sent through a real SMTP server."""

import contextlib
import re
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.urls import resolve

from components.models import ComponentStatus
from components.services import component_set_status
from incidents import services
from incidents.models import IncidentStatus
from incidents.notify import delivery
from incidents.notify.channels import base
from incidents.notify.channels.email import (
    EmailSender,
    email_content,
    list_id,
    personalise,
    subscription_email_send,
)
from incidents.notify.events import maintenance_reminders_due
from incidents.notify.links import manage_url, unsubscribe_url
from incidents.notify.models import Delivery, DeliveryState, EventKind, NotificationEvent
from incidents.notify.subscriptions import subscriber_by_confirm_token
from statuspage.models import PageSettings
from tests.components.factories import ComponentFactory
from tests.incidents.factories import SubscriberFactory, open_incident, schedule_maintenance
from tests.incidents.notify.conftest import CapturingHandler, serving_smtp

pytestmark = pytest.mark.django_db


@dataclass
class RecordingHandler(CapturingHandler):
    """Also keeps each message's bytes as they came over the wire, and its connection."""

    raw: list = field(default_factory=list)
    peers: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        self.raw.append(envelope.original_content)
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_server(settings):
    with serving_smtp(RecordingHandler(), settings) as handler:
        yield handler


def deliver_all(event):
    for batch in delivery.event_expand(event_id=event.pk):
        delivery.batch_send(batch=batch)


def announce(**kwargs):
    incident = open_incident(**kwargs)
    return incident, NotificationEvent.objects.get(update__incident=incident)


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def html_of(message) -> str:
    return message.get_body(("html",)).get_content().replace("\r\n", "\n")


def send_directly(event, subscriber):
    """One delivery through the sender, outside the ledger's claims: its Outcome."""
    row, _ = Delivery.objects.get_or_create(event=event, subscriber=subscriber, channel="email")
    row = Delivery.objects.select_related("subscriber").get(pk=row.pk)
    with EmailSender(event) as sender:
        return sender.send(row)


# The words


def test_the_subject_names_the_page_the_incident_and_the_status_with_an_en_dash(page, smtp_server):
    reader = SubscriberFactory()
    incident = open_incident(name="Database delays")
    update = services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED)

    deliver_all(NotificationEvent.objects.get(update=update))

    [message] = smtp_server.to(reader.email)
    assert message["Subject"] == "[Acme] Database delays – Identified"


def test_a_maintenance_reminder_says_when_the_maintenance_starts(page):
    schedule_maintenance(name="Database upgrade", starts_in=timedelta(minutes=60))
    assert maintenance_reminders_due() == 1
    event = NotificationEvent.objects.get(kind=EventKind.MAINTENANCE_REMINDER)

    subject, text, html = email_content(event)

    assert subject == "[Acme] Database upgrade – Starts in 1 hour"
    assert "This scheduled maintenance starts in 1 hour." in text
    assert "Scheduled: " in text
    assert "We will upgrade the primary database." in text
    assert "Starts in 1 hour" in html


def test_a_postmortem_email_carries_the_postmortem(page):
    incident, _ = announce(name="Database delays")
    services.incident_resolve(incident=incident)
    services.postmortem_publish(incident=incident, body="A disk **filled up**.")
    event = NotificationEvent.objects.get(kind=EventKind.POSTMORTEM_PUBLISHED)

    subject, text, html = email_content(event)

    assert subject == "[Acme] Database delays – Postmortem"
    assert "A disk **filled up**." in text
    assert "A disk <strong>filled up</strong>." in html


def test_a_component_change_for_webhooks_has_a_subject_too(page):
    SubscriberFactory(webhook=True)
    api = ComponentFactory(name="API")
    component_set_status(component=api, status=ComponentStatus.MAJOR_OUTAGE)
    event = NotificationEvent.objects.get(kind=EventKind.COMPONENT_UPDATE)

    subject, text, _ = email_content(event)

    assert subject == "[Acme] API – Major outage"
    assert "API changed from Operational to Major outage." in text


def test_each_message_has_a_plain_text_and_an_html_part(page, smtp_server):
    reader = SubscriberFactory()
    _, event = announce(body="We are looking into it.")

    deliver_all(event)

    [message] = smtp_server.to(reader.email)
    assert message.get_content_type() == "multipart/alternative"
    assert "We are looking into it." in text_of(message)
    assert '<p style="margin:0 0 12px;">We are looking into it.</p>' in html_of(message)
    incident_url = f"https://status.acme.test{event.incident.get_absolute_url()}"
    assert incident_url in text_of(message)
    assert f'href="{incident_url}"' in html_of(message)


def test_affected_components_are_listed_with_their_new_statuses(page, smtp_server):
    reader = SubscriberFactory()
    api, db = ComponentFactory(name="API"), ComponentFactory(name="Database")
    _, event = announce(
        component_statuses={
            api: ComponentStatus.MAJOR_OUTAGE,
            db: ComponentStatus.DEGRADED_PERFORMANCE,
        }
    )

    deliver_all(event)

    [message] = smtp_server.to(reader.email)
    assert "- API: Major outage\n- Database: Degraded performance" in text_of(message)
    html = html_of(message)
    assert ">API</td>" in html and ">Major outage</td>" in html
    assert ">Database</td>" in html and ">Degraded performance</td>" in html


def test_an_update_that_changes_no_component_shows_where_they_stand(page):
    api = ComponentFactory(name="API")
    incident = open_incident(component_statuses={api: ComponentStatus.PARTIAL_OUTAGE})
    update = services.incident_post_update(
        incident=incident, status=IncidentStatus.MONITORING, body="A fix is out."
    )

    _, text, _ = email_content(NotificationEvent.objects.get(update=update))

    assert "- API: Partial outage" in text


def test_staff_markup_is_sanitised_and_names_are_escaped_in_html(page, smtp_server):
    reader = SubscriberFactory()
    _, event = announce(
        name="Errors <b>now</b>",
        body="Fix **deployed**.\n\n<script>alert('x')</script>\n\n<img src=x onerror=alert(1)>",
    )

    deliver_all(event)

    [message] = smtp_server.to(reader.email)
    html = html_of(message)
    assert "<script" not in html and "onerror" not in html and "<img" not in html
    assert "Errors &lt;b&gt;now&lt;/b&gt;" in html
    assert "Fix <strong>deployed</strong>." in html
    assert "Fix **deployed**." in text_of(message)  # the plain part carries the Markdown


def test_the_page_brand_colour_styles_the_email_and_nothing_is_fetched_from_afar(page):
    page.brand_color = "#ff6600"
    page.save()
    _, event = announce()

    _, _, html = email_content(event)

    assert "border-top:4px solid #ff6600" in html
    assert "background-color:#ff6600" in html
    assert "<img" not in html and "url(" not in html and "<link" not in html


def test_a_brand_colour_that_is_not_a_colour_cannot_reach_the_css(page):
    page.brand_color = "red;x:1"  # the column holds seven characters; the form checks them
    page.save()
    _, event = announce()

    _, _, html = email_content(event)

    assert "red;x:1" not in html
    assert "#2563eb" in html


def test_non_ascii_subjects_names_and_bodies_arrive_intact(page, smtp_server):
    page.name = "Société Générale"
    page.save()
    reader = SubscriberFactory()
    _, event = announce(name="Base de données lente 🚧", body="Les requêtes échouent. " * 20)

    deliver_all(event)

    [message] = smtp_server.to(reader.email)
    assert message["Subject"] == "[Société Générale] Base de données lente 🚧 – Investigating"
    assert message["From"].addresses[0].display_name == "Société Générale"
    assert ("Les requêtes échouent. " * 20).strip() in text_of(message)
    [raw] = smtp_server.raw
    raw.decode("ascii")  # 7-bit on the wire
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76


# The headers


def test_the_unsubscribe_headers_follow_rfc_8058(page, smtp_server):
    reader = SubscriberFactory()
    _, event = announce()

    deliver_all(event)

    [message] = smtp_server.to(reader.email)
    assert message["List-Unsubscribe"] == f"<{unsubscribe_url(reader)}>"
    assert message["List-Unsubscribe"].startswith(
        "<https://status.acme.test/subscriptions/unsubscribe/"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Acme <acme.status.acme.test>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["From"] == "Acme <status@localhost>"


def test_a_message_sent_again_has_the_same_message_id(page, smtp_server, settings):
    settings.DEFAULT_FROM_EMAIL = "status@acme.test"
    reader, other = SubscriberFactory(), SubscriberFactory()
    _, event = announce()
    delivery.event_expand(event_id=event.pk)
    event.refresh_from_db()

    for _ in range(2):
        assert send_directly(event, reader) == base.SENT
    send_directly(event, other)

    first, again = smtp_server.to(reader.email)
    expected = f"<beacon.event-{event.pk}.{reader.public_id}@acme.test>"
    assert first["Message-ID"] == again["Message-ID"] == expected
    [theirs] = smtp_server.to(other.email)
    assert theirs["Message-ID"] == f"<beacon.event-{event.pk}.{other.public_id}@acme.test>"


# Each subscriber's links


def test_each_subscriber_gets_their_own_manage_and_unsubscribe_links(page, smtp_server):
    readers = SubscriberFactory.create_batch(2)
    _, event = announce()

    deliver_all(event)

    event.refresh_from_db()
    for reader in readers:
        [message] = smtp_server.to(reader.email)
        text, html = text_of(message), html_of(message)
        links = {"manage": manage_url(reader), "unsubscribe": unsubscribe_url(reader)}
        assert text == personalise(event.text_body, **links, html=False)
        assert html == personalise(event.html_body, **links, html=True)
        assert f"Manage your subscription: {manage_url(reader)}\n" in text
        assert f"Unsubscribe: {unsubscribe_url(reader)}\n" in text
        assert f'<a href="{manage_url(reader)}"' in html
        assert f'<a href="{unsubscribe_url(reader)}"' in html
    assert not any(b"beacon:" in raw for raw in smtp_server.raw)


def test_placeholders_written_by_staff_are_not_filled_in(page, smtp_server):
    reader = SubscriberFactory()
    _, event = announce(
        name="Outage <beacon:manage-url>", body="See <beacon:unsubscribe-url> and {{ x }}."
    )

    deliver_all(event)

    [message] = smtp_server.to(reader.email)
    for body in (text_of(message), html_of(message)):
        assert body.count(manage_url(reader)) == 1  # the footer's own
        assert body.count(unsubscribe_url(reader)) == 1
    assert "{{ x }}" in text_of(message)


# Refusals and lost connections


def test_a_mailbox_that_does_not_exist_is_a_permanent_failure(page, smtp_server):
    reader = SubscriberFactory(email="gone@example.test")
    smtp_server.refuse[reader.email] = "550 5.1.1 No such user"
    _, event = announce()
    event_render(event)

    outcome = send_directly(event, reader)

    assert outcome == base.Outcome(False, "550 5.1.1 No such user", permanent=True)


def test_a_temporary_refusal_is_worth_another_try(page, smtp_server):
    reader = SubscriberFactory(email="busy@example.test")
    smtp_server.refuse[reader.email] = "451 4.3.2 Try again later"
    _, event = announce()
    event_render(event)

    outcome = send_directly(event, reader)

    assert outcome == base.Outcome(False, "451 4.3.2 Try again later", permanent=False)


def test_a_refusal_does_not_stop_the_rest_of_the_batch(page, smtp_server):
    refused = SubscriberFactory(email="gone@example.test")
    others = SubscriberFactory.create_batch(3)
    smtp_server.refuse[refused.email] = "550 5.1.1 No such user"
    _, event = announce()

    deliver_all(event)

    assert sorted(m["To"] for m in smtp_server.messages) == sorted(o.email for o in others)
    assert Delivery.objects.get(subscriber=refused).state == DeliveryState.FAILED


def test_a_mail_server_that_is_down_loses_the_connection(page, settings):
    _, event = announce()
    event_render(event)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", unused_port()

    with pytest.raises(base.ConnectionLost), EmailSender(event):
        pass


def test_a_server_that_hangs_up_mid_batch_loses_the_connection(page, settings):
    reader = SubscriberFactory()
    _, event = announce()
    event_render(event)
    with hanging_up_smtp_server() as port:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        row = Delivery.objects.create(event=event, subscriber=reader, channel="email")
        with pytest.raises(base.ConnectionLost), EmailSender(event) as sender:
            sender.send(row)


def test_a_server_closing_the_connection_with_421_leaves_the_batch_for_later(page, smtp_server):
    first, second = SubscriberFactory(), SubscriberFactory()
    smtp_server.refuse[first.email] = "421 4.3.0 Shutting down"
    _, event = announce()

    deliver_all(event)

    assert smtp_server.messages == []
    rows = Delivery.objects.filter(subscriber__in=[first, second])
    assert set(rows.values_list("state", flat=True)) == {DeliveryState.QUEUED}
    first.refresh_from_db()
    assert first.state == "active" and first.failing_since is None  # not the address's fault


def test_one_connection_carries_the_whole_batch(page, smtp_server, settings):
    settings.BEACON_NOTIFY_EMAIL_BATCH_SIZE = 500
    SubscriberFactory.create_batch(5)
    _, event = announce()

    deliver_all(event)

    assert len(smtp_server.messages) == 5
    assert len(set(smtp_server.peers)) == 1


def test_other_mail_backends_get_the_same_message(page, mailoutbox):
    reader = SubscriberFactory()
    _, event = announce(name="Database delays")

    deliver_all(event)

    [message] = mailoutbox
    assert message.to == [reader.email]
    assert message.subject == "[Acme] Database delays – Investigating"
    assert message.extra_headers["List-Unsubscribe"] == f"<{unsubscribe_url(reader)}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Manage your subscription: {manage_url(reader)}" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and f'href="{unsubscribe_url(reader)}"' in html
    assert Delivery.objects.get(subscriber=reader).state == DeliveryState.SENT


# Subscribing


def test_the_confirmation_email_links_to_confirming_this_subscriber(page, smtp_server):
    reader = SubscriberFactory(email="new@example.test", unconfirmed=True)

    subscription_email_send(which="confirm", subscriber=reader)

    [message] = smtp_server.to("new@example.test")
    assert message["Subject"] == "[Acme] Confirm your subscription"
    text = text_of(message)
    [link] = re.findall(r"https://status\.acme\.test/subscriptions/confirm/\S+", text)
    assert f'href="{link}"' in html_of(message)
    token = resolve(urlsplit(link).path).kwargs["token"]
    assert subscriber_by_confirm_token(token) == reader
    assert "The link works for 48 hours." in text
    assert "nothing will be sent to you unless you confirm" in text


def test_the_already_subscribed_email_links_to_the_preferences(page, smtp_server):
    api = ComponentFactory(name="API")
    reader = SubscriberFactory(email="known@example.test", components=[api])

    subscription_email_send(which="already_subscribed", subscriber=reader)

    [message] = smtp_server.to("known@example.test")
    assert message["Subject"] == "[Acme] You are already subscribed"
    assert f"{manage_url(reader)}\n" in text_of(message)
    assert "about API." in text_of(message)
    assert f'href="{manage_url(reader)}"' in html_of(message)


@pytest.mark.parametrize("which", ["confirm", "already_subscribed"])
def test_subscription_emails_carry_list_id_and_auto_submitted(page, smtp_server, which):
    reader = SubscriberFactory(email="reader@example.test", unconfirmed=which == "confirm")

    subscription_email_send(which=which, subscriber=reader)

    [message] = smtp_server.to("reader@example.test")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Id"] == "Acme <acme.status.acme.test>"
    assert message["Message-ID"]
    if which == "already_subscribed":
        # Folded after the colon when long: the value is the same.
        assert message["List-Unsubscribe"].strip() == f"<{unsubscribe_url(reader)}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    else:  # nothing to leave yet: ignoring the email is how not to subscribe
        assert message["List-Unsubscribe"] is None


@pytest.mark.parametrize(
    ("name", "url", "expected"),
    [
        ("Acme Cloud", "https://status.acme.test", "Acme Cloud <acme-cloud.status.acme.test>"),
        (
            "Ünïcode Störung",
            "https://státus.example.test/",
            "<unicode-storung.xn--sttus-yqa.example.test>",
        ),
        ("日本", "https://status.acme.test", "<status.status.acme.test>"),
        ('Say "hi"', "https://status.acme.test", '"Say \\"hi\\"" <say-hi.status.acme.test>'),
        ("Acme", "http://[::1]:8000", "Acme <acme.acme.test>"),
        ("Acme\r\nBcc: x@evil.test", "https://status.acme.test", '"Acme Bcc: x@evil.test" <acme'),
    ],
)
def test_the_list_id_is_the_page_slug_at_the_page_host(page, name, url, expected):
    page.name, page.url = name, url
    page.save()

    value = list_id(PageSettings.load(), "status@acme.test")

    assert "\r" not in value and "\n" not in value
    assert value.startswith(expected)


def test_an_unknown_subscription_email_is_refused(page):
    with pytest.raises(ValueError):
        subscription_email_send(which="welcome", subscriber=SubscriberFactory())


# Helpers


def event_render(event):
    """The words, as expansion stores them, without writing ledger rows."""
    event.subject, event.text_body, event.html_body = email_content(event)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _HangUpHandler(socketserver.StreamRequestHandler):
    """Greets, answers EHLO, and hangs up when the first message begins."""

    def handle(self):
        self.wfile.write(b"220 flaky.test ESMTP\r\n")
        self.rfile.readline()
        self.wfile.write(b"250 flaky.test\r\n")
        self.rfile.readline()


@contextlib.contextmanager
def hanging_up_smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HangUpHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
