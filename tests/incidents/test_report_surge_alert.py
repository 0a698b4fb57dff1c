"""A surge of visitor reports, from `POST /reports/` to staff's email, webhook, draft, console."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from components.models import ComponentStatus
from components.reports.models import ReportSurge
from components.reports.services import report_counts_persist, report_surges_detect
from components.services import component_set_status
from incidents.models import DraftSource, Incident, IncidentDraft
from incidents.report_surges import ENDED_SUBJECT_PREFIX, SUBJECT_PREFIX
from statuspage.models import PageSettings
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, open_incident
from tests.statuspage.test_visitor_reports import report, warm


@pytest.fixture(autouse=True)
def staff_told_here(settings, page, httpserver):
    # Staff are told by tasks: run them here rather than leave messages in the test broker.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True  # the webhook's test server is on this host
    settings.BEACON_STAFF_WEBHOOK_URL = httpserver.url_for("/slack")
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    StaffFactory(groups=["Admins"], email="admin@acme.test")


@pytest.fixture
def components(db):
    return (
        ComponentFactory(name="API"),
        ComponentFactory(name="Login"),
        ComponentFactory(name="Search"),
    )


def surge(client, values, *, visitors=12, symptom="errors", first=1):
    """Reports from `visitors` distinct addresses, each naming `values`."""
    warm(client)
    for n in range(first, first + visitors):
        data = {"components": values, "symptom": symptom}
        response = report(client, data, REMOTE_ADDR=f"198.51.100.{n}")
        assert response.status_code == 202


def beat(capture, *, at=None):
    """What beat runs every minute and every 30 seconds, with what commits then."""
    now = at or timezone.now()
    with capture(execute=True):
        report_counts_persist(now=now)
        return report_surges_detect(now=now)


def staff_emails():
    return [m for m in mail.outbox if SUBJECT_PREFIX in m.subject]


def webhook_posts(httpserver):
    return [entry.json["text"] for entry, _ in httpserver.log if entry.path == "/slack"]


def test_a_surge_tells_staff_once_and_prepares_one_draft_published_in_one_click(
    client, components, httpserver, django_capture_on_commit_callbacks, responder
):
    api, login, search = components
    surge(client, [api.public_id, login.public_id])
    report(client, {"components": [search.public_id]}, REMOTE_ADDR="198.51.100.200")

    beat(django_capture_on_commit_callbacks)

    [message] = staff_emails()
    assert message.subject == "[Acme] Visitors report problems: API, Login"
    assert "admin@acme.test" in message.to
    assert "API: 12 in 5 min (usually none); Errors 12" in message.body
    assert "Login: 12 in 5 min (usually none); Errors 12" in message.body
    draft = IncidentDraft.objects.get()
    assert reverse("admin:incidents_incidentdraft_change", args=[draft.pk]) in message.body
    [posted] = webhook_posts(httpserver)
    assert posted.startswith("*Visitors report problems: API, Login*")
    assert draft.source == DraftSource.REPORT_SURGE
    assert [c.name for c in draft.all_components] == ["API", "Login"]
    assert draft.name == "Investigating problems with API, Login"
    assert draft.body.startswith("Some of you are having problems with API and Login.")
    assert draft.component_status == ComponentStatus.DEGRADED_PERFORMANCE
    assert not ReportSurge.objects.filter(component=search).exists()

    # The beats after it: the same surge, no second message, no second draft.
    surge(client, [api.public_id], visitors=5, first=100)
    beat(django_capture_on_commit_callbacks)
    beat(django_capture_on_commit_callbacks, at=timezone.now() + timedelta(seconds=30))
    assert len(staff_emails()) == 1 and len(webhook_posts(httpserver)) == 1
    assert IncidentDraft.objects.count() == 1

    # The console: a row per surging component, with the draft's one-click publish.
    html = client.get(reverse("admin:console_live")).content.decode()
    rows = html.split('id="console-surges"', 1)[1].split("</table>", 1)[0]
    assert "Visitors report problems with API: 17 in 5 min (usually none)" in rows
    assert "Visitors report problems with Login: 12 in 5 min (usually none)" in rows
    publish = reverse("admin:incidents_incidentdraft_publish", args=[draft.pk])
    assert rows.count(f'action="{publish}"') == 2 and "Publish draft" in rows
    drafts = html.split('id="console-drafts"', 1)[1].split("</table>", 1)[0]
    assert "API, Login" in drafts and "Report surge: Visitors reported problems" in drafts

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(publish).status_code == 302
    incident = Incident.objects.get()
    assert incident.name == "Investigating problems with API, Login"
    assert incident.auto_component is None  # staff's to resolve, not the checks'
    assert set(incident.components.values_list("name", "status")) == {
        ("API", "degraded_performance"),
        ("Login", "degraded_performance"),
    }
    html = client.get(reverse("admin:console_live")).content.decode()
    assert 'id="console-surges"' not in html  # the page says it now


def test_with_the_page_setting_off_staff_are_told_and_set_the_status_in_one_click(
    client, components, httpserver, django_capture_on_commit_callbacks, responder
):
    page = PageSettings.load()
    page.report_surge_drafts = False
    page.save()
    api, _, _ = components
    surge(client, [api.public_id])

    beat(django_capture_on_commit_callbacks)

    [message] = staff_emails()
    assert message.subject == "[Acme] Visitors report problems: API"
    assert reverse("admin:index") in message.body
    assert len(webhook_posts(httpserver)) == 1
    assert not IncidentDraft.objects.exists()

    html = client.get(reverse("admin:console_live")).content.decode()
    rows = html.split('id="console-surges"', 1)[1].split("</table>", 1)[0]
    fix = reverse("admin:console_set_status", args=[api.pk])
    assert f'action="{fix}"' in rows and 'value="degraded_performance"' in rows
    assert client.post(fix, {"status": "degraded_performance"}).status_code == 302
    api.refresh_from_db()
    assert api.status == ComponentStatus.DEGRADED_PERFORMANCE
    assert 'id="console-surges"' not in client.get(reverse("admin:console_live")).content.decode()


def test_a_draft_nobody_published_is_discarded_when_the_surge_ends(
    client, components, django_capture_on_commit_callbacks
):
    api, _, _ = components
    surge(client, [api.public_id])
    start = timezone.now()
    beat(django_capture_on_commit_callbacks, at=start)
    draft = IncidentDraft.objects.get()

    found = beat(django_capture_on_commit_callbacks, at=start + timedelta(minutes=10))
    assert found.ended == [] and IncidentDraft.objects.get().is_pending
    found = beat(django_capture_on_commit_callbacks, at=start + timedelta(minutes=16))
    assert [s.component_id for s in found.ended] == [api.pk]
    draft.refresh_from_db()
    assert not draft.is_pending and draft.published_at is None
    assert draft.discard_reason == "The surge of reports ended before it was published."
    assert len(staff_emails()) == 1


def test_staff_told_of_a_surge_hear_once_that_it_ended(
    client, components, django_capture_on_commit_callbacks, httpserver
):
    api, login, _ = components
    surge(client, [api.public_id, login.public_id])
    start = timezone.now()
    beat(django_capture_on_commit_callbacks, at=start)
    # API's surge was never told (as if its alert had not been claimed): nothing to take back.
    ReportSurge.objects.filter(component=api).update(alerted_at=None)

    beat(django_capture_on_commit_callbacks, at=start + timedelta(minutes=16))
    beat(django_capture_on_commit_callbacks, at=start + timedelta(minutes=17))

    ended = [m for m in mail.outbox if ENDED_SUBJECT_PREFIX in m.subject]
    assert [m.subject.split("] ", 1)[1] for m in ended] == ["Reports back to usual: Login"]
    assert "Visitors' reports about Login are back to usual." in ended[0].body
    assert "- Login: from " in ended[0].body and "API" not in ended[0].body
    posts = [text for text in webhook_posts(httpserver) if "back to usual" in text]
    assert len(posts) == 1 and posts[0].startswith("*Reports back to usual: Login*")


def test_a_draft_of_two_surges_waits_until_both_have_ended(
    client, components, django_capture_on_commit_callbacks
):
    api, login, _ = components
    surge(client, [api.public_id, login.public_id])
    start = timezone.now()
    beat(django_capture_on_commit_callbacks, at=start)
    # Login's reports go on: its surge is seen again 8 minutes later.
    ReportSurge.objects.filter(component=login).update(last_seen_at=start + timedelta(minutes=8))
    found = beat(django_capture_on_commit_callbacks, at=start + timedelta(minutes=16))
    assert [s.component_id for s in found.ended] == [api.pk]
    assert IncidentDraft.objects.get().is_pending
    beat(django_capture_on_commit_callbacks, at=start + timedelta(minutes=24))
    assert not IncidentDraft.objects.get().is_pending


def test_a_draft_waits_only_for_the_surges_of_its_own_components(
    client, components, django_capture_on_commit_callbacks
):
    api, _, _ = components
    surge(client, [api.public_id, "other"])
    start = timezone.now()
    beat(django_capture_on_commit_callbacks, at=start)
    assert [c.name for c in IncidentDraft.objects.get().all_components] == ["API"]
    # "Something else" goes on; API's surge ends.
    ReportSurge.objects.filter(component=None).update(last_seen_at=start + timedelta(minutes=8))
    beat(django_capture_on_commit_callbacks, at=start + timedelta(minutes=16))
    assert not IncidentDraft.objects.get().is_pending


def test_components_an_open_incident_names_are_left_out_of_the_draft(
    client, components, django_capture_on_commit_callbacks
):
    api, login, _ = components
    open_incident(name="Login trouble", component_statuses={login: "partial_outage"})
    surge(client, [api.public_id, login.public_id])

    beat(django_capture_on_commit_callbacks)

    [message] = staff_emails()
    assert message.subject == "[Acme] Visitors report problems: API, Login"
    draft = IncidentDraft.objects.get()
    assert [c.name for c in draft.all_components] == ["API"]


def test_every_component_covered_makes_no_draft_and_says_why(
    client, components, django_capture_on_commit_callbacks
):
    api, _, _ = components
    open_incident(name="API trouble", component_statuses={api: "partial_outage"})
    surge(client, [api.public_id])

    beat(django_capture_on_commit_callbacks)

    [message] = staff_emails()
    assert "No draft: the page already shows these components in trouble" in message.body
    assert not IncidentDraft.objects.exists()


def test_something_else_surging_tells_staff_without_a_draft(
    client, components, django_capture_on_commit_callbacks, responder
):
    surge(client, ["other"], symptom="slow")

    beat(django_capture_on_commit_callbacks)

    [message] = staff_emails()
    assert message.subject == "[Acme] Visitors report problems: something else"
    assert "something else: 12 in 5 min (usually none); Slow 12" in message.body
    assert not IncidentDraft.objects.exists()
    html = client.get(reverse("admin:console_live")).content.decode()
    rows = html.split('id="console-surges"', 1)[1].split("</table>", 1)[0]
    assert "Visitors report problems with something else: 12 in 5 min" in rows
    assert "console_set_status" not in rows and "Publish draft" not in rows


def test_a_hostile_component_name_is_escaped_in_the_console(
    client, db, django_capture_on_commit_callbacks, responder
):
    hostile = ComponentFactory(name='<img src=x onerror="alert(1)">')
    surge(client, [hostile.public_id])
    beat(django_capture_on_commit_callbacks)
    html = client.get(reverse("admin:console_live")).content.decode()
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_the_console_reads_surges_and_their_drafts_in_a_bounded_number_of_queries(
    client, db, django_capture_on_commit_callbacks, responder
):
    def console_queries():
        with CaptureQueriesContext(connection) as queries:
            html = client.get(reverse("admin:console_live")).content.decode()
        return len(queries), html.count("Publish draft")

    many = [ComponentFactory(name=f"Service {n}") for n in range(8)]
    surge(client, [many[0].public_id])
    beat(django_capture_on_commit_callbacks)
    one = console_queries()
    surge(client, [c.public_id for c in many[1:]], first=50)
    beat(django_capture_on_commit_callbacks, at=timezone.now() + timedelta(seconds=30))
    eight = console_queries()
    # Seven at once: one message, whose subject names five.
    assert staff_emails()[-1].subject.endswith(
        "Visitors report problems: Service 1, Service 2, Service 3, Service 4, Service 5 and 2 more"
    )
    assert "- Service 7: 12 in 5 min" in staff_emails()[-1].body
    # The console's own (the incidents to resolve included), and the surges, the incidents
    # naming them, the drafts' components.
    assert one == (15, 1) and eight == (15, 8)


def test_staff_read_surges_in_the_admin_and_cannot_change_them(
    client, components, django_capture_on_commit_callbacks, responder
):
    api, _, _ = components
    surge(client, [api.public_id])
    beat(django_capture_on_commit_callbacks)
    surge_row = ReportSurge.objects.get()
    html = client.get(reverse("admin:components_reportsurge_changelist")).content.decode()
    assert "Report surge of API from" in html and "usually none" in html
    change = reverse("admin:components_reportsurge_change", args=[surge_row.pk])
    assert client.post(change, {"peak_count": 1}).status_code == 403
    assert ReportSurge.objects.get().peak_count == 12


def test_a_component_the_page_shows_in_trouble_is_told_but_not_drafted(
    client, components, django_capture_on_commit_callbacks, responder
):
    api, login, _ = components
    component_set_status(component=api, status="major_outage", actor=responder)
    surge(client, [api.public_id, login.public_id])

    beat(django_capture_on_commit_callbacks)

    [message] = staff_emails()
    assert message.subject == "[Acme] Visitors report problems: API, Login"
    assert [c.name for c in IncidentDraft.objects.get().all_components] == ["Login"]
    rows = client.get(reverse("admin:console_live")).content.decode()
    rows = rows.split('id="console-surges"', 1)[1].split("</table>", 1)[0]
    assert "with Login:" in rows and "with API:" not in rows


def test_publishing_a_surge_draft_never_lowers_a_status_set_since(
    client, components, django_capture_on_commit_callbacks, responder
):
    api, login, _ = components
    surge(client, [api.public_id, login.public_id])
    beat(django_capture_on_commit_callbacks)
    draft = IncidentDraft.objects.get()
    component_set_status(component=login, status="major_outage", actor=responder)

    publish = reverse("admin:incidents_incidentdraft_publish", args=[draft.pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(publish).status_code == 302
    api.refresh_from_db()
    login.refresh_from_db()
    assert (api.status, login.status) == ("degraded_performance", "major_outage")
