"""Management API v1 reads answered from kept answers (statuspage/api_v1/fast.py).

Every request goes through statuspage.wsgi.application with a WSGI environ, as gunicorn
sends it, against PostgreSQL and Redis. The tests run inside a transaction: each call runs
the callbacks its commits would run (the API's generation moves on after a commit).
"""

import inspect
import io
import json
import re
import sys
import time

import pytest
from django.contrib.auth.models import Permission
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from components.models import ComponentStatus
from components.services import component_set_status
from statuspage.api_v1 import fast, generation
from statuspage.api_v1.keys import api_key_create, api_key_revoke
from statuspage.api_v1.routes import api
from statuspage.lib.replica import current_scope, primary_only, reading_from_replica
from statuspage.models import ApiKey, ApiKeyScope
from statuspage.wsgi import application
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import (
    StaffFactory,
    SubscriberFactory,
    open_incident,
    schedule_maintenance,
)

pytestmark = pytest.mark.django_db

VIEW_PERMS = (
    "statuspage.view_pagesettings",
    "components.view_component",
    "components.view_componentgroup",
    "incidents.view_incident",
    "incidents.view_subscriber",
)


@pytest.fixture(autouse=True)
def _one_connection_per_test(settings):
    """Django's handler closes the connection around each request (CONN_MAX_AGE): inside the
    test's transaction it must stay, as the test client keeps it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 100_000
    fast.memory.clear()
    yield
    fast.memory.clear()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


class Wsgi:
    """A client calling the WSGI application itself, with one key."""

    def __init__(self, page, capture, key: str):
        self.base = f"/api/v1/pages/{page.public_id}"
        self.capture = capture
        self.key = key

    def environ(self, method: str, path: str, query: str = "", body: bytes = b"", **extra):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path if path.startswith("/api/") else self.base + path,
            "QUERY_STRING": query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "HTTP_HOST": "testserver",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"OAuth {self.key}",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if body:
            environ |= {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}
        return environ | extra

    def call(self, method: str, path: str, query: str = "", body=None, **extra):
        data = json.dumps(body).encode() if body is not None else b""
        seen = []
        with self.capture(execute=True):  # the commits' callbacks: the generation moves on
            result = application(
                self.environ(method, path, query, data, **extra),
                lambda status, headers, exc_info=None: seen.append((status, headers)),
            )
            try:
                content = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        status, headers = seen[0]
        return status, headers, content

    def get(self, path: str, query: str = "", **extra):
        return self.call("GET", path, query, **extra)

    def json(self, path: str, query: str = ""):
        status, _headers, content = self.get(path, query)
        assert status == "200 OK", content
        return json.loads(content)


def key_for(*, perms=VIEW_PERMS, groups=(), scope=ApiKeyScope.WRITE) -> str:
    owner = StaffFactory(groups=list(groups))
    for perm in perms:
        app_label, codename = perm.split(".")
        owner.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return api_key_create(owner=owner, name="Terraform", scope=scope)[1]


@pytest.fixture
def admin(page, django_capture_on_commit_callbacks) -> Wsgi:
    return Wsgi(page, django_capture_on_commit_callbacks, key_for(groups=["Admins"]))


@pytest.fixture
def reader(page, django_capture_on_commit_callbacks) -> Wsgi:
    return Wsgi(page, django_capture_on_commit_callbacks, key_for(scope=ApiKeyScope.READ))


@pytest.fixture
def objects(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        group = ComponentGroupFactory(name="Platform")
        api = ComponentFactory(name="API", group=group)
        ComponentFactory(name="Website")
        incident = open_incident(name="Errors", component_statuses={api: "major_outage"})
        schedule_maintenance()
        subscriber = SubscriberFactory()
    return {"group": group, "component": api, "incident": incident, "subscriber": subscriber}


def every_route(objects) -> list[str]:
    """One path for each read the fast path may answer, `.json` or not."""
    component = objects["component"].public_id
    group = objects["group"].public_id
    incident = objects["incident"].public_id
    subscriber = objects["subscriber"].public_id
    return [
        "/api/v1/pages",
        "",
        ".json",
        "/components",
        f"/components/{component}",
        f"/components/{component}/uptime",
        "/component-groups.json",
        f"/component-groups/{group}",
        f"/component-groups/{group}/uptime",
        "/incidents",
        "/incidents/unresolved",
        "/incidents/scheduled",
        "/incidents/upcoming",
        "/incidents/active_maintenance",
        f"/incidents/{incident}",
        f"/incidents/{incident}/postmortem",
        "/subscribers",
        f"/subscribers/{subscriber}",
        "/subscribers/count",
        "/subscribers/histogram_by_state",
        "/subscribers/unsubscribed",
    ]


def test_a_kept_answer_is_the_bytes_django_gave(admin, objects, django_assert_num_queries):
    for path in every_route(objects):
        from_django = admin.get(path)
        assert from_django[0] == "200 OK", (path, from_django[2])
        with django_assert_num_queries(0):
            kept = admin.get(path)
        assert kept == from_django, path


def test_a_query_string_is_part_of_the_answer_kept(admin, objects, django_assert_num_queries):
    first = admin.get("/components", "per_page=1")
    all_of_them = admin.get("/components")
    with django_assert_num_queries(0):
        assert admin.get("/components", "per_page=1") == first
        assert admin.get("/components") == all_of_them
    assert len(json.loads(first[2])) == 1 < len(json.loads(all_of_them[2]))


def test_each_read_sees_the_component_status_written_before_it(admin, objects):
    component = objects["component"].public_id
    statuses = [ComponentStatus.OPERATIONAL, ComponentStatus.PARTIAL_OUTAGE]
    admin.json("/components")
    admin.json(f"/components/{component}")
    for round_ in range(20):
        status = statuses[round_ % 2]
        written = admin.call(
            "PATCH", f"/components/{component}", body={"component": {"status": status}}
        )
        assert written[0] == "200 OK", written[2]
        listed = {c["id"]: c["status"] for c in admin.json("/components")}
        assert listed[component] == status, round_
        assert admin.json(f"/components/{component}")["status"] == status, round_


def test_each_read_sees_the_incident_update_written_before_it(admin, objects):
    incident = objects["incident"].public_id
    admin.json("/incidents/unresolved")
    for round_ in range(20):
        body = f"Still looking, round {round_}."
        written = admin.call(
            "PATCH",
            f"/incidents/{incident}",
            body={"incident": {"status": "identified", "body": body}},
        )
        assert written[0] == "200 OK", written[2]
        (unresolved,) = [i for i in admin.json("/incidents/unresolved") if i["id"] == incident]
        assert unresolved["incident_updates"][0]["body"] == body, round_
        assert admin.json(f"/incidents/{incident}")["incident_updates"][0]["body"] == body


def test_a_write_outside_the_api_shows_on_the_next_read(
    admin, objects, django_capture_on_commit_callbacks
):
    component = objects["component"]
    assert admin.json(f"/components/{component.public_id}")["status"] == "major_outage"

    with django_capture_on_commit_callbacks(execute=True):
        component_set_status(component=component, status=ComponentStatus.DEGRADED_PERFORMANCE)

    assert admin.json(f"/components/{component.public_id}")["status"] == "degraded_performance"


def test_a_revoked_key_is_refused_within_a_second_even_with_a_kept_answer(admin, objects):
    admin.json("/components")
    api_key_revoke(key=ApiKey.objects.get())

    time.sleep(1.1)

    status, _headers, content = admin.get("/components")
    assert status == "401 Unauthorized"
    assert json.loads(content)["error"] == "Could not authenticate"


def test_an_owner_without_a_routes_permission_gets_djangos_403(
    admin, objects, page, django_capture_on_commit_callbacks
):
    """The permission each route needs (fast.ROUTES) is the one its view requires: without
    it (holding every other), Django's 403, never the kept answer; with it alone, a 200."""
    for path in every_route(objects):
        assert admin.get(path)[0] == "200 OK", path  # kept
        perm = fast.route_permission(admin.environ("GET", path)["PATH_INFO"])
        assert perm in VIEW_PERMS, path
        lacking = Wsgi(
            page, django_capture_on_commit_callbacks, key_for(perms=set(VIEW_PERMS) - {perm})
        )
        only = Wsgi(page, django_capture_on_commit_callbacks, key_for(perms=[perm]))
        for _ in range(2):  # the second after the key's record is in the cache
            status, _headers, content = lacking.get(path)
            assert status == "403 Forbidden", (path, content)
            assert perm in json.loads(content)["error"], path
            assert only.get(path) == admin.get(path), path


def test_each_kept_route_needs_what_its_view_requires():
    """Every GET operation of the API that the fast path would answer: its view asks
    require_perm for exactly the permission fast.ROUTES names, and nothing else."""
    answered = []
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                sample = "/api/v1" + prefix + re.sub(r"\{[^}]+\}", "x1", path)
                perm = fast.route_permission(sample)
                if "GET" not in operation.methods or perm is None:
                    continue
                view = inspect.unwrap(operation.view_func)
                asked = re.findall(r"require_perm\(request, ([^)]*)\)", inspect.getsource(view))
                assert asked == [f'"{perm}"'], (path, asked)
                answered.append(view.__name__)
    assert len(answered) == 20
    assert "component_sla" not in answered


def test_a_read_only_key_reads_kept_answers(reader, objects, django_assert_num_queries):
    first = reader.get("/incidents")
    with django_assert_num_queries(0):
        assert reader.get("/incidents") == first


def test_a_hit_still_counts_against_the_rate_limit(admin, objects, settings):
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 3
    for _ in range(3):
        assert admin.get("/components")[0] == "200 OK"  # Django, then two kept answers

    status, headers, content = admin.get("/components")

    assert status == "429 Too Many Requests"
    assert int(dict(headers)["Retry-After"]) >= 1
    assert "Rate limit exceeded" in json.loads(content)["error"]


def test_with_the_cache_away_django_answers(admin, objects, settings):
    expected = admin.json("/components")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2},
        }
    }
    fast.memory.clear()

    assert admin.json("/components") == expected
    assert admin.json("/components") == expected


def test_an_answer_is_given_again_for_at_most_a_minute(admin, objects, django_assert_num_queries):
    admin.get("/components/" + objects["component"].public_id + "/uptime")
    later = time.time() + fast.KEEP_SECONDS
    for key, answer in list(fast.memory._answers.items()):
        fast.memory._answers[key] = answer.__class__(
            later - 2 * fast.KEEP_SECONDS, answer.status, answer.headers, answer.body
        )
    assert all(not a.fresh(time.time()) for a in fast.memory._answers.values())

    assert admin.get("/components/" + objects["component"].public_id + "/uptime")[0] == "200 OK"
    # The shared copy has the same age: both missed, Django answered and kept it afresh.
    assert all(a.fresh(time.time()) for a in fast.memory._answers.values())


def test_many_query_strings_do_not_grow_memory_without_bound(admin, objects, monkeypatch):
    small = fast._Memory(entries=10, size=1_000_000)
    monkeypatch.setattr(fast, "memory", small)

    for n in range(30):
        assert admin.get("/components", f"page=1&per_page={n + 1}")[0] == "200 OK"

    assert len(small) == 10

    tight = fast._Memory(entries=1_000, size=20_000)
    monkeypatch.setattr(fast, "memory", tight)
    for n in range(30):
        admin.get("/incidents", f"q=x{n}")
    assert 0 < tight.bytes <= 20_000

    # Parameters the views ignore would make every spelling an answer of its own: not kept.
    kept = fast._Memory(entries=1_000, size=1_000_000)
    monkeypatch.setattr(fast, "memory", kept)
    for n in range(5):
        assert admin.get("/components", f"x={n}")[0] == "200 OK"
        assert admin.get("/components", f"page=1&cache_buster={n}")[0] == "200 OK"
    assert len(kept) == 0


def test_head_post_and_keys_in_the_address_go_to_django(admin, objects, django_assert_num_queries):
    admin.get("/components")
    with django_assert_num_queries(0):
        admin.get("/components")

    assert admin.call("HEAD", "/components")[0] == "405 Method Not Allowed"
    created = admin.call("POST", "/components", body={"component": {"name": "New"}})
    assert created[0] == "201 Created"
    assert any(c["name"] == "New" for c in admin.json("/components"))
    with django_assert_num_queries(0):
        admin.get("/components")
    status, _headers, _content = admin.get(
        "/components", f"api_key={admin.key}", HTTP_AUTHORIZATION=""
    )
    assert status == "200 OK"
    assert not fast.route_permission("/api/v1/pages/x/components/y/sla")


def test_an_error_is_never_kept(admin, objects, django_assert_max_num_queries):
    for _ in range(2):
        status, _headers, _content = admin.get("/components/nosuchthing")
        assert status == "404 Not Found"
    assert len(fast.memory) == 0


def test_security_headers_are_this_requests(admin, objects, settings, django_assert_num_queries):
    """HSTS only over HTTPS, whatever the request that made the kept answer came by."""
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    over_http = admin.get("/components")
    assert "Strict-Transport-Security" not in dict(over_http[1])

    with django_assert_num_queries(0):
        kept = admin.get("/components", HTTP_X_FORWARDED_PROTO="https")
    generation.bump()
    from_django = admin.get("/components", HTTP_X_FORWARDED_PROTO="https")

    assert dict(kept[1])["Strict-Transport-Security"].startswith("max-age=3600")
    assert sorted(kept[1]) == sorted(from_django[1])
    assert kept[2] == from_django[2]


def test_an_answer_to_keep_is_read_from_the_primary():
    with primary_only(), reading_from_replica():
        assert current_scope() is None
    with reading_from_replica() as scope:
        assert current_scope() is scope


def test_memory_keeps_one_generation_and_its_bounds():
    memory = fast._Memory(entries=3, size=4_000)
    answer = fast.Answer(time.time(), "200 OK", (("Content-Type", "application/json"),), b"[]")
    memory.put(("g1", "/a", ""), answer)
    memory.put(("g0", "/b", ""), answer)  # made before g1, kept after: not here

    assert memory.get(("g1", "/a", ""), time.time()) == answer
    assert memory.get(("g1", "/b", ""), time.time()) is None

    for n in range(10):
        memory.put(("g1", f"/{n}", ""), answer)
    assert len(memory) == 3
    memory.put(("g1", "/big", ""), fast.Answer(time.time(), "200 OK", (), b"x" * 1_001))
    assert memory.get(("g1", "/big", ""), time.time()) is None  # over a quarter of the bytes

    assert memory.get(("g2", "/9", ""), time.time()) is None
    assert len(memory) == 0


def test_a_standby_region_answers_from_its_replica_not_kept_answers(
    admin, objects, django_assert_max_num_queries
):
    """No commit on a standby moves its generation: what its replica replays must show."""
    from statuspage.public.snapshots import store

    admin.get("/components")
    store.memory().on_standby = True
    try:
        with django_assert_max_num_queries(10) as answered:
            assert admin.get("/components")[0] == "200 OK"
        assert len(answered.captured_queries) > 0
    finally:
        store.memory().on_standby = False
