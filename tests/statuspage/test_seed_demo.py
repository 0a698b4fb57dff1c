from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from components.models import Component, ComponentGroup, ComponentStatus, DailyUptime
from components.uptime import DayUptime
from incidents.models import Incident, IncidentStatus, IncidentUpdate, MaintenanceSeries
from statuspage.models import PageSettings

pytestmark = pytest.mark.django_db


def seed(*args) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def uptime_percent(row: DailyUptime) -> float:
    day = DayUptime(day=row.day)
    for status, seconds in row.seconds_by_status().items():
        day.add(status, seconds)
    return day.uptime_percent


def test_it_builds_the_nimbus_ai_page():
    seed()

    page = PageSettings.load()
    assert page.name == "Nimbus AI"
    assert page.url == "http://127.0.0.1:8000"
    groups = {
        g.name: sorted(c.name for c in g.components.all()) for g in ComponentGroup.objects.all()
    }
    assert groups == {
        "Nimbus apps": ["Coding assistant CLI", "Mobile apps", "Web chat"],
        "Platform": ["API", "Developer console", "Login & authentication"],
    }
    assert Component.objects.get(name="Billing").group is None
    assert set(Component.objects.values_list("status", flat=True)) == {ComponentStatus.OPERATIONAL}


def test_running_it_again_creates_nothing():
    seed()
    counts = (Component.objects.count(), Incident.objects.count(), IncidentUpdate.objects.count())

    assert "already exists" in seed()

    assert (
        Component.objects.count(),
        Incident.objects.count(),
        IncidentUpdate.objects.count(),
    ) == counts


def test_reset_rebuilds_the_demo():
    seed()
    Component.objects.create(name="Left over")

    seed("--reset")

    assert not Component.objects.filter(name="Left over").exists()
    assert Component.objects.filter(name="Web chat").count() == 1


def test_if_empty_leaves_a_page_with_components_alone():
    Component.objects.create(name="Our own")

    assert "not seeding" in seed("--if-empty")

    assert list(Component.objects.values_list("name", flat=True)) == ["Our own"]


def test_history_is_closed_except_the_upcoming_maintenance():
    seed()

    assert not Incident.objects.unresolved().exists()
    upcoming = Incident.objects.upcoming_maintenances().get(series=None)
    assert {c.name for c in upcoming.components.all()} == {"API", "Developer console"}
    assert upcoming.scheduled_for > timezone.now()
    assert Incident.objects.maintenances().filter(status=IncidentStatus.COMPLETED).count() == 1
    for incident in Incident.objects.incidents():
        assert 2 <= incident.updates.count() <= 4
        assert incident.updates.filter(status=IncidentStatus.RESOLVED).exists()


def test_billing_is_patched_every_tuesday_night_in_the_pages_zone():
    seed()

    series = MaintenanceSeries.objects.get()
    assert series.rule == "FREQ=WEEKLY;BYDAY=TU"
    occurrences = Incident.objects.upcoming_maintenances().filter(series=series)
    assert occurrences.count() >= 4
    zone = PageSettings.load().zone
    for occurrence in occurrences:
        local = occurrence.scheduled_for.astimezone(zone)
        assert (local.weekday(), local.hour, local.minute) == (1, 3, 0)
        assert [c.name for c in occurrence.components.all()] == ["Billing"]


def test_the_platform_has_sla_terms_and_the_api_stricter_ones():
    seed()

    platform = ComponentGroup.objects.get(name="Platform")
    api = Component.objects.get(name="API")
    assert platform.sla_target == Decimal("99.9")
    assert api.sla_target == Decimal("99.95")
    assert [tier["credit"] for tier in api.sla_credit_tiers] == [10, 25, 50]
    assert Component.objects.get(name="Developer console").sla_target is None  # inherits


def test_one_incident_has_a_published_postmortem():
    seed()

    [incident] = [i for i in Incident.objects.all() if i.has_published_postmortem]

    assert incident.name == "Elevated API latency"
    assert incident.status == IncidentStatus.POSTMORTEM
    # Structured, its timeline drawn from the story's updates.
    assert incident.postmortem["impact_minutes"] == 86
    assert len(incident.postmortem["timeline"]) >= incident.updates.count()
    assert incident.postmortem_body.startswith("## Summary")


def test_chat_goes_down_twice_within_a_day_while_the_api_stays_up():
    seed()
    first = Incident.objects.get(name="Web chat and sign-in unavailable")
    second = Incident.objects.get(name="Web chat unavailable")

    assert {c.name for c in first.components.all()} == {"Web chat", "Login & authentication"}
    assert first.impact == "critical"
    assert timedelta(days=2) < timezone.now() - first.started_at < timedelta(days=4)
    assert first.resolved_at < second.started_at < first.started_at + timedelta(hours=24)
    api = Component.objects.get(name="API")
    assert not api.status_changes.filter(at__gte=first.started_at).exists()


def test_status_history_follows_the_incident_updates():
    seed()
    first = Incident.objects.get(name="Web chat and sign-in unavailable")
    chat = Component.objects.get(name="Web chat")

    went_down = chat.status_changes.get(to_status=ComponentStatus.MAJOR_OUTAGE, at=first.started_at)

    assert went_down.from_status == ComponentStatus.OPERATIONAL
    assert chat.status_changes.filter(at=first.resolved_at, to_status="operational").exists()


def test_uptime_rollups_cover_90_days_and_show_the_outages():
    seed()
    zone = PageSettings.load().zone
    today = timezone.now().astimezone(zone).date()
    chat = Component.objects.get(name="Web chat")
    first = Incident.objects.get(name="Web chat and sign-in unavailable")
    second = Incident.objects.get(name="Web chat unavailable")

    for component in Component.objects.all():
        days = set(component.daily_uptime.values_list("day", flat=True))
        assert days == {today - timedelta(days=n) for n in range(90)}
    for incident in (first, second):
        row = chat.daily_uptime.get(day=incident.started_at.astimezone(zone).date())
        assert row.major_outage_seconds > 0
        assert uptime_percent(row) < 100
    quiet = chat.daily_uptime.get(day=today - timedelta(days=30))
    assert uptime_percent(quiet) == 100
