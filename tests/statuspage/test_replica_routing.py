"""DATABASE_REPLICA_URL: which reads go to the replica, and which never do.

The "replica" alias here is a second connection to the test database (what Django's test
MIRROR does), added for this module when DATABASE_REPLICA_URL is not set (the suite then runs
as an install without a replica does; with it set, every test has the alias: tests/conftest.py).
tests/statuspage/test_replica_streaming.py measures lag against a real streaming replica.
"""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest
from django.contrib.auth.models import Permission
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from components.models import Component
from statuspage import db_router
from statuspage.api_v1.keys import api_key_create
from statuspage.celery import app
from statuspage.lib.replica import reading_from_primary, reading_from_replica
from statuspage.public import public_cache
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, sign_in_staff
from tests.statuspage.replica_alias import replica_alias_as

REPLICA = db_router.REPLICA
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", REPLICA])


@pytest.fixture(scope="module", autouse=True)
def replica_alias(django_db_setup, django_db_blocker):
    """A "replica" alias on the test database, as settings.py makes one from the URL."""
    with django_db_blocker.unblock(), replica_alias_as(_on_the_test_database()):
        yield


def _on_the_test_database() -> dict:
    return {**connections.settings["default"], "TEST": {"MIRROR": "default"}}


@pytest.fixture(autouse=True)
def router(settings, monkeypatch):
    # The tests read right after they write; the margin has a test of its own.
    monkeypatch.setattr(db_router, "DELIVERY_MARGIN_SECONDS", 0.0)
    settings.DATABASE_ROUTERS = ["statuspage.db_router.ReplicaRouter"]
    settings.BEACON_REPLICA_MAX_LAG_SECONDS = 10.0
    settings.BEACON_REPLICA_CHECK_SECONDS = 60.0
    settings.BEACON_REPLICA_RETRY_SECONDS = 60.0
    db_router.forget_state()
    yield db_router.ReplicaRouter()
    db_router.forget_state()


@pytest.fixture
def manage_api(client, page):
    """The management API with a key whose owner may read and change components (given
    directly: the migrations' groups are gone after a transactional test's flush)."""
    owner = StaffFactory()
    owner.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="components",
            codename__in=["view_component", "change_component"],
        )
    )
    key = api_key_create(owner=owner, name="CI")[1]
    base = f"/api/v1/pages/{page.public_id}"

    def call(method, path, body=None):
        kwargs = {"HTTP_AUTHORIZATION": f"OAuth {key}"}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return getattr(client, method)(base + path, **kwargs)

    return call


class Queries:
    """The queries each connection ran, the replica's lag checks left out."""

    def __init__(self):
        self.primary = CaptureQueriesContext(connections["default"])
        self.replica = CaptureQueriesContext(connections[REPLICA])

    def __enter__(self):
        self.primary.__enter__()
        self.replica.__enter__()
        return self

    def __exit__(self, *exc):
        self.replica.__exit__(*exc)
        self.primary.__exit__(*exc)

    def on_replica(self) -> list[str]:
        return [q["sql"] for q in self.replica.captured_queries if "pg_is_in_recovery" not in q]

    def on_primary(self) -> list[str]:
        return [q["sql"] for q in self.primary.captured_queries]


# Without DATABASE_REPLICA_URL


SETTINGS_SAY = (
    "from django.conf import settings; "
    "print(sorted(settings.DATABASES), settings.DATABASE_ROUTERS, "
    "settings.DATABASES.get('replica', {}).get('NAME'))"
)


def _settings_with(**environ: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_REPLICA")}
    env.update(environ, DJANGO_SETTINGS_MODULE="statuspage.settings")
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SETTINGS_SAY}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_without_a_replica_url_there_is_no_alias_and_no_router():
    assert _settings_with() == "['default'] [] None"
    replica_url = "postgres://reader@replica.internal:5432/beacon"
    assert _settings_with(DATABASE_REPLICA_URL=replica_url) == (
        "['default', 'replica'] ['statuspage.db_router.ReplicaRouter'] beacon"
    )


# The chosen surfaces read from the replica


def test_management_api_reads_come_from_the_replica_and_the_key_from_the_primary(manage_api):
    ComponentFactory(name="API")
    with Queries() as queries:
        response = manage_api("get", "/components")
    assert response.status_code == 200
    assert [c["name"] for c in response.json()] == ["API"]
    replica = queries.on_replica()
    assert any("components_component" in sql for sql in replica)
    # The key, and what its owner may do, are the primary's: a revoked key stops at once.
    assert not any("statuspage_apikey" in sql or "auth_permission" in sql for sql in replica)
    assert any("statuspage_apikey" in sql for sql in queries.on_primary())
    assert any("auth_permission" in sql for sql in queries.on_primary())


def test_management_api_writes_never_touch_the_replica(manage_api):
    component = ComponentFactory(name="API")
    with Queries() as queries:
        response = manage_api(
            "patch", f"/components/{component.public_id}", {"component": {"status": "major_outage"}}
        )
    assert response.status_code == 200
    assert queries.on_replica() == []
    assert Component.objects.get(pk=component.pk).status == "major_outage"


def test_an_api_v2_snapshot_miss_renders_from_the_replica(client, page):
    ComponentFactory(name="API")
    with Queries() as queries:
        response = client.get("/api/v2/components.json")
    assert response.status_code == 200
    assert [c["name"] for c in response.json()["components"]] == ["API"]
    assert any("components_component" in sql for sql in queries.on_replica())


def test_a_history_snapshot_miss_renders_from_the_replica(client, page):
    with Queries() as queries:
        response = client.get(reverse("history"))
    assert response.status_code == 200
    assert queries.on_replica() != []


def test_the_status_page_and_a_served_snapshot_do_not_use_the_replica(client, page):
    ComponentFactory(name="API")
    with Queries() as queries:
        assert client.get("/").status_code == 200
    assert queries.on_replica() == []
    client.get("/api/v2/status.json")
    with Queries() as queries:
        assert client.get("/api/v2/status.json").status_code == 200  # from its snapshot
    assert queries.on_replica() == queries.on_primary() == []


def test_the_admin_never_reads_from_the_replica(client):
    sign_in_staff(client, StaffFactory(is_superuser=True))
    ComponentFactory(name="API")
    with Queries() as queries:
        assert client.get("/admin/components/component/").status_code == 200
    assert queries.on_replica() == []


# What a scope never sends to the replica


def test_reads_after_a_write_in_the_same_scope_go_to_the_primary(router):
    with reading_from_replica() as scope:
        assert router.db_for_read(Component) == REPLICA
        ComponentFactory(name="API")
        assert scope.wrote
        assert router.db_for_read(Component) is None


def test_reads_inside_a_transaction_go_to_the_primary(router):
    with reading_from_replica(), transaction.atomic():
        assert router.db_for_read(Component) is None


def test_reading_from_primary_wins_over_an_enclosing_scope(router):
    with reading_from_replica():
        with reading_from_primary():
            assert router.db_for_read(Component) is None
        assert router.db_for_read(Component) == REPLICA


def test_writes_always_go_to_the_primary(router):
    with reading_from_replica():
        assert router.db_for_write(Component) is None


def test_a_celery_task_reads_from_the_primary_even_inside_a_scope(router, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    @app.task(name="tests.replica_probe")
    def probe():
        with reading_from_replica():
            return router.db_for_read(Component)

    with reading_from_replica():
        assert router.db_for_read(Component) == REPLICA
        assert probe.apply().get() is None


def test_migrations_never_run_on_the_replica(router):
    assert router.allow_migrate(REPLICA, "components") is False
    assert router.allow_migrate("default", "components") is None


# Falling back to the primary


def test_a_change_the_replica_may_not_have_replayed_reads_from_the_primary(router):
    with reading_from_replica():
        assert router.db_for_read(Component) == REPLICA  # measured: caught up, now
    public_cache.invalidate()  # a change after that measurement
    with reading_from_replica():
        assert router.db_for_read(Component) is None
    db_router.forget_state()  # the next measurement sees it replayed
    with reading_from_replica():
        assert router.db_for_read(Component) == REPLICA


def test_a_change_in_the_last_moments_before_the_check_is_not_taken_as_replayed(
    router, monkeypatch
):
    monkeypatch.setattr(db_router, "DELIVERY_MARGIN_SECONDS", 0.5)
    public_cache.invalidate()
    with reading_from_replica():
        assert router.db_for_read(Component) is None  # it may still be on its way
    assert db_router.state().lag == 0.0
    assert db_router.replica_is_current(public_cache.changed_at(public_cache.generation()) - 1)


def test_a_replica_lagging_past_the_limit_is_not_read(router, settings, monkeypatch):
    monkeypatch.setattr(db_router, "LAG_SQL", "SELECT 30.0")
    with reading_from_replica():
        assert router.db_for_read(Component) is None
    assert db_router.state().lag == 30.0
    settings.BEACON_REPLICA_MAX_LAG_SECONDS = 60.0
    assert not db_router.replica_is_current(public_cache.changed_at(public_cache.generation()))


def test_the_lag_check_is_one_query_per_interval(router):
    with Queries() as queries:
        for _ in range(5):
            with reading_from_replica():
                router.db_for_read(Component)
    checks = [q for q in queries.replica.captured_queries if "pg_is_in_recovery" in q["sql"]]
    assert len(checks) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_replica_falls_back_logs_once_and_is_retried(
    router, settings, caplog, manage_api
):
    ComponentFactory(name="API")
    unreachable = {**_on_the_test_database(), "PORT": _closed_port()}
    with replica_alias_as({**unreachable, "OPTIONS": {"connect_timeout": 1}}):
        with caplog.at_level(logging.WARNING, logger="beacon.replica"):
            for _ in range(3):
                response = manage_api("get", "/components")
                assert response.status_code == 200
                assert [c["name"] for c in response.json()] == ["API"]
        assert len([r for r in caplog.records if "cannot be reached" in r.message]) == 1
        assert not db_router.state().reachable
    settings.BEACON_REPLICA_RETRY_SECONDS = 0.0
    db_router.forget_state()
    with reading_from_replica():
        assert router.db_for_read(Component) == REPLICA


def test_a_replica_gone_since_the_last_check_costs_no_request_an_error(router, caplog, manage_api):
    ComponentFactory(name="API")
    with reading_from_replica():
        assert router.db_for_read(Component) == REPLICA  # measured: reachable, for 60 s
    unreachable = {**_on_the_test_database(), "PORT": _closed_port()}
    with replica_alias_as({**unreachable, "OPTIONS": {"connect_timeout": 1}}):
        with caplog.at_level(logging.WARNING, logger="beacon.replica"):
            response = manage_api("get", "/components")
        assert response.status_code == 200
        assert [c["name"] for c in response.json()] == ["API"]
        assert not db_router.state().reachable
        assert len([r for r in caplog.records if "cannot be reached" in r.message]) == 1
