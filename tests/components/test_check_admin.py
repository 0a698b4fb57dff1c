"""Health checks in the admin: list, change form by kind, "Run now", and components' checks."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from components.models import (
    AutoIncident,
    Automation,
    CheckKind,
    CheckLocationState,
    CheckResult,
    HealthCheck,
    Verdict,
)
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.incidents.factories import StaffFactory, sign_in_staff

pytestmark = pytest.mark.django_db

CHANGELIST_URL = reverse("admin:components_healthcheck_changelist")
ADD_URL = reverse("admin:components_healthcheck_add")

# A check of each kind, with the fields that kind uses.
EVERY_KIND = {
    CheckKind.HTTP: {"url": "https://api.example.test/health"},
    CheckKind.TCP: {"url": "", "host": "db.example.test", "port": 5432},
    CheckKind.DNS: {"url": "", "host": "example.test", "record_type": "A"},
    CheckKind.TLS: {"url": "", "host": "example.test", "port": 443},
    CheckKind.HEARTBEAT: {"url": ""},
    CheckKind.PROMETHEUS: {
        "url": "https://prometheus.example.test",
        "query": "up",
        "comparison": "<",
        "threshold": 1,
    },
    CheckKind.UPSTREAM: {
        "url": "https://status.vendor.test",
        "upstream_component": "API",
    },
}


def change_url(check):
    return reverse("admin:components_healthcheck_change", args=[check.pk])


def run_url(check):
    return reverse("admin:components_healthcheck_run", args=[check.pk])


def form_data(component, **overrides):
    """What the add form posts for an HTTP check, as a browser sends it."""
    data = {
        "component": component.pk,
        "name": "Health endpoint",
        "kind": CheckKind.HTTP,
        "enabled": "on",
        "interval": 60,
        "timeout": 10,
        "url": "https://api.example.test/health",
        "method": "GET",
        "follow_redirects": "on",
        "verify_tls": "on",
        "headers": "{}",
        "body": "",
        "expect_status": "[]",
        "keyword": "",
        "json_assertion": "",
        "host": "",
        "port": "",
        "expiry_warning_days": 14,
        "record_type": "A",
        "expected_values": "[]",
        "resolver": "",
        "grace": 60,
        "query": "",
        "comparison": "",
        "threshold": "",
        "upstream_component": "",
        "failures_before_down": 3,
        "down_status": "major_outage",
        "successes_before_up": 2,
        "degraded_latency_ms": "",
        "locations": '["default"]',
        "quorum": 1,
    }
    data.update(overrides)
    return data


@pytest.fixture
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


# The list


def test_the_list_shows_checks_of_every_kind_with_their_latest_word(client, responder):
    for kind, fields in EVERY_KIND.items():
        HealthCheckFactory(name=f"{kind.label} check", kind=kind, **fields)
    HealthCheckFactory(
        name="Slow API",
        verdict=Verdict.DEGRADED,
        last_run_at=timezone.now() - timedelta(minutes=3, seconds=5),
        last_latency_ms=1234.4,
        last_error="Slow: 1234 ms, above 1000 ms",
    )

    response = client.get(CHANGELIST_URL)

    assert response.status_code == 200
    for kind in EVERY_KIND:
        assert f"{kind.label} check" in response.text
    assert "3 min ago" in response.text
    assert "1234 ms" in response.text
    assert "Slow: 1234 ms, above 1000 ms" in response.text
    assert "Degraded" in response.text


def test_the_list_filters_by_verdict(client, responder):
    HealthCheckFactory(name="Failing", verdict=Verdict.DOWN)
    HealthCheckFactory(name="Fine", verdict=Verdict.UP)

    response = client.get(CHANGELIST_URL, {"verdict__exact": Verdict.DOWN})

    assert response.status_code == 200
    assert "Failing" in response.text
    assert "Fine" not in response.text


# The change form


@pytest.mark.parametrize("kind", list(EVERY_KIND))
def test_the_change_page_renders_for_every_kind(client, responder, kind):
    check = HealthCheckFactory(kind=kind, **EVERY_KIND[kind])

    response = client.get(change_url(check))

    assert response.status_code == 200
    fieldsets = [fieldset.name for fieldset in response.context["adminform"]]
    assert fieldsets == [
        None,
        "HTTP(S)",
        "TCP / TLS",
        "DNS",
        "Heartbeat",
        "Prometheus",
        "Upstream status page",
        "Policy",
        "Locations",
        "Response time",
    ]
    assert "Run now" in response.text
    assert "No data yet." in response.text or "<svg" in response.text


def test_the_add_page_prefills_the_component(client, responder):
    api = ComponentFactory(name="API")

    response = client.get(ADD_URL, {"component": api.pk})

    assert response.status_code == 200
    assert response.context["adminform"].form.initial["component"] == str(api.pk)


def test_an_http_check_is_added(client, responder):
    api = ComponentFactory()

    response = client.post(ADD_URL, form_data(api, expect_status="[200, 204]"))

    assert response.status_code == 302
    check = HealthCheck.objects.get()
    assert (check.component, check.kind, check.url) == (
        api,
        CheckKind.HTTP,
        "https://api.example.test/health",
    )
    assert check.expect_status == [200, 204]


def test_an_http_check_without_a_url_is_an_error_on_the_url_field(client, responder):
    api = ComponentFactory()

    response = client.post(ADD_URL, form_data(api, url=""))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {"url": ["This check kind needs it."]}
    assert "This check kind needs it." in response.text
    assert not HealthCheck.objects.exists()


def test_an_interval_under_10_seconds_is_refused(client, responder):
    api = ComponentFactory()

    response = client.post(ADD_URL, form_data(api, interval=5))

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["interval"]
    assert not HealthCheck.objects.exists()


def test_the_kinds_own_rules_apply_on_save(client, responder):
    api = ComponentFactory()

    response = client.post(
        ADD_URL, form_data(api, url="ftp://files.example.test/", expect_status="[700]")
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "url": ["Use an http:// or https:// URL."],
        "expect_status": ["A list of status codes between 100 and 599."],
    }


@pytest.mark.parametrize(
    ("fields", "field", "error"),
    [
        ({"kind": CheckKind.TCP, "host": "$(id)", "port": 22}, "host", "is not a valid host name"),
        ({"kind": CheckKind.TLS, "host": "a b", "port": 443}, "host", "no spaces or control"),
        ({"kind": CheckKind.DNS, "host": "`id`.acme.test"}, "host", "is not a valid host name"),
        (
            {"kind": CheckKind.TCP, "host": "::ffff:169.254.169.254", "port": 80},
            "host",
            "cloud metadata address",
        ),
        ({"url": "http://169.254.169.254/latest/"}, "url", "cloud metadata address"),
        ({"url": "http://[::ffff:a9fe:a9fe]/latest/"}, "url", "cloud metadata address"),
    ],
)
def test_hostile_hosts_are_form_errors_and_nothing_is_saved(
    client, responder, allow_local_targets, fields, field, error
):
    api = ComponentFactory()
    if "host" in fields:
        fields = {"url": "", **fields}

    response = client.post(ADD_URL, form_data(api, **fields))

    assert response.status_code == 200
    assert error in " ".join(response.context["adminform"].form.errors[field])
    assert not HealthCheck.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [("expect_status", "200", "Enter a JSON list."), ("headers", "[]", "Enter a JSON object.")],
)
def test_json_of_the_wrong_shape_is_a_form_error(client, responder, field, value, error):
    api = ComponentFactory()

    response = client.post(ADD_URL, form_data(api, **{field: value}))

    assert response.status_code == 200
    assert error in response.context["adminform"].form.errors[field]


def test_a_heartbeat_needs_no_url(client, responder):
    api = ComponentFactory()

    response = client.post(ADD_URL, form_data(api, kind=CheckKind.HEARTBEAT, url=""))

    assert response.status_code == 302
    assert HealthCheck.objects.get().kind == CheckKind.HEARTBEAT


def test_the_heartbeat_page_shows_the_public_ping_url_with_a_curl_line(client, responder, page):
    check = HealthCheckFactory(kind=CheckKind.HEARTBEAT, url="")

    response = client.get(change_url(check))

    url = f"https://status.acme.test/ping/{check.ping_token}/"
    assert f"curl -fsS -m 10 --retry 5 -o /dev/null {url}\n" in response.text
    assert f"{url}fail/" in response.text


def test_without_a_public_url_the_ping_url_is_this_sites(client, responder):
    check = HealthCheckFactory(kind=CheckKind.HEARTBEAT, url="")

    response = client.get(change_url(check))

    assert f"http://testserver/ping/{check.ping_token}/" in response.text


def test_the_change_page_shows_locations_and_the_last_20_results(client, responder):
    check = HealthCheckFactory(locations=["eu", "us"])
    CheckLocationState.objects.create(
        health_check=check, location="eu", verdict=Verdict.UP, streak_verdict=Verdict.DOWN, streak=2
    )
    start = timezone.now() - timedelta(hours=1)
    for i in range(25):
        CheckResult.objects.create(
            health_check=check,
            location="us",
            at=start + timedelta(minutes=i),
            verdict=Verdict.DOWN,
            status_code=503,
            error=f"failure number {i:02}",
        )

    response = client.get(change_url(check))

    assert "2 × Down" in response.text
    shown = [r.error for r in response.context["recent_results"]]
    assert shown == [f"failure number {i:02}" for i in range(24, 4, -1)]
    assert "failure number 05" in response.text
    assert "failure number 04" not in response.text


# Run now


def test_run_now_by_htmx_answers_the_outcome_and_the_updated_panel(
    client, responder, httpserver, allow_local_targets
):
    httpserver.expect_request("/health").respond_with_data("boom", status=503)
    check = HealthCheckFactory(url=httpserver.url_for("/health"))

    response = client.post(run_url(check), headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="run-result">')
    assert "<html" not in response.text
    assert "Ran just now" in response.text
    assert "Status code: 503" in response.text
    assert "Status 503, expected 200–399" in response.text
    result = CheckResult.objects.get(health_check=check)
    assert (result.verdict, result.status_code) == (Verdict.DOWN, 503)
    check.refresh_from_db()
    assert check.last_run_at is not None
    assert ">just now</time>" in response.text  # the last-result panel, updated


def test_run_now_of_a_healthy_target_says_up(client, responder, httpserver, allow_local_targets):
    httpserver.expect_request("/health").respond_with_data("ok")
    check = HealthCheckFactory(url=httpserver.url_for("/health"))

    response = client.post(run_url(check), headers={"HX-Request": "true"})

    assert "Verdict: <strong>Up</strong>" in response.text
    assert "Status code: 200" in response.text


def test_run_now_without_htmx_redirects_back_with_the_outcome(
    client, responder, httpserver, allow_local_targets
):
    httpserver.expect_request("/health").respond_with_data("ok")
    check = HealthCheckFactory(name="Health endpoint", url=httpserver.url_for("/health"))

    response = client.post(run_url(check))

    assert response.status_code == 302
    assert response.url == change_url(check)
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("Ran “Health endpoint”: Up · ")
    assert message.endswith(" ms · HTTP 200")
    assert CheckResult.objects.filter(health_check=check, verdict=Verdict.UP).exists()


def test_run_now_needs_the_change_permission(client):
    viewer = StaffFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_healthcheck"))
    sign_in_staff(client, viewer)
    check = HealthCheckFactory()

    assert client.get(change_url(check)).status_code == 200
    response = client.post(run_url(check), headers={"HX-Request": "true"})

    assert response.status_code == 403
    assert not CheckResult.objects.exists()


def test_run_now_is_a_post(client, responder):
    check = HealthCheckFactory()

    assert client.get(run_url(check)).status_code == 405


def test_run_selected_checks_now(client, responder, httpserver, allow_local_targets):
    httpserver.expect_request("/up").respond_with_data("ok")
    httpserver.expect_request("/down").respond_with_data("no", status=500)
    up = HealthCheckFactory(name="Fine", url=httpserver.url_for("/up"))
    down = HealthCheckFactory(name="Broken", url=httpserver.url_for("/down"))

    response = client.post(
        CHANGELIST_URL,
        {"action": "run_selected", "_selected_action": [up.pk, down.pk], "index": 0},
    )

    assert response.status_code == 302
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(m.startswith(f"{down}: Down") for m in messages)
    assert sorted(messages[-1].removesuffix(".").split(": ")[1].split(", ")) == [
        "1 down",
        "1 up",
    ]
    assert set(CheckResult.objects.values_list("health_check__name", "verdict")) == {
        ("Fine", Verdict.UP),
        ("Broken", Verdict.DOWN),
    }


# Components and their checks


def test_the_component_page_lists_its_checks_and_offers_to_add_one(client, responder):
    api = ComponentFactory(name="API")
    check = HealthCheckFactory(component=api, name="Health endpoint", verdict=Verdict.DOWN)
    HealthCheckFactory(name="Someone else's check")

    response = client.get(reverse("admin:components_component_change", args=[api.pk]))

    assert response.status_code == 200
    assert f'href="{change_url(check)}"' in response.text
    assert "Health endpoint" in response.text
    assert "Someone else&#x27;s check" not in response.text
    assert f'href="{ADD_URL}?component={api.pk}"' in response.text
    assert "Automation" in [fieldset.name for fieldset in response.context["adminform"]]


def test_the_component_page_saves_its_automation(client, responder):
    api = ComponentFactory(name="API")

    response = client.post(
        reverse("admin:components_component_change", args=[api.pk]),
        {
            "name": "API",
            "position": api.position,
            "status": api.status,
            "showcase": "on",
            "automation": Automation.MANUAL,
            "auto_incident": AutoIncident.DRAFT,
            "auto_incident_recovery": "monitoring",
            "status_changes-TOTAL_FORMS": 0,
            "status_changes-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 302
    api.refresh_from_db()
    assert (api.automation, api.auto_incident, api.auto_incident_recovery) == (
        Automation.MANUAL,
        AutoIncident.DRAFT,
        "monitoring",
    )


# Roles


def test_responders_run_checks_and_admins_may_do_everything():
    responders = set(
        Group.objects.get(name="Responders")
        .permissions.filter(content_type__app_label="components")
        .values_list("codename", flat=True)
    )
    admins = set(
        Group.objects.get(name="Admins")
        .permissions.filter(content_type__app_label="components")
        .values_list("codename", flat=True)
    )

    assert {
        "add_healthcheck",
        "change_healthcheck",
        "delete_healthcheck",
        "view_healthcheck",
        "view_checkresult",
    } <= responders
    assert "delete_checkresult" not in responders
    assert {"delete_checkresult", "change_checklocationstate", "view_checkrollup"} <= admins
