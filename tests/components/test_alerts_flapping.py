"""A flapping alert moves its component once, not at every flap: the checks' rule in time
(worse at once or after firing_for, better only after resolved_for), automatic incidents
that follow the component, and staff told once a window."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from components.alerts.models import AlertIntegration, AlertKind, AlertState
from components.alerts.services import alerts_settle
from components.models import AutoIncident, ComponentStatus, ComponentStatusChange
from incidents.automatic import (
    AUTO_INCIDENT_REOPEN_WINDOW,
    STAFF_NOTICE_WINDOW,
    staff_notices_flush,
)
from incidents.models import Incident
from incidents.notify.models import NotificationEvent
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, SubscriberFactory, sign_in_staff

pytestmark = pytest.mark.django_db

FLAPS = 100  # the tight loop of the main test
SOME_FLAPS = 30  # enough for the others


@pytest.fixture
def api(page, settings, httpserver):
    """API opens its own incidents; staff (email and Slack) and a webhook subscriber listen."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.BEACON_WEBHOOKS_ALLOW_PRIVATE = True
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True  # the staff webhook's address guard
    settings.BEACON_STAFF_WEBHOOK_URL = httpserver.url_for("/slack")
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    StaffFactory(groups=["Responders"], email="oncall@acme.test")
    SubscriberFactory(webhook=True, endpoint=httpserver.url_for("/hook"))
    return ComponentFactory(name="API", auto_incident=AutoIncident.PUBLISH)


@pytest.fixture
def generic():
    return AlertIntegration.objects.create(name="Cron", kind=AlertKind.GENERIC)


def send(integration, status, *, alert_id="flappy", severity="critical", client=None):
    body = {
        "id": alert_id,
        "status": status,
        "labels": {"component": "API", "severity": severity},
        "summary": "Queue depth",
    }
    response = (client or Client()).post(
        integration.path, json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response


def moves(component):
    return list(
        ComponentStatusChange.objects.filter(component=component)
        .order_by("at", "id")
        .values_list("to_status", flat=True)
    )


def posted(httpserver, path):
    return [entry for entry, _ in httpserver.log if entry.path == path]


def later(seconds):
    return timezone.now() + timedelta(seconds=seconds)


def test_an_alert_flapping_in_a_tight_loop_moves_its_component_once(
    api, generic, httpserver, django_capture_on_commit_callbacks
):
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(FLAPS):
            send(generic, "firing", client=client)
            send(generic, "resolved", client=client)
        alerts_settle()  # the sweep runs meanwhile: nothing has held long enough

    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE  # held until it stays resolved
    assert moves(api) == [ComponentStatus.MAJOR_OUTAGE]
    assert Incident.objects.count() == 1
    assert len(mail.outbox) == 1
    assert len(posted(httpserver, "/slack")) == 1
    # Subscribers: the component's change and the incident, once each.
    assert NotificationEvent.objects.count() == 2
    assert len(posted(httpserver, "/hook")) == 2

    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_settle(now=later(60)) == ["API"]  # resolved for a minute: recovered
    api.refresh_from_db()
    assert api.status == ComponentStatus.OPERATIONAL
    assert moves(api) == [ComponentStatus.MAJOR_OUTAGE, ComponentStatus.OPERATIONAL]
    [incident] = Incident.objects.all()
    assert incident.status == "resolved"
    assert len(mail.outbox) == 1  # the recovery waits for the window's summary

    with django_capture_on_commit_callbacks(execute=True):
        assert staff_notices_flush(now=later(STAFF_NOTICE_WINDOW.total_seconds())) == 1
    assert len(mail.outbox) == 2
    summary = mail.outbox[1]
    assert summary.subject == "[Acme] API: operational after 1 more change(s)"
    assert "from Major outage to Operational" in summary.body
    assert len(posted(httpserver, "/slack")) == 2
    assert staff_notices_flush(now=later(3600)) == 0  # nothing more to tell


def test_a_firing_that_must_hold_ignores_a_flapping_alert_until_it_stays(
    api, generic, django_capture_on_commit_callbacks
):
    generic.firing_for = 30
    generic.save()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(SOME_FLAPS):
            send(generic, "firing")
            send(generic, "resolved")
        assert alerts_settle(now=later(3600)) == []  # it ended resolved: never moved

        send(generic, "firing")
        assert alerts_settle(now=later(29)) == []
        assert alerts_settle(now=later(31)) == ["API"]

    assert moves(api) == [ComponentStatus.MAJOR_OUTAGE]
    assert Incident.objects.count() == 1 and len(mail.outbox) == 1


def test_a_flapping_severity_moves_to_the_worse_at_once_and_back_only_once_it_held(
    api, generic, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(SOME_FLAPS):
            send(generic, "firing", severity="warning")
            send(generic, "firing", severity="critical")
        send(generic, "firing", severity="warning")

    assert moves(api) == [ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.MAJOR_OUTAGE]
    alerts_settle(now=later(60))
    assert moves(api)[-1] == ComponentStatus.DEGRADED_PERFORMANCE
    assert Incident.objects.count() == 1


def test_alerts_of_several_integrations_taking_turns_move_the_component_once(
    api, generic, django_capture_on_commit_callbacks
):
    other = AlertIntegration.objects.create(name="Grafana", kind=AlertKind.GENERIC)
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(SOME_FLAPS):
            send(generic, "firing", alert_id=f"a{n % 3}")
            send(other, "firing", alert_id="b")
            send(generic, "resolved", alert_id=f"a{n % 3}")
            send(other, "resolved", alert_id="b")

    assert moves(api) == [ComponentStatus.MAJOR_OUTAGE]
    assert Incident.objects.count() == 1 and len(mail.outbox) == 1
    alerts_settle(now=later(60))
    assert moves(api) == [ComponentStatus.MAJOR_OUTAGE, ComponentStatus.OPERATIONAL]


def test_a_resolution_interrupted_by_a_firing_starts_its_wait_over(api, generic):
    send(generic, "firing")
    send(generic, "resolved")
    state = AlertState.objects.get()
    AlertState.objects.filter(pk=state.pk).update(reported_at=later(-50))
    send(generic, "firing")  # 50 s into the wait: the alert is back
    send(generic, "resolved")

    assert alerts_settle(now=later(30)) == []  # 30 s since the last resolution, not 80
    assert alerts_settle(now=later(60)) == ["API"]


def test_a_component_flapping_slowly_reuses_its_incident_and_tells_staff_once_a_window(
    api, generic, httpserver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):  # each resolution holds long enough: ten moves
            send(generic, "firing")
            send(generic, "resolved")
            alerts_settle(now=later(60))

    assert len(moves(api)) == 10
    [incident] = Incident.objects.all()  # reopened each time it came back, not opened anew
    assert incident.status == "resolved"
    assert [u.status for u in incident.updates.order_by("created_at", "id")] == [
        "investigating",
        "resolved",
    ] * 5
    assert len(mail.outbox) == 1 and len(posted(httpserver, "/slack")) == 1
    with django_capture_on_commit_callbacks(execute=True):
        staff_notices_flush(now=later(STAFF_NOTICE_WINDOW.total_seconds()))
    assert len(mail.outbox) == 2
    assert "changed 9 more time(s)" in mail.outbox[1].body


def test_the_admin_shows_a_report_that_has_not_held_yet(api, generic, client, admin_user):
    from django.urls import reverse

    send(generic, "firing")
    send(generic, "resolved")
    sign_in_staff(client, admin_user)

    page = client.get(reverse("admin:components_alertintegration_change", args=[generic.pk]))

    assert "resolved (not yet counted: it must hold)" in page.content.decode()


@pytest.mark.parametrize(
    ("current", "wanted", "held", "moves"),
    [
        ("operational", "major_outage", 0, True),  # worse: after firing_for (0)
        ("major_outage", "operational", 59, False),  # better: after resolved_for (60)
        ("major_outage", "operational", 60, True),
        ("major_outage", "degraded_performance", 30, False),  # milder is better
        ("degraded_performance", "major_outage", 0, True),
    ],
)
def test_the_duration_rule_waits_longer_toward_better(current, wanted, held, moves):
    from components.checks.policy import held_long_enough

    now = timezone.now()
    assert (
        held_long_enough(
            current=current,
            wanted=wanted,
            since=now - timedelta(seconds=held),
            now=now,
            worse_after=timedelta(0),
            better_after=timedelta(seconds=60),
        )
        is moves
    )


@pytest.mark.parametrize(
    ("resolved_ago", "postmortem", "incidents"),
    [
        (timedelta(minutes=29), False, 1),
        (AUTO_INCIDENT_REOPEN_WINDOW + timedelta(minutes=1), False, 2),
        (timedelta(minutes=1), True, 2),
    ],
)
def test_an_outage_soon_after_the_last_one_reopens_its_incident(
    api, generic, django_capture_on_commit_callbacks, resolved_ago, postmortem, incidents
):
    with django_capture_on_commit_callbacks(execute=True):
        send(generic, "firing")
        send(generic, "resolved")
        alerts_settle(now=later(60))
    first = Incident.objects.get()
    Incident.objects.filter(pk=first.pk).update(
        resolved_at=timezone.now() - resolved_ago,
        postmortem_published_at=timezone.now() if postmortem else None,
    )

    with django_capture_on_commit_callbacks(execute=True):
        send(generic, "firing")

    assert Incident.objects.count() == incidents
    assert Incident.objects.exclude(status="resolved").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_flapping_over_real_http_moves_once_and_never_fails(live_server, settings):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    settings.CELERY_TASK_ALWAYS_EAGER = True
    # A superuser: an earlier transactional test may have flushed the migrations' groups.
    StaffFactory(is_superuser=True, email="oncall@acme.test")
    api = ComponentFactory(name="API", auto_incident=AutoIncident.PUBLISH)
    web = ComponentFactory(name="Web", auto_incident=AutoIncident.PUBLISH)
    integration = AlertIntegration.objects.create(name="Cron", kind=AlertKind.GENERIC)
    url = live_server.url + integration.path

    def flap(worker: int) -> list[int]:
        # Each worker names both components, in its own order: their locks must not deadlock.
        names = "API,Web" if worker % 2 else "Web,API"
        codes = []
        with httpx.Client(timeout=30) as http:
            for status in ["firing", "resolved"] * 15:
                body = {
                    "alerts": [
                        {
                            "id": f"w{worker}",
                            "status": status,
                            "labels": {"component": names, "severity": "critical"},
                        }
                    ]
                }
                codes.append(http.post(url, json=body).status_code)
        return codes

    with ThreadPoolExecutor(4) as pool:
        codes = [code for result in pool.map(flap, range(4)) for code in result]

    assert set(codes) == {200}
    for component in (api, web):
        assert moves(component) == [ComponentStatus.MAJOR_OUTAGE]
    assert Incident.objects.count() == 2  # one each
    assert len(mail.outbox) == 2
