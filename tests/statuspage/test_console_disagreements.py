"""What disagrees with the page, as a table of cases, and its one-click fix."""

import pytest
from django.urls import reverse
from django.utils import timezone

from components.alerts.models import AlertIntegration, AlertKind, AlertState
from components.models import ComponentStatusChange, StatusChangeCause, Verdict
from components.selectors import disagreements
from incidents.services import incident_resolve
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.incidents.factories import StaffFactory, open_incident, sign_in_staff

pytestmark = pytest.mark.django_db


def _alert(component, *, firing=True, status="major_outage"):
    integration, _ = AlertIntegration.objects.get_or_create(
        name="Prometheus", kind=AlertKind.ALERTMANAGER
    )
    return AlertState.objects.create(
        integration=integration,
        fingerprint=f"fp-{component.pk}-{status}",
        component=component,
        firing=firing,
        status=status,
        status_before="operational",
        event_at=timezone.now(),
    )


# (case, page status, what else is true, disagrees?, the status asked for)
CASES = [
    ("check down", "operational", {"check": Verdict.DOWN}, True, "major_outage"),
    ("check degraded", "operational", {"check": Verdict.DEGRADED}, True, "degraded_performance"),
    ("check up", "operational", {"check": Verdict.UP}, False, None),
    ("check with no verdict yet", "operational", {"check": Verdict.UNKNOWN}, False, None),
    ("disabled check down", "operational", {"check": Verdict.DOWN, "disabled": True}, False, None),
    (
        "check down, incident open",
        "operational",
        {"check": Verdict.DOWN, "open": True},
        False,
        None,
    ),
    (
        "check down, incident resolved",
        "operational",
        {"check": Verdict.DOWN, "resolved": True},
        True,
        "major_outage",
    ),
    ("page already says it", "major_outage", {"check": Verdict.DOWN}, False, None),
    ("alert firing", "operational", {"alert": "partial_outage"}, True, "partial_outage"),
    (
        "alert held back (not yet firing)",
        "operational",
        {"alert": "major_outage", "held": True},
        False,
        None,
    ),
    ("alert firing as operational", "operational", {"alert": "operational"}, False, None),
    (
        "check degraded and alert major",
        "operational",
        {"check": Verdict.DEGRADED, "alert": "major_outage"},
        True,
        "major_outage",
    ),
]


@pytest.mark.parametrize(("case", "status", "facts", "disagrees", "wanted"), CASES)
def test_what_disagrees_with_the_page(case, status, facts, disagrees, wanted):
    component = ComponentFactory(name="Login", status=status)
    ComponentFactory(name="Quiet")  # operational, nothing says otherwise
    if "check" in facts:
        HealthCheckFactory(
            component=component,
            name="Login page",
            verdict=facts["check"],
            enabled=not facts.get("disabled"),
        )
    if "alert" in facts:
        _alert(component, firing=not facts.get("held"), status=facts["alert"])
    if facts.get("open") or facts.get("resolved"):
        incident = open_incident(affected_components=[component])
        component.refresh_from_db()
        if component.status != status:  # opening it changed nothing here; keep the case's
            component.status = status
            component.save()
        if facts.get("resolved"):
            incident_resolve(incident=incident, body="Fixed.")
            component.status = status
            component.save()

    found = disagreements()
    if disagrees:
        [disagreement] = found
        assert disagreement.component == component
        assert disagreement.wanted == wanted
        assert disagreement.reasons
    else:
        assert found == [], case


def test_an_old_resolved_incident_does_not_hide_an_open_one():
    component = ComponentFactory(name="Login")
    HealthCheckFactory(component=component, verdict=Verdict.DOWN)
    incident_resolve(incident=open_incident(affected_components=[component]), body="Fixed.")
    open_incident(name="Still looking", affected_components=[component])
    component.status = "operational"
    component.save()
    assert disagreements() == []


def test_reasons_name_each_failing_source():
    component = ComponentFactory(name="Login")
    HealthCheckFactory(component=component, name="Login page", verdict=Verdict.DOWN)
    _alert(component, status="partial_outage")
    [disagreement] = disagreements()
    assert disagreement.reasons == (
        "Health check “Login page”: down",
        "Alert from Prometheus: Partial outage",
    )
    assert disagreement.wanted_label == "Major outage"


def test_finding_disagreements_costs_four_queries_for_any_number(django_assert_num_queries):
    for n in range(15):
        component = ComponentFactory(name=f"Service {n}")
        HealthCheckFactory(component=component, verdict=Verdict.DOWN)
        _alert(component)
    with django_assert_num_queries(4):
        assert len(disagreements()) == 15


def test_the_console_sets_the_status_in_one_click_as_staffs_word(client, responder):
    component = ComponentFactory(name="Login")
    HealthCheckFactory(component=component, name="Login page", verdict=Verdict.DOWN)
    html = client.get(reverse("admin:index")).content.decode()
    table = html.split('id="console-disagreements"', 1)[1].split("</table>", 1)[0]
    assert "Health check “Login page”: down" in table
    assert "Set Login to major outage" in table
    url = reverse("admin:console_set_status", args=[component.pk])

    response = client.post(url, {"status": "major_outage"})
    assert response.status_code == 302
    component.refresh_from_db()
    assert component.status == "major_outage"
    change = ComponentStatusChange.objects.get(component=component)
    assert change.cause == StatusChangeCause.STAFF and change.actor == responder
    html = client.get(reverse("admin:console_live")).content.decode()
    assert "Nothing: every check, alert and visitors' report agrees with the page." in html


@pytest.mark.parametrize("status", ["", "broken", "operational; drop", "x" * 300])
def test_a_bad_status_is_a_400_and_changes_nothing(client, responder, status):
    component = ComponentFactory(name="Login")
    url = reverse("admin:console_set_status", args=[component.pk])
    assert client.post(url, {"status": status}).status_code == 400
    component.refresh_from_db()
    assert component.status == "operational"


def test_only_staff_who_may_change_components_set_status(client):
    sign_in_staff(client, StaffFactory())  # staff, in no role
    component = ComponentFactory(name="Login")
    HealthCheckFactory(component=component, verdict=Verdict.DOWN)
    html = client.get(reverse("admin:index")).content.decode()
    assert "Set Login to" not in html
    url = reverse("admin:console_set_status", args=[component.pk])
    assert client.post(url, {"status": "major_outage"}).status_code == 403
    assert client.get(url).status_code == 405
    assert client.post(reverse("admin:console_set_status", args=[99999]), {}).status_code in (
        403,
        404,
    )
