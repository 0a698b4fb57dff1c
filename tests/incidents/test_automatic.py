"""Incidents health checks open, draft and close on their own; staff hear of each change."""

import socket

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from components.checks.services import check_run_now
from components.models import AutoIncident, Component, ComponentStatus
from components.services import component_update
from incidents.automatic import (
    STAFF_NOTICE_WINDOW,
    _post_staff_webhook,
    incident_draft_publish,
    open_auto_incident,
    staff_notices_flush,
)
from incidents.models import Incident, IncidentDraft
from statuspage.lib.chat_text import slack_escaped
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.incidents.factories import StaffFactory, sign_in_staff


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    # Staff are told by tasks: run them here rather than leave messages in the test broker.
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def target(httpserver):
    def answer(status):
        httpserver.clear()
        httpserver.expect_request("/health").respond_with_data("x", status=status)

    answer(200)
    return answer


def make_check(httpserver, mode):
    component = ComponentFactory(name="Login", auto_incident=mode)
    return HealthCheckFactory(
        component=component,
        url=httpserver.url_for("/health"),
        failures_before_down=1,
        successes_before_up=1,
    )


def run(check, capture):
    with capture(execute=True):
        check_run_now(check=check)
    check.component.refresh_from_db()


def test_published_mode_opens_one_incident_and_resolves_it_on_recovery(
    page, httpserver, target, django_capture_on_commit_callbacks
):
    check = make_check(httpserver, AutoIncident.PUBLISH)
    target(503)
    run(check, django_capture_on_commit_callbacks)
    run(check, django_capture_on_commit_callbacks)  # still down: no second incident

    [incident] = Incident.objects.all()
    assert incident.name == "Login: major outage"
    assert incident.status == "investigating" and incident.impact == "critical"
    assert incident.auto_component == check.component
    assert check.component.status == ComponentStatus.MAJOR_OUTAGE

    target(200)
    run(check, django_capture_on_commit_callbacks)
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert "Login is operational again" in incident.updates.first().body
    assert check.component.status == ComponentStatus.OPERATIONAL
    assert open_auto_incident(check.component) is None


def test_draft_mode_prepares_a_draft_staff_publish_with_one_click(
    page, httpserver, target, client, django_capture_on_commit_callbacks, settings
):
    responder = StaffFactory(groups=["Responders"], email="oncall@acme.test")
    check = make_check(httpserver, AutoIncident.DRAFT)
    target(500)
    run(check, django_capture_on_commit_callbacks)

    assert not Incident.objects.exists()  # nothing public before staff decide
    draft = IncidentDraft.objects.get()
    assert draft.is_pending and draft.component_status == "major_outage"
    [email] = mail.outbox
    assert email.to == ["oncall@acme.test"]
    assert email.subject == "[Acme] Login: major outage (health check)"
    publish_page = f"https://status.acme.test/admin/incidents/incidentdraft/{draft.pk}/change/"
    assert "Status 500, expected 200–399" in email.body and publish_page in email.body

    sign_in_staff(client, responder)
    page_html = client.get(reverse("admin:incidents_incidentdraft_change", args=[draft.pk]))
    assert b"Publish as an incident" in page_html.content
    response = client.post(reverse("admin:incidents_incidentdraft_publish", args=[draft.pk]))
    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:incidents_incident_change", args=[incident.pk])
    assert incident.status == "investigating" and incident.auto_component == check.component


def test_a_draft_nobody_published_is_discarded_when_the_checks_recover(
    page, httpserver, target, django_capture_on_commit_callbacks
):
    check = make_check(httpserver, AutoIncident.DRAFT)
    target(500)
    run(check, django_capture_on_commit_callbacks)
    target(200)
    run(check, django_capture_on_commit_callbacks)

    draft = IncidentDraft.objects.get()
    assert not draft.is_pending and "recovered" in draft.discard_reason
    assert not Incident.objects.exists()


def test_off_mode_opens_nothing_but_still_tells_staff(
    page, httpserver, target, django_capture_on_commit_callbacks, settings
):
    StaffFactory(groups=["Admins"], email="admin@acme.test")
    check = make_check(httpserver, AutoIncident.OFF)
    target(500)
    run(check, django_capture_on_commit_callbacks)

    assert not Incident.objects.exists() and not IncidentDraft.objects.exists()
    assert [m.to for m in mail.outbox] == [["admin@acme.test"]]


def test_the_staff_webhook_gets_a_slack_message(
    page, httpserver, target, django_capture_on_commit_callbacks, settings
):
    settings.BEACON_STAFF_WEBHOOK_URL = httpserver.url_for("/slack")
    check = make_check(httpserver, AutoIncident.OFF)
    target(500)
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    run(check, django_capture_on_commit_callbacks)

    [slack] = [entry for entry, _ in httpserver.log if entry.path == "/slack"]
    assert slack.json["text"].startswith("*Login: major outage (health check)*")


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("<!channel> Login", "&lt;!channel&gt; Login"),
        ("<!here|here>", "&lt;!here|here&gt;"),
        ("<https://evil.test|Sign in again>", "&lt;https://evil.test|Sign in again&gt;"),
        ("<@U024BE7LH>", "&lt;@U024BE7LH&gt;"),
        ("R&D &amp; ops", "R&amp;D &amp;amp; ops"),
        ("@everyone look", "@\u200beveryone look"),
        ("@Here and @channel", "@\u200bHere and @\u200bchannel"),
        ("mail ops@hereford.test", "mail ops@hereford.test"),
        ("a*b_c~d`", "a*b_c~d`"),
    ],
)
def test_the_staff_webhook_shows_names_literally_and_pings_no_one(written, sent):
    assert slack_escaped(written) == sent


def test_a_hostile_component_name_reaches_the_staff_webhook_escaped(
    page, httpserver, target, django_capture_on_commit_callbacks, settings
):
    settings.BEACON_STAFF_WEBHOOK_URL = httpserver.url_for("/slack")
    check = make_check(httpserver, AutoIncident.OFF)
    Component.objects.filter(pk=check.component_id).update(name="<!channel> Login")
    check.refresh_from_db()
    target(500)
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    run(check, django_capture_on_commit_callbacks)

    [slack] = [entry for entry, _ in httpserver.log if entry.path == "/slack"]
    assert "<!channel>" not in slack.json["text"]
    assert slack.json["text"].startswith("*&lt;!channel&gt; Login: major outage (health check)*")


def test_the_staff_webhook_posts_to_the_address_it_vetted(httpserver, settings, monkeypatch):
    """A name that answers a vetted address first and a metadata address after (DNS
    rebinding) is asked once, and the post goes to the first answer."""
    real = socket.getaddrinfo
    asked = []

    def rebinding(host, port, *args, **kwargs):
        if host != "hooks.rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        return real("127.0.0.1" if len(asked) == 1 else "169.254.169.254", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    httpserver.expect_request("/staff", method="POST").respond_with_data("ok")

    staff_webhook_url = f"http://hooks.rebind.test:{httpserver.port}/staff"
    _post_staff_webhook(staff_webhook_url, "*Login: major outage*")

    assert asked == ["hooks.rebind.test"]
    [request] = [entry for entry, _ in httpserver.log]
    assert request.headers["Host"] == f"hooks.rebind.test:{httpserver.port}"
    assert request.json == {"text": "*Login: major outage*"}


def test_a_flapping_check_tells_staff_once_then_sends_one_summary(
    page, httpserver, target, django_capture_on_commit_callbacks
):
    StaffFactory(groups=["Responders"], email="oncall@acme.test")
    check = make_check(httpserver, AutoIncident.DRAFT)
    for status in (500, 200, 500, 200, 500):
        target(status)
        run(check, django_capture_on_commit_callbacks)

    [first] = mail.outbox
    assert first.subject == "[Acme] Login: major outage (health check)"
    assert staff_notices_flush() == 0  # the window is still open

    with django_capture_on_commit_callbacks(execute=True):
        assert staff_notices_flush(now=timezone.now() + STAFF_NOTICE_WINDOW) == 1
    summary = mail.outbox[1]
    assert summary.subject == "[Acme] Login: major outage after 4 more change(s)"
    assert summary.body.count("Health checks moved Login") == 4
    draft = IncidentDraft.objects.get(published_at=None, discarded_at=None)
    assert f"/admin/incidents/incidentdraft/{draft.pk}/change/" in summary.body
    assert len(mail.outbox) == 2


def test_staff_hear_once_of_a_text_shown_as_plain_text(page, django_capture_on_commit_callbacks):
    from statuspage.lib.markdown import render_markdown

    StaffFactory(groups=["Responders"], email="responder@acme.test")
    hostile = "[" * 30_000 + "unique-7f3a"
    render_markdown.cache_clear()

    with django_capture_on_commit_callbacks(execute=True):
        render_markdown(hostile)
        render_markdown.cache_clear()  # another process renders the same text
        render_markdown(hostile)

    [alert] = mail.outbox
    assert alert.to == ["responder@acme.test"]
    assert "plain text" in alert.subject
    assert "budget" in alert.body and "[[[" not in alert.body


@pytest.mark.parametrize("name", ["Login\ngateway", "Login\u2028gateway", "L" * 255])
def test_an_automatic_incident_opens_for_a_component_whose_old_name_is_awkward(
    page, httpserver, target, django_capture_on_commit_callbacks, name
):
    from components.models import Component

    check = make_check(httpserver, AutoIncident.PUBLISH)
    Component.objects.filter(pk=check.component_id).update(name=name)
    check.component.refresh_from_db()
    target(500)
    run(check, django_capture_on_commit_callbacks)

    incident = open_auto_incident(check.component)
    assert incident is not None
    assert incident.name.endswith(": major outage") and len(incident.name) <= 255
    assert "\n" not in incident.name and "\u2028" not in incident.name


def test_an_internal_components_automatic_incident_and_draft_are_internal(
    page, httpserver, target, django_capture_on_commit_callbacks
):
    published = make_check(httpserver, AutoIncident.PUBLISH)
    component_update(component=published.component, changes={"internal": True})
    target(503)
    run(published, django_capture_on_commit_callbacks)
    [incident] = Incident.objects.all()
    assert incident.internal

    drafted = make_check(httpserver, AutoIncident.DRAFT)
    component_update(component=drafted.component, changes={"internal": True})
    run(drafted, django_capture_on_commit_callbacks)
    draft = IncidentDraft.objects.get()
    assert incident_draft_publish(draft=draft).internal
    assert not Incident.objects.filter(internal=False).exists()
