"""The rolling-window limits in the shared cache: the management API's, the subscribe form's."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import time_machine

from statuspage.lib.ratelimit import hit_rolling, hit_sliding

MINUTE_START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def attempts(n, at):
    with time_machine.travel(at, tick=False):
        return [hit_rolling("api:key:1", limit=60, window=60) for _ in range(n)]


def test_a_burst_across_the_minute_boundary_is_not_a_second_allowance():
    spent = attempts(60, MINUTE_START + timedelta(seconds=59))
    assert all(v.allowed for v in spent)

    # A fixed window would allow 60 more at once. Here the last 60 s still hold 59 of them.
    just_after = attempts(2, MINUTE_START + timedelta(seconds=61))
    assert [v.allowed for v in just_after] == [True, False]
    assert just_after[-1].retry_after == 1  # one more second of them slides out


def test_the_allowance_comes_back_as_the_previous_minute_slides_out():
    attempts(60, MINUTE_START + timedelta(seconds=30))
    # Half of the previous minute (30 of its 60) still counts at :90; 30 more are allowed.
    later = attempts(31, MINUTE_START + timedelta(seconds=90))
    assert [v.allowed for v in later] == [True] * 30 + [False]
    assert 1 <= later[-1].retry_after <= 2


def test_hammering_past_the_limit_keeps_the_client_waiting_into_the_next_minute():
    verdicts = attempts(90, MINUTE_START + timedelta(seconds=10))
    assert sum(v.allowed for v in verdicts) == 60
    # 50 s left in this minute, then 30 of 90 attempts' worth must slide out: 20 s more.
    assert verdicts[-1].retry_after == 70


def test_no_limit_when_the_limit_is_zero():
    assert hit_rolling("api:key:2", limit=0, window=60).allowed


# The exact sliding window (the subscribe form's)

HOUR_START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def sliding(n, at, name="subscribe:ip:192.0.2.1", limit=3):
    with time_machine.travel(at, tick=False):
        return [hit_sliding(name, limit=limit, window=3600) for _ in range(n)]


def test_the_sliding_window_counts_the_last_hour_not_the_clock_hour():
    assert all(v.allowed for v in sliding(3, HOUR_START - timedelta(seconds=20)))

    after = sliding(2, HOUR_START + timedelta(seconds=23))

    assert [v.allowed for v in after] == [False, False]
    assert after[-1].retry_after == 3600 - 43


def test_refused_attempts_do_not_prolong_the_wait():
    sliding(3, HOUR_START)
    sliding(50, HOUR_START + timedelta(minutes=30))

    assert [v.allowed for v in sliding(4, HOUR_START + timedelta(minutes=60))] == [
        True,
        True,
        True,
        False,
    ]


def test_each_slot_frees_an_hour_after_it_was_taken():
    sliding(1, HOUR_START)
    sliding(2, HOUR_START + timedelta(minutes=40))

    assert [v.allowed for v in sliding(2, HOUR_START + timedelta(minutes=60))] == [True, False]
    assert [v.allowed for v in sliding(1, HOUR_START + timedelta(minutes=99))] == [False]
    assert [v.allowed for v in sliding(2, HOUR_START + timedelta(minutes=100))] == [True, True]


def test_concurrent_attempts_never_share_a_slot():
    barrier = threading.Barrier(12)

    def attempt(_):
        barrier.wait()
        return hit_sliding("subscribe:ip:192.0.2.9", limit=5, window=3600).allowed

    with ThreadPoolExecutor(max_workers=12) as pool:
        verdicts = list(pool.map(attempt, range(12)))

    assert sum(verdicts) == 5


def test_keys_and_limits_are_separate():
    assert sliding(1, HOUR_START, limit=1)[0].allowed
    assert not sliding(1, HOUR_START, limit=1)[0].allowed
    assert sliding(1, HOUR_START, name="subscribe:ip:192.0.2.2", limit=1)[0].allowed
    assert hit_sliding("subscribe:ip:192.0.2.1", limit=0, window=3600).allowed


def test_the_sliding_window_allows_when_the_cache_is_unreachable(settings):
    # The warning it logs is asserted through the form (test_subscribe_views).
    settings.CACHES = {"default": {"BACKEND": "tests.statuspage.broken_cache.UnreachableCache"}}

    assert all(v.allowed for v in sliding(5, HOUR_START, limit=1))
