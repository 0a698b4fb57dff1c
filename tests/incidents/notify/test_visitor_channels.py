"""Visitors' own channels: which URLs are taken, the address guard at subscribe time and at
send time, exactly one message per update, deleted chat webhooks, and hostile text.

The resolver is faked at the one true edge, the DNS lookup (`socket.getaddrinfo`, which
asyncio's resolver calls too); everything else is real: PostgreSQL, the ledger, and a local
HTTP receiver (pytest-httpserver).
"""

import ipaddress
import re
import socket

import pytest

from components.models import ComponentStatus
from incidents import services, tasks
from incidents.models import IncidentStatus
from incidents.notify import delivery
from incidents.notify.models import (
    Delivery,
    DeliveryState,
    EventKind,
    NotificationEvent,
    SubscriberState,
)
from incidents.notify.visitor_channels import visitor_endpoint_problem
from statuspage.lib import network
from tests.components.factories import ComponentFactory
from tests.incidents.factories import SubscriberFactory, open_incident

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.215.14"
NUMERIC = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)


@pytest.fixture
def dns(monkeypatch):
    """Names answered as the test says; IP addresses, in any form the C library reads, as
    it reads them; any other name does not resolve. An answer may be a list of addresses or
    a list of such lists, used one lookup after another."""
    answers: dict[str, list] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            addresses = answers[host]
            if addresses and isinstance(addresses[0], list):
                addresses = addresses.pop(0) if len(addresses) > 1 else addresses[0]
            return [info for a in addresses for info in real(a, port, *args, **kwargs)]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not NUMERIC.fullmatch(host):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(network.socket, "getaddrinfo", getaddrinfo)
    return answers


def deliver_all(event):
    for batch in delivery.event_expand(event_id=event.pk):
        delivery.batch_send(batch=batch)


def events():
    return list(NotificationEvent.objects.order_by("id"))


# Which URLs each channel takes


@pytest.mark.parametrize(
    ("webhook_format", "url"),
    [
        ("slack", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("slack", "https://hooks.slack.com/triggers/T000/123/abc"),
        ("discord", "https://discord.com/api/webhooks/123/token"),
        ("discord", "https://discordapp.com/api/webhooks/123/token"),
        ("teams", "https://prod-01.westus.logic.azure.com/workflows/1/triggers/manual/run"),
        ("teams", "https://default1.environment.api.powerplatform.com/powerautomate/x"),
        ("teams", "https://acme.webhook.office.com/webhookb2/1/IncomingWebhook/2/3"),
        ("statuspage", "https://example.com/status-hook"),
        ("statuspage", "http://example.com:8080/status-hook"),
    ],
)
def test_it_takes_each_services_own_webhook_urls(dns, webhook_format, url):
    for name in ["hooks.slack.com", "discord.com", "discordapp.com", "example.com"]:
        dns[name] = [PUBLIC]
    for name in re.findall(r"//([^/:]+)", url):
        dns.setdefault(name, [PUBLIC])

    assert visitor_endpoint_problem(url, webhook_format=webhook_format) is None


@pytest.mark.parametrize(
    ("webhook_format", "url", "says"),
    [
        ("slack", "http://hooks.slack.com/services/T/B/X", "service's own webhook URL"),
        ("slack", "https://hooks.slack.com.evil.test/services/T/B/X", "service's own"),
        ("slack", "https://evil.test/services/T/B/X", "service's own"),
        ("slack", "https://slack.com/services/T/B/X", "service's own"),
        ("slack", "https://hooks.slack.com/api/other", "service's own"),
        ("slack", "https://evil.test#@hooks.slack.com/services/T/B/X", "service's own"),
        ("discord", "https://discord.com/channels/1/2", "service's own"),
        ("discord", "https://discord.com.evil.test/api/webhooks/1/x", "service's own"),
        ("discord", "http://discord.com/api/webhooks/1/x", "service's own"),
        ("teams", "https://logic.azure.com.evil.test/workflows/1", "service's own"),
        ("teams", "https://evillogic.azure.com.test/workflows/1", "service's own"),
        ("teams", "http://prod-01.westus.logic.azure.com/workflows/1", "service's own"),
        ("slack", "https://user:pw@hooks.slack.com/services/T/B/X", "user name and password"),
        ("statuspage", "https://token@example.com/hook", "user name and password"),
        ("statuspage", "ftp://example.com/hook", "http:// or https://"),
        ("statuspage", "javascript:alert(1)", "http:// or https://"),
        ("statuspage", "", "Enter the webhook URL"),
        ("statuspage", "https://example.com/" + "a" * 2000, "at most 2000 characters"),
        ("statuspage", "https://exa mple.com/hook", "no spaces or control characters"),
        ("statuspage", "https://example.com/\nhook", "no spaces or control characters"),
    ],
)
def test_it_refuses_urls_that_are_not_the_services_own(dns, webhook_format, url, says):
    dns["example.com"] = dns["hooks.slack.com"] = dns["discord.com"] = [PUBLIC]

    problem = visitor_endpoint_problem(url, webhook_format=webhook_format)

    assert problem is not None and says in problem


# The address guard at subscribe time

FORBIDDEN_TARGETS = [
    "http://127.0.0.1/hook",
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://169.254.1.1/hook",  # link-local
    "http://169.254.169.254/latest/meta-data/",  # metadata
    "http://[fd00:ec2::254]/latest/meta-data/",  # metadata over IPv6
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://224.0.0.1/hook",  # multicast
    "http://[ff02::1]/hook",  # multicast
    "http://240.0.0.1/hook",  # reserved
    "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "http://[::ffff:169.254.169.254]/hook",
    "http://[fe80::1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/hook",  # … in hex
    "http://0177.0.0.1/hook",  # … in octal
    "http://127.1/hook",  # … shortened
    "http://0xa9.0xfe.0xa9.0xfe/hook",  # metadata in hex
]


@pytest.mark.parametrize("url", FORBIDDEN_TARGETS)
def test_a_private_loopback_or_metadata_target_is_refused_at_subscribe_time(dns, url):
    problem = visitor_endpoint_problem(url, webhook_format="statuspage")

    assert problem is not None and problem.startswith("This URL cannot be used")


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["10.1.2.3"],
        ["169.254.169.254"],
        ["fd00:ec2::254"],
        ["::ffff:10.0.0.1"],
        ["100.64.1.1"],
        [PUBLIC, "192.168.0.10"],  # one bad address among good ones is enough
    ],
)
def test_a_name_resolving_to_a_forbidden_address_is_refused_at_subscribe_time(dns, addresses):
    dns["hooks.customer.test"] = addresses

    problem = visitor_endpoint_problem(
        "https://hooks.customer.test/beacon", webhook_format="statuspage"
    )

    assert problem is not None and "hooks.customer.test" in problem


def test_metadata_is_refused_even_where_private_targets_are_allowed(dns, settings):
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    dns["hooks.customer.test"] = ["169.254.169.254"]

    assert visitor_endpoint_problem("http://hooks.customer.test/", webhook_format="statuspage")
    assert visitor_endpoint_problem("http://[fd00:ec2::254]/", webhook_format="statuspage")


# The address guard at send time: a name may point elsewhere by then (DNS rebinding)


@pytest.mark.parametrize(
    "at_send_time",
    [["127.0.0.1"], ["169.254.169.254"], ["::ffff:127.0.0.1"], [PUBLIC, "127.0.0.1"]],
)
@pytest.mark.parametrize("webhook_format", ["statuspage", "slack"])
def test_a_name_public_at_subscribe_time_and_private_at_send_time_is_not_posted_to(
    page, dns, httpserver, at_send_time, webhook_format
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    url = f"http://rebind.customer.test:{httpserver.port}/hook"
    dns["rebind.customer.test"] = [PUBLIC]
    assert visitor_endpoint_problem(url, webhook_format="statuspage") is None
    SubscriberFactory(webhook=True, endpoint=url, webhook_format=webhook_format)

    dns["rebind.customer.test"] = at_send_time
    open_incident()
    deliver_all(events()[0])

    assert httpserver.log == []  # the receiver listens on 127.0.0.1 and heard nothing
    row = Delivery.objects.get()
    assert row.state == DeliveryState.FAILED
    assert row.error.startswith("refused: rebind.customer.test")


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1"])
def test_numeric_forms_of_loopback_stored_before_the_rules_are_refused_at_send_time(
    page, dns, httpserver, host
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    SubscriberFactory(webhook=True, endpoint=f"http://{host}:{httpserver.port}/hook")

    open_incident()
    deliver_all(events()[0])

    assert httpserver.log == []
    assert Delivery.objects.get().error.startswith("refused:")


# Exactly one message per update, through a real receiver


@pytest.fixture
def local_endpoints(settings):
    """pytest-httpserver listens on 127.0.0.1."""
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    settings.BEACON_NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 5


@pytest.mark.parametrize("webhook_format", ["slack", "discord", "teams"])
def test_a_chat_subscriber_gets_exactly_one_message_per_update_even_when_sending_twice(
    page, local_endpoints, httpserver, webhook_format
):
    httpserver.expect_request("/chat", method="POST").respond_with_data("ok")
    SubscriberFactory(
        webhook=True, endpoint=httpserver.url_for("/chat"), webhook_format=webhook_format
    )
    incident = open_incident(name="Slow logins", body="Looking into it.")
    services.incident_post_update(
        incident=incident, status=IncidentStatus.IDENTIFIED, body="Found the cause."
    )
    for event in events():
        batches = delivery.event_expand(event_id=event.pk)
        for batch in batches:
            delivery.batch_send(batch=batch)
            delivery.batch_send(batch=batch)  # the task ran twice (a redelivered message)
        assert delivery.event_expand(event_id=event.pk) == []  # expanded once
        deliver_all(event)

    bodies = [request.get_data(as_text=True) for request, _ in httpserver.log]
    assert len(bodies) == 2
    assert "Looking into it." in bodies[0] and "Found the cause." in bodies[1]
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 2


def test_through_the_celery_tasks_run_twice_a_chat_subscriber_still_gets_one_message_each(
    page, local_endpoints, httpserver, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    httpserver.expect_request("/chat", method="POST").respond_with_data("ok")
    SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/chat"), webhook_format="slack")

    with django_capture_on_commit_callbacks(execute=True):  # the doorbells ring: tasks run
        incident = open_incident(name="Slow logins", body="Looking into it.")
    with django_capture_on_commit_callbacks(execute=True):
        services.incident_post_update(
            incident=incident, status=IncidentStatus.IDENTIFIED, body="Found the cause."
        )
    for event in events():  # a doorbell redelivered, a batch message redelivered
        tasks.expand_notification_event(event.pk)
        for row in Delivery.objects.filter(event=event):
            tasks.send_notification_batch(event.pk, row.channel, row.pk, row.pk)
    tasks.sweep_notifications()

    assert len(httpserver.log) == 2
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 2


# A deleted chat webhook


def after_one_answer(httpserver, *, status: int, webhook_format: str):
    """The subscriber once its endpoint has answered one incident with `status`."""
    httpserver.expect_request("/gone").respond_with_data("no_service", status=status)
    subscriber = SubscriberFactory(
        webhook=True, endpoint=httpserver.url_for("/gone"), webhook_format=webhook_format
    )
    open_incident()
    deliver_all(events()[0])
    subscriber.refresh_from_db()
    return subscriber


@pytest.mark.parametrize("webhook_format", ["slack", "discord"])
@pytest.mark.parametrize("status", [404, 410])
def test_a_deleted_slack_or_discord_webhook_is_disabled_at_once(
    page, local_endpoints, httpserver, webhook_format, status, mailoutbox
):
    subscriber = after_one_answer(httpserver, status=status, webhook_format=webhook_format)

    assert subscriber.state == SubscriberState.QUARANTINED
    assert Delivery.objects.get().state == DeliveryState.FAILED
    open_incident(name="Another")
    deliver_all(events()[1])
    assert len(httpserver.log) == 1  # nothing more is posted


@pytest.mark.parametrize("webhook_format", ["statuspage", "teams"])
def test_a_404_from_another_endpoint_is_retried_not_disabled_at_once(
    page, local_endpoints, httpserver, webhook_format
):
    subscriber = after_one_answer(httpserver, status=404, webhook_format=webhook_format)

    assert subscriber.state == SubscriberState.ACTIVE
    assert Delivery.objects.get().state == DeliveryState.QUEUED  # to be retried


# Hostile names and text, escaped for each format

HOSTILE_NAME = "<!channel> & <https://evil.test|Sign in> @everyone"
HOSTILE_BODY = "@here [Reset your password](https://evil.test) {{DATE(2017-02-14T06:08:39Z)}} *x*"


@pytest.fixture
def hostile_message(page, local_endpoints, httpserver):
    httpserver.expect_request("/chat", method="POST").respond_with_data("ok")
    component = ComponentFactory(name=HOSTILE_NAME)

    def posted(webhook_format):
        SubscriberFactory(
            webhook=True, endpoint=httpserver.url_for("/chat"), webhook_format=webhook_format
        )
        open_incident(
            name=HOSTILE_NAME,
            body=HOSTILE_BODY,
            component_statuses={component: ComponentStatus.MAJOR_OUTAGE},
        )
        deliver_all(NotificationEvent.objects.get(kind=EventKind.INCIDENT_CREATED))
        [(request, _)] = httpserver.log
        return request.get_json()

    return posted


def test_slack_reads_hostile_text_literally(hostile_message):
    body = hostile_message("slack")

    text = body["text"] + body["blocks"][1]["text"]["text"]
    assert "<!channel>" not in text and "<https://evil.test|" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.test|Sign in&gt;" in text
    assert "@everyone" not in text and "@here" not in text
    assert "@\u200beveryone" in text
    assert "@" not in body["blocks"][0]["text"]["text"].replace("@\u200b", "")


def test_discord_pings_nobody_whatever_the_text_says(hostile_message):
    body = hostile_message("discord")

    assert body["allowed_mentions"] == {"parse": []}
    assert "@everyone" not in body["content"]
    assert "@here" not in body["embeds"][0]["description"]


def test_teams_shows_hostile_text_literally_in_the_card(hostile_message):
    body = hostile_message("teams")

    card = body["attachments"][0]["content"]
    title, text = (block["text"] for block in card["body"])
    assert "\\[Reset your password\\]\\(https://evil.test\\)" in text
    assert "{{DATE" not in text and "\\*x\\*" in text
    assert "@everyone" not in title


# How pages show a webhook: never its path, query or credentials


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        ("https://hooks.slack.com/services/T/B/secret", "https://hooks.slack.com/…"),
        ("https://example.com?token=secret", "https://example.com/…"),
        ("https://user:secret@example.com:8443/hook", "https://example.com:8443/…"),
        ("http://[2001:db8::1]:8080/hook#secret", "http://[2001:db8::1]:8080/…"),
        ("http://example.com:99999/old", "…"),
    ],
)
def test_pages_show_a_webhook_by_its_scheme_and_host_only(endpoint, shown):
    subscriber = SubscriberFactory.build(webhook=True, endpoint=endpoint)

    assert subscriber.shown_address == shown
