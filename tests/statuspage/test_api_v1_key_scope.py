"""Management API v1: keys that expire, and read-only keys that may not write on any route."""

import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.utils import timezone

from components.models import Component
from incidents.models import Incident
from statuspage.api_v1.keys import api_key_create, api_key_revoke
from statuspage.api_v1.routes import api
from statuspage.models import ApiKey, PageSettings
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import StaffFactory, SubscriberFactory, open_incident

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
EXPIRED = "This API key has expired: ask for a new one."
UNKNOWN = {"error": "Could not authenticate", "message": "Could not authenticate"}


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings):
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 10_000


@pytest.fixture
def admin():
    return StaffFactory(groups=["Admins"])


def key_for(owner, **kwargs) -> str:
    return api_key_create(owner=owner, name="CI", **kwargs)[1]


def used_key(client, owner, **kwargs) -> str:
    """A key already used once, so that noting its use is not a write the test sees."""
    raw = key_for(owner, **kwargs)
    assert call(client, "GET", "/api/v1/pages", raw).status_code == 200
    return raw


def call(client, method, path, key, body=None, **headers):
    kwargs = {"HTTP_AUTHORIZATION": f"OAuth {key}", **headers}
    if body is not None:
        kwargs["data"] = json.dumps(body)
        kwargs["content_type"] = "application/json"
    return client.generic(method, path, **kwargs)


# Expiry


@pytest.mark.parametrize(
    ("moment", "works"),
    [
        (timedelta(seconds=-1), True),
        (timedelta(microseconds=-1), True),
        (timedelta(0), False),
        (timedelta(microseconds=1), False),
        (timedelta(days=400), False),
    ],
    ids=["a second before", "just before", "at", "just after", "long after"],
)
def test_a_key_works_until_the_moment_it_expires(client, page, admin, moment, works):
    expires_at = NOW + timedelta(days=30)
    with time_machine.travel(NOW, tick=False):
        raw = key_for(admin, expires_at=expires_at)
    with time_machine.travel(expires_at + moment, tick=False):
        response = call(client, "GET", "/api/v1/pages", raw)
    if works:
        assert response.status_code == 200
    else:
        assert response.status_code == 401
        assert response.json() == {"error": EXPIRED, "message": EXPIRED}


def test_a_key_without_expiry_never_expires(client, page, admin):
    raw = key_for(admin)
    with time_machine.travel(NOW + timedelta(days=365 * 50), tick=False):
        assert call(client, "GET", "/api/v1/pages", raw).status_code == 200


def test_an_expired_key_in_the_query_parameter_is_told_so_too(client, page, admin):
    raw = key_for(admin, expires_at=NOW + timedelta(hours=1))
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        response = client.get(f"/api/v1/pages?api_key={raw}")
    assert response.status_code == 401 and response.json()["error"] == EXPIRED


def test_using_an_expired_key_is_not_noted_as_a_use(client, page, admin):
    raw = key_for(admin, expires_at=NOW + timedelta(hours=1))
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        call(client, "GET", "/api/v1/pages", raw)
    assert ApiKey.objects.get().last_used_at is None


def test_only_the_holder_of_an_expired_key_learns_it_has_expired(client, page, admin):
    """A revoked key, a leaver's key, a wrong key, a key differing by one character: each
    answers the same vague 401, whether or not it has also expired."""
    expired_raw = key_for(admin, expires_at=NOW + timedelta(hours=1))
    revoked_raw, revoked = key_for(admin, expires_at=NOW + timedelta(hours=1)), None
    revoked = ApiKey.objects.get(prefix=revoked_raw[:10])
    api_key_revoke(key=revoked)
    leaver = StaffFactory(groups=["Admins"])
    leaver_raw = key_for(leaver, expires_at=NOW + timedelta(hours=1))
    leaver.is_active = False
    leaver.save()
    near_miss = expired_raw[:-1] + ("A" if expired_raw[-1] != "A" else "B")

    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        answers = {
            raw: call(client, "GET", "/api/v1/pages", raw)
            for raw in (revoked_raw, leaver_raw, near_miss, "bk_" + "x" * 43)
        }
        mine = call(client, "GET", "/api/v1/pages", expired_raw)

    for response in answers.values():
        assert response.status_code == 401 and response.json() == UNKNOWN
    assert mine.json()["error"] == EXPIRED
    for raw in (revoked_raw, leaver_raw, expired_raw):
        assert raw[:10] not in mine.content.decode()


def test_a_key_expiring_mid_session_stops_at_once(client, page, admin):
    component = ComponentFactory(name="API")
    raw = key_for(admin, expires_at=NOW + timedelta(minutes=10))
    path = f"/api/v1/pages/{page.public_id}/components/{component.public_id}"
    body = {"component": {"status": "major_outage"}}
    with time_machine.travel(NOW + timedelta(minutes=9, seconds=59), tick=False):
        assert call(client, "GET", path, raw).status_code == 200
        assert call(client, "PATCH", path, raw, body).status_code == 200
    component.refresh_from_db()
    assert component.status == "major_outage"

    # Seconds later, within the minute its last use is noted in: no cached "good key".
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        late = call(client, "PATCH", path, raw, {"component": {"status": "operational"}})
        read = call(client, "GET", path, raw)
    assert late.status_code == 401 and late.json()["message"] == EXPIRED
    assert read.status_code == 401
    component.refresh_from_db()
    assert component.status == "major_outage"


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=-1), timedelta(days=-3)])
def test_a_key_cannot_be_made_already_expired(admin, offset):
    from django.core.exceptions import ValidationError

    with time_machine.travel(NOW, tick=False), pytest.raises(ValidationError, match="passed"):
        api_key_create(owner=admin, name="Late", expires_at=NOW + offset)
    assert not ApiKey.objects.exists()


# Read-only keys


def v1_operations():
    """Every (method, path template) the management API answers, read off the ninja api
    object itself: a route added later is covered without touching this file."""
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    yield method, "/api/v1" + prefix + path


WRITES = sorted({(m, p) for m, p in v1_operations() if m != "GET"})
READS = sorted({(m, p) for m, p in v1_operations() if m == "GET"})


@pytest.fixture
def objects(page):
    """One of everything a path can name."""
    group = ComponentGroupFactory(name="Core")
    component = ComponentFactory(name="API", group=group)
    incident = open_incident(name="Checkout errors", component_statuses={component: "major_outage"})
    subscriber = SubscriberFactory()
    return {
        "page_id": page.public_id,
        "component_id": component.public_id,
        "group_id": group.public_id,
        "incident_id": incident.public_id,
        "update_id": incident.updates.get().public_id,
        "subscriber_id": subscriber.public_id,
    }


def fill(template: str, ids: dict) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: ids[match.group(1)], template)


# Bodies a write key would have written with: if the scope were not checked, these writes
# would happen (test_the_same_writes_with_a_write_key_change_things shows they do).
BODIES = {
    "/api/v1/pages/{page_id}": {"page": {"name": "Defaced"}},
    "/api/v1/pages/{page_id}/components": {"component": {"name": "Fake"}},
    "/api/v1/pages/{page_id}/components/{component_id}": {
        "component": {"status": "operational", "name": "Renamed"}
    },
    "/api/v1/pages/{page_id}/component-groups": {
        "component_group": {"name": "Fake group", "components": []}
    },
    "/api/v1/pages/{page_id}/component-groups/{group_id}": {"component_group": {"name": "X"}},
    "/api/v1/pages/{page_id}/incidents": {
        "incident": {"name": "All clear", "status": "resolved", "body": "Forged."}
    },
    "/api/v1/pages/{page_id}/incidents/{incident_id}": {
        "incident": {"status": "resolved", "body": "Forged all clear."}
    },
    "/api/v1/pages/{page_id}/incidents/{incident_id}/incident_updates/{update_id}": {
        "incident_update": {"body": "Rewritten."}
    },
    "/api/v1/pages/{page_id}/incidents/{incident_id}/postmortem": {
        "postmortem": {"body_draft": "Forged."}
    },
    "/api/v1/pages/{page_id}/subscribers": {"subscriber": {"email": "spy@example.test"}},
    "/api/v1/pages/{page_id}/subscribers/{subscriber_id}": {"component_ids": []},
    "/api/v1/pages/{page_id}/subscribers/unsubscribe": {"subscribers": "all", "type": "email"},
}


def database() -> dict:
    """Every row of every table the project has, to show that nothing was written."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
        if model._meta.app_label not in ("sessions", "admin")
    }


def test_the_routes_are_found_on_the_api_object():
    assert len(WRITES) >= 20 and len(READS) >= 20
    assert {"POST", "PUT", "PATCH", "DELETE"} == {method for method, _ in WRITES}
    assert ("DELETE", "/api/v1/pages/{page_id}/incidents/{incident_id}") in WRITES


def test_a_read_only_key_may_not_write_on_any_route(client, admin, objects):
    raw = used_key(client, admin, scope="read")
    before = database()
    for method, template in WRITES:
        response = call(client, method, fill(template, objects), raw, BODIES.get(template, {}))
        assert response.status_code == 403, (method, template, response.content)
        message = f"This API key is read-only: it may not {method}. Use a key with the write scope."
        assert response.json() == {"error": message, "message": message}
    assert database() == before


def test_the_same_writes_with_a_write_key_change_things(client, admin, objects):
    raw = key_for(admin, scope="write")
    for method, template in [
        ("PATCH", "/api/v1/pages/{page_id}"),
        ("POST", "/api/v1/pages/{page_id}/incidents"),
        ("PATCH", "/api/v1/pages/{page_id}/incidents/{incident_id}"),
        ("DELETE", "/api/v1/pages/{page_id}/components/{component_id}"),
    ]:
        response = call(client, method, fill(template, objects), raw, BODIES.get(template))
        assert response.status_code in (200, 201, 204), (method, template, response.content)
    assert PageSettings.load().name == "Defaced"
    assert Incident.objects.filter(name="All clear").exists()
    assert Incident.objects.get(public_id=objects["incident_id"]).status == "resolved"
    assert not Component.objects.filter(public_id=objects["component_id"]).exists()


def test_a_read_only_key_reads_everything_a_write_key_reads(client, admin, objects):
    read_raw, write_raw = key_for(admin, scope="read"), key_for(admin, scope="write")
    for _, template in READS:
        path = fill(template, objects)
        # One instant for both reads: an uptime's seconds of outage grow between them otherwise.
        with time_machine.travel(timezone.now(), tick=False):
            read = call(client, "GET", path, read_raw)
            write = call(client, "GET", path, write_raw)
        assert read.status_code == 200, (template, read.content)
        assert read.json() == write.json()


def test_a_read_only_key_reads_no_more_than_its_owner_may(client, page):
    raw = key_for(StaffFactory(), scope="read")  # no role
    response = call(client, "GET", f"/api/v1/pages/{page.public_id}", raw)
    assert response.status_code == 403 and "may not" in response.json()["message"]
    assert "read-only" not in response.json()["message"]


def test_a_read_only_key_is_refused_before_the_body_is_read(client, admin, page):
    raw = key_for(admin, scope="read")
    path = f"/api/v1/pages/{page.public_id}/incidents"
    for body in ("{not json", "[]", '{"incident": {"name": "\\u0000"}}', "x" * 100_000):
        response = client.post(
            path, body, content_type="application/json", HTTP_AUTHORIZATION=f"OAuth {raw}"
        )
        assert response.status_code == 403, body[:20]
    form = client.post(
        path,
        "incident[name]=Forged&incident[status]=resolved",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"OAuth {raw}",
    )
    assert form.status_code == 403
    assert not Incident.objects.exists()


OVERRIDES = [
    {"HTTP_X_HTTP_METHOD_OVERRIDE": "GET"},
    {"HTTP_X_HTTP_METHOD": "GET"},
    {"HTTP_X_METHOD_OVERRIDE": "GET"},
    {"HTTP_X_HTTP_METHOD_OVERRIDE": "get", "HTTP_X_REQUESTED_WITH": "XMLHttpRequest"},
]


@pytest.mark.parametrize("headers", OVERRIDES)
def test_method_override_headers_do_not_turn_a_write_into_a_read(client, admin, objects, headers):
    raw = used_key(client, admin, scope="read")
    path = fill("/api/v1/pages/{page_id}/components/{component_id}", objects)
    before = database()
    deleted = call(client, "DELETE", path, raw, **headers)
    patched = call(client, "PATCH", path, raw, {"component": {"name": "Renamed"}}, **headers)
    created = call(client, "POST", fill("/api/v1/pages/{page_id}/incidents", objects), raw,
                   BODIES["/api/v1/pages/{page_id}/incidents"], **headers)  # fmt: skip
    assert [r.status_code for r in (deleted, patched, created)] == [403, 403, 403]
    assert database() == before


def test_method_override_in_the_query_or_form_does_not_help_either(client, admin, objects):
    raw = used_key(client, admin, scope="read")
    path = fill("/api/v1/pages/{page_id}/incidents", objects)
    auth = {"HTTP_AUTHORIZATION": f"OAuth {raw}"}
    before = database()
    in_query = client.post(f"{path}?_method=GET", {}, **auth)
    in_form = client.post(path, "_method=GET&incident[name]=Forged",
                          content_type="application/x-www-form-urlencoded", **auth)  # fmt: skip
    assert in_query.status_code == 403 and in_form.status_code == 403
    assert database() == before


def test_a_read_asking_for_a_delete_override_stays_a_read(client, admin, objects):
    for scope in ("read", "write"):
        raw = key_for(admin, scope=scope)
        path = fill("/api/v1/pages/{page_id}/components/{component_id}", objects)
        response = call(client, "GET", path, raw, HTTP_X_HTTP_METHOD_OVERRIDE="DELETE")
        assert response.status_code == 200
        assert Component.objects.filter(public_id=objects["component_id"]).exists()


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_are_reads(client, admin, objects, method):
    """They are answered as for a write key (ninja routes take neither: 405), never with the
    read-only 403, and change nothing."""
    read_raw = used_key(client, admin, scope="read")
    write_raw = used_key(client, admin, scope="write")
    before = database()
    for template in ("/api/v1/pages/{page_id}", "/api/v1/pages/{page_id}/incidents"):
        path = fill(template, objects)
        read, write = call(client, method, path, read_raw), call(client, method, path, write_raw)
        assert read.status_code == write.status_code != 403
        assert b"read-only" not in read.content
    assert database() == before


def test_read_only_refusals_count_against_the_rate_limit(client, admin, page, settings):
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 2
    raw = key_for(admin, scope="read")
    path = f"/api/v1/pages/{page.public_id}"
    codes = [call(client, "PATCH", path, raw, {"page": {"name": "X"}}).status_code for _ in "abc"]
    assert codes == [403, 403, 429]


def test_keys_write_by_default_so_existing_scripts_keep_working(client, admin, page):
    key, raw = api_key_create(owner=admin, name="Old script")
    assert key.scope == "write" and key.expires_at is None
    assert ApiKey._meta.get_field("scope").default == "write"
    response = call(
        client, "PATCH", f"/api/v1/pages/{page.public_id}", raw, {"page": {"name": "B"}}
    )
    assert response.status_code == 200 and PageSettings.load().name == "B"


@pytest.mark.parametrize("scope", ["", "admin", "READ", "write "])
def test_an_unknown_scope_is_refused(admin, scope):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="scope"):
        api_key_create(owner=admin, name="Odd", scope=scope)


def test_a_row_with_an_unknown_scope_only_reads(client, admin, page):
    key, raw = api_key_create(owner=admin, name="Tampered")
    ApiKey.objects.filter(pk=key.pk).update(scope="admin")
    path = f"/api/v1/pages/{page.public_id}"
    assert call(client, "GET", path, raw).status_code == 200
    assert call(client, "PATCH", path, raw, {"page": {"name": "X"}}).status_code == 403
