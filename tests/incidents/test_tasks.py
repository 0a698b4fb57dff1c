from datetime import timedelta

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker

from incidents import tasks
from statuspage.celery import app
from tests.components.factories import ComponentFactory
from tests.incidents.factories import schedule_maintenance


@pytest.fixture
def celery_worker(transactional_db):
    app.control.purge()  # what earlier tests queued is not this test's business
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=["default"]
    ) as worker:
        yield worker


def wait_for(predicate, timeout=15.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_starts_a_due_maintenance(page, celery_worker):
    api = ComponentFactory(name="API")
    maintenance = schedule_maintenance(starts_in=timedelta(seconds=-1), affected_components=[api])
    # schedule_maintenance refuses nothing in the past; the window opened a second ago.
    tasks.advance_scheduled_maintenances.delay()

    def started():
        maintenance.refresh_from_db()
        return maintenance.status == "in_progress"

    assert wait_for(started)
    api.refresh_from_db()
    assert api.status == "under_maintenance"


def test_the_beat_schedule_runs_the_maintenance_task_every_30_seconds():
    entry = app.conf.beat_schedule["advance-scheduled-maintenances"]
    assert entry["task"] == tasks.advance_scheduled_maintenances.name
    assert entry["schedule"] <= 30


def test_a_worker_completes_an_overdue_maintenance(page, celery_worker):
    api = ComponentFactory(name="API")
    with time_machine.travel(-timedelta(hours=3)):
        maintenance = schedule_maintenance(
            starts_in=timedelta(minutes=1), lasts=timedelta(hours=1), affected_components=[api]
        )
    tasks.advance_scheduled_maintenances.delay()

    def completed():
        maintenance.refresh_from_db()
        return maintenance.status == "completed"

    assert wait_for(completed)
    api.refresh_from_db()
    assert api.status == "operational"
