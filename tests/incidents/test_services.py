from datetime import timedelta
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from components import status as arbiter
from components.models import ComponentStatusChange
from components.services import component_set_status
from incidents import services
from incidents.models import AffectedComponent, Incident, IncidentUpdate
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident, schedule_maintenance


@pytest.fixture
def api(page):
    return ComponentFactory(name="API")


@pytest.fixture
def web(page):
    return ComponentFactory(name="Web")


def test_opening_an_incident_sets_its_components_and_records_why(api, web, django_user_model):
    user = django_user_model.objects.create(username="responder")
    incident = open_incident(
        component_statuses={api: "major_outage", web: "degraded_performance"}, author=user
    )
    api.refresh_from_db()
    web.refresh_from_db()
    assert (api.status, web.status) == ("major_outage", "degraded_performance")
    assert set(incident.components.all()) == {api, web}
    update = incident.updates.get()
    assert {
        (a.component, a.old_status, a.new_status) for a in update.affected_components.all()
    } == {
        (api, "operational", "major_outage"),
        (web, "operational", "degraded_performance"),
    }
    change = ComponentStatusChange.objects.get(component=api)
    assert (change.cause, change.actor) == ("incident", user)


@pytest.mark.parametrize(
    ("status", "impact"),
    [
        ("operational", "none"),
        ("under_maintenance", "none"),
        ("degraded_performance", "minor"),
        ("partial_outage", "major"),
        ("major_outage", "critical"),
    ],
)
def test_impact_follows_the_worst_component_status(api, status, impact):
    assert open_incident(component_statuses={api: status}).impact == impact


def test_impact_override_wins(api):
    incident = open_incident(component_statuses={api: "major_outage"}, impact_override="minor")
    assert incident.impact == "minor"


def test_impact_does_not_drop_when_components_recover(api):
    incident = open_incident(component_statuses={api: "partial_outage"})
    services.incident_post_update(
        incident=incident, status="monitoring", component_statuses={api: "operational"}
    )
    incident.refresh_from_db()
    assert incident.impact == "major"
    assert incident.monitoring_at is not None


def test_resolving_restores_components_to_operational(api, web):
    incident = open_incident(component_statuses={api: "major_outage", web: "partial_outage"})
    services.incident_resolve(incident=incident)
    api.refresh_from_db()
    web.refresh_from_db()
    incident.refresh_from_db()
    assert (api.status, web.status) == ("operational", "operational")
    assert incident.status == "resolved"
    assert incident.resolved_at is not None
    assert incident.updates.first().body == services.RESOLVED_BODY


def test_resolving_keeps_a_status_the_update_sets(api, web):
    incident = open_incident(component_statuses={api: "major_outage", web: "major_outage"})
    services.incident_post_update(
        incident=incident, status="resolved", component_statuses={web: "degraded_performance"}
    )
    api.refresh_from_db()
    web.refresh_from_db()
    assert (api.status, web.status) == ("operational", "degraded_performance")


def test_a_failing_component_change_leaves_nothing_half_written(api, web):
    incident = open_incident(component_statuses={api: "degraded_performance"})
    real = arbiter.component_set_status  # the arbiter records each component's change
    calls = []

    def fail_on_second(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(**kwargs)

    with (
        mock.patch.object(arbiter, "component_set_status", fail_on_second),
        pytest.raises(RuntimeError),
    ):
        services.incident_post_update(
            incident=incident,
            status="identified",
            body="Found it",
            component_statuses={api: "major_outage", web: "major_outage"},
        )
    api.refresh_from_db()
    web.refresh_from_db()
    incident.refresh_from_db()
    assert (api.status, web.status) == ("degraded_performance", "operational")
    assert incident.status == "investigating"
    assert IncidentUpdate.objects.filter(incident=incident).count() == 1
    assert ComponentStatusChange.objects.count() == 1


def test_opening_with_a_bad_component_status_writes_nothing(api):
    with pytest.raises(ValidationError):
        open_incident(component_statuses={api: "on_fire"})
    assert not Incident.objects.exists()
    api.refresh_from_db()
    assert api.status == "operational"


def test_an_incident_cannot_take_a_maintenance_status(api):
    incident = open_incident()
    with pytest.raises(ValidationError):
        services.incident_post_update(incident=incident, status="in_progress")


def test_a_nameless_incident_is_refused(page):
    with pytest.raises(ValidationError) as error:
        open_incident(name="   ")
    assert "name" in error.value.message_dict


def test_a_backfilled_incident_keeps_past_times_and_touches_no_component(api):
    started = timezone.now() - timedelta(days=3)
    incident = open_incident(status="resolved", backfilled=True, started_at=started)
    assert incident.started_at == started
    assert incident.updates.get().display_at == started
    assert incident.resolved_at == started
    with pytest.raises(ValidationError):
        open_incident(backfilled=True, component_statuses={api: "major_outage"})
    assert not ComponentStatusChange.objects.exists()


def test_publishing_a_postmortem_moves_the_incident_to_postmortem(api):
    incident = open_incident(component_statuses={api: "major_outage"})
    with pytest.raises(ValidationError):
        services.postmortem_publish(incident=incident, body="Too early")
    services.incident_resolve(incident=incident)
    incident = services.postmortem_publish(
        incident=incident, body="## What happened\nA bad deploy."
    )
    assert incident.status == "postmortem"
    assert incident.postmortem_published_at is not None


def test_a_maintenance_needs_a_window(page):
    with pytest.raises(ValidationError):
        schedule_maintenance(lasts=timedelta(0))


def test_maintenance_starts_and_completes_on_time(api, web):
    api_before = "degraded_performance"
    component_set_status(component=api, status=api_before)
    maintenance = schedule_maintenance(
        starts_in=timedelta(hours=1), lasts=timedelta(hours=2), affected_components=[api, web]
    )
    assert maintenance.status == "scheduled"
    assert maintenance.impact == "maintenance"
    now = timezone.now()

    assert services.maintenances_advance_due(now=now) == 0
    assert services.maintenances_advance_due(now=now + timedelta(hours=1, minutes=1)) == 1
    maintenance.refresh_from_db()
    api.refresh_from_db()
    assert maintenance.status == "in_progress"
    assert api.status == "under_maintenance"
    assert maintenance.updates.first().body == services.MAINTENANCE_STARTED_BODY
    assert ComponentStatusChange.objects.filter(cause="maintenance").count() == 2

    assert services.maintenances_advance_due(now=now + timedelta(hours=3, minutes=1)) == 1
    maintenance.refresh_from_db()
    api.refresh_from_db()
    web.refresh_from_db()
    assert maintenance.status == "completed"
    assert (api.status, web.status) == (api_before, "operational")
    assert list(maintenance.updates.values_list("status", flat=True)) == [
        "completed",
        "in_progress",
        "scheduled",
    ]
    # Running again changes nothing: the work is claimed once.
    assert services.maintenances_advance_due(now=now + timedelta(hours=4)) == 0


def test_a_missed_maintenance_window_is_started_and_completed_in_one_run(api):
    maintenance = schedule_maintenance(
        starts_in=timedelta(minutes=1), lasts=timedelta(minutes=5), affected_components=[api]
    )
    assert services.maintenances_advance_due(now=timezone.now() + timedelta(hours=1)) == 2
    maintenance.refresh_from_db()
    api.refresh_from_db()
    assert maintenance.status == "completed"
    assert api.status == "operational"
    assert AffectedComponent.objects.filter(update__incident=maintenance).count() == 2


def test_maintenance_without_auto_start_waits_for_staff(api):
    maintenance = schedule_maintenance(
        starts_in=timedelta(minutes=1), affected_components=[api], scheduled_auto_in_progress=False
    )
    assert services.maintenances_advance_due(now=timezone.now() + timedelta(days=1)) == 0
    maintenance.refresh_from_db()
    assert maintenance.status == "scheduled"


def test_changing_the_impact_override_recomputes_the_impact(api):
    incident = open_incident(component_statuses={api: "partial_outage"})
    incident = services.incident_edit(incident=incident, name="Renamed", impact_override="critical")
    assert (incident.name, incident.impact) == ("Renamed", "critical")
    incident = services.incident_edit(incident=incident, name="Renamed", impact_override="")
    assert incident.impact == "major"


def test_resolving_twice_is_refused(api):
    incident = open_incident(component_statuses={api: "major_outage"})
    services.incident_resolve(incident=incident)
    incident.refresh_from_db()
    with pytest.raises(ValidationError):
        services.incident_resolve(incident=incident)
    assert incident.updates.count() == 2


def test_an_incident_cannot_start_in_the_future(page):
    with pytest.raises(ValidationError) as error:
        open_incident(started_at=timezone.now() + timedelta(hours=1))
    assert "started_at" in error.value.message_dict


def test_a_maintenance_announced_in_the_past_keeps_its_announcement_time(page):
    announced = timezone.now() - timedelta(days=5)
    maintenance = schedule_maintenance(starts_in=timedelta(days=-4), created_at=announced)
    assert maintenance.created_at == announced
    assert maintenance.updates.get().display_at == announced
