"""Periodic tasks run once per tick of their schedule, even with two beat processes."""

import time

import pytest
from celery.contrib.testing.worker import start_worker

from components import tasks as component_tasks
from incidents import tasks as incident_tasks
from statuspage.celery import PERIODIC_HEADER, TICK_HEADER, _stamp_tick, app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def advances(monkeypatch):
    """How many times the service behind the maintenance task ran."""
    calls = []
    monkeypatch.setattr(incident_tasks.events, "maintenance_reminders_due", lambda: None)
    monkeypatch.setattr(
        incident_tasks.services, "maintenances_advance_due", lambda: calls.append(1)
    )
    return calls


def from_beat(task, tick=None):
    headers = {PERIODIC_HEADER: True}
    if tick is not None:
        headers[TICK_HEADER] = tick
    task.apply(headers=headers)


def test_two_beats_sending_the_same_tick_run_the_service_once(advances):
    for _ in range(2):  # one message from each beat process
        from_beat(incident_tasks.advance_scheduled_maintenances, tick=1000)
    assert advances == [1]
    from_beat(incident_tasks.advance_scheduled_maintenances, tick=1001)  # the next tick runs
    assert advances == [1, 1]


def test_without_a_stamped_tick_beat_messages_share_the_current_one(advances):
    for _ in range(3):
        from_beat(incident_tasks.advance_scheduled_maintenances)
    assert advances == [1]


def test_calls_that_did_not_come_from_beat_always_run(advances):
    for _ in range(3):
        incident_tasks.advance_scheduled_maintenances.apply()
        incident_tasks.advance_scheduled_maintenances()
    assert advances == [1] * 6


def test_the_lock_is_per_task(advances, monkeypatch):
    rolled = []
    monkeypatch.setattr(component_tasks.services, "roll_up_uptime", lambda: rolled.append(1))
    from_beat(incident_tasks.advance_scheduled_maintenances, tick=7)
    from_beat(component_tasks.roll_up_uptime, tick=7)
    assert advances == [1] and rolled == [1]


def test_every_beat_entry_is_marked_and_stamped_with_its_tick_when_published():
    for entry in app.conf.beat_schedule.values():
        assert entry["options"]["headers"][PERIODIC_HEADER] is True
        headers = {"task": entry["task"], **entry["options"]["headers"]}
        _stamp_tick(sender=entry["task"], headers=headers)
        assert isinstance(headers[TICK_HEADER], int)
    untouched = {"task": "incidents.tasks.tell_staff_by_email"}
    _stamp_tick(sender=untouched["task"], headers=untouched)
    assert TICK_HEADER not in untouched


def test_a_real_worker_runs_two_beats_messages_for_one_tick_once(settings, advances):
    """Through the broker: the headers beat sets travel with the message to the worker."""
    app.control.purge()
    entry = app.conf.beat_schedule["advance-scheduled-maintenances"]
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=["default"]
    ):
        results = [
            incident_tasks.advance_scheduled_maintenances.apply_async(**entry["options"])
            for _ in range(2)
        ]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not advances:
            time.sleep(0.1)
        time.sleep(1)  # the second message would have run by now
    assert advances == [1], results
