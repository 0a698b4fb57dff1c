"""Management API v1: incidents, maintenances, their updates and postmortems."""

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from components.models import Component
from incidents.models import Incident, IncidentStatus, IncidentUpdate
from incidents.notify.models import NotificationEvent
from statuspage.api_v1.keys import api_key_create
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db

PUBLIC_INCIDENT_KEYS = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "impact",
    "shortlink",
    "started_at",
    "page_id",
    "incident_updates",
    "components",
}
MANAGE_KEYS = {
    "impact_override",
    "metadata",
    "backfilled",
    "postmortem_body",
    "postmortem_published_at",
    "postmortem_ignored",
    "scheduled_for",
    "scheduled_until",
    "scheduled_remind_prior",
    "scheduled_reminded_at",
    "scheduled_auto_in_progress",
    "scheduled_auto_completed",
    "auto_transition_deliver_notifications_at_start",
    "auto_transition_deliver_notifications_at_end",
}


@pytest.fixture
def api(manage_api):
    return manage_api


def test_creating_an_incident_sets_component_statuses_and_posts_one_update(api, page):
    api_component, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    response = api(
        "post",
        "/incidents",
        {
            "incident": {
                "name": "API errors",
                "status": "identified",
                "body": "We found the cause.",
                "component_ids": [web.public_id],
                "components": {api_component.public_id: "major_outage"},
                "deliver_notifications": False,
                "auto_tweet_on_creation": True,
            }
        },
    )
    assert response.status_code == 201
    data = response.json()
    assert data.keys() >= PUBLIC_INCIDENT_KEYS | MANAGE_KEYS
    assert data["name"] == "API errors" and data["status"] == "identified"
    assert data["impact"] == "critical" and data["page_id"] == page.public_id
    assert {c["id"] for c in data["components"]} == {api_component.public_id, web.public_id}
    [update] = data["incident_updates"]
    assert update["body"] == "We found the cause." and update["deliver_notifications"] is False
    assert update["affected_components"] == [
        {
            "code": api_component.public_id,
            "name": "API",
            "old_status": "operational",
            "new_status": "major_outage",
        }
    ]
    api_component.refresh_from_db()
    assert api_component.status == "major_outage"
    assert Incident.objects.get().public_id == data["id"]
    assert not NotificationEvent.objects.exists()


def test_form_encoded_bodies_with_rails_brackets_work_too(client, page):
    key = api_key_create(owner=StaffFactory(groups=["Admins"]), name="curl")[1]
    component = ComponentFactory()
    response = client.post(
        f"/api/v1/pages/{page.public_id}/incidents.json",
        urlencode(
            {
                "incident[name]": "Slow",
                f"incident[components][{component.public_id}]": "degraded_performance",
                "incident[deliver_notifications]": "false",
            }
        ),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"OAuth {key}",
    )
    assert response.status_code == 201
    assert response.json()["status"] == "investigating"
    assert Component.objects.get().status == "degraded_performance"


def test_an_unknown_component_writes_nothing(api):
    ComponentFactory()
    response = api(
        "post",
        "/incidents",
        {"incident": {"name": "Down", "components": {"nope": "major_outage"}}},
    )
    assert response.status_code == 422
    assert "nope" in response.json()["message"]
    assert not Incident.objects.exists()


def test_a_bad_component_status_rolls_everything_back(api):
    component = ComponentFactory()
    response = api(
        "post",
        "/incidents",
        {"incident": {"name": "Down", "components": {component.public_id: "on_fire"}}},
    )
    assert response.status_code == 422
    assert not Incident.objects.exists() and not IncidentUpdate.objects.exists()
    assert Component.objects.get().status == "operational"


@pytest.mark.parametrize(
    "body",
    [
        {"incident": {"name": "x", "component_ids": "not-a-list"}},
        {"incident": {"name": "x", "deliver_notifications": "maybe"}},
        {"incident": {"name": "x", "components": ["a"]}},
        {"incident": {"name": "x", "metadata": {"jira": "not an object"}}},
        {"incident": "x"},
        {},
    ],
)
def test_wrong_types_are_400_with_the_error_body(api, body):
    response = api("post", "/incidents", body)
    assert response.status_code == 400
    assert response.json()["error"] == response.json()["message"]
    assert not Incident.objects.exists()


def test_invalid_json_is_400(api):
    response = api("post", "/incidents", raw="{nope")
    assert response.status_code == 400
    assert not Incident.objects.exists()


def test_a_missing_name_is_422(api):
    response = api("post", "/incidents", {"incident": {"status": "investigating"}})
    assert response.status_code == 422
    assert "name" in response.json()["message"]


def test_scheduled_for_makes_a_maintenance(api):
    start = timezone.now() + timedelta(days=1)
    response = api(
        "post",
        "/incidents",
        {
            "incident": {
                "name": "Database upgrade",
                "scheduled_for": start.isoformat(),
                "scheduled_until": (start + timedelta(hours=2)).isoformat(),
                "scheduled_auto_transition": False,
                "scheduled_remind_prior": False,
            }
        },
    )
    assert response.status_code == 201
    data = response.json()
    assert data["status"] == "scheduled" and data["impact"] == "maintenance"
    assert data["scheduled_for"] is not None and data["scheduled_until"] is not None
    assert data["scheduled_auto_in_progress"] is False
    assert data["scheduled_remind_prior"] is False
    incident = Incident.objects.get()
    assert incident.is_maintenance and incident.scheduled_for == start.replace(
        microsecond=incident.scheduled_for.microsecond
    )


def test_a_maintenance_needs_an_end(api):
    response = api(
        "post",
        "/incidents",
        {"incident": {"name": "Upgrade", "status": "scheduled"}},
    )
    assert response.status_code == 422
    assert not Incident.objects.exists()


def test_a_backfilled_incident_is_resolved_at_its_date(api):
    response = api(
        "post",
        "/incidents",
        {"incident": {"name": "Old outage", "backfilled": True, "backfill_date": "2024-03-01"}},
    )
    assert response.status_code == 201
    data = response.json()
    assert data["status"] == "resolved" and data["backfilled"] is True
    assert data["started_at"].startswith("2024-03-01")


def test_patching_status_and_body_posts_exactly_one_update(api):
    component = ComponentFactory()
    incident = open_incident(component_statuses={component: "major_outage"})
    response = api(
        "patch",
        f"/incidents/{incident.public_id}",
        {
            "incident": {
                "status": "monitoring",
                "body": "A fix is out.",
                "components": {component.public_id: "degraded_performance"},
            }
        },
    )
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "monitoring" and data["monitoring_at"] is not None
    assert len(data["incident_updates"]) == 2
    assert data["incident_updates"][0]["body"] == "A fix is out."
    assert incident.updates.count() == 2
    assert Component.objects.get().status == "degraded_performance"


def test_patching_only_the_name_posts_no_update(api):
    incident = open_incident()
    response = api("patch", f"/incidents/{incident.public_id}", {"incident": {"name": "Renamed"}})
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert incident.updates.count() == 1


@pytest.mark.parametrize(
    "also",
    [
        {"name": "Renamed"},
        {"impact_override": "major"},
        {"metadata": {"jira": {"key": "OPS-1"}}},
        {"component_ids": ["<component>"]},
    ],
    ids=["name", "impact override", "metadata", "component ids"],
)
def test_a_patch_that_changes_the_incident_and_posts_an_update_keeps_both(api, also):
    """The update is posted to the incident as the other changes left it, not as first read."""
    component = ComponentFactory()
    incident = open_incident()
    if "component_ids" in also:
        also = {"component_ids": [component.public_id]}
    body = {"incident": {**also, "status": "identified", "body": "Found it."}}
    response = api("patch", f"/incidents/{incident.public_id}", body)
    assert response.status_code == 200
    incident.refresh_from_db()
    shown = response.json()
    assert incident.status == shown["status"] == "identified"
    assert shown["incident_updates"][0]["body"] == "Found it."
    if "name" in also:
        assert incident.name == shown["name"] == "Renamed"
    if "impact_override" in also:
        assert incident.impact_override == shown["impact_override"] == "major"
    if "metadata" in also:
        assert incident.metadata == shown["metadata"] == {"jira": {"key": "OPS-1"}}
    if "component_ids" in also:
        assert [c["id"] for c in shown["components"]] == [component.public_id]
        assert list(incident.components.all()) == [component]


def test_patching_impact_override_changes_the_impact(api):
    incident = open_incident()
    response = api(
        "put", f"/incidents/{incident.public_id}", {"incident": {"impact_override": "major"}}
    )
    assert response.status_code == 200
    assert response.json()["impact"] == "major"
    assert response.json()["impact_override"] == "major"


def test_resolving_through_patch_restores_components(api):
    component = ComponentFactory()
    incident = open_incident(component_statuses={component: "partial_outage"})
    response = api(
        "patch",
        f"/incidents/{incident.public_id}",
        {"incident": {"status": "resolved", "body": "Fixed."}},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    assert response.json()["resolved_at"] is not None
    assert Component.objects.get().status == "operational"


def test_a_failing_part_of_a_patch_writes_nothing(api):
    incident = open_incident(name="Before")
    response = api(
        "patch",
        f"/incidents/{incident.public_id}",
        {"incident": {"name": "After", "status": "completed"}},
    )
    assert response.status_code == 422
    incident.refresh_from_db()
    assert incident.name == "Before" and incident.updates.count() == 1


def test_an_empty_patch_is_refused(api):
    incident = open_incident()
    response = api("patch", f"/incidents/{incident.public_id}", {"incident": {}})
    assert response.status_code == 422


def test_an_unknown_incident_is_404(api):
    assert api("get", "/incidents/nope").status_code == 404
    assert api("patch", "/incidents/nope", {"incident": {"name": "x"}}).status_code == 404


def test_rescheduling_a_maintenance(api):
    maintenance = schedule_maintenance()
    later = timezone.now() + timedelta(days=3)
    response = api(
        "patch",
        f"/incidents/{maintenance.public_id}",
        {
            "incident": {
                "scheduled_for": later.isoformat(),
                "scheduled_until": (later + timedelta(hours=1)).isoformat(),
            }
        },
    )
    assert response.status_code == 200
    maintenance.refresh_from_db()
    assert abs(maintenance.scheduled_for - later) < timedelta(seconds=1)
    assert maintenance.updates.count() == 1


def test_an_incident_cannot_be_given_a_schedule(api):
    incident = open_incident()
    response = api(
        "patch",
        f"/incidents/{incident.public_id}",
        {"incident": {"scheduled_for": timezone.now().isoformat()}},
    )
    assert response.status_code == 422


def test_listing_searches_and_pages_newest_first(api):
    first = open_incident(name="Database slow")
    second = open_incident(name="Login errors", body="The database is fine.")
    third = open_incident(name="Email delays")
    everything = api("get", "/incidents").json()
    assert [i["id"] for i in everything] == [third.public_id, second.public_id, first.public_id]
    found = api("get", "/incidents", q="database").json()
    assert {i["id"] for i in found} == {first.public_id, second.public_id}
    page_two = api("get", "/incidents", limit=2, page=2).json()
    assert [i["id"] for i in page_two] == [first.public_id]


def test_a_negative_page_is_400(api):
    assert api("get", "/incidents", page=0).status_code == 400


def test_unresolved_scheduled_upcoming_and_active_lists(api):
    open_one = open_incident()
    resolved = open_incident()
    api("patch", f"/incidents/{resolved.public_id}", {"incident": {"status": "resolved"}})
    upcoming = schedule_maintenance()
    active = schedule_maintenance(starts_in=timedelta(hours=1))
    api("patch", f"/incidents/{active.public_id}", {"incident": {"status": "in_progress"}})

    def ids(path):
        response = api("get", path)
        assert response.status_code == 200
        return {i["id"] for i in response.json()}

    assert ids("/incidents/unresolved") == {open_one.public_id}
    assert ids("/incidents/scheduled") == {upcoming.public_id, active.public_id}
    assert ids("/incidents/upcoming") == {upcoming.public_id}
    assert ids("/incidents/active_maintenance") == {active.public_id}


def test_editing_a_past_update(api):
    incident = open_incident(body="Typo in here.")
    update = incident.updates.get()
    earlier = timezone.now() - timedelta(minutes=30)
    response = api(
        "patch",
        f"/incidents/{incident.public_id}/incident_updates/{update.public_id}",
        {"incident_update": {"body": "No typo.", "display_at": earlier.isoformat()}},
    )
    assert response.status_code == 200
    data = response.json()
    assert data["id"] == update.public_id and data["body"] == "No typo."
    assert data["incident_id"] == incident.public_id
    update.refresh_from_db()
    assert update.body == "No typo." and abs(update.display_at - earlier) < timedelta(seconds=1)
    assert incident.updates.count() == 1


def test_an_update_of_another_incident_is_404(api):
    incident, other = open_incident(), open_incident()
    update = other.updates.get()
    response = api(
        "put",
        f"/incidents/{incident.public_id}/incident_updates/{update.public_id}",
        {"incident_update": {"body": "x"}},
    )
    assert response.status_code == 404


def test_deleting_returns_the_deleted_incident(api):
    incident = open_incident(name="Mistake")
    response = api("delete", f"/incidents/{incident.public_id}")
    assert response.status_code == 200
    assert response.json()["name"] == "Mistake"
    assert not Incident.objects.exists()


def test_postmortem_draft_then_publish(api):
    incident = open_incident()
    api("patch", f"/incidents/{incident.public_id}", {"incident": {"status": "resolved"}})
    path = f"/incidents/{incident.public_id}/postmortem"
    draft = api("put", path, {"postmortem": {"body_draft": "What happened."}})
    assert draft.status_code == 200
    assert draft.json()["body_draft"] == "What happened." and draft.json()["body"] is None
    assert api("get", f"/incidents/{incident.public_id}").json()["postmortem_body"] is None

    published = api("put", path + "/publish", {"postmortem": {"notify_subscribers": False}})
    assert published.status_code == 200
    assert published.json()["body"] == "What happened."
    assert published.json()["published_at"] is not None
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.POSTMORTEM
    assert not NotificationEvent.objects.filter(kind="postmortem_published").exists()
    assert api("get", path).json()["body"] == "What happened."

    reverted = api("put", path + "/revert")
    assert reverted.status_code == 200 and reverted.json()["published_at"] is None
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED


def test_deleting_a_published_postmortem(api):
    incident = open_incident()
    api("patch", f"/incidents/{incident.public_id}", {"incident": {"status": "resolved"}})
    path = f"/incidents/{incident.public_id}/postmortem"
    api("put", path, {"postmortem": {"body_draft": "What happened."}})
    api("put", path + "/publish", {"postmortem": {"notify_subscribers": False}})

    assert api("delete", path).status_code == 204

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED and incident.postmortem_body == ""
    assert api("get", path).json()["body_draft"] is None
    assert api("delete", path).status_code == 422  # nothing left to delete


def test_an_open_incident_cannot_publish_a_postmortem(api):
    incident = open_incident()
    path = f"/incidents/{incident.public_id}/postmortem"
    api("put", path, {"postmortem": {"body_draft": "Too early."}})
    assert api("put", path + "/publish", {"postmortem": {}}).status_code == 422


def test_a_key_without_incident_permissions_is_403(client, page):
    raw = api_key_create(owner=StaffFactory(), name="No role")[1]
    headers = {"HTTP_AUTHORIZATION": f"OAuth {raw}"}
    base = f"/api/v1/pages/{page.public_id}/incidents"
    assert client.get(base, **headers).status_code == 403
    response = client.post(
        base, json.dumps({"incident": {"name": "x"}}), content_type="application/json", **headers
    )
    assert response.status_code == 403
    assert not Incident.objects.exists()


def test_a_read_only_key_cannot_delete(client, page):
    owner = StaffFactory()
    owner.user_permissions.add(Permission.objects.get(codename="view_incident"))
    raw = api_key_create(owner=owner, name="Reader")[1]
    incident = open_incident()
    headers = {"HTTP_AUTHORIZATION": f"OAuth {raw}"}
    base = f"/api/v1/pages/{page.public_id}/incidents"
    assert client.get(base, **headers).status_code == 200
    assert client.delete(f"{base}/{incident.public_id}", **headers).status_code == 403
    assert Incident.objects.exists()


def test_metadata_is_kept_per_tool(api):
    created = api(
        "post",
        "/incidents",
        {"incident": {"name": "Queue lag", "metadata": {"jira": {"issue": "OPS-1"}}}},
    ).json()
    assert created["metadata"] == {"jira": {"issue": "OPS-1"}}

    path = f"/incidents/{created['id']}"
    api("patch", path, {"incident": {"metadata": {"pagerduty": {"incident": "P123"}}}})
    api("patch", path, {"incident": {"metadata": {"jira": {"issue": "OPS-2"}}}})

    assert api("get", path).json()["metadata"] == {
        "jira": {"issue": "OPS-2"},
        "pagerduty": {"incident": "P123"},
    }
    assert len(api("get", path).json()["incident_updates"]) == 1  # no update was posted


def test_a_schedule_makes_a_maintenance_and_old_years_keep_four_digits(api):
    half = api("post", "/incidents", {"incident": {"name": "x", "scheduled_until": "2030-01-01"}})
    assert half.status_code == 422 and "start and an end" in half.json()["error"]

    body = {"scheduled_for": "0164-10-29T07:00:00Z", "scheduled_until": "0164-10-29T09:00:00Z"}
    ancient = api("post", "/incidents", {"incident": {"name": "Old", **body}})
    assert ancient.status_code == 201
    assert ancient.json()["scheduled_for"] == "0164-10-29T07:00:00.000Z"
