"""Every way in that writes, against a database that refuses writes as a hot standby does.

A standby region's database (docs/deployment.md, "A second region") answers reads and refuses
every write with SQLSTATE 25006. PostgreSQL refuses them with the same error in a session set
read-only, which is what these tests do to the test database. Each write surface must answer
503 saying why (JSON on API paths), never 500; reads must keep answering; nothing half-written.
"""

import json
import logging

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse

from components.alerts import views as alert_views
from components.alerts.models import AlertIntegration, AlertKind
from components.models import CheckKind, Component
from components.services import component_set_status
from incidents.models import Incident, Subscriber
from incidents.notify.links import confirm_token
from statuspage.api_v1.keys import api_key_create
from statuspage.lib.outage import QuietDuringOutage, database_read_only
from statuspage.models import PublicChange
from statuspage.public import public_cache
from statuspage.public.snapshots import keys
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.incidents.factories import StaffFactory, SubscriberFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL session setting"),
]

READ_ONLY = "read-only: its database is a standby"


@pytest.fixture
def read_only():
    """From here on, this connection's transactions are read-only (tests share it with the
    test client's requests)."""

    def switch() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    yield switch
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")


@pytest.fixture
def web():
    """A client that gets the error pages visitors get, not the exceptions."""
    return Client(raise_request_exception=False)


@pytest.fixture
def page():
    api = ComponentFactory(name="API")
    # A superuser: transactional tests flush the roles the migrations made.
    owner = StaffFactory(username="oncall", is_superuser=True)
    owner.set_password("correct horse battery staple")
    owner.save()
    raw = api_key_create(owner=owner, name="CI")[1]
    page_id = json.loads(Client().get("/api/v1/pages", HTTP_AUTHORIZATION=f"OAuth {raw}").content)[
        0
    ]["id"]
    return api, raw, page_id


def _refused(response, *, json_body: bool) -> None:
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "no-store" in response["Cache-Control"]
    if json_body:
        body = json.loads(response.content)
        assert READ_ONLY in body["error"] and body["error"] == body["message"]
    else:
        assert "This copy of the status page is read-only" in response.content.decode()


def test_management_api_writes_are_refused_saying_why_and_reads_still_answer(web, page, read_only):
    api, raw, page_id = page
    read_only()
    auth = {"HTTP_AUTHORIZATION": f"OAuth {raw}"}
    patched = web.patch(
        f"/api/v1/pages/{page_id}/components/{api.public_id}",
        json.dumps({"component": {"status": "major_outage"}}),
        content_type="application/json",
        **auth,
    )
    _refused(patched, json_body=True)
    posted = web.post(
        f"/api/v1/pages/{page_id}/incidents",
        json.dumps({"incident": {"name": "Down", "status": "investigating"}}),
        content_type="application/json",
        **auth,
    )
    _refused(posted, json_body=True)
    # A read notes the key's use: refused by the database, and the read answers anyway.
    listed = web.get(f"/api/v1/pages/{page_id}/components", **auth)
    assert listed.status_code == 200
    assert [c["status"] for c in json.loads(listed.content)] == ["operational"]
    assert Incident.objects.count() == 0
    assert Component.objects.get().status == "operational"


def test_staff_sign_in_is_refused_saying_why(web, page, read_only):
    form = web.get("/admin/login/")
    assert form.status_code == 200  # the form itself only reads
    read_only()
    signed_in = web.post(
        "/admin/login/",
        {"username": "oncall", "password": "correct horse battery staple"},
    )
    _refused(signed_in, json_body=False)


@pytest.mark.parametrize("htmx", [False, True])
def test_subscribing_is_refused_and_nobody_is_stored(web, page, read_only, htmx):
    read_only()
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = web.post(reverse("subscribe"), {"email": "reader@example.test"}, **headers)
    _refused(response, json_body=False)
    assert Subscriber.objects.count() == 0


def test_a_confirmation_link_is_refused_and_stays_usable(web, page, read_only):
    subscriber = SubscriberFactory(email="waiting@example.test", unconfirmed=True)
    path = reverse("subscription-confirm", kwargs={"token": confirm_token(subscriber)})
    read_only()
    assert web.get(path).status_code == 200  # the question only reads
    _refused(web.post(path), json_body=False)
    subscriber.refresh_from_db()
    assert subscriber.confirmed_at is None


def test_heartbeat_pings_and_alert_webhooks_are_refused_so_senders_retry(web, page, read_only):
    heartbeat = HealthCheckFactory(kind=CheckKind.HEARTBEAT, url="", interval=300, grace=60)
    alerts = AlertIntegration.objects.create(name="Prometheus", kind=AlertKind.ALERTMANAGER)
    read_only()
    _refused(web.get(f"/ping/{heartbeat.ping_token}/"), json_body=False)
    body = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "x"}}]}
    response = web.post(alerts.path, json.dumps(body), content_type="application/json")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert json.loads(response.content)["error"] == "read_only"


def test_an_alert_webhook_gets_a_503_to_retry_while_the_database_is_away(
    web, page, settings, monkeypatch
):
    """The neighbouring failure: a database that cannot be reached at all."""
    alerts = AlertIntegration.objects.create(name="Prometheus", kind=AlertKind.ALERTMANAGER)
    url = alerts.path
    body = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "x"}}]}

    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(alert_views, "alerts_receive", unreachable)
    response = web.post(url, json.dumps(body), content_type="application/json")
    assert response.status_code == 503
    assert json.loads(response.content)["error"] == "database_unavailable"


def test_public_pages_still_render_from_a_read_only_database(web, page, read_only):
    read_only()
    for path in ("/", "/history/", "/api/v2/summary.json", "/history.atom", "/badge.svg"):
        response = web.get(path)
        assert response.status_code == 200, path


def test_a_public_change_is_noted_in_the_database_for_standby_regions(page):
    api, _raw, _page_id = page
    component_set_status(component=api, status="major_outage")
    noted = PublicChange.objects.get(pk=1)
    assert noted.generation == public_cache.generation()
    assert noted.changed_at is not None


def test_noting_a_change_on_a_read_only_database_changes_nothing_and_raises_nothing(
    page, read_only
):
    before = PublicChange.objects.get(pk=1).generation
    read_only()
    keys.publish_change()
    assert public_cache.generation() != before  # this region's pages are stale all the same
    assert PublicChange.objects.get(pk=1).generation == before


def test_a_refused_write_is_not_logged_as_a_crash(page, read_only):
    read_only()
    with pytest.raises(Exception) as refused:
        Component.objects.update(name="Renamed")
    assert database_read_only(refused.value)
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error", None, None
    )
    record.exc_info = (type(refused.value), refused.value, None)
    assert not QuietDuringOutage().filter(record)
