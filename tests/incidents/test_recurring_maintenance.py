"""Recurring maintenance: rules, occurrences made ahead, edits, the calendar and the page."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from dateutil.rrule import rrulestr
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from icalendar import Calendar

from incidents import tasks
from incidents.models import Incident, IncidentStatus, MaintenanceSeries
from incidents.notify.models import NotificationEvent
from incidents.series import services as series_services
from incidents.series.recurrence import RuleError, monthly_rule, parse_rule, weekly_rule
from incidents.services import incident_create, incident_delete
from statuspage.public.feeds import maintenance_calendar
from tests.components.factories import ComponentFactory
from tests.incidents.factories import sign_in_staff

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)  # before Berlin moves to summer time (28 March)


def make_series(**kwargs) -> MaintenanceSeries:
    kwargs.setdefault("name", "Weekly database patching")
    kwargs.setdefault("body", "We patch the **database**.")
    kwargs.setdefault("rule", "FREQ=WEEKLY;BYDAY=MO")
    kwargs.setdefault("dtstart", datetime(2027, 3, 15, 2, 0, tzinfo=BERLIN))
    kwargs.setdefault("time_zone", "Europe/Berlin")
    kwargs.setdefault("duration", timedelta(hours=1))
    kwargs.setdefault("now", NOW)
    return series_services.series_create(**kwargs)


def occurrences(series) -> list[Incident]:
    return list(Incident.objects.filter(series=series).order_by("series_occurrence"))


# Rules


@pytest.mark.parametrize(
    ("rule", "duration", "says"),
    [
        ("", None, "Give a recurrence rule"),
        ("FREQ=SECONDLY", None, "at most daily"),
        ("FREQ=MINUTELY;INTERVAL=5", None, "at most daily"),
        ("FREQ=HOURLY", None, "at most daily"),
        ("FREQ=DAILY;BYHOUR=1,2,3", None, "cannot have BYHOUR"),
        ("FREQ=DAILY;BYMINUTE=0,30", None, "cannot have BYMINUTE"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", None, "cannot have BYMONTH, BYMONTHDAY"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", None, "no occurrences"),
        ("FREQ=WEEKLY;COUNT=1001", None, "between 1 and 1000"),
        ("FREQ=WEEKLY;COUNT=0", None, "between 1 and 1000"),
        ("FREQ=WEEKLY;COUNT=99999999999999999999", None, "between 1 and 1000"),
        ("FREQ=WEEKLY;INTERVAL=0", None, "between 1 and 1000"),
        ("FREQ=WEEKLY;UNTIL=20200101T000000Z", None, "before the first start"),
        ("FREQ=WEEKLY;UNTIL=tomorrow", None, "UNTIL must be a date"),
        ("FREQ=WEEKLY;UNTIL=20281301", None, "UNTIL must be a date"),
        ("FREQ=WEEKLY;COUNT=3;UNTIL=20280101", None, "not both"),
        ("FREQ=WEEKLY;FREQ=DAILY", None, "twice"),
        ("FREQ=FORTNIGHTLY", None, "Choose FREQ"),
        ("BYDAY=MO", None, "Choose FREQ"),
        ("FREQ=WEEKLY;BYDAY=XX", None, "cannot be read"),
        ("FREQ=WEEKLY\nDTSTART:20200101T000000", None, "line break"),
        ("FREQ=WEEKLY\x00", None, "control character"),
        ("FREQ=WEEKLY;X-NAME=1", None, "not a part"),
        ("FREQ=WEEKLY;" + "BYDAY=MO;" * 100, None, "under 500"),
        ("FREQ=DAILY", timedelta(hours=25), "before the next one starts"),
        ("FREQ=WEEKLY", timedelta(0), "positive"),
        ("FREQ=YEARLY", timedelta(days=8), "at most 7 days"),
    ],
)
def test_hostile_rules_are_refused_with_a_reason(rule, duration, says):
    with pytest.raises(RuleError, match=says):
        parse_rule(
            rule,
            dtstart=datetime(2027, 3, 15, 2, 0),
            time_zone="Europe/Berlin",
            duration=duration,
        )


@pytest.mark.parametrize(
    ("rule", "first", "zone", "duration"),
    [
        ("FREQ=WEEKLY;UNTIL=99991231", datetime(2027, 3, 15, 2, 0), "America/New_York", None),
        ("FREQ=YEARLY", datetime(9999, 12, 31, 23, 0), "America/New_York", None),
        ("FREQ=YEARLY", datetime(1, 1, 1, 0, 30), "Europe/Berlin", None),
        ("FREQ=YEARLY", datetime(2200, 12, 30, 2, 0), "Europe/Berlin", timedelta(days=7)),
        ("FREQ=YEARLY", datetime(9999, 12, 30, 2, 0, tzinfo=UTC), "Pacific/Kiritimati", None),
    ],
    ids=["until 9999", "start 9999", "start year 1", "window into 2201", "aware 9999"],
)
def test_a_start_or_end_out_of_time_is_refused_not_a_crash(rule, first, zone, duration):
    with pytest.raises(RuleError, match="between 1970 and 2200"):
        parse_rule(rule, dtstart=first, time_zone=zone, duration=duration)


def test_a_rule_is_normalised_and_its_local_until_kept_in_utc():
    recurrence = parse_rule(
        "rrule:freq=weekly;byday=mo;until=20270401",
        dtstart=datetime(2027, 3, 15, 2, 0),
        time_zone="Europe/Berlin",
        duration=timedelta(hours=1),
    )
    assert recurrence.text == "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270401T215959Z"
    assert recurrence.dtstart == datetime(2027, 3, 15, 2, 0, tzinfo=BERLIN)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(RuleError, match="time zone"):
        parse_rule("FREQ=WEEKLY", dtstart=datetime(2027, 3, 15, 2, 0), time_zone="Mars/Olympus")


def test_the_builders_write_weekly_and_monthly_rules():
    assert weekly_rule(["FR", "MO"]) == "FREQ=WEEKLY;BYDAY=MO,FR"
    assert weekly_rule(["TU"], interval=2) == "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU"
    assert monthly_rule(nth=2, weekday="TU") == "FREQ=MONTHLY;BYDAY=2TU"
    with pytest.raises(RuleError):
        weekly_rule([])
    with pytest.raises(RuleError):
        monthly_rule(nth=5, weekday="TU")


@pytest.mark.django_db
def test_a_series_refused_is_not_written(page):
    with pytest.raises(ValidationError) as refused:
        make_series(name="Patch\r\nBcc: x", rule="FREQ=HOURLY")
    assert set(refused.value.message_dict) == {"name", "rule"}
    assert not MaintenanceSeries.objects.exists()
    assert not Incident.objects.exists()


# Occurrences


@pytest.mark.django_db
def test_weekly_in_berlin_keeps_its_local_wall_clock_across_dst(page):
    series = make_series()

    made = occurrences(series)

    local = [incident.scheduled_for.astimezone(BERLIN) for incident in made]
    assert [moment.date().isoformat() for moment in local] == [
        "2027-03-15",
        "2027-03-22",
        "2027-03-29",
        "2027-04-05",
    ]
    assert {(moment.hour, moment.minute) for moment in local} == {(2, 0)}
    # One hour apart in UTC: winter time, then summer time.
    assert [incident.scheduled_for.astimezone(UTC).hour for incident in made] == [1, 1, 0, 0]
    assert all(i.scheduled_until - i.scheduled_for == timedelta(hours=1) for i in made)
    assert all(i.status == IncidentStatus.SCHEDULED and i.is_maintenance for i in made)
    assert made[0].updates.get().body == "We patch the **database**."


@pytest.mark.django_db
def test_monthly_on_the_second_tuesday(page):
    with time_machine.travel(datetime(2027, 1, 1, tzinfo=UTC), tick=False):
        series = make_series(
            rule=monthly_rule(nth=2, weekday="TU"),
            dtstart=datetime(2027, 1, 1, 22, 0, tzinfo=UTC),
            time_zone="UTC",
            now=None,
        )
        starts = series_services.series_preview(series, count=4)
    assert [start.date().isoformat() for start in starts] == [
        "2027-01-12",
        "2027-02-09",
        "2027-03-09",
        "2027-04-13",
    ]
    assert [i.scheduled_for for i in occurrences(series)] == starts[:1]


@pytest.mark.django_db
def test_a_skipped_start_is_not_made(page):
    skipped = datetime(2027, 3, 22, 2, 0, tzinfo=BERLIN)
    series = make_series(exdates=[skipped])

    starts = [incident.scheduled_for for incident in occurrences(series)]

    assert skipped not in starts
    assert len(starts) == 3


@pytest.mark.django_db
def test_making_occurrences_twice_makes_nothing_new(page):
    series = make_series()
    assert len(occurrences(series)) == 4

    assert series_services.series_materialise(now=NOW) == 0
    assert series_services.series_materialise(now=NOW + timedelta(days=7)) == 1
    assert len(occurrences(series)) == 5


@pytest.mark.django_db
def test_the_unique_constraint_refuses_a_second_incident_for_one_start(page):
    series = make_series()
    first = occurrences(series)[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        incident_create(
            kind="maintenance",
            name="Again",
            status=IncidentStatus.SCHEDULED,
            scheduled_for=first.scheduled_for,
            scheduled_until=first.scheduled_until,
            series=series,
            series_occurrence=first.series_occurrence,
        )


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_make_each_occurrence_once(page):
    with time_machine.travel(NOW - timedelta(days=60), tick=False):
        series = make_series(now=NOW - timedelta(days=60))
    Incident.objects.all().delete()
    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait()
            series_services.series_materialise(now=NOW)
        except Exception as error:  # pragma: no cover - the assertion shows it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    starts = [incident.series_occurrence for incident in occurrences(series)]
    assert len(starts) == 4
    assert len(set(starts)) == 4


@pytest.mark.django_db
def test_an_occurrence_starts_and_completes_through_the_maintenance_task(page):
    api = ComponentFactory(name="API")
    series = make_series(components=[api])
    first = occurrences(series)[0]

    with time_machine.travel(first.scheduled_for + timedelta(seconds=5), tick=False):
        tasks.advance_scheduled_maintenances()
    first.refresh_from_db()
    api.refresh_from_db()
    assert first.status == IncidentStatus.IN_PROGRESS
    assert api.status == "under_maintenance"

    with time_machine.travel(first.scheduled_until + timedelta(seconds=5), tick=False):
        tasks.advance_scheduled_maintenances()
    first.refresh_from_db()
    api.refresh_from_db()
    assert first.status == IncidentStatus.COMPLETED
    assert api.status == "operational"
    # The run also made the occurrence that came into the horizon.
    assert len(occurrences(series)) == 5


# Editing


@pytest.mark.django_db
def test_editing_the_series_remakes_only_future_unstarted_unedited_occurrences(page):
    series = make_series()
    started, edited, plain, _last = occurrences(series)
    Incident.objects.filter(pk=started.pk).update(status=IncidentStatus.IN_PROGRESS)
    series_services.series_occurrence_detach(incident=edited)
    Incident.objects.filter(pk=edited.pk).update(name="Moved to a bigger window")

    series_services.series_update(
        series=series, name="Database patching", duration=timedelta(hours=2), now=NOW
    )

    after = {incident.series_occurrence: incident for incident in occurrences(series)}
    assert after[started.series_occurrence].pk == started.pk
    assert after[started.series_occurrence].name == "Weekly database patching"
    assert after[edited.series_occurrence].name == "Moved to a bigger window"
    remade = after[plain.series_occurrence]
    assert remade.pk != plain.pk
    assert remade.name == "Database patching"
    assert remade.scheduled_until - remade.scheduled_for == timedelta(hours=2)


@pytest.mark.django_db
def test_editing_the_series_does_not_announce_or_remind_its_occurrences_again(page):
    series = make_series(deliver_notifications=True)
    announced = NotificationEvent.objects.count()
    assert announced == len(occurrences(series)) > 0  # one announcement each
    first = occurrences(series)[0]
    reminded = NOW - timedelta(minutes=5)
    Incident.objects.filter(pk=first.pk).update(scheduled_reminded_at=reminded)

    series_services.series_update(
        series=series, body="We patch the database and its replica.", now=NOW
    )
    series_services.series_update(series=series, rule="FREQ=WEEKLY;BYDAY=MO,TH", now=NOW)

    remade = {incident.series_occurrence: incident for incident in occurrences(series)}
    assert remade[first.series_occurrence].scheduled_reminded_at == reminded
    mondays = [i for start, i in remade.items() if start.astimezone(BERLIN).weekday() == 0]
    thursdays = [i for i in remade.values() if i not in mondays]
    assert len(mondays) == announced and thursdays  # the Thursdays were never announced

    def announcements(incidents):
        return NotificationEvent.objects.filter(update__incident__in=incidents).count()

    assert announcements(mondays) == 0
    assert announcements(thursdays) == len(thursdays)


@pytest.mark.django_db
def test_an_occurrence_that_has_started_cannot_be_cancelled(page):
    series = make_series()
    started = occurrences(series)[0]
    Incident.objects.filter(pk=started.pk).update(status=IncidentStatus.IN_PROGRESS)
    started.refresh_from_db()

    with pytest.raises(ValidationError, match="not started"):
        series_services.series_occurrence_cancel(incident=started)

    series.refresh_from_db()
    assert series.exdates == []
    assert Incident.objects.filter(pk=started.pk).exists()


@pytest.mark.django_db
def test_a_new_rule_drops_starts_it_no_longer_gives(page):
    series = make_series()
    series_services.series_update(series=series, rule="FREQ=WEEKLY;BYDAY=TU", now=NOW)
    days = {i.scheduled_for.astimezone(BERLIN).strftime("%a") for i in occurrences(series)}
    assert days == {"Tue"}


@pytest.mark.django_db
def test_a_bad_series_edit_changes_nothing(page):
    series = make_series()
    before = [incident.pk for incident in occurrences(series)]
    with pytest.raises(ValidationError):
        series_services.series_update(series=series, rule="FREQ=MINUTELY", now=NOW)
    series.refresh_from_db()
    assert series.rule == "FREQ=WEEKLY;BYDAY=MO"
    assert [incident.pk for incident in occurrences(series)] == before


@pytest.mark.django_db
def test_cancelling_one_occurrence_skips_it_for_good(page):
    series = make_series()
    second = occurrences(series)[1]

    series_services.series_occurrence_cancel(incident=second)
    series_services.series_materialise(now=NOW)

    series.refresh_from_db()
    assert series.exdates == [second.series_occurrence.astimezone(UTC).isoformat()]
    assert second.series_occurrence not in [i.series_occurrence for i in occurrences(series)]


@pytest.mark.django_db
def test_an_occurrence_deleted_any_way_is_not_made_again(page):
    series = make_series()
    third = occurrences(series)[2]

    incident_delete(incident=third)  # as API v1's DELETE and the admin's delete do
    series_services.series_materialise(now=NOW)

    assert third.series_occurrence not in [i.series_occurrence for i in occurrences(series)]
    series.refresh_from_db()
    assert series.exdates == [third.series_occurrence.astimezone(UTC).isoformat()]


@pytest.mark.django_db
def test_deleting_a_series_keeps_started_occurrences(page):
    series = make_series()
    started = occurrences(series)[0]
    Incident.objects.filter(pk=started.pk).update(status=IncidentStatus.IN_PROGRESS)

    series_services.series_delete(series=series)

    assert list(Incident.objects.values_list("pk", flat=True)) == [started.pk]
    started.refresh_from_db()
    assert started.series_id is None


# The calendar and the page


def calendar_events(base_url="https://status.acme.test"):
    calendar = Calendar.from_ical(maintenance_calendar(base_url))
    return calendar, list(calendar.walk("VEVENT"))


@pytest.mark.django_db
def test_the_calendar_has_one_event_per_series_with_its_rule_and_exceptions(page):
    skipped = datetime(2027, 3, 22, 2, 0, tzinfo=BERLIN)
    series = make_series(exdates=[skipped])
    edited = occurrences(series)[1]
    series_services.series_occurrence_detach(incident=edited)

    calendar, events = calendar_events()

    uids = [str(event["UID"]) for event in events]
    series_uid = f"series-{series.public_id}@status.acme.test"
    assert uids == [series_uid, series_uid]  # the series, and the one edited apart
    rule_event, override = events
    assert "RECURRENCE-ID" not in rule_event
    assert rule_event["RRULE"].to_ical() == b"FREQ=WEEKLY;BYDAY=MO"
    assert rule_event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert override["RECURRENCE-ID"].dt == edited.series_occurrence
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]
    exdates = [moment.dt for moment in rule_event["EXDATE"].dts]
    assert exdates == [skipped]
    # The rule, expanded as a client would, gives the occurrences made.
    expanded = rrulestr(
        rule_event["RRULE"].to_ical().decode(), dtstart=rule_event["DTSTART"].dt
    ).between(NOW, NOW + series_services.HORIZON)
    made = [i.series_occurrence for i in occurrences(series)]
    assert [moment for moment in expanded if moment not in exdates] == made


@pytest.mark.django_db
def test_an_internal_series_stays_off_the_calendar_and_the_page(client, page):
    make_series(name="Secret patching", internal=True)
    _calendar, events = calendar_events()
    assert events == []
    with time_machine.travel(NOW, tick=False):
        response = client.get("/")
    assert b"Secret patching" not in response.content


@pytest.mark.django_db
def test_an_occurrence_made_internal_is_skipped_in_the_public_calendar(page):
    series = make_series()
    hidden = occurrences(series)[1]
    series_services.series_occurrence_detach(incident=hidden)
    Incident.objects.filter(pk=hidden.pk).update(internal=True)

    _calendar, events = calendar_events()

    assert len(events) == 1
    assert [moment.dt for moment in events[0]["EXDATE"].dts] == [hidden.series_occurrence]


@pytest.mark.django_db
def test_the_page_shows_the_next_occurrence_once_saying_it_repeats(client, page):
    make_series()
    with time_machine.travel(NOW, tick=False):
        response = client.get("/")
    html = response.content.decode()
    assert html.count("Weekly database patching") == 1
    assert "Repeats weekly" in html


# The admin

SERIES_ADD_URL = "/admin/incidents/maintenanceseries/add/"


def series_form(**overrides):
    data = {
        "name": "Monthly router firmware",
        "body": "Routers restart one by one.",
        "first_date": "2027-03-01",
        "first_time": "23:00",
        "time_zone": "Europe/Berlin",
        "duration_minutes": "90",
        "frequency": "monthly",
        "nth": "2",
        "month_weekday": "TU",
        "interval": "1",
        "scheduled_auto_in_progress": "on",
        "scheduled_auto_completed": "on",
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_staff_build_a_monthly_series_in_the_admin(client, page, responder):
    with time_machine.travel(datetime(2027, 3, 1, 12, 0, tzinfo=UTC), tick=False):
        sign_in_staff(client, responder)  # a session of that day
        response = client.post(SERIES_ADD_URL, series_form())
        assert response.status_code == 302, response.context["adminform"].form.errors
        series = MaintenanceSeries.objects.get()
        assert series.rule == "FREQ=MONTHLY;BYDAY=2TU"
        assert series.dtstart == datetime(2027, 3, 1, 23, 0, tzinfo=BERLIN)
        assert series.duration == timedelta(minutes=90)
        assert series.created_by == responder
        made = occurrences(series)
        assert [i.scheduled_for.astimezone(BERLIN).date().isoformat() for i in made] == [
            "2027-03-09"
        ]

        change = client.get(f"/admin/incidents/maintenanceseries/{series.pk}/change/")
    html = change.content.decode()
    assert 'hx-post="/admin/incidents/maintenanceseries/' in html
    # The preview without JavaScript: the saved series' next five starts.
    assert html.count("<time datetime=") == 5
    assert "Tue, 13 Apr 2027 23:00 CEST" in html
    assert change.context["adminform"].form["nth"].value() == "2"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"frequency": "custom", "custom_rule": "FREQ=MINUTELY"}, "custom_rule"),
        ({"frequency": "custom", "custom_rule": "FREQ=WEEKLY;COUNT=5000"}, "custom_rule"),
        ({"frequency": "custom", "custom_rule": ""}, "custom_rule"),
        ({"frequency": "weekly", "weekdays": []}, "weekdays"),
        ({"frequency": "custom", "custom_rule": "FREQ=DAILY\u202e"}, "custom_rule"),
        ({"name": "Firmware\x1b[31m"}, "name"),
        ({"skipped": "next tuesday"}, "skipped"),
        ({"duration_minutes": "0"}, "duration_minutes"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ],
)
@pytest.mark.django_db
def test_bad_series_input_is_a_form_error_and_writes_nothing(
    client, page, responder, overrides, field
):
    response = client.post(SERIES_ADD_URL, series_form(**overrides))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field]
    assert not MaintenanceSeries.objects.exists()
    assert not Incident.objects.exists()


@pytest.mark.django_db
def test_the_preview_follows_the_rule_as_staff_build_it(client, page, responder):
    url = "/admin/incidents/maintenanceseries/preview/"
    with time_machine.travel(NOW, tick=False):
        sign_in_staff(client, responder)
        shown = client.post(url, series_form(frequency="weekly", weekdays=["MO", "TH"], name=""))
        refused = client.post(url, series_form(frequency="custom", custom_rule="FREQ=HOURLY"))
    assert shown.status_code == 200
    assert shown.content.decode().count("<time") == 5
    assert "Thu, 11 Mar 2027 23:00 CET" in shown.content.decode()
    assert "at most daily" in refused.content.decode()
    assert client.get(url).status_code == 405


@pytest.mark.django_db
def test_an_occurrence_page_links_its_series_and_edits_stay_its_own(client, page, responder):
    series = make_series()
    first = occurrences(series)[0]
    url = f"/admin/incidents/scheduledmaintenance/{first.pk}/change/"

    response = client.get(url)
    html = response.content.decode()
    assert "Part of the series “Weekly database patching”." in html
    assert f"/admin/incidents/maintenanceseries/{series.pk}/change/" in html

    form = response.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value not in (None, False)}
    data.update(
        {
            "name": "Patching, longer this time",
            "updates-TOTAL_FORMS": "1",
            "updates-INITIAL_FORMS": "1",
            "updates-MIN_NUM_FORMS": "0",
            "updates-MAX_NUM_FORMS": "1000",
            "updates-0-id": str(first.updates.get().pk),
            "updates-0-incident": str(first.pk),
            "updates-0-body": first.updates.get().body,
            "updates-0-display_at_0": first.updates.get().display_at.strftime("%Y-%m-%d"),
            "updates-0-display_at_1": first.updates.get().display_at.strftime("%H:%M:%S"),
        }
    )
    data.update(status="scheduled", body="")
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    first.refresh_from_db()
    assert first.series_detached

    series_services.series_update(series=series, name="Patching", now=NOW)
    first.refresh_from_db()
    assert first.name == "Patching, longer this time"


@pytest.mark.django_db
def test_cancelling_an_occurrence_from_its_page(client, page, responder):
    series = make_series()
    second = occurrences(series)[1]

    response = client.post(f"/admin/incidents/scheduledmaintenance/{second.pk}/cancel-occurrence/")

    assert response.status_code == 302
    assert not Incident.objects.filter(pk=second.pk).exists()
    series.refresh_from_db()
    assert len(series.exdates) == 1


@pytest.mark.django_db
def test_the_page_and_calendar_queries_do_not_grow_with_series(
    client, page, django_assert_max_num_queries
):
    api = ComponentFactory(name="API")
    for number in range(6):
        make_series(name=f"Patching {number}", components=[api], exdates=[NOW])
        series_services.series_occurrence_detach(
            incident=Incident.objects.filter(name=f"Patching {number}").first()
        )

    with time_machine.travel(NOW, tick=False):
        with django_assert_max_num_queries(12):
            html = client.get("/").content.decode()
        with django_assert_max_num_queries(8):
            calendar = Calendar.from_ical(client.get("/maintenance.ics").content)

    assert html.count("Repeats weekly") == 6
    assert len(calendar.walk("VEVENT")) == 12  # each series, and its occurrence edited apart
