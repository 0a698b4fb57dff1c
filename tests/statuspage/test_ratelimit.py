"""The management API's rolling-window limit, in the shared cache."""

from datetime import UTC, datetime, timedelta

import time_machine

from statuspage.ratelimit import hit_rolling

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
