"""Inbound alert webhooks: Alertmanager, Grafana, Datadog and generic JSON move components."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from components.alerts import views as alert_views
from components.alerts.models import AlertIntegration, AlertKind, AlertLog, AlertState
from components.alerts.services import alert_log_write, alerts_settle
from components.models import (
    AutoIncident,
    Automation,
    ComponentStatus,
    ComponentStatusChange,
    StatusChangeCause,
)
from components.services import component_set_status
from incidents.models import Incident
from incidents.services import incident_create
from tests.components.factories import ComponentFactory

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).parent / "alert_payloads"


def sample(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def post(client, integration, body, **extra):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(integration.path, data, content_type="application/json", **extra)


@pytest.fixture
def api():
    return ComponentFactory(name="API")


@pytest.fixture
def alertmanager():
    return AlertIntegration.objects.create(name="Prometheus", kind=AlertKind.ALERTMANAGER)


def changes(component):
    return list(ComponentStatusChange.objects.filter(component=component).order_by("at", "id"))


def settle(seconds=60):
    """The settling sweep (beat), once a resolution has held for `seconds` (the default
    resolved_for); returns the components that moved."""
    return alerts_settle(now=timezone.now() + timedelta(seconds=seconds))


# Alertmanager: firing, resolved, repeats and order


def test_a_firing_alert_sets_the_status_its_severity_maps_to(client, api, alertmanager):
    response = post(client, alertmanager, sample("alertmanager_firing"))

    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "alerts": 1,
        "changed": 1,
        "unchanged": 0,
        "stale": 0,
        "unmatched": [],
        "components_changed": ["API"],
    }
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE
    [change] = changes(api)
    assert change.cause == StatusChangeCause.ALERT
    assert change.note == "APIHighErrorRate: API 5xx ratio above 5% (firing, Prometheus)"
    alertmanager.refresh_from_db()
    assert alertmanager.last_received_at is not None


def test_resolving_restores_the_status_from_before_the_alert_once_it_held(
    client, api, alertmanager
):
    post(client, alertmanager, sample("alertmanager_firing"))
    response = post(client, alertmanager, sample("alertmanager_resolved"))

    assert response.json()["changed"] == 1 and response.json()["components_changed"] == []
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE  # one resolution is not a recovery yet
    assert settle(seconds=59) == []
    assert settle(seconds=60) == ["API"]
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL
    assert [(c.to_status, c.cause) for c in changes(api)] == [
        (ComponentStatus.MAJOR_OUTAGE, StatusChangeCause.ALERT),
        (ComponentStatus.OPERATIONAL, StatusChangeCause.ALERT),
    ]
    state = AlertState.objects.get()
    assert state.firing is False and state.ends_at.isoformat() == "2026-03-10T14:19:41.512893+00:00"


def test_the_same_notification_delivered_twice_changes_nothing_twice(client, api, alertmanager):
    first = post(client, alertmanager, sample("alertmanager_firing"))
    again = post(client, alertmanager, sample("alertmanager_firing"))  # a retry or group repeat

    assert first.json()["changed"] == 1
    assert again.status_code == 200
    assert again.json()["changed"] == 0 and again.json()["unchanged"] == 1
    assert len(changes(api)) == 1

    post(client, alertmanager, sample("alertmanager_resolved"))
    settle()
    post(client, alertmanager, sample("alertmanager_resolved"))
    settle()
    assert len(changes(api)) == 2
    assert AlertState.objects.count() == 1


def test_a_firing_notification_that_arrives_after_its_resolution_is_ignored(
    client, api, alertmanager
):
    resolved = post(client, alertmanager, sample("alertmanager_resolved"))
    late = post(client, alertmanager, sample("alertmanager_firing"))

    assert resolved.json()["unchanged"] == 1
    assert late.json()["stale"] == 1
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL
    assert changes(api) == []


def test_the_resolution_of_an_earlier_episode_does_not_end_a_newer_one(client, api, alertmanager):
    newer = sample("alertmanager_firing")
    newer["alerts"][0]["startsAt"] = "2026-03-10T16:30:00Z"  # fired again after 14:19
    post(client, alertmanager, newer)

    old_resolution = post(client, alertmanager, sample("alertmanager_resolved"))

    assert old_resolution.json()["stale"] == 1
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE


def test_an_alert_that_fires_again_after_resolving_moves_the_component_again(
    client, api, alertmanager
):
    post(client, alertmanager, sample("alertmanager_firing"))
    post(client, alertmanager, sample("alertmanager_resolved"))
    settle()
    again = sample("alertmanager_firing")
    again["alerts"][0]["startsAt"] = "2026-03-10T18:00:00Z"
    post(client, alertmanager, again)

    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE
    assert len(changes(api)) == 3


def test_with_two_alerts_on_a_component_the_worst_wins_until_both_resolve(
    client, api, alertmanager
):
    ComponentFactory(name="Search")
    post(client, alertmanager, sample("alertmanager_group_firing"))  # api: warning
    api.refresh_from_db()
    assert api.status == ComponentStatus.DEGRADED_PERFORMANCE

    post(client, alertmanager, sample("alertmanager_firing"))  # api: critical
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE

    post(client, alertmanager, sample("alertmanager_resolved"))  # the critical one ends
    settle()
    api.refresh_from_db()
    assert api.status == ComponentStatus.DEGRADED_PERFORMANCE

    latency_resolved = sample("alertmanager_group_firing")
    for alert in latency_resolved["alerts"]:
        alert["status"], alert["endsAt"] = "resolved", "2026-03-10T17:00:00Z"
    latency_resolved["status"] = "resolved"
    post(client, alertmanager, latency_resolved)
    settle()
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL
    assert [c.to_status for c in changes(api)] == [
        ComponentStatus.DEGRADED_PERFORMANCE,
        ComponentStatus.MAJOR_OUTAGE,
        ComponentStatus.DEGRADED_PERFORMANCE,
        ComponentStatus.OPERATIONAL,
    ]


def test_a_severity_change_of_a_firing_alert_moves_the_component(client, api, alertmanager):
    post(client, alertmanager, sample("alertmanager_firing"))
    milder = sample("alertmanager_firing")
    milder["alerts"][0]["labels"]["severity"] = "warning"
    milder["alerts"][0]["startsAt"] = "2026-03-10T14:05:00Z"

    post(client, alertmanager, milder)
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE  # milder is better: it must hold

    settle()
    api.refresh_from_db()
    assert api.status == ComponentStatus.DEGRADED_PERFORMANCE


def test_an_unknown_severity_sets_the_integrations_default_status(client, api, alertmanager):
    alertmanager.default_status = ComponentStatus.DEGRADED_PERFORMANCE
    alertmanager.save()
    body = sample("alertmanager_firing")
    body["alerts"][0]["labels"]["severity"] = "sev-unknown"

    post(client, alertmanager, body)

    api.refresh_from_db()
    assert api.status == ComponentStatus.DEGRADED_PERFORMANCE


def test_the_integrations_mapping_names_components_and_sets_statuses(client, alertmanager):
    database = ComponentFactory(name="Primary database")
    alertmanager.match_label = "job"
    alertmanager.components_by_value = {"API": "primary DATABASE"}
    alertmanager.severity_statuses = {"CRITICAL": ComponentStatus.PARTIAL_OUTAGE}
    alertmanager.save()

    post(client, alertmanager, sample("alertmanager_firing"))  # job="api", severity=critical

    database.refresh_from_db()
    assert database.status == ComponentStatus.PARTIAL_OUTAGE


def test_an_alert_naming_no_known_component_is_logged_and_answered_unmatched(
    client, api, alertmanager
):
    response = post(client, alertmanager, sample("alertmanager_group_firing"))  # api + search

    assert response.status_code == 200
    body = response.json()
    assert body["unmatched"] == ["SlowResponses: p95 latency of search-2 above 800 ms"]
    assert body["changed"] == 1
    entry = AlertLog.objects.get()
    assert entry.ok is True
    assert "search-2" in entry.reason and "“component” label" in entry.reason
    assert entry.excerpt.startswith('{"receiver": "beacon"')


# Refused deliveries


def test_a_body_that_is_not_json_is_refused_with_400_and_logged(client, api, alertmanager):
    response = post(client, alertmanager, b'{"receiver": "beacon", "alerts": [')

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"
    assert response.json()["message"].startswith("The body is not JSON")
    entry = AlertLog.objects.get()
    assert entry.ok is False and entry.reason.startswith("The body is not JSON")
    assert entry.excerpt == '{"receiver": "beacon", "alerts": ['
    assert changes(api) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda body: body.update(alerts={"status": "firing"}), '"alerts" must be a list.'),
        (lambda body: body.update(version="3"), "Version '3' of the webhook payload"),
        (
            lambda body: body["alerts"][0].update(status="pending"),
            'alerts[0].status must be "firing" or "resolved", not \'pending\'.',
        ),
        (
            lambda body: body["alerts"][0].update(startsAt="yesterday"),
            "alerts[0].startsAt is not an RFC 3339 time",
        ),
        (lambda body: body["alerts"][0].update(labels=["api"]), "alerts[0].labels must be"),
    ],
)
def test_a_body_alertmanager_does_not_send_is_refused_with_the_reason(
    client, api, alertmanager, change, message
):
    body = sample("alertmanager_firing")
    change(body)

    response = post(client, alertmanager, body)

    assert response.status_code == 400
    assert message in response.json()["message"]
    assert message in AlertLog.objects.get().reason
    assert changes(api) == [] and not AlertState.objects.exists()


def test_a_json_array_is_refused(client, alertmanager):
    response = post(client, alertmanager, b"[]")

    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["message"]


def test_an_unknown_token_a_wrong_kind_or_a_disabled_integration_is_not_found(
    client, api, alertmanager
):
    disabled = AlertIntegration.objects.create(
        name="Old", kind=AlertKind.ALERTMANAGER, enabled=False
    )
    paths = [
        "/integrations/alertmanager/not-a-token/",
        f"/integrations/grafana/{alertmanager.token}/",
        disabled.path,
    ]
    for path in paths:
        response = client.post(
            path, json.dumps(sample("alertmanager_firing")), content_type="application/json"
        )
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert changes(api) == [] and not AlertLog.objects.exists()


def test_a_post_needs_no_csrf_token(api, alertmanager):
    response = post(Client(enforce_csrf_checks=True), alertmanager, sample("alertmanager_firing"))

    assert response.status_code == 200


def test_only_posts_and_puts_are_accepted(client, alertmanager):
    assert client.get(alertmanager.path).status_code == 405
    body = json.dumps(sample("alertmanager_firing"))
    assert client.put(alertmanager.path, body, content_type="application/json").status_code == 200


def test_a_body_over_a_megabyte_is_refused_with_413(client, api, alertmanager):
    body = sample("alertmanager_firing")
    body["commonAnnotations"]["description"] = "x" * (1024 * 1024)

    response = post(client, alertmanager, body)

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert changes(api) == []


def test_deliveries_over_the_rate_limit_are_refused_with_429(
    client, api, alertmanager, monkeypatch
):
    monkeypatch.setattr(alert_views, "RATE_LIMIT_PER_MINUTE", 2)
    other = AlertIntegration.objects.create(name="Other", kind=AlertKind.ALERTMANAGER)

    answers = [post(client, alertmanager, sample("alertmanager_firing")) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "rate_limited"
    assert 0 < int(answers[2]["Retry-After"]) <= 60
    assert post(client, other, sample("alertmanager_firing")).status_code == 200  # its own count


def test_the_log_keeps_the_latest_entries_of_each_integration(alertmanager, monkeypatch):
    monkeypatch.setattr(AlertLog, "LOG_KEEP", 3)
    other = AlertIntegration.objects.create(name="Other", kind=AlertKind.GENERIC)
    alert_log_write(integration=other, ok=False, reason="other", body=b"", at=timezone.now())

    for n in range(5):
        alert_log_write(
            integration=alertmanager, ok=False, reason=f"bad {n}", body=b"x", at=timezone.now()
        )

    kept = AlertLog.objects.filter(integration=alertmanager)
    assert [entry.reason for entry in kept.order_by("id")] == ["bad 2", "bad 3", "bad 4"]
    assert AlertLog.objects.filter(integration=other).count() == 1


# Grafana, Datadog and the generic format


def test_grafana_firing_and_resolved_notifications_move_the_component(client):
    checkout = ComponentFactory(name="Checkout")
    grafana = AlertIntegration.objects.create(name="Grafana", kind=AlertKind.GRAFANA)

    post(client, grafana, sample("grafana_firing"))
    checkout.refresh_from_db()
    assert checkout.status == ComponentStatus.DEGRADED_PERFORMANCE
    assert changes(checkout)[0].note.startswith("Checkout error rate: Checkout errors above 2%")

    post(client, grafana, sample("grafana_firing"))  # Grafana's repeat interval
    post(client, grafana, sample("grafana_resolved"))
    settle()
    checkout.refresh_from_db()
    assert checkout.status == ComponentStatus.OPERATIONAL
    assert len(changes(checkout)) == 2


def test_datadog_triggered_and_recovered_notifications_move_the_component(client):
    database = ComponentFactory(name="database")
    datadog = AlertIntegration.objects.create(name="Datadog", kind=AlertKind.DATADOG)

    triggered = post(client, datadog, sample("datadog_triggered"))
    database.refresh_from_db()
    assert triggered.json()["changed"] == 1
    assert database.status == ComponentStatus.MAJOR_OUTAGE  # an error alert is critical
    state = AlertState.objects.get()
    assert state.fingerprint == "148203457:component:database,env:prod"
    assert state.starts_at.isoformat() == "2026-03-11T10:00:00+00:00"

    renotify = sample("datadog_triggered") | {"transition": "Renotify", "date": "1773224000000"}
    assert post(client, datadog, renotify).json()["unchanged"] == 1
    post(client, datadog, sample("datadog_recovered"))
    settle()
    database.refresh_from_db()
    assert database.status == ComponentStatus.OPERATIONAL
    assert len(changes(database)) == 2


def test_a_datadog_warning_degrades_and_no_data_changes_nothing(client):
    database = ComponentFactory(name="Database")
    datadog = AlertIntegration.objects.create(name="Datadog", kind=AlertKind.DATADOG)
    warn = sample("datadog_triggered") | {"transition": "Warn", "alert_type": "warning"}
    no_data = sample("datadog_recovered") | {"transition": "No Data", "date": "1773229999000"}

    post(client, datadog, warn)
    answer = post(client, datadog, no_data)

    database.refresh_from_db()
    assert database.status == ComponentStatus.DEGRADED_PERFORMANCE
    assert answer.status_code == 200 and answer.json()["alerts"] == 0


def test_a_datadog_payload_without_the_template_is_refused(client):
    datadog = AlertIntegration.objects.create(name="Datadog", kind=AlertKind.DATADOG)

    response = post(client, datadog, {"title": "x", "alert_id": "$ALERT_ID"})

    assert response.status_code == 400
    assert "payload template" in response.json()["message"]


def test_the_generic_format_takes_one_alert_or_a_list(client, api):
    generic = AlertIntegration.objects.create(name="Cron jobs", kind=AlertKind.GENERIC)
    one = {
        "id": "nightly-export",
        "status": "firing",
        "labels": {"component": "API", "severity": "error"},
        "summary": "The nightly export failed",
        "starts_at": "2026-03-12T02:00:00Z",
    }

    post(client, generic, one)
    api.refresh_from_db()
    assert api.status == ComponentStatus.PARTIAL_OUTAGE
    assert changes(api)[0].note == "The nightly export failed (firing, Cron jobs)"

    resolved = {**one, "status": "resolved", "ends_at": "2026-03-12T02:30:00Z"}
    response = post(client, generic, {"alerts": [resolved]})
    settle()
    api.refresh_from_db()
    assert response.json()["changed"] == 1
    assert api.status == ComponentStatus.OPERATIONAL


def test_a_generic_alert_without_an_id_is_refused(client):
    generic = AlertIntegration.objects.create(name="Jobs", kind=AlertKind.GENERIC)

    response = post(client, generic, {"status": "firing", "labels": {"component": "API"}})

    assert response.status_code == 400
    assert response.json()["message"] == 'the alert needs an "id" (a string naming the alert).'


# What alerts leave alone, and what they open


def test_a_status_a_person_set_is_not_overridden(client, api, alertmanager):
    component_set_status(
        component=api, status=ComponentStatus.PARTIAL_OUTAGE, cause=StatusChangeCause.STAFF
    )

    response = post(client, alertmanager, sample("alertmanager_firing"))

    api.refresh_from_db()
    assert api.status == ComponentStatus.PARTIAL_OUTAGE
    assert response.json()["components_changed"] == []
    assert AlertState.objects.get().firing is True  # known, for when it resolves


def test_a_person_who_changed_the_status_meanwhile_keeps_it_after_the_alert_resolves(
    client, api, alertmanager
):
    post(client, alertmanager, sample("alertmanager_firing"))
    component_set_status(
        component=api, status=ComponentStatus.PARTIAL_OUTAGE, cause=StatusChangeCause.STAFF
    )

    post(client, alertmanager, sample("alertmanager_resolved"))

    api.refresh_from_db()
    assert api.status == ComponentStatus.PARTIAL_OUTAGE


def test_a_component_on_manual_status_is_left_alone(client, alertmanager):
    api = ComponentFactory(name="API", automation=Automation.MANUAL)

    post(client, alertmanager, sample("alertmanager_firing"))

    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL


def test_a_component_an_open_incident_names_is_left_alone(client, api, alertmanager):
    incident_create(name="API trouble", status="investigating", affected_components=[api])

    post(client, alertmanager, sample("alertmanager_firing"))

    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL


def test_an_alert_opens_and_resolves_an_automatic_incident_when_the_component_asks(
    client, page, alertmanager, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    api = ComponentFactory(name="API", auto_incident=AutoIncident.PUBLISH)

    with django_capture_on_commit_callbacks(execute=True):
        post(client, alertmanager, sample("alertmanager_firing"))
        post(client, alertmanager, sample("alertmanager_firing"))

    [incident] = Incident.objects.all()
    assert incident.auto_component == api
    assert incident.name == "API: major outage" and incident.status == "investigating"

    with django_capture_on_commit_callbacks(execute=True):
        post(client, alertmanager, sample("alertmanager_resolved"))
        settle()
    incident.refresh_from_db()
    api.refresh_from_db()
    assert incident.status == "resolved"
    assert api.status == ComponentStatus.OPERATIONAL


# The admin


def test_staff_see_the_url_to_paste_and_the_alerts_and_log(client, responder, page):
    api = ComponentFactory(name="API")
    grafana = AlertIntegration.objects.create(name="Grafana", kind=AlertKind.GRAFANA)
    post(Client(), grafana, sample("grafana_firing"))  # Checkout: no such component
    post(Client(), grafana, sample("alertmanager_firing") | {"version": "1"})  # API

    response = client.get(reverse("admin:components_alertintegration_change", args=[grafana.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert f"https://status.acme.test/integrations/grafana/{grafana.token}/" in html
    assert "API 5xx ratio above 5%" in html and "firing" in html
    assert "No component matched 1 alert(s)" in html
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE


def test_staff_create_an_integration_and_regenerate_its_token(client, responder):
    response = client.post(
        reverse("admin:components_alertintegration_add"),
        {
            "name": "Prometheus",
            "kind": "alertmanager",
            "enabled": "on",
            "match_label": "component",
            "components_by_value": "{}",
            "severity_label": "severity",
            "severity_statuses": '{"critical": "major_outage"}',
            "default_status": "partial_outage",
            "firing_for": "0",
            "resolved_for": "120",
        },
    )
    assert response.status_code == 302
    integration = AlertIntegration.objects.get()
    assert (integration.firing_for, integration.resolved_for) == (0, 120)
    old_token = integration.token
    assert len(old_token) >= 32

    client.post(
        reverse("admin:components_alertintegration_changelist"),
        {"action": "regenerate_token", "_selected_action": [integration.pk]},
    )

    integration.refresh_from_db()
    assert integration.token != old_token
    old_url = f"/integrations/alertmanager/{old_token}/"
    assert client.post(old_url, "{}", content_type="application/json").status_code == 404


def test_the_admin_refuses_a_mapping_to_an_unknown_status(client, responder):
    response = client.post(
        reverse("admin:components_alertintegration_add"),
        {
            "name": "Prometheus",
            "kind": "alertmanager",
            "match_label": "component",
            "components_by_value": "{}",
            "severity_label": "severity",
            "severity_statuses": '{"critical": "on_fire"}',
            "default_status": "partial_outage",
        },
    )

    assert response.status_code == 200
    assert "Unknown status on_fire" in response.content.decode()
    assert not AlertIntegration.objects.exists()


def test_a_health_check_that_recovers_does_not_end_a_firing_alert(client, api, alertmanager):
    from components.checks.services import component_follow_checks

    post(client, alertmanager, sample("alertmanager_firing"))
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE

    # The component's checks say up (it has none failing): the alert still decides.
    component_follow_checks(component_id=api.pk)
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE
