"""The staff console (the admin's index): every component, who set its status, since when."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from components.models import StatusChangeCause
from components.services import component_set_status
from tests.components.factories import ComponentFactory, ComponentGroupFactory

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

    with django_assert_max_num_queries(12):
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
    with django_assert_max_num_queries(10):
        response = client.get(reverse("admin:console_components"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="console-components"')
    assert len(_rows(html)) == 20


def test_component_names_are_escaped(client, responder):
    ComponentFactory(name='<img src=x onerror="alert(1)">')
    html = client.get(reverse("admin:console_components")).content.decode()
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_the_console_is_staff_only(client):
    for name in ("admin:index", "admin:console_components"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]


def test_an_empty_page_says_how_to_start(client, responder):
    html = client.get(reverse("admin:console_components")).content.decode()
    assert "No components yet" in html
