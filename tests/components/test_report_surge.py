"""Surge detection of visitor reports: the method on synthetic series, and its recording."""

import math
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.utils import timezone

from components.reports.models import ReportCount, ReportSurge
from components.reports.services import (
    count_key,
    minute_of,
    report_counts_persist,
    report_surges_detect,
)
from components.reports.surge import (
    SurgeParameters,
    surge_ended,
    surge_spans,
    surge_started,
    surge_verdict_of_minutes,
)
from components.tasks import detect_report_surges
from statuspage.celery import app
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory
from tests.incidents.test_reminders import _wait_for_lock_waiters

PARAMETERS = SurgeParameters()  # the defaults: 5 minutes, 4 weeks, floor 10, factor 4
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday, 10:00
WEEK = timedelta(days=7)
LONG_AGO = NOW - 10 * WEEK


def verdict(counts, *, at=NOW, since=LONG_AGO, parameters=PARAMETERS):
    return surge_verdict_of_minutes(counts, minute=at, since=since, parameters=parameters)


def steady(per_minute):
    return lambda minute: per_minute


def daily_cycle(minute: datetime) -> int:
    """1 report a minute at 4:00, 20 at 16:00, smoothly in between, every day."""
    hours = minute.hour + minute.minute / 60
    return round(1 + 19 * (1 - math.cos(2 * math.pi * (hours - 4) / 24)) / 2)


def every_ten_minutes(start: datetime, hours: int):
    return [start + timedelta(minutes=10 * n) for n in range(hours * 6)]


def test_a_quiet_week_does_not_surge_and_the_floor_holds_for_a_quiet_component():
    # One report every ten minutes, week after week.
    quiet = {}
    for week in range(5):
        start = NOW - week * WEEK - timedelta(hours=2)
        for n in range(0, 180, 10):
            quiet[start + timedelta(minutes=n)] = 1
    assert not verdict(quiet).surging
    # Nine reports at once are twenty times the usual, but under the floor.
    assert not verdict({**quiet, NOW: 9}).surging
    assert verdict({**quiet, NOW: 10}).surging
    found = verdict({**quiet, NOW: 10})
    assert found.threshold == PARAMETERS.floor and found.usual < 1


def test_a_daily_cycle_over_a_week_of_history_never_surges():
    for minute in every_ten_minutes(NOW, hours=24):
        found = verdict(daily_cycle, at=minute)
        assert not found.surging, (minute, found)


def test_a_daily_cycle_never_surges_even_without_weekly_history():
    # Two days old: the hour before carries the cycle's rise on its own.
    since = NOW - timedelta(days=2)
    for minute in every_ten_minutes(NOW, hours=24):
        found = verdict(daily_cycle, at=minute, since=since)
        assert found.weekly == 0 and not found.surging, (minute, found)


def test_a_sudden_surge_is_seen_within_two_minutes_even_half_way_through_a_minute():
    start = NOW - timedelta(minutes=1)  # the surge's first minute

    def series(minute):
        return daily_cycle(minute) * (20 if minute >= start else 1)

    counts = {m: series(m) for m in _minutes(NOW - 5 * WEEK, NOW + timedelta(minutes=1))}
    # 10:00 on a Monday: the cycle runs at about 10 a minute, the surge at about 200. The
    # beat runs twice a minute, so it may see a minute half counted.
    assert not verdict({**counts, start: counts[start] // 2}, at=start).surging
    found = verdict({**counts, NOW: counts[NOW] // 2})
    assert found.surging and found.usual == pytest.approx(50, rel=0.1)


def test_on_a_quiet_component_a_surge_is_seen_in_its_first_minute():
    counts = {m: 1 for m in _minutes(NOW - 5 * WEEK, NOW) if m.minute % 10 == 0}
    assert verdict({**counts, NOW: 10}).surging  # half of a minute at 20 reports a minute


def test_slow_drift_over_hours_does_not_surge():
    # From 2 a minute to 30 over six hours: fifteen times the usual by the end.
    start = NOW - timedelta(hours=6)

    def drift(minute):
        if minute < start:
            return 2
        return round(2 + 28 * min(1.0, (minute - start) / timedelta(hours=6)))

    for minute in every_ten_minutes(start, hours=7):
        found = verdict(drift, at=minute)
        assert not found.surging, (minute, found)
    assert verdict(drift).current > 4 * verdict(drift).weekly  # the weekly baseline alone would


def test_slow_drift_over_weeks_does_not_surge():
    # The usual doubles every week: the past weeks' median is far below today's level.
    def drift(minute):
        weeks_ago = math.ceil((NOW - minute) / WEEK - 1e-9)
        return 16 // 2 ** min(weeks_ago, 4)

    found = verdict(drift)
    assert not found.surging
    assert found.current > 4 * found.weekly  # the recent hour is what holds it


def test_a_new_component_with_no_history_surges_only_past_the_floor():
    since = NOW - timedelta(minutes=10)
    spans = surge_spans(minute=NOW, since=since, parameters=PARAMETERS)
    assert spans.weeks == ()
    assert not verdict({NOW: 9}, since=since).surging
    found = verdict({NOW - timedelta(minutes=1): 6, NOW: 6}, since=since)
    assert found.surging and found.weekly == 0 and found.recent == 0


def test_only_the_weeks_in_which_the_component_existed_count():
    since = NOW - 2 * WEEK - timedelta(hours=2)
    assert len(surge_spans(minute=NOW, since=since, parameters=PARAMETERS).weeks) == 2
    # Before it existed, its (impossible) counts would have made the median high.
    counts = dict.fromkeys(_minutes(NOW - 5 * WEEK, since), 100)
    counts[NOW] = 20
    assert verdict(counts, since=since).surging
    assert not verdict(counts, since=LONG_AGO).surging


def test_one_past_outage_in_the_baseline_weeks_does_not_hide_a_surge():
    def history(minute):
        if NOW - 2 * WEEK - timedelta(hours=1) <= minute < NOW - 2 * WEEK + timedelta(hours=1):
            return 100  # an outage two weeks ago, at this very hour
        return 1

    counts = {m: history(m) for m in _minutes(NOW - 5 * WEEK, NOW - timedelta(minutes=1))}
    counts[NOW] = 30
    found = verdict(counts)
    assert found.surging and found.weekly == pytest.approx(5)


def test_the_window_and_factor_are_parameters():
    counts = {NOW - timedelta(minutes=n): 3 for n in range(70)}
    assert not verdict({**counts, NOW: 40}).surging  # 52 against 4 × 15
    assert verdict({**counts, NOW: 40}, parameters=SurgeParameters(factor=3)).surging
    wide = SurgeParameters(window_minutes=10)
    assert verdict(counts, parameters=wide).current == 30


@pytest.mark.parametrize(
    "wrong",
    [
        {"window_minutes": 0},
        {"window_minutes": 61},
        {"floor": 0},
        {"factor": 0},
        {"weeks": -1},
        {"end_minutes": 0},
    ],
)
def test_parameters_that_would_make_nonsense_are_refused(wrong):
    with pytest.raises(ValueError, match="REPORT_SURGE_"):
        SurgeParameters(**wrong)


def test_the_parameters_come_from_the_settings(settings):
    settings.BEACON_REPORT_SURGE_FLOOR = 25
    settings.BEACON_REPORT_SURGE_WEEKS = 2
    assert SurgeParameters.from_settings() == SurgeParameters(floor=25, weeks=2)
    assert len(surge_spans(minute=NOW, since=None, parameters=SurgeParameters(weeks=2)).weeks) == 2


def _minutes(start, end):
    minutes = int((end - start).total_seconds() // 60)
    return [start + timedelta(minutes=n) for n in range(minutes)]


# Recording surges (PostgreSQL and the cache)


def put(component, minute, count, symptom="none"):
    cache.set(count_key(minute, component, symptom), count, timeout=3600)


def history(component, *, per_minute, hours=2, at=NOW):
    """Persisted minutes of the hour before the window (the recent baseline)."""
    ReportCount.objects.bulk_create(
        ReportCount(component=component, symptom="", minute=minute, count=per_minute)
        for minute in _minutes(at - timedelta(hours=hours), at - timedelta(minutes=4))
    )


@pytest.fixture
def signals():
    heard = {"started": [], "ended": []}

    def on_started(sender, surges, **kwargs):
        heard["started"].append([s.component_id for s in surges])

    def on_ended(sender, surges, **kwargs):
        heard["ended"].append([s.component_id for s in surges])

    surge_started.connect(on_started, dispatch_uid="test-started")
    surge_ended.connect(on_ended, dispatch_uid="test-ended")
    yield heard
    surge_started.disconnect(dispatch_uid="test-started")
    surge_ended.disconnect(dispatch_uid="test-ended")


@pytest.mark.django_db
def test_a_surge_is_recorded_once_told_once_and_ends_after_a_quiet_while(signals):
    api = ComponentFactory(name="API", created_at=LONG_AGO)
    login = ComponentFactory(name="Login", created_at=LONG_AGO)
    history(api, per_minute=1)
    history(login, per_minute=1)
    put(api.public_id, NOW, 30, "errors")
    put(api.public_id, NOW, 5)
    put(login.public_id, NOW, 3)
    put("other", NOW, 12, "slow")

    found = report_surges_detect(now=NOW + timedelta(seconds=20))
    assert sorted(s.component_id or 0 for s in found.started) == [0, api.pk]
    surge = ReportSurge.objects.get(component=api)
    assert (surge.peak_count, surge.usual_count) == (35, pytest.approx(5.0))
    assert surge.symptoms == {"errors": 30, "none": 5}
    assert surge.started_at == NOW + timedelta(seconds=20) and surge.alerted_at is not None
    assert ReportSurge.objects.get(component=None).symptoms == {"slow": 12}
    assert len(signals["started"]) == 1

    # Still surging a minute later: the same surge, a higher peak, no second alert.
    put(api.public_id, NOW + timedelta(minutes=1), 40, "errors")
    found = report_surges_detect(now=NOW + timedelta(minutes=1, seconds=20))
    assert found.started == [] and ReportSurge.objects.filter(component=api).count() == 1
    assert ReportSurge.objects.get(component=api).peak_count == 75
    assert len(signals["started"]) == 1

    # Quiet: it ends once it has been under its threshold for 15 minutes.
    later = NOW + timedelta(minutes=16)
    assert report_surges_detect(now=later - timedelta(minutes=1)).ended == []
    found = report_surges_detect(now=later + timedelta(seconds=30))
    assert sorted(s.component_id or 0 for s in found.ended) == [0, api.pk]
    assert [set(ended) for ended in signals["ended"]] == [{None, api.pk}]
    assert not ReportSurge.objects.filter(ended_at=None).exists()

    # Surging again later is a new surge, told again.
    again = NOW + timedelta(hours=1)
    put(api.public_id, again, 60)
    found = report_surges_detect(now=again)
    assert [s.component_id for s in found.started] == [api.pk]
    assert ReportSurge.objects.filter(component=api).count() == 2


@pytest.mark.django_db
def test_detection_reads_the_window_from_the_cache_before_it_is_persisted(
    django_assert_max_num_queries,
):
    components = [ComponentFactory(created_at=LONG_AGO) for _ in range(10)]
    for component in components:
        history(component, per_minute=2)
    # Nothing surging, as on most runs: the components, the baselines, the open surges (and
    # the savepoint of the test's transaction around them).
    with django_assert_max_num_queries(5):
        assert report_surges_detect(now=NOW).started == []
    put(components[3].public_id, NOW, 50)
    found = report_surges_detect(now=NOW)
    assert [s.component_id for s in found.started] == [components[3].pk]
    assert not ReportCount.objects.filter(minute=NOW).exists()
    # Still surging: one more, to extend it.
    with django_assert_max_num_queries(6):
        assert report_surges_detect(now=NOW + timedelta(seconds=30)).started == []
    report_counts_persist(now=NOW)
    assert ReportCount.objects.filter(minute=NOW).exists()


@pytest.mark.django_db
def test_a_component_deleted_while_surging_takes_its_surge_with_it():
    api = ComponentFactory(created_at=LONG_AGO)
    put(api.public_id, NOW, 20)
    report_surges_detect(now=NOW)
    api.delete()
    assert not ReportSurge.objects.exists()
    assert report_surges_detect(now=NOW + timedelta(minutes=30)).ended == []


@pytest.mark.django_db(transaction=True)
def test_two_beats_at_once_record_one_surge_and_tell_it_once(signals, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # A superuser: a transactional test run before this one flushed the migrations' roles.
    StaffFactory(email="rui@acme.test", is_superuser=True)
    api = ComponentFactory(created_at=LONG_AGO)
    put(api.public_id, minute_of(NOW), 40)
    results = []

    def beat():
        try:
            results.append(report_surges_detect(now=NOW))
        finally:
            connections.close_all()

    beats = [threading.Thread(target=beat) for _ in range(2)]
    # Let both read that no surge is open, then wait to write it: reads pass this lock,
    # inserts wait on it.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("lock table components_reportsurge in share row exclusive mode")
        for thread in beats:
            thread.start()
        _wait_for_lock_waiters(2)
    for thread in beats:
        thread.join(timeout=30)

    assert sorted(len(found.started) for found in results) == [0, 1]
    assert ReportSurge.objects.count() == 1
    assert signals["started"] == [[api.pk]]
    [message] = mail.outbox
    assert message.subject.endswith(f"] Visitors report problems: {api.name}")


def test_the_beat_detects_surges_every_30_seconds():
    entry = app.conf.beat_schedule["detect-report-surges"]
    assert entry["task"] == detect_report_surges.name
    assert entry["schedule"] == 30.0 and entry["options"]["expires"] < 30


@pytest.mark.django_db
def test_the_beat_task_records_a_surge_of_this_minute():
    api = ComponentFactory()
    put(api.public_id, minute_of(timezone.now()), 11)
    detect_report_surges.apply()
    assert ReportSurge.objects.get().component == api
