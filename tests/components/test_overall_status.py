import itertools

import pytest

from components.models import ComponentStatus as S
from components.selectors import overall_status

EXPECTED = {
    # worst status present → (indicator, description), with one other operational component
    S.OPERATIONAL: ("none", "All Systems Operational"),
    S.UNDER_MAINTENANCE: ("maintenance", "Service Under Maintenance"),
    S.DEGRADED_PERFORMANCE: ("minor", "Partially Degraded Service"),
    S.PARTIAL_OUTAGE: ("minor", "Minor Service Outage"),
    S.MAJOR_OUTAGE: ("major", "Partial System Outage"),
}


def test_an_empty_page_is_all_operational():
    assert overall_status([]).indicator == "none"


@pytest.mark.parametrize("status", list(S))
def test_one_troubled_component_among_healthy_ones(status):
    result = overall_status([status, S.OPERATIONAL, S.OPERATIONAL])
    assert (result.indicator, result.description) == EXPECTED[status]


def test_most_components_down_is_a_major_system_outage():
    result = overall_status([S.MAJOR_OUTAGE, S.MAJOR_OUTAGE, S.OPERATIONAL])
    assert (result.indicator, result.description) == ("critical", "Major System Outage")


def test_half_the_components_down_is_a_partial_system_outage():
    assert overall_status([S.MAJOR_OUTAGE, S.OPERATIONAL]).indicator == "major"


def test_github_capture_rolls_up_to_minor():
    # The real githubstatus.com capture: one partial outage among 11 components is "minor".
    statuses = [S.PARTIAL_OUTAGE] + [S.OPERATIONAL] * 10
    result = overall_status(statuses)
    assert (result.indicator, result.description) == ("minor", "Minor Service Outage")


@pytest.mark.parametrize("combo", list(itertools.product(list(S), repeat=3)))
def test_every_combination_follows_the_worst_status(combo):
    result = overall_status(combo)
    majors = combo.count(S.MAJOR_OUTAGE)
    if majors >= 2:
        assert result.indicator == "critical"
    elif majors == 1:
        assert result.indicator == "major"
    elif S.PARTIAL_OUTAGE in combo or S.DEGRADED_PERFORMANCE in combo:
        assert result.indicator == "minor"
    elif S.UNDER_MAINTENANCE in combo:
        assert result.indicator == "maintenance"
    else:
        assert result.indicator == "none"
