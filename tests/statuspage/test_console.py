"""The staff console (the admin's index): every component, who set its status, since when."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from components.models import StatusChangeCause
from components.services import component_set_status
from incidents.models import Incident, IncidentDraft
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import StaffFactory, open_incident, sign_in_staff

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _rows(html: str) -> list[str]:
    body = html.split('id="console-components"', 1)[1].split("</tbody>", 1)[0]
    return [" ".join(row.split()) for row in body.split("<tr>")[2:]]


@time_machine.travel(NOW, tick=False)
def test_the_console_shows_each_component_with_who_set_its_status_and_since_when(
    client, responder, django_assert_max_num_queries
):
    with time_machine.travel(NOW - timedelta(hours=3), tick=False):
        group = ComponentGroupFactory(name="Platform")
        api = ComponentFactory(name="API", group=group)
        web = ComponentFactory(name="Website")
        quiet = ComponentFactory(name="Search")
    with time_machine.travel(NOW - timedelta(minutes=42), tick=False):
        component_set_status(component=api, status="major_outage", actor=responder)
    component_set_status(
        component=web,
        status="degraded_performance",
        cause=StatusChangeCause.HEALTH_CHECK,
        at=NOW - timedelta(minutes=5),
    )

    # 12, the open report surges, the reports chart and the incidents to resolve.
    with django_assert_max_num_queries(15):
        response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    html = response.content.decode()
    rows = {row.split("</a>")[0].rsplit(">", 1)[1]: row for row in _rows(html)}
    assert "Major outage" in rows["API"] and "Platform" in rows["API"]
    assert f"Staff ({responder.username})" in rows["API"] and "42 minutes ago" in rows["API"]
    assert "Health check" in rows["Website"] and "Degraded performance" in rows["Website"]
    assert "5 minutes ago" in rows["Website"]
    assert "Never changed" in rows["Search"] and quiet.name == "Search"
    assert 'hx-trigger="every 10s"' in html
    # The stock index is still there, below.
    assert "app-components" in html


def test_the_table_alone_answers_the_refresh_and_is_bounded_in_queries(
    client, responder, django_assert_max_num_queries
):
    for n in range(20):
        component = ComponentFactory(name=f"Service {n}")
        component_set_status(component=component, status="partial_outage", actor=responder)
    with django_assert_max_num_queries(11):  # 10, and the incidents to resolve
        response = client.get(reverse("admin:console_live"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="console-live"')
    assert len(_rows(html)) == 20


def test_component_names_are_escaped(client, responder):
    ComponentFactory(name='<img src=x onerror="alert(1)">')
    html = client.get(reverse("admin:console_live")).content.decode()
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_the_console_is_staff_only(client):
    for name in ("admin:index", "admin:console_live"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]


def test_an_empty_page_says_how_to_start(client, responder):
    html = client.get(reverse("admin:console_live")).content.decode()
    assert "No components yet" in html


def _draft(component, **kwargs):
    return IncidentDraft.objects.create(
        component=component,
        name=kwargs.pop("name", f"{component.name}: major outage"),
        body="Our checks see errors.",
        component_status="major_outage",
        reason="Status 500, expected 200–399",
        **kwargs,
    )


def test_drafts_waiting_for_staff_are_listed_with_one_click_publish_and_discard(client, responder):
    api = ComponentFactory(name="API")
    waiting = _draft(api)
    _draft(api, name="Already published", published_at=timezone.now())
    _draft(api, name="Already discarded", discarded_at=timezone.now())
    html = client.get(reverse("admin:index")).content.decode()
    drafts = html.split('id="console-drafts"', 1)[1].split("</table>", 1)[0]
    assert "API: major outage" in drafts and "Status 500, expected 200–399" in drafts
    assert "Already published" not in drafts and "Already discarded" not in drafts
    publish = reverse("admin:incidents_incidentdraft_publish", args=[waiting.pk])
    assert f'action="{publish}"' in drafts
    assert reverse("admin:incidents_incidentdraft_discard", args=[waiting.pk]) in drafts

    response = client.post(publish)
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.name == "API: major outage"
    assert (
        "None: health checks have prepared nothing"
        in client.get(reverse("admin:console_live")).content.decode()
    )


def test_staff_who_may_not_open_incidents_see_drafts_without_the_buttons(client):
    viewer = StaffFactory()  # staff, in no role: may look, not publish
    sign_in_staff(client, viewer)
    waiting = _draft(ComponentFactory(name="API"))
    html = client.get(reverse("admin:index")).content.decode()
    assert "API: major outage" in html
    assert reverse("admin:incidents_incidentdraft_publish", args=[waiting.pk]) not in html


@time_machine.travel(NOW, tick=False)
def test_open_incidents_show_the_time_since_their_last_update_against_the_promise(
    client, responder, page
):
    page.update_interval_minutes = 30
    page.save()
    with time_machine.travel(NOW - timedelta(minutes=35), tick=False):
        open_incident(name="Logins fail")
    with time_machine.travel(NOW - timedelta(minutes=25), tick=False):
        open_incident(name="Slow search")
    with time_machine.travel(NOW - timedelta(minutes=3), tick=False):
        open_incident(name="Fresh news")
    html = client.get(reverse("admin:console_live")).content.decode()
    table = html.split('id="console-incidents"', 1)[1].split("</table>", 1)[0]
    rows = [" ".join(row.split()) for row in table.split("<tr>")[2:]]
    assert "Logins fail" in rows[0] and "silence-red" in rows[0] and "overdue" in rows[0]
    assert "Slow search" in rows[1] and "silence-amber" in rows[1] and "due soon" in rows[1]
    assert "Fresh news" in rows[2] and "silence-ok" in rows[2] and "overdue" not in rows[2]


def test_the_admin_is_branded_with_the_pages_name_escaped(client, responder, page):
    page.name = "Acme <Cloud>"
    page.save()
    html = client.get(reverse("admin:index")).content.decode()
    assert "Beacon · Acme &lt;Cloud&gt;</a>" in html
    assert "<title>" in html and "Beacon · Acme &lt;Cloud&gt;</title>" in html
