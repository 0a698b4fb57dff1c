"""A Responder keeps the console open: a status a check sets elsewhere appears without a
reload, and the page loads with no Content-Security-Policy violation."""

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from components.models import AutoIncident, StatusChangeCause
from components.services import component_set_status
from components.status import component_status_state
from components.tasks import run_checks
from incidents.models import Incident, IncidentDraft
from statuspage.staff_auth import console
from tests.browser.steps import screenshot
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.incidents.factories import StaffFactory, sign_in_staff


@pytest.mark.django_db(transaction=True)
def test_the_open_console_follows_a_status_a_check_sets(
    live_server, browser_page, client, monkeypatch
):
    monkeypatch.setattr(console, "REFRESH_SECONDS", 1)
    api = ComponentFactory(name="API")
    sign_in_staff(client, StaffFactory(is_superuser=True))
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    violations: list[str] = []
    browser_page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    browser_page.goto(live_server.url + reverse("admin:index"))
    row = browser_page.locator("#console-components").get_by_role("row", name="API")
    expect(row).to_contain_text("Operational")
    expect(row).to_contain_text("Never changed")
    browser_page.evaluate("window.stillTheSamePage = true")

    component_set_status(component=api, status="major_outage", cause=StatusChangeCause.HEALTH_CHECK)

    expect(row).to_contain_text("Major outage", timeout=10_000)
    expect(row).to_contain_text("Health check")
    assert browser_page.evaluate("window.stillTheSamePage") is True
    assert violations == []


@pytest.mark.django_db(transaction=True)
def test_a_responder_publishes_a_draft_in_one_click_and_the_public_page_shows_it(
    live_server, browser_page, client
):
    api = ComponentFactory(name="API")
    IncidentDraft.objects.create(
        component=api,
        name="API: major outage",
        body="Our checks see errors from the API.",
        component_status="major_outage",
        reason="Status 500, expected 200–399",
    )
    sign_in_staff(client, StaffFactory(is_superuser=True))
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    browser_page.goto(live_server.url + reverse("admin:index"))
    draft = browser_page.locator("#console-drafts").get_by_role("row", name="API: major outage")
    draft.get_by_role("button", name="Publish").click()

    expect(browser_page.locator(".messagelist")).to_contain_text("Published")
    incident = Incident.objects.get()
    public = browser_page.context.new_page()
    public.goto(live_server.url + "/")
    expect(public.locator("body")).to_contain_text("API: major outage")
    api.refresh_from_db()
    assert api.status == "major_outage" and incident.status == "investigating"


@pytest.mark.django_db(transaction=True)
def test_a_failing_check_the_page_does_not_show_is_published_in_one_click(
    live_server, staff_browser_page, csp_violations, browser, httpserver, settings, worker
):
    """How a failing check meets an operational page for real: the check moved API and
    prepared the draft, then a person set API back to operational (staff's word is applied
    as given, and a check reports again only when its verdict changes). The check still
    fails, so the console shows the disagreement and the draft; one click publishes it and
    the visitor's page, served from its snapshot (which the worker rebuilds, files for nginx
    included), shows the incident and API's outage."""
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True
    httpserver.expect_request("/health").respond_with_data("oops", status=500)
    api = ComponentFactory(name="API", auto_incident=AutoIncident.DRAFT)
    check = HealthCheckFactory(
        component=api, name="API health", url=httpserver.url_for("/health"), failures_before_down=1
    )
    run_checks("default", [(check.pk, check.next_run_at.isoformat())])  # as the worker runs it
    api.refresh_from_db()
    assert api.status == "major_outage"
    draft = IncidentDraft.objects.get(component=api, published_at=None)
    component_status_state(
        component=api, source=StatusChangeCause.STAFF, status="operational", actor=StaffFactory()
    )
    run_checks("default", [(check.pk, (timezone.now() + timedelta(seconds=1)).isoformat())])
    api.refresh_from_db()
    assert api.status == "operational"  # still down, but the check has nothing new to say
    visitor = browser.new_context()
    public = visitor.new_page()
    public.goto(live_server.url + "/")
    api_row = public.locator(
        ".component-head", has=public.locator(".component-name", has_text="API")
    )
    expect(api_row.locator(".status-text")).to_have_text("Operational")
    expect(public.locator("body")).not_to_contain_text("API: major outage")

    staff_browser_page.goto(live_server.url + reverse("admin:index"))
    disagreement = staff_browser_page.locator("#console-disagreements").get_by_role(
        "row", name="API"
    )
    expect(disagreement).to_contain_text("Health check “API health”: down")
    row = staff_browser_page.locator("#console-drafts").get_by_role("row", name=draft.name)
    expect(row).to_contain_text("Status 500")
    screenshot(staff_browser_page, "staff-console")
    row.get_by_role("button", name="Publish").click()

    expect(staff_browser_page.locator(".messagelist")).to_contain_text("Published")
    expect(staff_browser_page.locator("#console-drafts")).to_have_count(0)
    expect(staff_browser_page.locator("#console-disagreements")).to_have_count(0)
    incident = Incident.objects.get()
    assert incident.name == "API: major outage" and incident.status == "investigating"
    public.goto(live_server.url + "/")
    expect(api_row.locator(".status-text")).to_have_text("Major outage")
    active = public.locator("section[aria-labelledby=active-incidents]")
    expect(active).to_contain_text("API: major outage")
    index = settings.BEACON_SNAPSHOT_DIR / "files" / "index.html"
    deadline = time.monotonic() + 10
    while not (index.exists() and "API: major outage" in index.read_text()):
        assert time.monotonic() < deadline, "the worker did not rebuild the page's file"
        time.sleep(0.1)
    visitor.close()
    assert csp_violations == []
