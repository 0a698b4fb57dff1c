"""The types that carry a component's status, automation and automatic incident in code
name the same values as the choices the models store."""

from typing import Literal, get_args, get_origin

import pytest

from components.models import (
    AutoIncident,
    AutoIncidentRecovery,
    AutoIncidentValue,
    Automation,
    AutomationValue,
    Component,
)
from components.status_choices import (
    ComponentStatus,
    ComponentStatusName,
    ComponentStatusValue,
    as_component_status,
    is_component_status,
)


def _strings(value_type: object) -> set[str]:
    """The strings a union of a choices class and a Literal admits besides the members."""
    [literal] = [arg for arg in get_args(value_type) if get_origin(arg) is Literal]
    return set(get_args(literal))


def test_the_status_literal_names_the_five_statuses():
    assert set(get_args(ComponentStatusName)) == set(ComponentStatus.values)
    assert _strings(ComponentStatusValue) == set(ComponentStatus.values)


def test_the_automation_and_auto_incident_literals_name_their_choices():
    assert _strings(AutomationValue) == set(Automation.values)
    assert _strings(AutoIncidentValue) == set(AutoIncident.values)
    recoveries = Component._meta.get_field("auto_incident_recovery").choices
    assert set(get_args(AutoIncidentRecovery)) == {value for value, _ in recoveries}


@pytest.mark.parametrize("value", [*ComponentStatus.values, *ComponentStatus])
def test_a_status_string_or_member_is_a_status(value):
    assert is_component_status(value)
    assert as_component_status(value) is value  # the same object: nothing is converted


@pytest.mark.parametrize(
    "value", ["", "down", "Operational", "operational ", None, 3, ["operational"]]
)
def test_anything_else_is_not_a_status(value):
    assert not is_component_status(value)


def test_narrowing_refuses_a_string_that_is_no_status():
    with pytest.raises(ValueError, match="Unknown component status 'down'"):
        as_component_status("down")
