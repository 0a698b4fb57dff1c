"""Open incidents' silence since their last public update, and the reminders staff get when
it passes the page's promised update interval (incidents/reminders.py)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection, connections, transaction
from django.urls import reverse

from incidents import services
from incidents.models import Incident, IncidentStatus
from incidents.reminders import silent_incidents_remind
from incidents.selectors import open_incidents_silence
from statuspage.models import PageSettings
from tests.incidents.factories import StaffFactory, open_incident, schedule_maintenance

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=30)


@pytest.fixture(autouse=True)
def _eager_and_local(settings):
    # Staff are told by tasks: run them here rather than leave messages in the test broker.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True  # the staff webhook is on this machine


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def beat_at(clock, minutes, capture) -> int:
    """One beat, `minutes` after START; returns how many reminders it sent."""
    clock.move_to(START + timedelta(minutes=minutes))
    with capture(execute=True):
        return silent_incidents_remind()


def reminders():
    return [message for message in mail.outbox if message.subject.startswith("[Acme] No update")]


@pytest.mark.parametrize(
    ("minutes", "state"),
    [(0, "ok"), (23, "ok"), (24, "amber"), (29, "amber"), (30, "red"), (95, "red")],
)
def test_silence_turns_amber_at_80_percent_and_red_at_the_interval(page, clock, minutes, state):
    incident = open_incident()
    clock.move_to(START + timedelta(minutes=minutes))

    [silence] = open_incidents_silence(interval=INTERVAL)

    assert silence.incident == incident
    assert silence.since == timedelta(minutes=minutes)
    assert silence.state == state


def test_silence_is_always_ok_when_reminders_are_off(page, clock):
    open_incident()
    clock.move_to(START + timedelta(hours=5))

    [silence] = open_incidents_silence(interval=None)

    assert silence.state == "ok" and silence.since == timedelta(hours=5)


def test_silence_counts_from_the_newest_update_as_posted_not_as_displayed(page, clock):
    incident = open_incident()
    clock.move_to(START + timedelta(minutes=20))
    services.incident_post_update(
        incident=incident,
        status=IncidentStatus.IDENTIFIED,
        body="Found it.",
        display_at=START - timedelta(hours=1),  # set back by staff
    )
    clock.move_to(START + timedelta(minutes=45))

    [silence] = open_incidents_silence(interval=INTERVAL)

    assert silence.last_update_at == START + timedelta(minutes=20)
    assert silence.state == "amber"


def test_only_open_incidents_and_maintenances_under_way_can_be_silent(page, clock):
    silent = open_incident(name="Open")
    resolved = open_incident(name="Resolved")
    services.incident_resolve(incident=resolved)
    schedule_maintenance(name="Not started", starts_in=timedelta(hours=3))
    under_way = schedule_maintenance(name="Under way", starts_in=timedelta(minutes=10))
    clock.move_to(START + timedelta(minutes=10))
    services.maintenances_advance_due()
    clock.move_to(START + timedelta(hours=2))

    silences = {s.incident.name: s for s in open_incidents_silence(interval=INTERVAL)}

    assert set(silences) == {"Open", "Under way"}
    assert silences["Open"].incident == silent
    # a maintenance is silent from its start, not from its announcement
    assert silences["Under way"].incident == under_way
    assert silences["Under way"].since == timedelta(minutes=110)


def test_reading_the_silences_takes_one_query_however_many_incidents(
    page, clock, django_assert_max_num_queries
):
    for n in range(6):
        incident = open_incident(name=f"Incident {n}", author=StaffFactory(email=f"s{n}@a.test"))
        services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED)

    with django_assert_max_num_queries(1):
        silences = open_incidents_silence(interval=INTERVAL)
        authors = [s.incident.created_by.email for s in silences]

    assert len(authors) == 6


def test_a_silent_incident_is_reminded_once_per_interval_however_many_beats(
    page, clock, django_capture_on_commit_callbacks
):
    StaffFactory(email="rui@acme.test", groups=["Responders"])
    open_incident(name="Login failures")
    sent = [beat_at(clock, m, django_capture_on_commit_callbacks) for m in (1, 29, 30, 30.5, 31)]
    assert sent == [0, 0, 1, 0, 0]
    sent = [beat_at(clock, m, django_capture_on_commit_callbacks) for m in (59, 60, 61, 89)]
    assert sent == [0, 1, 0, 0]
    assert beat_at(clock, 125, django_capture_on_commit_callbacks) == 1  # a beat missed at 90

    assert [m.subject for m in reminders()] == [
        "[Acme] No update for 30 minutes: Login failures",
        "[Acme] No update for 1 hour: Login failures",
        "[Acme] No update for 2 hours 5 min: Login failures",
    ]


def test_a_new_update_restarts_the_interval(page, clock, django_capture_on_commit_callbacks):
    incident = open_incident()
    assert beat_at(clock, 30, django_capture_on_commit_callbacks) == 1
    clock.move_to(START + timedelta(minutes=45))
    services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED)

    sent = [beat_at(clock, m, django_capture_on_commit_callbacks) for m in (60, 74, 75, 76)]

    assert sent == [0, 0, 1, 0]


def test_a_resolved_incident_is_never_reminded(page, clock, django_capture_on_commit_callbacks):
    StaffFactory(email="rui@acme.test", groups=["Responders"])
    quiet = open_incident(name="Resolved quickly")
    services.incident_resolve(incident=quiet)
    later = open_incident(name="Resolved after a reminder")
    assert beat_at(clock, 30, django_capture_on_commit_callbacks) == 1
    services.incident_resolve(incident=later)

    sent = [beat_at(clock, m, django_capture_on_commit_callbacks) for m in (60, 90, 600)]

    assert sent == [0, 0, 0]
    assert [m.subject for m in reminders()] == [
        "[Acme] No update for 30 minutes: Resolved after a reminder"
    ]


def test_no_reminders_when_the_interval_is_zero(page, clock, django_capture_on_commit_callbacks):
    page.update_interval_minutes = 0
    page.save()
    PageSettings.forget_cached()
    StaffFactory(email="rui@acme.test", groups=["Responders"])
    open_incident()

    assert beat_at(clock, 600, django_capture_on_commit_callbacks) == 0
    assert reminders() == []


def test_the_reminder_goes_to_the_author_and_responders_and_the_staff_webhook(
    page, clock, django_capture_on_commit_callbacks, httpserver, settings
):
    settings.BEACON_STAFF_WEBHOOK_URL = httpserver.url_for("/slack")
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    author = StaffFactory(email="ana@acme.test")  # staff in no group: the author all the same
    StaffFactory(email="rui@acme.test", groups=["Responders"])
    incident = open_incident(name="Sign-in <b>fails</b> & more", author=author)

    assert beat_at(clock, 31, django_capture_on_commit_callbacks) == 1

    [message] = reminders()
    assert message.to == ["ana@acme.test"]
    assert message.cc == ["rui@acme.test"]
    assert message.subject == "[Acme] No update for 31 minutes: Sign-in <b>fails</b> & more"
    link = "https://status.acme.test" + reverse(
        "admin:incidents_incident_change", args=[incident.pk]
    )
    assert message.body == (
        "The incident “Sign-in <b>fails</b> & more” (investigating) has had no public update "
        "for 31 minutes: the last was posted at 2026-03-02 09:00 UTC. The page promises an "
        "update every 30 minutes.\n\n"
        "Post an update, even to say that work goes on:\n"
        f"{link}\n"
    )
    [slack] = [entry for entry, _ in httpserver.log if entry.path == "/slack"]
    # Slack's control characters escaped: the name shows as written, not as markup.
    assert slack.json["text"].startswith(
        "*No update for 31 minutes: Sign-in &lt;b&gt;fails&lt;/b&gt; &amp; more*"
    )
    assert link in slack.json["text"]


def test_a_maintenance_under_way_links_to_its_own_admin_page(
    page, clock, django_capture_on_commit_callbacks
):
    StaffFactory(email="rui@acme.test", groups=["Responders"])
    maintenance = schedule_maintenance(starts_in=timedelta(minutes=5))
    clock.move_to(START + timedelta(minutes=5))
    services.maintenances_advance_due()

    assert beat_at(clock, 34, django_capture_on_commit_callbacks) == 0
    assert beat_at(clock, 35, django_capture_on_commit_callbacks) == 1

    [message] = reminders()
    assert message.to == ["rui@acme.test"]
    assert "The maintenance “Database upgrade” (in progress)" in message.body
    assert reverse("admin:incidents_scheduledmaintenance_change", args=[maintenance.pk]) in (
        message.body
    )


@pytest.mark.django_db(transaction=True)
def test_two_beats_at_once_send_one_reminder(page, clock):
    # A superuser: a transactional test run before this one flushed the migrations' roles.
    StaffFactory(email="rui@acme.test", is_superuser=True)
    incident = open_incident()
    clock.move_to(START + timedelta(minutes=30))
    results = []

    def beat():
        try:
            results.append(silent_incidents_remind())
        finally:
            connections.close_all()

    beats = [threading.Thread(target=beat) for _ in range(2)]
    # Hold the incident's row: both beats read it as due, then wait on it at their claim.
    with transaction.atomic():
        Incident.objects.select_for_update().get(pk=incident.pk)
        for thread in beats:
            thread.start()
        _wait_for_lock_waiters(2)
    for thread in beats:
        thread.join(timeout=30)

    assert sorted(results) == [0, 1]
    assert len(reminders()) == 1


def _wait_for_lock_waiters(count: int) -> None:
    for _ in range(500):
        with connection.cursor() as cursor:
            cursor.execute("select pg_stat_clear_snapshot()")  # else fixed for the transaction
            cursor.execute(
                "select count(*) from pg_stat_activity "
                "where datname = current_database() and wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= count:
                return
        threading.Event().wait(0.02)
    raise AssertionError(f"{count} beats never waited on the incident's row")


def test_the_incident_list_shows_the_silence_in_words_and_colour(page, client, responder, clock):
    open_incident(name="Quiet one")
    clock.move_to(START + timedelta(minutes=10))
    open_incident(name="Due soon")
    clock.move_to(START + timedelta(minutes=35))
    open_incident(name="Fresh")
    resolved = open_incident(name="Over")
    services.incident_resolve(incident=resolved)

    response = client.get(reverse("admin:incidents_incident_changelist"))

    assert response.status_code == 200
    rows = {
        name: row
        for row in response.text.split("<tr")
        for name in ("Quiet one", "Due soon", "Fresh", "Over")
        if f">{name}<" in row
    }
    assert '<span class="silence silence-red">35 min · overdue</span>' in rows["Quiet one"]
    assert '<span class="silence silence-amber">25 min · update due soon</span>' in rows["Due soon"]
    assert '<span class="silence silence-ok">0 min</span>' in rows["Fresh"]
    assert "silence" not in rows["Over"]
    assert "css/admin.css" in response.text
