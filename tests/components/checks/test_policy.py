"""From results to verdicts: flapping, recovery, quorum and the worst check winning."""

from types import SimpleNamespace

import pytest

from components.checks.policy import Streak, after_result, check_verdict, component_status
from components.models import ComponentStatus, Verdict

UP, DEGRADED, DOWN, UNKNOWN = Verdict.UP, Verdict.DEGRADED, Verdict.DOWN, Verdict.UNKNOWN


def verdicts_after(results, *, start=UNKNOWN, failures=3, successes=2):
    state, seen = Streak(start), []
    for result in results:
        state = after_result(
            state, result, failures_before_down=failures, successes_before_up=successes
        )
        seen.append(state.verdict)
    return seen


def test_a_new_check_that_answers_is_up_at_once():
    assert verdicts_after([UP]) == [UP]


def test_it_takes_n_consecutive_failures_to_go_down():
    assert verdicts_after([DOWN, DOWN, DOWN], start=UP) == [UP, UP, DOWN]


def test_one_success_between_failures_starts_the_count_again():
    assert verdicts_after([DOWN, DOWN, UP, DOWN, DOWN, DOWN], start=UP) == [UP] * 5 + [DOWN]


def test_recovery_takes_m_consecutive_successes():
    assert verdicts_after([UP, DOWN, UP, UP], start=DOWN) == [DOWN, DOWN, DOWN, UP]


def test_mixed_bad_results_move_only_as_far_as_all_agree():
    assert verdicts_after([DOWN, DEGRADED, DOWN], start=UP) == [UP, UP, DEGRADED]


def test_recovering_through_slow_answers_lands_on_degraded():
    assert verdicts_after([DEGRADED, UP], start=DOWN) == [DOWN, DEGRADED]


@pytest.mark.parametrize(
    ("locations", "quorum", "expected"),
    [
        ([DOWN, UP, UP], 2, UP),
        ([DOWN, DOWN, UP], 2, DOWN),
        ([DOWN, DEGRADED, UP], 2, DEGRADED),
        ([DOWN, UNKNOWN, UNKNOWN], 2, UNKNOWN),  # not enough locations have spoken
        ([DOWN], 1, DOWN),
    ],
)
def test_a_check_is_what_a_quorum_of_locations_agree_on(locations, quorum, expected):
    assert check_verdict(locations, quorum=quorum, previous=UNKNOWN) == expected


def test_the_worst_check_wins_and_unknown_checks_say_nothing():
    def check(verdict, down_status=ComponentStatus.MAJOR_OUTAGE, enabled=True):
        return SimpleNamespace(verdict=verdict, down_status=down_status, enabled=enabled)

    assert component_status([check(UP), check(DEGRADED)]) == "degraded_performance"
    assert component_status([check(UP), check(DOWN, "partial_outage")]) == "partial_outage"
    assert component_status([check(DOWN, enabled=False), check(UP)]) == "operational"
    assert component_status([check(UNKNOWN)]) is None
