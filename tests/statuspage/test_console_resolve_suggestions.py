"""Suggest resolving: an open incident whose components have all been operational for 30
minutes, as a table of cases, and the console's one-click resolve."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from components.models import StatusChangeCause
from components.services import component_set_status
from incidents.models import IncidentKind, IncidentStatus
from incidents.selectors import incidents_to_resolve
from incidents.services import incident_create, incident_post_update, incident_resolve
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, open_incident, sign_in_staff

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def at(minutes_ago):
    return time_machine.travel(NOW - timedelta(minutes=minutes_ago), tick=False)


def _component():
    with at(180):
        return ComponentFactory()


def _down(*components, status="major_outage"):
    with at(120):
        return open_incident(component_statuses=dict.fromkeys(components, status))


def _update(incident, minutes_ago, statuses):
    with at(minutes_ago):
        incident_post_update(
            incident=incident, status=IncidentStatus.MONITORING, component_statuses=statuses
        )


def _recovered(minutes_ago):
    """An incident whose one component its update set operational `minutes_ago`."""
    api = _component()
    incident = _down(api)
    _update(incident, minutes_ago, {api: "operational"})
    return incident


def all_operational_for_45_minutes():
    return _recovered(45)


def exactly_30_minutes():
    return _recovered(30)


def one_still_degraded():
    api, web = _component(), _component()
    incident = _down(api, web)
    _update(incident, 45, {api: "operational", web: "degraded_performance"})
    return incident


def recovered_20_minutes_ago():
    return _recovered(20)


def down_and_up_again_within_30_minutes():
    api = _component()
    incident = _down(api)
    _update(incident, 60, {api: "operational"})
    with at(25):
        component_set_status(component=api, status="partial_outage", cause=StatusChangeCause.ALERT)
    # Back up, and its last change recorded as older than 30 minutes: only the history shows
    # that it was down in between.
    with at(24):
        component_set_status(
            component=api,
            status="operational",
            cause=StatusChangeCause.ALERT,
            at=NOW - timedelta(minutes=24),
        )
    api.status_changed_at = NOW - timedelta(hours=1)
    api.save(update_fields=["status_changed_at"])
    return incident


def no_components():
    with at(120):
        return open_incident()


def maintenance():
    api = _component()
    with at(120):
        incident = incident_create(
            name="Database upgrade",
            kind=IncidentKind.MAINTENANCE,
            status=IncidentStatus.IN_PROGRESS,
            scheduled_for=NOW - timedelta(minutes=120),
            scheduled_until=NOW + timedelta(minutes=60),
            affected_components=[api],
        )
    with at(45):
        component_set_status(component=api, status="operational")
    return incident


def resolved():
    api = _component()
    incident = _down(api)
    with at(45):
        incident_resolve(incident=incident)
    return incident


def its_own_update_still_says_degraded():
    # Decided: the component's recorded status decides, not the incident's last word. A
    # health check set it operational 45 minutes ago while the incident still says degraded
    # performance; the page shows it operational: suggested.
    api = _component()
    incident = _down(api, status="degraded_performance")
    with at(45):
        component_set_status(
            component=api, status="operational", cause=StatusChangeCause.HEALTH_CHECK
        )
    return incident


CASES = [
    (all_operational_for_45_minutes, True),
    (exactly_30_minutes, True),
    (one_still_degraded, False),
    (recovered_20_minutes_ago, False),
    (down_and_up_again_within_30_minutes, False),
    (no_components, False),
    (maintenance, False),
    (resolved, False),
    (its_own_update_still_says_degraded, True),
]


@pytest.mark.parametrize(("make", "suggested"), CASES, ids=[make.__name__ for make, _ in CASES])
def test_which_incidents_are_suggested_for_resolving(make, suggested):
    incident = make()
    with at(0):
        found = [s.incident.pk for s in incidents_to_resolve()]
    assert (incident.pk in found) is suggested


@time_machine.travel(NOW, tick=False)
def test_the_rule_costs_two_queries_however_many_incidents(django_assert_num_queries):
    for _ in range(6):
        api, web = _component(), _component()
        incident = _down(api, web)
        _update(incident, 45, {api: "operational", web: "operational"})
    with django_assert_num_queries(2):
        suggestions = incidents_to_resolve()
    assert len(suggestions) == 6
    assert suggestions[0].healthy_since == NOW - timedelta(minutes=45)


def test_the_console_suggests_resolving_and_resolves_in_one_click(
    client, responder, page, django_assert_max_num_queries, mailoutbox
):
    incident = all_operational_for_45_minutes()
    incident.name = "<b>Elevated errors</b>"
    incident.save(update_fields=["name"])
    with at(0):
        # The live region's twelve with an open incident, and two for the suggestions.
        with django_assert_max_num_queries(14):
            response = client.get(reverse("admin:console_live"))
        html = response.content.decode()
        assert 'id="console-resolve-suggestions"' in html
        assert "&lt;b&gt;Elevated errors&lt;/b&gt;" in html and "<b>Elevated" not in html
        assert "45 minutes ago" in " ".join(html.split())  # timesince's no-break spaces
        url = reverse("admin:console_resolve_incident", args=[incident.pk])
        assert f'action="{url}"' in html

        assert client.get(url).status_code == 405  # POST only
        response = client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    update = incident.updates.order_by("-created_at").first()
    assert update.body == "This incident has been resolved."
    assert update.deliver_notifications and update.author == responder
    assert LogEntry.objects.filter(object_id=str(incident.pk)).exists()
    with at(0):
        html = client.get(reverse("admin:console_live")).content.decode()
    assert 'id="console-resolve-suggestions"' not in html
    # Already closed: said calmly, nothing posted.
    response = client.post(url, follow=True)
    assert "already closed" in response.content.decode()
    assert incident.updates.count() == 3


def test_resolving_needs_the_permission_and_csrf(client):
    incident = all_operational_for_45_minutes()
    url = reverse("admin:console_resolve_incident", args=[incident.pk])
    sign_in_staff(client, StaffFactory())  # staff, without incident permissions
    with at(0):
        html = client.get(reverse("admin:console_live")).content.decode()
    assert "Suggest resolving" in html and url not in html
    assert client.post(url).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    sign_in_staff(strict, StaffFactory(groups=["Responders"]))
    assert strict.post(url).status_code == 403
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.MONITORING
    responder = Client()
    sign_in_staff(responder, StaffFactory(groups=["Responders"]))
    unknown = reverse("admin:console_resolve_incident", args=[999999])
    assert responder.post(unknown).status_code == 404
