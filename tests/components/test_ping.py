"""Heartbeat pings: a job's curl tells Beacon it ran, or that it failed."""

import uuid
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from components.models import CheckKind, CheckResult, Verdict
from statuspage.public.snapshots import keys, serve
from tests.components.factories import HealthCheckFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def heartbeat():
    return HealthCheckFactory(kind=CheckKind.HEARTBEAT, url="", interval=300, grace=60)


@time_machine.travel(datetime(2026, 11, 22, 12, 0, tzinfo=UTC), tick=False)
def test_a_ping_records_when_it_came_and_an_up_result(client, heartbeat):
    response = client.get(f"/ping/{heartbeat.ping_token}/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.text == "OK"
    heartbeat.refresh_from_db()
    assert heartbeat.last_ping_at == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert heartbeat.last_ping_failed is False
    result = CheckResult.objects.get(health_check=heartbeat)
    assert result.verdict == Verdict.UP


def test_a_fail_ping_records_a_down_result(client, heartbeat):
    response = client.post(f"/ping/{heartbeat.ping_token}/fail/")

    assert response.status_code == 200
    assert response.text == "OK"
    heartbeat.refresh_from_db()
    assert heartbeat.last_ping_failed is True
    result = CheckResult.objects.get(health_check=heartbeat)
    assert result.verdict == Verdict.DOWN
    assert result.error == "The last ping reported a failure"


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    ("suffix", "verdict"),
    [("/", Verdict.UP), ("", Verdict.UP), ("/fail/", Verdict.DOWN), ("/fail", Verdict.DOWN)],
)
def test_pings_are_accepted_with_or_without_the_trailing_slash(
    client, heartbeat, method, suffix, verdict
):
    response = getattr(client, method)(f"/ping/{heartbeat.ping_token}{suffix}")

    assert response.status_code == 200
    assert CheckResult.objects.get(health_check=heartbeat).verdict == verdict


def test_a_post_needs_no_csrf_token(heartbeat):
    response = Client(enforce_csrf_checks=True).post(f"/ping/{heartbeat.ping_token}/")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/ping/{uuid.uuid4()}/",
        f"/ping/{uuid.uuid4()}/fail/",
        "/ping/not-a-token/",
        "/ping/not-a-token/fail",
    ],
)
def test_an_unknown_or_malformed_token_is_not_found(client, heartbeat, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain")
    assert response.text == "Not found"
    assert not CheckResult.objects.exists()


def test_the_token_of_a_polled_check_is_not_a_heartbeat(client):
    http_check = HealthCheckFactory(kind=CheckKind.HTTP)

    response = client.get(f"/ping/{http_check.ping_token}/")

    assert response.status_code == 404
    http_check.refresh_from_db()
    assert http_check.last_ping_at is None


def test_a_head_request_pings_as_uptime_monitors_send_it(client, heartbeat):
    response = client.head(f"/ping/{heartbeat.ping_token}/")

    assert response.status_code == 200
    heartbeat.refresh_from_db()
    assert heartbeat.last_ping_at is not None


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_not_allowed(client, heartbeat, method):
    response = getattr(client, method)(f"/ping/{heartbeat.ping_token}/")

    assert response.status_code == 405
    heartbeat.refresh_from_db()
    assert heartbeat.last_ping_at is None


@pytest.mark.parametrize("token_known", [True, False])
def test_ping_answers_are_never_cached(client, heartbeat, token_known):
    token = heartbeat.ping_token if token_known else uuid.uuid4()

    response = client.get(f"/ping/{token}/")

    assert "no-store" in response["Cache-Control"]


def test_pings_are_not_served_from_snapshots(client, heartbeat, page):
    path = f"/ping/{heartbeat.ping_token}/"
    assert keys.key_for(path) is None
    assert keys.key_for(path.rstrip("/")) is None
    client.get("/")  # the public page's snapshot is built and held in memory

    with time_machine.travel(datetime(2026, 11, 22, 12, 0, tzinfo=UTC), tick=False):
        assert client.get(path).status_code == 200
    with time_machine.travel(datetime(2026, 11, 22, 12, 5, tzinfo=UTC), tick=False):
        assert client.get(path).status_code == 200

    assert serve.fresh_in_memory(path, "") is None
    heartbeat.refresh_from_db()
    assert heartbeat.last_ping_at == datetime(2026, 11, 22, 12, 5, tzinfo=UTC)
    assert CheckResult.objects.filter(health_check=heartbeat).count() == 2
