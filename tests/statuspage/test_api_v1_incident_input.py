"""Management API v1: a status or an impact the services do not know is refused in their
words, and nothing is written (the API narrows the JSON's strings before calling them)."""

import pytest

from incidents.models import Incident, IncidentUpdate
from tests.incidents.factories import open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(manage_api):
    return manage_api


def refusal(response) -> str:
    assert response.status_code == 422
    return response.json()["message"]


def test_creating_with_an_unknown_status_is_422_and_creates_nothing(api):
    response = api("post", "/incidents", {"incident": {"name": "Errors", "status": "bogus"}})
    assert refusal(response) == "status: 'bogus' is not a status of an incident."
    assert not Incident.objects.exists()


def test_scheduling_with_an_unknown_status_names_a_maintenance(api):
    body = {
        "incident": {
            "name": "Upgrade",
            "status": "bogus",
            "scheduled_for": "2030-01-01T10:00:00Z",
            "scheduled_until": "2030-01-01T11:00:00Z",
        }
    }
    response = api("post", "/incidents", body)
    assert refusal(response) == "status: 'bogus' is not a status of a maintenance."
    assert not Incident.objects.exists()


def test_a_status_of_the_other_kind_is_refused_by_the_service(api):
    response = api("post", "/incidents", {"incident": {"name": "Errors", "status": "postmortem"}})
    assert refusal(response) == "status: 'postmortem' is not a status of an incident."
    assert not Incident.objects.exists()


def test_posting_an_unknown_status_to_an_incident_is_422_and_posts_nothing(api):
    incident = open_incident()
    updates = IncidentUpdate.objects.count()
    response = api("patch", f"/incidents/{incident.public_id}", {"incident": {"status": "bogus"}})
    assert refusal(response) == "status: 'bogus' is not a status of an incident."
    assert IncidentUpdate.objects.count() == updates
    assert Incident.objects.get(pk=incident.pk).status == incident.status


def test_posting_an_unknown_status_to_a_maintenance_names_a_maintenance(api):
    maintenance = schedule_maintenance()
    response = api(
        "patch", f"/incidents/{maintenance.public_id}", {"incident": {"status": "bogus"}}
    )
    assert refusal(response) == "status: 'bogus' is not a status of a maintenance."


def test_an_unknown_impact_override_is_422_on_create_and_on_change(api):
    body = {"incident": {"name": "Errors", "status": "investigating", "impact_override": "huge"}}
    assert refusal(api("post", "/incidents", body)) == "impact_override: Unknown impact 'huge'."
    assert not Incident.objects.exists()
    incident = open_incident()
    response = api(
        "patch", f"/incidents/{incident.public_id}", {"incident": {"impact_override": "huge"}}
    )
    assert refusal(response) == "impact_override: Unknown impact 'huge'."
    assert Incident.objects.get(pk=incident.pk).impact_override == ""
