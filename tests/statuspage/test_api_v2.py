"""The public API v2 as a Statuspage client sees it: shapes, filters, ids, times and caching.

Shapes are compared with real Statuspage payloads (tests/fixtures/statuspage/) by
tests/statuspage/contract.py; the tests at the top check that comparison itself.
"""

import copy
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django.utils.http import http_date

from components.models import ComponentStatus
from components.services import component_set_status
from incidents.models import (
    AffectedComponent,
    Incident,
    IncidentKind,
    IncidentStatus,
    IncidentUpdate,
)
from incidents.services import incident_post_update, incident_resolve, postmortem_publish
from statuspage.public.snapshots.build import DEFAULT_CACHE_CONTROL
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import open_incident, schedule_maintenance
from tests.statuspage.contract import shape_differences

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "statuspage"
GITHUB = json.loads((FIXTURES / "github-summary-2022-11-25.json").read_text())
WEBHOOK_RESOLVED = json.loads((FIXTURES / "webhook-incident-resolved.json").read_text())
WEBHOOK_CREATED = json.loads((FIXTURES / "webhook-incident-created.json").read_text())

ID = re.compile(r"^[a-z0-9]{12}$")
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CHICAGO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-0[56]:00$")
TIME_KEYS = {
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "started_at",
    "display_at",
    "scheduled_for",
    "scheduled_until",
}

# References built from real payloads. There is no real capture with a group in the
# fixtures: a group is a real component entry plus `group: true` and its children's ids
# (contract §A.4, key order as in a live page). Maintenances are real incidents plus
# `scheduled_for` / `scheduled_until` after `components`, as live pages send them.
REAL_COMPONENT = GITHUB["components"][0]
REAL_INCIDENT = GITHUB["incidents"][0]
REFERENCE_GROUP = {**REAL_COMPONENT, "group": True, "components": [REAL_COMPONENT["id"]]}
REFERENCE_MAINTENANCE = {
    **REAL_INCIDENT,
    "impact": "maintenance",
    "scheduled_for": REAL_INCIDENT["started_at"],
    "scheduled_until": REAL_INCIDENT["updated_at"],
}
REFERENCE_COMPONENTS = [*GITHUB["components"], REFERENCE_GROUP]
REFERENCES = {
    "summary": {
        **GITHUB,
        "components": REFERENCE_COMPONENTS,
        "scheduled_maintenances": [REFERENCE_MAINTENANCE],
    },
    "status": {"page": GITHUB["page"], "status": GITHUB["status"]},
    "components": {"page": GITHUB["page"], "components": REFERENCE_COMPONENTS},
    "incidents": {"page": GITHUB["page"], "incidents": [REAL_INCIDENT]},
    "incidents/unresolved": {"page": GITHUB["page"], "incidents": [REAL_INCIDENT]},
    "scheduled-maintenances": {
        "page": GITHUB["page"],
        "scheduled_maintenances": [REFERENCE_MAINTENANCE],
    },
    "scheduled-maintenances/upcoming": {
        "page": GITHUB["page"],
        "scheduled_maintenances": [REFERENCE_MAINTENANCE],
    },
    "scheduled-maintenances/active": {
        "page": GITHUB["page"],
        "scheduled_maintenances": [REFERENCE_MAINTENANCE],
    },
}
ENDPOINTS = list(REFERENCES)


def url(endpoint: str) -> str:
    return f"/api/v2/{endpoint}.json"


def get_json(client, endpoint: str, **headers) -> dict:
    response = client.get(url(endpoint), **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def times_in(value, key=None):
    if isinstance(value, dict):
        for name, item in value.items():
            yield from times_in(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from times_in(item, key)
    elif key in TIME_KEYS and value is not None:
        yield value


def ids_in(data: dict) -> set[str]:
    found = {data["page"]["id"]}
    for component in data.get("components", []):
        found.add(component["id"])
    for incident in data.get("incidents", []) + data.get("scheduled_maintenances", []):
        found.add(incident["id"])
        found.update(update["id"] for update in incident["incident_updates"])
    return found


def later(minutes: int):
    return timezone.now() + timedelta(minutes=minutes)


@pytest.fixture
def full_page(page):
    """Groups, a hidden component, open/resolved/postmortem incidents, every maintenance state."""
    group = ComponentGroupFactory(name="Infrastructure", position=2)
    api = ComponentFactory(name="API", description="Requests to the API", position=1)
    database = ComponentFactory(name="Database", group=group, position=7)
    queue = ComponentFactory(name="Queue", group=group, position=9)
    search = ComponentFactory(name="Search", only_show_if_degraded=True, position=3)
    ComponentGroupFactory(name="Empty group", position=5)

    outage = open_incident(
        name="Database errors",
        body="We are **looking** into it.\n\n- queries time out",
        component_statuses={database: ComponentStatus.PARTIAL_OUTAGE},
    )
    incident_post_update(
        incident=outage, status=IncidentStatus.IDENTIFIED, body="Found it.", display_at=later(1)
    )

    resolved = open_incident(name="API slowness", started_at=timezone.now() - timedelta(days=2))
    incident_post_update(incident=resolved, status=IncidentStatus.MONITORING, body="A fix is out.")
    incident_resolve(incident=resolved)

    with_postmortem = open_incident(
        name="Search down",
        component_statuses={search: ComponentStatus.MAJOR_OUTAGE},
        started_at=timezone.now() - timedelta(days=3),
    )
    incident_resolve(incident=with_postmortem)
    postmortem_publish(incident=with_postmortem, body="# What happened\n\nA disk filled up.")

    scheduled = schedule_maintenance(name="Upgrade", affected_components=[api])
    in_progress = schedule_maintenance(
        name="Network work", starts_in=timedelta(minutes=-30), affected_components=[queue]
    )
    incident_post_update(incident=in_progress, status=IncidentStatus.IN_PROGRESS, body="Started.")
    verifying = schedule_maintenance(name="Disk swap", starts_in=timedelta(minutes=-50))
    incident_post_update(incident=verifying, status=IncidentStatus.IN_PROGRESS, body="Started.")
    incident_post_update(incident=verifying, status=IncidentStatus.VERIFYING, body="Checking.")
    completed = schedule_maintenance(name="Old work", starts_in=timedelta(days=-2))
    incident_post_update(incident=completed, status=IncidentStatus.IN_PROGRESS, body="Started.")
    incident_resolve(incident=completed)
    return {
        "group": group,
        "api": api,
        "database": database,
        "queue": queue,
        "search": search,
        "outage": outage,
        "resolved": resolved,
        "with_postmortem": with_postmortem,
        "scheduled": scheduled,
        "in_progress": in_progress,
        "verifying": verifying,
        "completed": completed,
    }


# The checker itself: it must fail when the shape is wrong, or the shape tests prove nothing.


def test_checker_accepts_the_real_payload_against_itself():
    assert shape_differences(GITHUB, GITHUB) == []
    assert shape_differences(WEBHOOK_RESOLVED, WEBHOOK_CREATED) == []


def test_checker_reports_a_missing_key():
    ours = copy.deepcopy(GITHUB)
    del ours["incidents"][0]["incident_updates"][1]["display_at"]
    assert shape_differences(ours, GITHUB) == [
        "$.incidents[0].incident_updates[1].display_at: missing (Statuspage sends it)"
    ]


def test_checker_reports_an_extra_key():
    ours = copy.deepcopy(GITHUB)
    ours["components"][3]["uptime"] = 99.9
    assert shape_differences(ours, GITHUB) == [
        "$.components[3].uptime: extra key (Statuspage has no such key)"
    ]


def test_checker_reports_a_wrong_type():
    ours = copy.deepcopy(GITHUB)
    ours["components"][2]["position"] = "3"
    ours["components"][4]["showcase"] = None
    assert shape_differences(ours, GITHUB) == [
        "$.components[2].position: type string, Statuspage sends number",
        "$.components[4].showcase: type null, Statuspage sends boolean",
    ]


def test_checker_reports_values_outside_the_enums():
    ours = copy.deepcopy(GITHUB)
    ours["components"][0]["status"] = "down"
    ours["incidents"][0]["status"] = "operational"
    ours["incidents"][0]["impact"] = "huge"
    ours["incidents"][0]["incident_updates"][0]["affected_components"][0]["new_status"] = "ok"
    ours["status"]["indicator"] = "green"
    differences = shape_differences(ours, GITHUB)
    assert [d.split(" is not one of")[0] for d in differences] == [
        "$.components[0].status: 'down'",
        "$.incidents[0].status: 'operational'",
        "$.incidents[0].impact: 'huge'",
        "$.incidents[0].incident_updates[0].affected_components[0].new_status: 'ok'",
        "$.status.indicator: 'green'",
    ]


def test_checker_accepts_null_only_where_statuspage_sends_null():
    ours = copy.deepcopy(GITHUB)
    ours["components"][0]["description"] = None
    ours["components"][0]["group_id"] = "abcdefghijkl"
    ours["incidents"][0]["resolved_at"] = "2022-11-25T16:00:00.000Z"
    ours["incidents"][0]["incident_updates"][1]["affected_components"] = []
    assert shape_differences(ours, GITHUB) == []
    ours["incidents"][0]["name"] = None
    assert shape_differences(ours, GITHUB) == [
        "$.incidents[0].name: type null, Statuspage sends string"
    ]


def test_checker_compares_each_list_element_with_a_reference_of_its_kind():
    group = {**REFERENCE_GROUP, "components": ["abcdefghijkl"]}
    assert shape_differences([REAL_COMPONENT, group], REFERENCE_COMPONENTS) == []
    broken_group = {k: v for k, v in group.items() if k != "only_show_if_degraded"}
    assert shape_differences([broken_group], REFERENCE_COMPONENTS) == [
        "$[0].only_show_if_degraded: missing (Statuspage sends it)"
    ]
    # A group where Statuspage shows only plain components is itself a difference.
    assert shape_differences([group], GITHUB["components"]) == [
        "$[0]: a group, Statuspage sends none here"
    ]
    # Every element is checked, not only the first.
    late = [REAL_COMPONENT, REAL_COMPONENT, {**REAL_COMPONENT, "showcase": "yes"}]
    assert shape_differences(late, GITHUB["components"]) == [
        "$[2].showcase: type string, Statuspage sends boolean"
    ]


# Shapes of every endpoint


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_has_statuspage_shape(client, full_page, endpoint):
    data = get_json(client, endpoint)
    assert list(data) == list(REFERENCES[endpoint])
    assert shape_differences(data, REFERENCES[endpoint]) == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_has_statuspage_shape_on_an_empty_page(client, page, endpoint):
    data = get_json(client, endpoint)
    assert list(data) == list(REFERENCES[endpoint])
    assert shape_differences(data, REFERENCES[endpoint]) == []
    assert all(value == [] for key, value in data.items() if key not in ("page", "status"))
    if "status" in data:
        assert data["status"] == {"indicator": "none", "description": "All Systems Operational"}


def test_endpoints_are_not_empty_on_the_full_page(client, full_page):
    # Shape checks of empty lists would prove nothing.
    summary = get_json(client, "summary")
    assert len(summary["components"]) == 6
    assert len(summary["incidents"]) == 1
    assert len(summary["scheduled_maintenances"]) == 3
    assert len(get_json(client, "incidents")["incidents"]) == 3
    assert len(get_json(client, "scheduled-maintenances")["scheduled_maintenances"]) == 4


# Statuspage payloads from 2017 predate these keys; everything else must match.
NEWER_THAN_2017 = {"started_at", "start_date", "group", "only_show_if_degraded", "tweet_id"}
WEBHOOK_ONLY = {
    "postmortem_ignored",
    "postmortem_body",
    "postmortem_body_last_updated_at",
    "postmortem_published_at",
    "postmortem_notified_subscribers",
    "postmortem_notified_twitter",
    "backfilled",
    "scheduled_for",
    "scheduled_until",
    "scheduled_remind_prior",
    "scheduled_reminded_at",
    "impact_override",
    "scheduled_auto_in_progress",
    "scheduled_auto_completed",
    "wants_twitter_update",
    "twitter_updated_at",
}


def public_part(value):
    """A webhook's incident without the keys only webhooks carry (contract §C.1)."""
    if isinstance(value, dict):
        return {k: public_part(v) for k, v in value.items() if k not in WEBHOOK_ONLY}
    if isinstance(value, list):
        return [public_part(v) for v in value]
    return value


@pytest.mark.parametrize("fixture", [WEBHOOK_RESOLVED, WEBHOOK_CREATED])
def test_resolved_incidents_match_real_incidents_from_webhooks(client, full_page, fixture):
    reference = public_part(fixture["incident"])
    incidents = get_json(client, "incidents")["incidents"]
    resolved = [i for i in incidents if i["status"] == "resolved"]
    assert resolved and len(resolved[0]["incident_updates"]) == 3
    for incident in incidents:
        differences = shape_differences(incident, reference)
        unexplained = [
            d
            for d in differences
            if not (
                d.endswith("extra key (Statuspage has no such key)") and _key(d) in NEWER_THAN_2017
            )
        ]
        assert unexplained == []


def _key(difference: str) -> str:
    return difference.split(":", 1)[0].rsplit(".", 1)[-1]


def test_keys_come_in_statuspage_order(client, full_page):
    summary = get_json(client, "summary")
    components = summary["components"]
    assert list(components[0]) == list(REAL_COMPONENT)
    group = next(c for c in components if c["group"])
    assert list(group) == [*REAL_COMPONENT, "components"]
    incident = summary["incidents"][0]
    assert list(incident) == list(REAL_INCIDENT)
    assert list(incident["incident_updates"][0]) == list(REAL_INCIDENT["incident_updates"][0])
    assert list(incident["incident_updates"][-1]["affected_components"][0]) == [
        "code",
        "name",
        "old_status",
        "new_status",
    ]
    assert list(summary["scheduled_maintenances"][0]) == list(REFERENCE_MAINTENANCE)
    assert list(summary["page"]) == list(GITHUB["page"])


# Contents


def test_page_object_describes_the_page(client, page):
    data = get_json(client, "status")
    assert data["page"]["id"] == page.public_id
    assert data["page"]["name"] == "Acme"
    assert data["page"]["url"] == "https://status.acme.test"
    assert data["page"]["time_zone"] == "UTC"
    assert UTC_TIME.match(data["page"]["updated_at"])


def test_page_url_falls_back_to_the_request_host(client, page, settings):
    settings.ALLOWED_HOSTS = ["status.example.org"]
    page.url = ""
    page.save()
    data = get_json(client, "status", HTTP_HOST="status.example.org")
    assert data["page"]["url"] == "http://status.example.org"


def test_ids_are_statuspage_ids_and_stable_across_requests_and_changes(
    client, full_page, django_capture_on_commit_callbacks
):
    before = get_json(client, "summary")
    assert all(ID.match(i) for i in ids_in(before))
    assert get_json(client, "summary") == before
    with django_capture_on_commit_callbacks(execute=True):
        component_set_status(component=full_page["api"], status=ComponentStatus.MAJOR_OUTAGE)
        incident_post_update(
            incident=full_page["outage"], status=IncidentStatus.MONITORING, body="Better."
        )
    after = get_json(client, "summary")
    assert after != before
    assert ids_in(before) <= ids_in(after)
    assert [c["id"] for c in after["components"]] == [c["id"] for c in before["components"]]


def test_times_have_milliseconds_and_z_on_a_utc_page(client, full_page):
    for endpoint in ENDPOINTS:
        times = list(times_in(get_json(client, endpoint)))
        assert times
        assert all(UTC_TIME.match(t) for t in times), times


@pytest.mark.parametrize("zone", ["Etc/UTC", "UTC"])
def test_utc_zone_names_give_z(client, page, zone):
    page.time_zone = zone
    page.save()
    ComponentFactory()
    data = get_json(client, "summary")
    assert data["page"]["time_zone"] == zone
    assert all(UTC_TIME.match(t) for t in times_in(data))


def test_times_are_in_the_page_time_zone(client, page):
    page.time_zone = "America/Chicago"
    page.save()
    ComponentFactory()
    open_incident(name="Winter", started_at=timezone.now() - timedelta(days=200))
    open_incident(name="Now")
    schedule_maintenance()
    for endpoint in ENDPOINTS:
        data = get_json(client, endpoint)
        assert data["page"]["time_zone"] == "America/Chicago"
        times = list(times_in(data))
        assert all(CHICAGO_TIME.match(t) for t in times), times
    incident = Incident.objects.get(name="Now")
    shown = get_json(client, "incidents")["incidents"][0]["started_at"]
    chicago = incident.started_at.astimezone(page.zone)
    assert shown == chicago.isoformat(timespec="milliseconds")


def test_components_list_groups_and_children_in_page_order(client, full_page):
    components = get_json(client, "components")["components"]
    by_name = {c["name"]: c for c in components}
    assert [(c["name"], c["position"]) for c in components] == [
        ("API", 1),
        ("Infrastructure", 2),
        ("Database", 1),
        ("Queue", 2),
        ("Search", 3),
        ("Empty group", 4),
    ]
    group = by_name["Infrastructure"]
    assert group["group"] is True
    assert group["components"] == [by_name["Database"]["id"], by_name["Queue"]["id"]]
    assert group["status"] == "partial_outage"  # worst child: Database
    assert by_name["Database"]["group_id"] == group["id"]
    assert by_name["API"]["group_id"] is None
    assert all("components" not in c for c in components if not c["group"])
    assert by_name["Empty group"]["components"] == []
    assert by_name["API"]["description"] == "Requests to the API"
    assert by_name["Queue"]["description"] is None
    # Hidden while operational on the page, still listed like Statuspage does.
    assert by_name["Search"]["only_show_if_degraded"] is True


def test_status_rolls_up_component_statuses(client, page):
    ComponentFactory(partial_outage=True)
    ComponentFactory()
    data = get_json(client, "status")
    assert data["status"] == {"indicator": "minor", "description": "Minor Service Outage"}


def test_incident_lists_are_filtered_like_statuspage(client, full_page):
    def names(endpoint, key):
        return {i["name"] for i in get_json(client, endpoint)[key]}

    assert names("incidents", "incidents") == {"Database errors", "API slowness", "Search down"}
    assert names("incidents/unresolved", "incidents") == {"Database errors"}
    assert names("summary", "incidents") == {"Database errors"}
    all_maintenances = {"Upgrade", "Network work", "Disk swap", "Old work"}
    assert names("scheduled-maintenances", "scheduled_maintenances") == all_maintenances
    assert names("scheduled-maintenances/upcoming", "scheduled_maintenances") == {"Upgrade"}
    assert names("scheduled-maintenances/active", "scheduled_maintenances") == {
        "Network work",
        "Disk swap",
    }
    assert names("summary", "scheduled_maintenances") == {"Upgrade", "Network work", "Disk swap"}
    statuses = {i["name"]: i["status"] for i in get_json(client, "incidents")["incidents"]}
    assert statuses["Search down"] == "postmortem"


def test_incidents_newest_first(client, full_page):
    incidents = get_json(client, "incidents")["incidents"]
    assert [i["name"] for i in incidents] == ["Database errors", "API slowness", "Search down"]


def test_incidents_json_lists_the_50_most_recent(client, page):
    now = timezone.now()
    Incident.objects.bulk_create(
        Incident(
            name=f"Incident {n}",
            status=IncidentStatus.RESOLVED,
            started_at=now - timedelta(hours=n),
            resolved_at=now - timedelta(hours=n) + timedelta(minutes=5),
        )
        for n in range(55)
    )
    Incident.objects.bulk_create(
        Incident(
            kind=IncidentKind.MAINTENANCE,
            name=f"Maintenance {n}",
            status=IncidentStatus.COMPLETED,
            impact="maintenance",
            scheduled_for=now - timedelta(days=n + 1),
            scheduled_until=now - timedelta(days=n + 1) + timedelta(hours=1),
            started_at=now - timedelta(days=n + 1),
        )
        for n in range(55)
    )
    incidents = get_json(client, "incidents")["incidents"]
    assert [i["name"] for i in incidents] == [f"Incident {n}" for n in range(50)]
    maintenances = get_json(client, "scheduled-maintenances")["scheduled_maintenances"]
    assert [m["name"] for m in maintenances] == [f"Maintenance {n}" for n in range(50)]


def test_incident_object_carries_its_updates_and_components(client, full_page):
    incident = get_json(client, "incidents/unresolved")["incidents"][0]
    outage = full_page["outage"]
    assert incident["id"] == outage.public_id
    assert incident["status"] == "identified"
    assert incident["impact"] == "major"
    assert incident["shortlink"] == f"https://status.acme.test/incidents/{outage.public_id}/"
    assert incident["resolved_at"] is None
    updates = incident["incident_updates"]
    assert [u["status"] for u in updates] == ["identified", "investigating"]  # newest first
    assert all(u["incident_id"] == outage.public_id for u in updates)
    assert updates[1]["body"] == "We are **looking** into it.\n\n- queries time out"
    assert updates[0]["affected_components"] is None
    database = full_page["database"]
    assert updates[1]["affected_components"] == [
        {
            "code": database.public_id,
            "name": "Infrastructure - Database",
            "old_status": "operational",
            "new_status": "partial_outage",
        }
    ]
    assert updates[1]["deliver_notifications"] is True
    assert updates[1]["custom_tweet"] is None and updates[1]["tweet_id"] is None
    components = get_json(client, "components")["components"]
    assert incident["components"] == [c for c in components if c["id"] == database.public_id]


def test_resolved_incident_has_resolved_and_monitoring_times(client, full_page):
    incidents = {i["name"]: i for i in get_json(client, "incidents")["incidents"]}
    resolved = incidents["API slowness"]
    assert resolved["status"] == "resolved"
    assert UTC_TIME.match(resolved["resolved_at"])
    assert UTC_TIME.match(resolved["monitoring_at"])
    assert [u["status"] for u in resolved["incident_updates"]] == [
        "resolved",
        "monitoring",
        "investigating",
    ]


def test_maintenances_carry_their_schedule(client, full_page):
    scheduled = get_json(client, "scheduled-maintenances/upcoming")["scheduled_maintenances"][0]
    maintenance = full_page["scheduled"]
    assert scheduled["impact"] == "maintenance"
    assert scheduled["scheduled_for"] == maintenance.scheduled_for.isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")
    assert UTC_TIME.match(scheduled["scheduled_until"])
    assert [c["name"] for c in scheduled["components"]] == ["API"]


# HTTP and caching


def test_responses_carry_cors_and_cache_headers(client, page):
    for endpoint in ENDPOINTS:
        response = client.get(url(endpoint))
        assert response["Access-Control-Allow-Origin"] == "*"
        assert response["ETag"].startswith('"')
        assert response["Last-Modified"].endswith("GMT")
        assert response["Cache-Control"] == DEFAULT_CACHE_CONTROL


def test_revalidation_with_etag_gives_304(client, page):
    first = client.get(url("summary"))
    again = client.get(url("summary"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    other = client.get(url("summary"), HTTP_IF_NONE_MATCH='"something-else"')
    assert other.status_code == 200


def test_revalidation_with_date_gives_304(client, page):
    first = client.get(url("components"))
    again = client.get(url("components"), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert again.status_code == 304
    old = http_date(timezone.now().timestamp() - 3600)
    assert client.get(url("components"), HTTP_IF_MODIFIED_SINCE=old).status_code == 200


def test_a_change_gives_a_new_etag_and_new_data(client, page, django_capture_on_commit_callbacks):
    component = ComponentFactory(name="API")
    first = client.get(url("summary"))
    with django_capture_on_commit_callbacks(execute=True):
        open_incident(name="API down", component_statuses={component: ComponentStatus.MAJOR_OUTAGE})
    second = client.get(url("summary"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200
    assert second["ETag"] != first["ETag"]
    data = json.loads(second.content)
    assert [i["name"] for i in data["incidents"]] == ["API down"]
    assert data["components"][0]["status"] == "major_outage"
    assert data["status"]["indicator"] == "critical"


def test_query_strings_do_not_bypass_the_cache(client, page, django_assert_num_queries):
    ComponentFactory()
    for endpoint in ENDPOINTS:
        client.get(url(endpoint))
    with django_assert_num_queries(0):
        for endpoint in ENDPOINTS:
            assert client.get(url(endpoint) + "?cachebust=1").status_code == 200
            assert client.get(url(endpoint)).status_code == 200


def test_head_works_and_post_is_refused(client, page):
    head = client.head(url("summary"))
    assert head.status_code == 200
    assert head.content == b""
    assert head["ETag"] == client.get(url("summary"))["ETag"]
    assert client.post(url("summary")).status_code == 405
    assert client.post(url("incidents")).status_code == 405


def make_page(size: int) -> None:
    """`size` components (a third of them grouped) and `size` incidents, each with an update
    that named a component, created in bulk."""
    groups = ComponentGroupFactory.create_batch(3)
    components = [
        ComponentFactory(group=groups[n % 3] if n % 3 == 0 else None) for n in range(size)
    ]
    now = timezone.now()
    incidents = Incident.objects.bulk_create(
        Incident(
            kind=IncidentKind.MAINTENANCE if n % 4 == 0 else IncidentKind.INCIDENT,
            name=f"Incident {n}",
            status=IncidentStatus.SCHEDULED if n % 4 == 0 else IncidentStatus.INVESTIGATING,
            started_at=now - timedelta(minutes=n),
            scheduled_for=now + timedelta(hours=1) if n % 4 == 0 else None,
            scheduled_until=now + timedelta(hours=2) if n % 4 == 0 else None,
        )
        for n in range(size)
    )
    updates = IncidentUpdate.objects.bulk_create(
        IncidentUpdate(incident=incident, status=incident.status, body="Looking.")
        for incident in incidents
    )
    AffectedComponent.objects.bulk_create(
        AffectedComponent(
            update=update,
            component=components[n],
            old_status="operational",
            new_status="major_outage",
        )
        for n, update in enumerate(updates)
    )
    Incident.components.through.objects.bulk_create(
        Incident.components.through(incident=incident, component=components[n])
        for n, incident in enumerate(incidents)
    )


@pytest.mark.parametrize("size", [5, 200])
def test_queries_do_not_grow_with_the_page(client, page, size, django_assert_max_num_queries):
    make_page(size)
    for endpoint in ENDPOINTS:
        with django_assert_max_num_queries(10):
            data = get_json(client, endpoint)
        assert shape_differences(data, REFERENCES[endpoint]) == []
    summary = get_json(client, "summary")
    assert len(summary["components"]) == size + 3
    maintenances = (size + 3) // 4
    assert len(summary["incidents"]) == size - maintenances
    assert len(summary["scheduled_maintenances"]) == maintenances
