from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from components.models import ComponentStatus, ComponentStatusChange, DailyUptime
from components.selectors import daily_uptime
from components.services import (
    StatusChangeError,
    component_set_status,
    components_backdate,
    roll_up_uptime,
)
from components.uptime import DayUptime, split_by_day
from tests.components.factories import ComponentFactory

NEW_YORK = ZoneInfo("America/New_York")


def at(*args, tz=UTC):
    return datetime(*args, tzinfo=tz)


def test_split_by_day_cuts_at_local_midnight():
    parts = list(split_by_day(at(2026, 3, 1, 22), at(2026, 3, 2, 3), NEW_YORK))
    # 22:00 UTC is 17:00 in New York: all five hours fall on March 1st there.
    assert parts == [(date(2026, 3, 1), 5 * 3600)]
    parts = list(split_by_day(at(2026, 3, 1, 22), at(2026, 3, 2, 3), UTC))
    assert parts == [(date(2026, 3, 1), 2 * 3600), (date(2026, 3, 2), 3 * 3600)]


def test_split_by_day_knows_a_dst_day_has_23_hours():
    start = at(2026, 3, 8, tz=NEW_YORK).astimezone(UTC)
    parts = list(split_by_day(start, start + timedelta(hours=24), NEW_YORK))
    assert parts[0] == (date(2026, 3, 8), 23 * 3600)
    assert parts[1] == (date(2026, 3, 9), 3600)


def test_uptime_weighs_major_fully_partial_at_thirty_percent_and_excludes_maintenance():
    day = DayUptime(date(2026, 1, 1))
    day.add(ComponentStatus.OPERATIONAL, 18 * 3600)
    day.add(ComponentStatus.MAJOR_OUTAGE, 1 * 3600)
    day.add(ComponentStatus.PARTIAL_OUTAGE, 2 * 3600)
    day.add(ComponentStatus.UNDER_MAINTENANCE, 3 * 3600)
    counted = 21 * 3600
    assert day.uptime_percent == pytest.approx(100 * (1 - (3600 + 0.3 * 7200) / counted))
    assert day.worst_status == ComponentStatus.MAJOR_OUTAGE


def test_weights_come_from_settings(settings):
    settings.BEACON_UPTIME_WEIGHTS = {"major_outage": 0.5, "partial_outage": 0.0}
    day = DayUptime(date(2026, 1, 1))
    day.add(ComponentStatus.OPERATIONAL, 12 * 3600)
    day.add(ComponentStatus.MAJOR_OUTAGE, 12 * 3600)
    assert day.uptime_percent == pytest.approx(75.0)


def test_a_day_of_only_maintenance_has_no_uptime_figure():
    day = DayUptime(date(2026, 1, 1))
    day.add(ComponentStatus.UNDER_MAINTENANCE, 3600)
    assert day.uptime_percent is None


def test_status_change_records_history_with_cause_and_actor(page, django_user_model):
    user = django_user_model.objects.create(username="ops")
    component = ComponentFactory()
    change = component_set_status(
        component=component, status="major_outage", cause="staff", actor=user
    )
    assert (change.from_status, change.to_status, change.cause, change.actor) == (
        "operational",
        "major_outage",
        "staff",
        user,
    )
    component.refresh_from_db()
    assert component.status == "major_outage"


def test_setting_the_same_status_records_nothing(page):
    component = ComponentFactory()
    assert component_set_status(component=component, status="operational") is None
    assert not ComponentStatusChange.objects.exists()


def test_a_change_cannot_be_recorded_before_the_last_one(page):
    component = ComponentFactory()
    component_set_status(component=component, status="major_outage")
    with pytest.raises(StatusChangeError):
        component_set_status(
            component=component, status="operational", at=component.status_changed_at - timedelta(1)
        )


def test_unknown_status_is_refused(page):
    with pytest.raises(StatusChangeError):
        component_set_status(component=ComponentFactory(), status="on_fire")


def test_new_components_are_backdated_to_where_their_history_starts(page):
    components = [ComponentFactory(), ComponentFactory()]
    since = at(2026, 5, 1)

    components_backdate(components=components, since=since)

    for component in components:
        assert component.status_changed_at == component.uptime_accounted_until == since
        component.refresh_from_db()
        assert component.created_at == component.status_changed_at == since
        assert component.uptime_accounted_until == since


def _recovered():
    """Operational again, with history."""
    component = ComponentFactory()
    component_set_status(component=component, status="major_outage")
    component_set_status(component=component, status="operational")
    return component


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: ComponentFactory(status="major_outage"), id="not operational"),
        pytest.param(_recovered, id="with history"),
    ],
)
def test_only_new_operational_components_are_backdated(page, make):
    component = make()
    before = component.status_changed_at

    with pytest.raises(StatusChangeError):
        components_backdate(components=[component], since=at(2026, 5, 1))

    component.refresh_from_db()
    assert component.status_changed_at == before


def test_components_are_not_backdated_to_the_future(page):
    with pytest.raises(StatusChangeError):
        components_backdate(
            components=[ComponentFactory()], since=datetime.now(UTC) + timedelta(days=1)
        )


def _rows(component):
    return {
        row.day: row.seconds_by_status()
        for row in DailyUptime.objects.filter(component=component).order_by("day")
    }


def test_rollups_split_an_outage_across_midnight_in_the_page_zone(page):
    page.time_zone = "America/New_York"
    page.save()
    with time_machine.travel(at(2026, 5, 1, 12), tick=False):
        component = ComponentFactory()
    # Outage from 23:00 to 01:00 New York time (03:00-05:00 UTC).
    component_set_status(component=component, status="major_outage", at=at(2026, 5, 2, 3))
    component_set_status(component=component, status="operational", at=at(2026, 5, 2, 5))
    rows = _rows(component)
    assert rows[date(2026, 5, 1)]["major_outage"] == 3600
    assert rows[date(2026, 5, 1)]["operational"] == 15 * 3600  # 08:00 to 23:00 local
    assert rows[date(2026, 5, 2)]["major_outage"] == 3600


def test_rollups_are_incremental_and_never_count_time_twice(page):
    with time_machine.travel(at(2026, 5, 1), tick=False):
        component = ComponentFactory()
    roll_up_uptime(until=at(2026, 5, 1, 6))
    roll_up_uptime(until=at(2026, 5, 1, 6))  # nothing new
    component_set_status(component=component, status="partial_outage", at=at(2026, 5, 1, 10))
    roll_up_uptime(until=at(2026, 5, 1, 12))
    row = _rows(component)[date(2026, 5, 1)]
    assert row["operational"] == 10 * 3600
    assert row["partial_outage"] == 2 * 3600


def test_daily_uptime_adds_the_time_not_yet_rolled_up(page, django_assert_max_num_queries):
    with time_machine.travel(at(2026, 5, 1), tick=False):
        components = [ComponentFactory(), ComponentFactory()]
    component_set_status(component=components[0], status="major_outage", at=at(2026, 5, 3, 12))
    with django_assert_max_num_queries(2):
        days = daily_uptime(components, days=90, now=at(2026, 5, 3, 18), zone=UTC)
    first = days[components[0].pk]
    assert len(first) == 90
    assert first[-1].day == date(2026, 5, 3)
    assert first[-1].seconds == {"operational": 12 * 3600, "major_outage": 6 * 3600}
    assert first[-1].uptime_percent == pytest.approx(100 * 12 / 18)
    assert first[-2].uptime_percent == 100
    assert not first[0].has_data
    assert days[components[1].pk][-1].uptime_percent == 100


def test_daily_uptime_reads_every_day_as_stored_whether_whole_partial_or_missing(page):
    """Whole operational days are counted in SQL, not read: the result must not differ."""
    with time_machine.travel(at(2026, 3, 1, 9, tz=NEW_YORK), tick=False):
        component = ComponentFactory()
    component.uptime_accounted_until = at(2026, 3, 12, tz=NEW_YORK)
    component.save(update_fields=["uptime_accounted_until"])
    stored = {
        date(2026, 3, 1): {"operational_seconds": 15 * 3600},  # created at 9:00
        **{date(2026, 3, d): {"operational_seconds": 86400} for d in range(2, 8)},
        date(2026, 3, 8): {"operational_seconds": 23 * 3600},  # the DST day
        date(2026, 3, 9): {"operational_seconds": 80000, "major_outage_seconds": 6400},
        # March 10th missing: history imported with a gap
        date(2026, 3, 11): {"operational_seconds": 86400},
    }
    for day, seconds in stored.items():
        DailyUptime.objects.create(component=component, day=day, **seconds)

    days = daily_uptime([component], days=12, now=at(2026, 3, 12, tz=NEW_YORK), zone=NEW_YORK)

    by_day = {entry.day: entry for entry in days[component.pk]}
    for day, seconds in stored.items():
        expected = {name.removesuffix("_seconds"): value for name, value in seconds.items()}
        assert by_day[day].seconds == expected, day
    assert not by_day[date(2026, 3, 10)].has_data
    assert len(by_day) == 12


def test_daily_uptime_of_many_components_reads_two_queries(page, django_assert_max_num_queries):
    with time_machine.travel(at(2026, 2, 1), tick=False):
        components = ComponentFactory.create_batch(3)
    for component in components:
        component.uptime_accounted_until = at(2026, 3, 1)
        component.save(update_fields=["uptime_accounted_until"])
        DailyUptime.objects.bulk_create(
            DailyUptime(
                component=component,
                day=date(2026, 2, 1) + timedelta(days=i),
                operational_seconds=86400,
            )
            for i in range(28)
        )

    with django_assert_max_num_queries(2):
        days = daily_uptime(components, days=30, now=at(2026, 3, 1), zone=UTC)

    for component in components:
        assert [d.has_data for d in days[component.pk]] == [False] + [True] * 28 + [False]
        assert all(d.uptime_percent == 100 for d in days[component.pk][1:-1])
