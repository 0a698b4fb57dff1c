"""Rollups of raw check results into hourly and daily buckets: what the charts read."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from components.checks.rollups import check_rollups_update, nearest_rank, summarise
from components.checks.services import check_results_prune
from components.checks.tasks import update_check_rollups
from components.models import CheckResult, CheckRollup, Verdict
from statuspage.public import public_cache
from tests.components.factories import HealthCheckFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)
HOUR = datetime(2025, 3, 10, 12, tzinfo=UTC)
DAY = datetime(2025, 3, 10, tzinfo=UTC)


def result(check, at, latency=100.0, verdict=Verdict.UP):
    return CheckResult.objects.create(
        health_check=check, at=at, verdict=verdict, latency_ms=latency
    )


def rollup(check, period, start):
    return CheckRollup.objects.get(health_check=check, period=period, start=start)


def rollup_keys(check):
    return set(CheckRollup.objects.filter(health_check=check).values_list("period", "start"))


def values(check):
    return list(
        CheckRollup.objects.filter(health_check=check)
        .order_by("period", "start")
        .values_list(
            "period",
            "start",
            "count",
            "failures",
            "latency_min",
            "latency_p50",
            "latency_p95",
            "latency_p99",
            "latency_max",
        )
    )


@pytest.fixture
def check(page):
    return HealthCheckFactory()


def test_nearest_rank_percentiles():
    ordered = [float(v) for v in range(1, 101)]
    assert [nearest_rank(ordered, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    tens = [10.0, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [nearest_rank(tens, p) for p in (50, 95, 99)] == [50, 100, 100]
    assert nearest_rank([7.0], 50) == nearest_rank([7.0], 99) == 7
    assert nearest_rank([1.0, 2.0], 1) == 1  # rank 1 at the very least


def test_summary_counts_failures_and_ignores_missing_latencies():
    stats = summarise(
        [(Verdict.UP, 30.0), (Verdict.DOWN, None), (Verdict.DEGRADED, 10.0), (Verdict.DOWN, 20.0)]
    )
    assert (stats.count, stats.failures) == (4, 2)
    assert (stats.latency_min, stats.latency_p50, stats.latency_max) == (10, 20, 30)
    assert summarise([(Verdict.DOWN, None)]).latency_p50 is None


def test_results_are_rolled_up_by_utc_hour_and_day(check):
    for minute, latency in enumerate([120.0, 80.0, 100.0, 400.0]):
        result(check, HOUR + timedelta(minutes=minute * 5), latency=latency)
    result(check, HOUR + timedelta(minutes=25), latency=None, verdict=Verdict.DOWN)
    result(check, HOUR - timedelta(minutes=15), latency=50.0, verdict=Verdict.DOWN)
    result(check, NOW + timedelta(minutes=5), latency=70.0)  # a worker's clock a little ahead

    written = check_rollups_update(now=NOW)

    assert written == 3
    this_hour = rollup(check, "hour", HOUR)
    assert (this_hour.count, this_hour.failures) == (6, 1)
    assert (this_hour.latency_min, this_hour.latency_p50, this_hour.latency_max) == (70, 100, 400)
    assert this_hour.latency_p95 == this_hour.latency_p99 == 400
    last_hour = rollup(check, "hour", HOUR - timedelta(hours=1))
    assert (last_hour.count, last_hour.failures, last_hour.latency_p50) == (1, 1, 50)
    today = rollup(check, "day", DAY)
    assert (today.count, today.failures) == (7, 2)
    assert (today.latency_min, today.latency_p50, today.latency_max) == (50, 80, 400)


def test_rollups_are_per_check(check):
    other = HealthCheckFactory()
    result(check, NOW, latency=10.0)
    result(other, NOW, latency=900.0, verdict=Verdict.DOWN)

    check_rollups_update(now=NOW)

    assert rollup(check, "hour", HOUR).latency_max == 10
    assert rollup(other, "hour", HOUR).failures == 1
    assert rollup(other, "day", DAY).latency_min == 900


def test_a_second_run_changes_and_writes_nothing(check):
    for minutes in (10, 40, 70, 200):
        result(check, NOW - timedelta(minutes=minutes), latency=float(minutes))
    check_rollups_update(now=NOW)
    before = values(check)

    assert check_rollups_update(now=NOW) == 0
    assert check_rollups_update(now=NOW + timedelta(minutes=1)) == 0
    assert values(check) == before


def test_new_results_update_the_current_buckets(check):
    result(check, NOW - timedelta(minutes=5), latency=100.0)
    check_rollups_update(now=NOW)

    result(check, NOW + timedelta(minutes=1), latency=300.0, verdict=Verdict.DOWN)
    assert check_rollups_update(now=NOW + timedelta(minutes=2)) == 2

    this_hour = rollup(check, "hour", HOUR)
    assert (this_hour.count, this_hour.failures, this_hour.latency_max) == (2, 1, 300)
    assert rollup(check, "day", DAY).count == 2


def test_only_recent_buckets_are_recomputed(check):
    three_hours_ago = HOUR - timedelta(hours=3)
    result(check, three_hours_ago + timedelta(minutes=10))
    result(check, NOW)
    check_rollups_update(now=NOW)
    CheckRollup.objects.filter(period="hour", start=three_hours_ago).update(count=99)

    # The previous hour is still recomputed; closed hours before it are left alone.
    result(check, HOUR - timedelta(minutes=30), latency=40.0)
    result(check, three_hours_ago + timedelta(minutes=20))
    check_rollups_update(now=NOW + timedelta(minutes=1))

    assert rollup(check, "hour", three_hours_ago).count == 99
    assert rollup(check, "hour", HOUR - timedelta(hours=1)).latency_p50 == 40
    assert rollup(check, "day", DAY).count == 4  # today is recomputed from every raw result


def test_yesterday_is_recomputed_during_the_first_hour_of_today(check):
    just_after_midnight = DAY + timedelta(minutes=10)
    result(check, DAY - timedelta(hours=5))
    result(check, DAY + timedelta(minutes=5))
    check_rollups_update(now=just_after_midnight)

    result(check, DAY - timedelta(seconds=1), verdict=Verdict.DOWN)  # committed late
    check_rollups_update(now=just_after_midnight + timedelta(minutes=1))

    assert rollup(check, "day", DAY - timedelta(days=1)).failures == 1
    assert rollup(check, "hour", DAY - timedelta(hours=1)).failures == 1


def test_pruning_raw_results_does_not_shrink_rollups(check, settings):
    settings.BEACON_CHECK_RESULT_RETENTION_DAYS = 14
    with time_machine.travel(NOW - timedelta(days=15), tick=False):
        result(check, NOW - timedelta(days=15), latency=70.0, verdict=Verdict.DOWN)
        check_rollups_update()
    old_day = DAY - timedelta(days=15)
    assert rollup(check, "day", old_day).failures == 1

    with time_machine.travel(NOW, tick=False):
        result(check, NOW)
        assert check_results_prune() == 1
        check_rollups_update()

    assert rollup(check, "day", old_day).failures == 1
    assert rollup(check, "day", DAY).count == 1


def test_retained_results_without_rollups_are_backfilled(check, settings):
    settings.BEACON_CHECK_RESULT_RETENTION_DAYS = 2  # raw results kept since Mar 8, 12:30
    result(check, datetime(2025, 3, 8, 12, 45, tzinfo=UTC))  # its hour and day are partial
    result(check, datetime(2025, 3, 8, 13, 15, tzinfo=UTC), latency=20.0)
    result(check, datetime(2025, 3, 9, 5, 0, tzinfo=UTC), latency=30.0, verdict=Verdict.DOWN)
    result(check, datetime(2025, 3, 9, 5, 30, tzinfo=UTC), latency=50.0)
    result(check, NOW, latency=60.0)

    assert check_rollups_update(now=NOW) == 5

    assert rollup_keys(check) == {
        ("hour", datetime(2025, 3, 8, 13, tzinfo=UTC)),
        ("hour", datetime(2025, 3, 9, 5, tzinfo=UTC)),
        ("hour", HOUR),
        ("day", datetime(2025, 3, 9, tzinfo=UTC)),
        ("day", DAY),
    }
    yesterday = rollup(check, "day", datetime(2025, 3, 9, tzinfo=UTC))
    assert (yesterday.count, yesterday.failures, yesterday.latency_p50) == (2, 1, 30)
    assert check_rollups_update(now=NOW) == 0


def test_rollups_catch_up_after_the_task_stopped(check):
    result(check, HOUR + timedelta(minutes=10), latency=10.0)
    check_rollups_update(now=NOW)  # the last run before the task stopped

    later = HOUR + timedelta(minutes=50)  # in the hour that was partial when rolled up
    result(check, later, latency=30.0)
    for hours in range(1, 6):
        result(check, HOUR + timedelta(hours=hours, minutes=5), latency=20.0)

    check_rollups_update(now=NOW + timedelta(hours=5))

    assert rollup(check, "hour", HOUR).count == 2
    assert rollup(check, "hour", HOUR).latency_max == 30
    hours = CheckRollup.objects.filter(health_check=check, period="hour")
    assert sorted(hours.values_list("start", flat=True)) == [
        HOUR + timedelta(hours=h) for h in range(6)
    ]
    assert rollup(check, "day", DAY).count == 7


def test_a_disabled_check_keeps_its_rollups_and_is_not_read_again(
    check, django_assert_max_num_queries
):
    result(check, HOUR - timedelta(hours=30))
    check_rollups_update(now=NOW - timedelta(hours=29))
    check.enabled = False
    check.save()

    with django_assert_max_num_queries(2):  # checks, then the recent window's results
        assert check_rollups_update(now=NOW) == 0
    assert rollup(check, "hour", HOUR - timedelta(hours=30)).count == 1


def test_rollups_of_a_shown_check_republish_the_public_page(
    check, django_capture_on_commit_callbacks
):
    check.show_on_page = True
    check.save()
    generation = public_cache.generation()
    result(check, NOW)

    with django_capture_on_commit_callbacks(execute=True):
        check_rollups_update(now=NOW)

    assert public_cache.generation() != generation


def test_rollups_of_checks_not_on_the_page_publish_nothing(
    check, django_capture_on_commit_callbacks
):
    result(check, NOW)
    with django_capture_on_commit_callbacks() as callbacks:
        assert check_rollups_update(now=NOW) == 2
    assert callbacks == []

    check.show_on_page = True
    check.save()
    with django_capture_on_commit_callbacks() as callbacks:
        assert check_rollups_update(now=NOW) == 0  # nothing changed: nothing to publish
    assert callbacks == []


def test_the_task_rolls_up_the_current_hour(check):
    with time_machine.travel(NOW, tick=False):
        result(check, NOW - timedelta(minutes=1), latency=42.0)
        update_check_rollups()

    assert rollup(check, "hour", HOUR).latency_p50 == 42
