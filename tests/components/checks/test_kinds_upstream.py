"""Upstream checks against pytest-httpserver serving a real GitHub Status components.json.

tests/fixtures/statuspage/github-summary-2022-11-25.json is githubstatus.com's
summary.json captured during an incident ("Packages" in partial_outage). Its /api/v2/
components.json answer is the same page and components: {"page": …, "components": […]}.
"""

import copy
import json
from pathlib import Path

import pytest

from components.checks import KINDS
from components.checks.runner import run_batch
from components.checks.services import check_run_now
from components.models import CheckKind, ComponentStatus, Verdict
from tests.components.factories import ComponentFactory, HealthCheckFactory

SUMMARY = Path(__file__).resolve().parents[2] / "fixtures/statuspage/github-summary-2022-11-25.json"


@pytest.fixture(scope="module")
def components_json():
    summary = json.loads(SUMMARY.read_text())
    return {"page": summary["page"], "components": summary["components"]}


@pytest.fixture(autouse=True)
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


def serve(httpserver, document):
    httpserver.expect_request("/api/v2/components.json").respond_with_json(document)


def upstream_check(httpserver, component, **fields):
    return HealthCheckFactory.build(
        kind=CheckKind.UPSTREAM,
        url=httpserver.url_for("/"),
        upstream_component=component,
        **fields,
    )


def run(check):
    [outcome] = run_batch([check])
    return outcome


def with_status(document, name, status):
    edited = copy.deepcopy(document)
    next(c for c in edited["components"] if c["name"] == name)["status"] = status
    return edited


def test_an_operational_component_found_by_id_is_up(httpserver, components_json):
    serve(httpserver, components_json)
    outcome = run(upstream_check(httpserver, "8l4ygp009s5s"))  # Git Operations
    assert outcome.verdict == Verdict.UP and outcome.error == ""
    assert outcome.status_code == 200


def test_a_component_is_found_by_name_in_any_case(httpserver, components_json):
    serve(httpserver, components_json)
    outcomes = run_batch(
        [
            upstream_check(httpserver, "API Requests"),
            upstream_check(httpserver, "  api requests "),
            upstream_check(httpserver, "packages"),
        ]
    )
    assert [o.verdict for o in outcomes] == [Verdict.UP, Verdict.UP, Verdict.DOWN]


def test_a_partial_outage_upstream_is_down_and_says_so(httpserver, components_json):
    serve(httpserver, components_json)
    outcome = run(upstream_check(httpserver, "st3j38cctv9l"))  # Packages, during the incident
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Upstream says partial_outage for Packages"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("operational", Verdict.UP),
        ("degraded_performance", Verdict.DEGRADED),
        ("under_maintenance", Verdict.DEGRADED),
        ("partial_outage", Verdict.DOWN),
        ("major_outage", Verdict.DOWN),
    ],
)
def test_each_upstream_status_maps_to_a_verdict(httpserver, components_json, status, verdict):
    serve(httpserver, with_status(components_json, "Actions", status))
    outcome = run(upstream_check(httpserver, "Actions"))
    assert outcome.verdict == verdict
    assert outcome.error == ("" if verdict == Verdict.UP else f"Upstream says {status} for Actions")


def test_an_unknown_upstream_status_is_down(httpserver, components_json):
    serve(httpserver, with_status(components_json, "Actions", "on_fire"))
    outcome = run(upstream_check(httpserver, "Actions"))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == "Upstream says 'on_fire' for Actions, a status Beacon does not know"


def test_a_missing_component_is_down_naming_the_page(httpserver, components_json):
    serve(httpserver, components_json)
    check = upstream_check(httpserver, "Gists")
    outcome = run(check)
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error == f"No component named 'Gists' on {check.url.rstrip('/')}"


def test_a_name_several_components_share_is_down_asking_for_an_id(httpserver, components_json):
    doubled = copy.deepcopy(components_json)
    doubled["components"].append({**doubled["components"][1], "id": "zzzzzzzzzzzz"})
    serve(httpserver, doubled)
    outcome = run(upstream_check(httpserver, "API Requests"))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error.endswith("use the id of one (brv1bkgrwx7q, zzzzzzzzzzzz)")
    assert run(upstream_check(httpserver, "zzzzzzzzzzzz")).verdict == Verdict.UP


def test_a_page_that_is_not_statuspage_compatible_is_down(httpserver):
    httpserver.expect_request("/api/v2/components.json").respond_with_data("<html>Status</html>")
    outcome = run(upstream_check(httpserver, "API"))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.error.startswith("Not a Statuspage components.json: http://localhost:")


def test_an_error_from_the_upstream_page_is_down(httpserver):
    httpserver.expect_request("/api/v2/components.json").respond_with_data("", status=503)
    outcome = run(upstream_check(httpserver, "API"))
    assert outcome.verdict == Verdict.DOWN
    assert outcome.status_code == 503
    assert outcome.error.startswith("Status 503 from http://localhost:")


def test_a_private_upstream_page_is_refused_unless_allowed(httpserver, settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = False
    outcome = run(upstream_check(httpserver, "API"))
    assert "127.0.0.1 is a private, loopback or reserved address" in outcome.error
    assert len(httpserver.log) == 0


@pytest.mark.django_db
def test_an_upstream_outage_moves_the_component_to_the_checks_down_status(
    httpserver, components_json
):
    serve(httpserver, components_json)
    check = HealthCheckFactory(
        component=ComponentFactory(name="Package registry"),
        kind=CheckKind.UPSTREAM,
        url=httpserver.url_for("/"),
        upstream_component="Packages",
        failures_before_down=1,
        down_status=ComponentStatus.PARTIAL_OUTAGE,
    )
    check_run_now(check=check)
    check.component.refresh_from_db()
    assert check.component.status == ComponentStatus.PARTIAL_OUTAGE
    assert "Upstream says partial_outage for Packages" in (
        check.component.status_changes.get().note
    )


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"url": "https://www.githubstatus.com", "upstream_component": "Actions"}, {}),
        ({"url": "", "upstream_component": "Actions"}, {"url": "This check kind needs it."}),
        (
            {"url": "https://www.githubstatus.com", "upstream_component": ""},
            {"upstream_component": "This check kind needs it."},
        ),
        (
            {"url": "file:///etc/passwd", "upstream_component": "Actions"},
            {"url": "The status page's http:// or https:// URL."},
        ),
    ],
)
def test_an_upstream_check_needs_a_page_and_a_component(fields, errors):
    check = HealthCheckFactory.build(kind=CheckKind.UPSTREAM, **fields)
    assert KINDS[CheckKind.UPSTREAM].validate(check) == errors
