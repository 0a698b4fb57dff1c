"""The typed names of incident kinds, statuses and impacts are their choices' values, and the
narrowing of a string from a form or a JSON body refuses what the services refuse."""

from typing import get_args

import pytest
from django.core.exceptions import ValidationError

from incidents import services
from incidents.models import (
    Impact,
    ImpactName,
    IncidentKind,
    IncidentKindName,
    IncidentStatus,
    IncidentStatusName,
    is_impact_override,
    is_incident_status,
)


@pytest.mark.parametrize(
    ("names", "choices"),
    [
        (IncidentKindName, IncidentKind),
        (IncidentStatusName, IncidentStatus),
        (ImpactName, Impact),
    ],
)
def test_the_typed_names_are_the_choices_values(names, choices):
    assert list(get_args(names)) == choices.values


def test_a_status_narrows_from_its_member_or_its_value_and_nothing_else():
    assert is_incident_status(IncidentStatus.RESOLVED) and is_incident_status("resolved")
    assert not is_incident_status("Resolved") and not is_incident_status("")
    assert not is_incident_status(None)


def test_an_impact_override_is_an_impact_or_empty():
    assert is_impact_override(Impact.MAJOR) and is_impact_override("major")
    assert is_impact_override("")
    assert not is_impact_override("huge") and not is_impact_override(None)


def test_an_unknown_status_from_input_is_refused_in_the_services_words():
    assert services.incident_status_from_input("monitoring", maintenance=False) == "monitoring"
    with pytest.raises(ValidationError) as refused:
        services.incident_status_from_input("bogus", maintenance=False)
    assert refused.value.message_dict == {"status": ["'bogus' is not a status of an incident."]}
    with pytest.raises(ValidationError) as refused:
        services.incident_status_from_input("bogus", maintenance=True)
    assert refused.value.message_dict == {"status": ["'bogus' is not a status of a maintenance."]}


def test_an_unknown_impact_from_input_is_refused_in_the_services_words():
    assert services.impact_override_from_input("") == ""
    assert services.impact_override_from_input("minor") == "minor"
    with pytest.raises(ValidationError) as refused:
        services.impact_override_from_input("huge")
    assert refused.value.message_dict == {"impact_override": ["Unknown impact 'huge'."]}
