"""Scheduler → broker → a real worker per location → results and the component's status."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import OperationalError

from components.models import CheckLocationState, CheckResult, Component, ComponentStatus
from components.tasks import dispatch_due_checks, run_checks
from statuspage.celery import app
from tests.components.factories import ComponentFactory, HealthCheckFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


@pytest.fixture
def workers():
    """A worker serving the default location and "eu", as `-Q checks,checks.eu` would."""
    app.control.purge()
    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        shutdown_timeout=10,
        queues=["checks", "checks.eu"],
    ):
        yield


def wait_for(condition, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OperationalError:  # SQLite: the worker thread holds the table for a moment
            pass
        time.sleep(0.1)
    pytest.fail("timed out")


def test_due_checks_run_from_every_location_and_a_quorum_moves_the_component(
    page, httpserver, workers
):
    api = ComponentFactory(name="API")
    httpserver.expect_request("/health").respond_with_data("down", status=503)
    check = HealthCheckFactory(
        component=api,
        url=httpserver.url_for("/health"),
        locations=["default", "eu"],
        quorum=2,
        failures_before_down=1,
    )

    dispatch_due_checks()  # what beat triggers every few seconds

    wait_for(lambda: CheckResult.objects.filter(health_check=check).count() == 2)
    assert sorted(CheckResult.objects.values_list("location", flat=True)) == ["default", "eu"]
    wait_for(lambda: CheckLocationState.objects.filter(verdict="down").count() == 2)
    wait_for(lambda: Component.objects.get(pk=api.pk).status == ComponentStatus.MAJOR_OUTAGE)
    assert api.status_changes.get().cause == "health_check"


def test_a_batch_delivered_twice_runs_its_checks_once(page, httpserver, workers):
    api = ComponentFactory(name="API")
    httpserver.expect_request("/health").respond_with_data("ok")
    check = HealthCheckFactory(component=api, url=httpserver.url_for("/health"))
    runs = [(check.pk, check.next_run_at.isoformat())]

    run_checks.apply_async(args=("default", runs), queue="checks")
    run_checks.apply_async(args=("default", runs), queue="checks")

    wait_for(lambda: CheckResult.objects.count() >= 1)
    time.sleep(1)  # time for the second delivery to be processed
    assert CheckResult.objects.count() == 1
    assert len(httpserver.log) == 1
