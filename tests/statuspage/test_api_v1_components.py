"""Management API v1: components, component groups and uptime, as Statuspage clients use them."""

import json
from datetime import date, timedelta

import pytest
from django.utils import timezone

from components.models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    StatusChangeCause,
)
from components.services import component_set_status
from statuspage.api_v1.keys import api_key_create
from statuspage.models import PageSettings
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import StaffFactory, open_incident
from tests.statuspage.contract import shape_differences
from tests.statuspage.test_api_v2 import REAL_COMPONENT, REFERENCE_GROUP

pytestmark = pytest.mark.django_db

REFERENCE_COMPONENT = {**REAL_COMPONENT, "automation_email": None}
REFERENCE_GROUP_ENTRY = {**REFERENCE_GROUP, "automation_email": None}
GROUP_KEYS = [
    "id",
    "page_id",
    "name",
    "description",
    "components",
    "position",
    "created_at",
    "updated_at",
]


class Api:
    """A Statuspage client: one key, JSON or Rails-bracket form bodies."""

    def __init__(self, client, key: str):
        self.client = client
        self.auth = {"HTTP_AUTHORIZATION": f"OAuth {key}"}
        self.base = f"/api/v1/pages/{PageSettings.load().public_id}"

    def get(self, path: str, **params):
        return self.client.get(self.base + path, params, **self.auth)

    def send(self, method: str, path: str, body=None, *, form: str | None = None):
        if form is not None:
            data, content_type = form, "application/x-www-form-urlencoded"
        else:
            data = body if isinstance(body, str) else json.dumps(body)
            content_type = "application/json"
        call = getattr(self.client, method.lower())
        return call(self.base + path, data=data, content_type=content_type, **self.auth)


def api_for(client, *groups: str) -> Api:
    owner = StaffFactory(groups=list(groups))
    return Api(client, api_key_create(owner=owner, name="Terraform")[1])


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 100_000


@pytest.fixture
def admin(client, page) -> Api:
    return api_for(client, "Admins")


@pytest.fixture
def responder(client, page) -> Api:
    return api_for(client, "Responders")


def assert_error(response, status: int, *words: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == body["message"]
    for word in words:
        assert word in body["message"]


# Reading


def test_components_are_listed_in_page_order_as_the_public_api_lists_them(client, admin):
    web = ComponentGroupFactory(name="Web", position=2)
    ComponentFactory(name="Git", position=1)
    ComponentFactory(name="Pages", group=web, position=2)
    ComponentFactory(name="API", group=web, position=1, major_outage=True)
    ComponentFactory(name="Search", position=3)

    response = admin.get("/components")

    assert response.status_code == 200
    listed = response.json()
    assert [entry["name"] for entry in listed] == ["Git", "Web", "API", "Pages", "Search"]
    public = client.get("/api/v2/components.json").json()["components"]
    assert [{k: v for k, v in e.items() if k != "automation_email"} for e in listed] == public
    for entry in listed:
        reference = REFERENCE_GROUP_ENTRY if entry["group"] else REFERENCE_COMPONENT
        assert shape_differences(entry, reference) == []
    assert listed[1]["status"] == "major_outage" and listed[1]["components"] == [
        listed[2]["id"],
        listed[3]["id"],
    ]


def test_a_component_is_read_by_its_public_id_with_the_manage_api_fields(admin):
    group = ComponentGroupFactory(name="Core")
    component = ComponentFactory(
        name="API", description="REST", group=group, start_date=date(2024, 1, 2)
    )

    body = admin.get(f"/components/{component.public_id}").json()

    assert shape_differences(body, REFERENCE_COMPONENT) == []
    assert body["id"] == component.public_id and body["page_id"] == PageSettings.load().public_id
    assert body["group_id"] == group.public_id and body["group"] is False
    assert body["description"] == "REST" and body["start_date"] == "2024-01-02"
    assert body["position"] == 1 and body["automation_email"] is None


def test_lists_are_paginated_from_page_one_and_at_most_100(admin):
    for position in range(1, 106):
        ComponentFactory(name=f"Component {position:03}", position=position)

    second = admin.get("/components", page=2, per_page=2).json()
    assert [entry["name"] for entry in second] == ["Component 003", "Component 004"]
    assert len(admin.get("/components").json()) == 100
    assert len(admin.get("/components", per_page=500).json()) == 100
    assert [e["name"] for e in admin.get("/components", page=2).json()][0] == "Component 101"
    assert admin.get("/components", page=9).json() == []
    assert_error(admin.get("/components", page=0), 400, "page")


def test_paths_with_a_json_suffix_work(admin):
    component = ComponentFactory(name="API")
    assert admin.get("/components.json").json()[0]["id"] == component.public_id
    response = admin.send(
        "PATCH", f"/components/{component.public_id}.json", {"component": {"name": "REST API"}}
    )
    assert response.status_code == 200
    assert Component.objects.get().name == "REST API"


def test_unknown_ids_and_pages_are_404(admin):
    assert_error(admin.get("/components/nope"), 404, "nope")
    assert_error(admin.send("PATCH", "/components/nope", {"component": {"name": "x"}}), 404)
    assert_error(admin.send("DELETE", "/components/nope"), 404)
    assert_error(admin.get("/components/nope/uptime"), 404)
    assert_error(admin.get("/component-groups/nope"), 404)
    assert_error(admin.send("DELETE", "/component-groups/nope"), 404)
    admin.base = "/api/v1/pages/nopage"
    assert_error(admin.get("/components"), 404)


# Creating, changing and deleting components


def test_creating_a_component_answers_201_and_puts_it_last(admin):
    ComponentFactory(name="Git", position=7)

    response = admin.send(
        "POST",
        "/components",
        {
            "component": {
                "name": "API",
                "description": "REST and GraphQL",
                "showcase": False,
                "only_show_if_degraded": True,
                "start_date": "2024-03-01",
                "unknown_field": "ignored",
            }
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert shape_differences(body, REFERENCE_COMPONENT) == []
    component = Component.objects.get(public_id=body["id"])
    assert (component.name, component.description) == ("API", "REST and GraphQL")
    assert not component.showcase and component.only_show_if_degraded
    assert component.start_date == date(2024, 3, 1) and component.position == 8
    assert body["status"] == "operational" and body["position"] == 2
    assert not component.status_changes.exists()


def test_a_component_created_in_a_status_records_its_first_change(admin):
    group = ComponentGroupFactory(name="Core")
    response = admin.send(
        "POST",
        "/components",
        {"component": {"name": "API", "status": "partial_outage", "group_id": group.public_id}},
    )

    assert response.status_code == 201
    assert response.json()["group_id"] == group.public_id
    change = ComponentStatusChange.objects.get()
    assert (change.from_status, change.to_status) == ("operational", "partial_outage")
    assert change.cause == StatusChangeCause.API and change.actor.groups.get().name == "Admins"


def test_a_form_encoded_rails_body_creates_and_updates(admin):
    created = admin.send(
        "POST", "/components", form="component[name]=API&component[showcase]=false"
    )
    assert created.status_code == 201, created.content
    component = Component.objects.get()
    assert component.name == "API" and not component.showcase

    updated = admin.send(
        "PATCH", f"/components/{component.public_id}", form="component[status]=major_outage"
    )
    assert updated.status_code == 200, updated.content
    assert Component.objects.get().status == ComponentStatus.MAJOR_OUTAGE


def test_patching_the_status_records_the_change_with_cause_api_and_the_keys_owner(admin):
    component = ComponentFactory(name="API")

    response = admin.send(
        "PATCH", f"/components/{component.public_id}", {"component": {"status": "major_outage"}}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "major_outage"
    component.refresh_from_db()
    assert component.status == ComponentStatus.MAJOR_OUTAGE
    change = component.status_changes.get()
    assert change.cause == StatusChangeCause.API
    assert change.actor is not None and change.actor.groups.get().name == "Admins"
    assert component.status_changed_at == change.at


def test_put_changes_fields_and_status_together_and_null_clears(admin):
    group = ComponentGroupFactory(name="Core")
    component = ComponentFactory(name="API", description="old", group=group)

    response = admin.send(
        "PUT",
        f"/components/{component.public_id}",
        {"component": {"name": "REST API", "description": None, "group_id": None, "status": ""}},
    )

    assert response.status_code == 200, response.content
    component.refresh_from_db()
    assert (component.name, component.description, component.group) == ("REST API", "", None)
    assert response.json()["group_id"] is None
    assert not component.status_changes.exists()  # "" leaves the status alone


def test_an_unknown_status_is_400_with_the_allowed_ones_and_writes_nothing(admin):
    component = ComponentFactory(name="API")

    response = admin.send(
        "PATCH",
        f"/components/{component.public_id}",
        {"component": {"name": "Renamed", "status": "on_fire"}},
    )

    assert_error(response, 400, "status", "major_outage")
    component.refresh_from_db()
    assert component.name == "API" and component.status == ComponentStatus.OPERATIONAL
    assert not ComponentStatusChange.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ("{not json", 400, "body"),
        ('["a list"]', 400, "body"),
        ({"component": "major_outage"}, 400, "object"),
        ({"component": {"showcase": {"a": 1}}}, 400, "showcase"),
        ({"component": {"start_date": "someday"}}, 400, "start_date"),
        ({"component": {"name": "x" * 256}}, 400, "name"),
        ({"component": {"name": "", "status": "major_outage"}}, 422, "name"),
        ({"component": {"group_id": "nogroup", "status": "major_outage"}}, 422, "nogroup"),
        ({"component": {}}, 422, "at least one"),
        ({}, 400, "component"),
    ],
)
def test_bad_updates_are_4xx_and_write_nothing(admin, body, status, word):
    component = ComponentFactory(name="API")
    before = Component.objects.values().get()

    response = admin.send("PATCH", f"/components/{component.public_id}", body)

    assert_error(response, status, word)
    assert Component.objects.values().get() == before
    assert not ComponentStatusChange.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"component": {"description": "no name"}},
        {"component": {"name": "API", "status": "sideways"}},
        {"component": {"name": "API", "group_id": "nogroup"}},
        {"component": {"name": "   "}},
    ],
)
def test_bad_creations_are_4xx_and_create_nothing(admin, body):
    response = admin.send("POST", "/components", body)
    assert response.status_code in (400, 422), response.content
    assert not Component.objects.exists()


def test_deleting_a_component_answers_204_and_removes_it(admin):
    component = ComponentFactory(name="API")
    component_set_status(component=component, status=ComponentStatus.MAJOR_OUTAGE)

    response = admin.send("DELETE", f"/components/{component.public_id}")

    assert response.status_code == 204 and response.content == b""
    assert not Component.objects.exists() and not ComponentStatusChange.objects.exists()


# Permissions: a key acts as its owner, with the admin's roles


def test_responders_change_statuses_but_cannot_create_or_delete(responder):
    component = ComponentFactory(name="API")

    assert responder.get("/components").status_code == 200
    patched = responder.send(
        "PATCH", f"/components/{component.public_id}", {"component": {"status": "major_outage"}}
    )
    assert patched.status_code == 200
    assert component.status_changes.get().actor.groups.get().name == "Responders"

    assert_error(responder.send("POST", "/components", {"component": {"name": "X"}}), 403)
    assert_error(responder.send("DELETE", f"/components/{component.public_id}"), 403)
    group_body = {"component_group": {"name": "Core", "components": [component.public_id]}}
    assert_error(responder.send("POST", "/component-groups", group_body), 403)
    assert responder.get("/component-groups").status_code == 200
    assert Component.objects.count() == 1 and not ComponentGroup.objects.exists()


def test_a_key_whose_owner_has_no_role_reads_nothing(client, page):
    component = ComponentFactory(name="API")
    nobody = api_for(client)
    assert_error(nobody.get("/components"), 403, "view_component")
    assert_error(nobody.get(f"/components/{component.public_id}/uptime"), 403)
    assert_error(nobody.get("/component-groups"), 403)


# Component groups


def test_creating_a_group_takes_the_description_beside_the_envelope(admin):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")

    response = admin.send(
        "POST",
        "/component-groups",
        {
            "description": "Everything public",
            "component_group": {"name": "Core", "components": [web.public_id, api.public_id]},
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert list(body) == GROUP_KEYS
    group = ComponentGroup.objects.get()
    assert body["id"] == group.public_id and body["page_id"] == PageSettings.load().public_id
    assert (body["name"], body["description"]) == ("Core", "Everything public")
    assert body["components"] == [web.public_id, api.public_id]
    assert group.description == "Everything public"
    assert list(group.components.order_by("position")) == [web, api]
    assert admin.get(f"/component-groups/{group.public_id}").json() == body
    assert admin.get("/component-groups").json() == [body]


@pytest.mark.parametrize(
    ("group", "status"),
    [
        ({"name": "Core"}, 400),
        ({"components": []}, 400),
        ({"name": "Core", "components": ["nope"]}, 422),
        ({"name": "", "components": []}, 422),
        ("Core", 400),
    ],
)
def test_bad_group_creations_are_4xx_and_write_nothing(admin, group, status):
    component = ComponentFactory(name="API")
    response = admin.send("POST", "/component-groups", {"component_group": group})
    assert_error(response, status)
    assert not ComponentGroup.objects.exists()
    assert Component.objects.get().group is None and Component.objects.get() == component


def test_updating_a_group_renames_it_and_replaces_its_components(admin):
    group = ComponentGroupFactory(name="Core", position=1)
    api = ComponentFactory(name="API", group=group, position=1)
    web = ComponentFactory(name="Web", group=group, position=2)
    search = ComponentFactory(name="Search", position=2)

    response = admin.send(
        "PATCH",
        f"/component-groups/{group.public_id}",
        {"component_group": {"name": "Platform", "components": [search.public_id, web.public_id]}},
    )

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Platform"
    assert response.json()["components"] == [search.public_id, web.public_id]
    api.refresh_from_db()
    assert api.group is None  # left the group, still on the page
    names = [entry["name"] for entry in admin.get("/components").json()]
    assert names == ["Platform", "Search", "Web", "API"]


def test_a_group_description_may_also_come_alone_with_put(admin):
    group = ComponentGroupFactory(name="Core")
    response = admin.send(
        "PUT", f"/component-groups/{group.public_id}", {"description": "New", "component_group": {}}
    )
    assert response.status_code == 200, response.content
    group.refresh_from_db()
    assert group.description == "New" and response.json()["description"] == "New"


def test_deleting_a_group_answers_with_it_and_keeps_its_components(admin):
    group = ComponentGroupFactory(name="Core")
    component = ComponentFactory(name="API", group=group)
    shown = admin.get(f"/component-groups/{group.public_id}").json()

    response = admin.send("DELETE", f"/component-groups/{group.public_id}")

    assert response.status_code == 200
    assert response.json() == shown
    assert not ComponentGroup.objects.exists()
    component.refresh_from_db()
    assert component.group is None


# Uptime


@pytest.fixture
def outage_component(page):
    """Created three days ago; in a major outage for an hour and a partial one for 30 min."""
    now = timezone.now()
    created = now - timedelta(days=3)
    component = ComponentFactory(
        name="API", created_at=created, status_changed_at=created, uptime_accounted_until=created
    )
    steps = [
        (now - timedelta(hours=5), ComponentStatus.MAJOR_OUTAGE),
        (now - timedelta(hours=4), ComponentStatus.PARTIAL_OUTAGE),
        (now - timedelta(hours=3, minutes=30), ComponentStatus.OPERATIONAL),
    ]
    for at, status in steps:
        component_set_status(component=component, status=status, at=at)
    return component


def test_uptime_counts_outage_seconds_since_the_component_began(admin, outage_component):
    incident = open_incident(name="API down", affected_components=[outage_component])

    response = admin.get(f"/components/{outage_component.public_id}/uptime")

    assert response.status_code == 200, response.content
    body = response.json()
    today = timezone.now().date()
    assert body["id"] == outage_component.public_id and body["name"] == "API"
    assert body["range_start"] == (today - timedelta(days=3)).isoformat()
    assert body["range_end"] == today.isoformat()
    assert body["major_outage"] == 3600 and body["partial_outage"] == 1800
    assert 97 < body["uptime_percentage"] < 100
    assert body["warnings"] == []
    assert body["related_events"] == [{"id": incident.public_id}]


def test_uptime_accepts_partial_dates_and_keeps_to_six_months(admin, outage_component):
    path = f"/components/{outage_component.public_id}/uptime"

    old = admin.get(path, start="2020", end="2020-02").json()
    assert (old["range_start"], old["range_end"]) == ("2020-01-01", "2020-02-29")
    assert old["uptime_percentage"] is None and old["major_outage"] == 0
    assert old["related_events"] == [] and old["warnings"]

    long = admin.get(path, start="2019-01-01", end="2020-12-31").json()
    assert long["range_start"] == "2020-06-30"
    assert any("six calendar months" in warning for warning in long["warnings"])

    assert_error(admin.get(path, start="2020-13"), 400, "start")
    assert_error(admin.get(path, start="yesterday"), 400, "start")
    assert_error(admin.get(path, start="2020-02-01", end="2020-01-01"), 422, "start")
    assert_error(admin.get(path, end="0001-01"), 422, "1970")


def test_group_uptime_pools_its_components_days(admin, outage_component):
    now = timezone.now()
    created = now - timedelta(days=3)
    healthy = ComponentFactory(
        name="Web", created_at=created, status_changed_at=created, uptime_accounted_until=created
    )
    group = ComponentGroupFactory(name="Core")
    Component.objects.filter(pk__in=[outage_component.pk, healthy.pk]).update(group=group)
    incident = open_incident(name="API down", affected_components=[outage_component, healthy])

    response = admin.get(f"/component-groups/{group.public_id}/uptime")

    assert response.status_code == 200, response.content
    body = response.json()
    alone = admin.get(f"/components/{outage_component.public_id}/uptime").json()
    assert body["id"] == group.public_id and body["name"] == "Core"
    assert body["range_start"] == alone["range_start"]
    assert body["major_outage"] == 3600 and body["partial_outage"] == 1800
    # Half the component-days were healthy: the group's downtime share is half the API's.
    assert body["uptime_percentage"] == pytest.approx(50 + alone["uptime_percentage"] / 2, abs=0.01)
    assert body["related_events"] == [{"id": incident.public_id}]
    assert_error(admin.get("/component-groups/nope/uptime"), 404)


def test_an_empty_groups_uptime_says_there_is_no_data(admin):
    group = ComponentGroupFactory(name="Empty")

    body = admin.get(f"/component-groups/{group.public_id}/uptime").json()

    assert body["uptime_percentage"] is None and body["major_outage"] == 0
    assert body["warnings"]
