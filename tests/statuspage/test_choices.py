"""get_FOO_display() with the labels kept per field (statuspage.lib.choices): the same answers
as Django's, in the language active at each call."""

from django.db import models
from django.utils import translation

from components.models import Component, ComponentStatusChange
from incidents.models import AffectedComponent, Incident, IncidentUpdate


def test_labels_follow_the_active_language_call_by_call():
    update = IncidentUpdate(status="identified")
    with translation.override("en"):
        assert update.get_status_display() == "Identified"
    with translation.override("de"):
        german = update.get_status_display()
    assert german != "Identified" and isinstance(german, str)
    with translation.override("en"):
        assert update.get_status_display() == "Identified"


def test_every_choice_reads_as_django_would_read_it():
    for model in (Incident, IncidentUpdate, AffectedComponent, Component, ComponentStatusChange):
        for field in model._meta.get_fields():
            if not getattr(field, "choices", None):
                continue
            for value, label in field.flatchoices:
                row = model(**{field.attname: value})
                shown = getattr(row, f"get_{field.name}_display")()
                assert shown == str(label) == models.Model._get_FIELD_display(row, field)


def test_a_value_outside_the_choices_reads_as_itself():
    assert Component(status="no-such-status").get_status_display() == "no-such-status"
    assert Incident(impact=None).get_impact_display() is None
