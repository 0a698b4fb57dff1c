"""A Responder keeps the console open: a status a check sets elsewhere appears without a
reload, and the page loads with no Content-Security-Policy violation."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from components.models import StatusChangeCause
from components.services import component_set_status
from incidents.models import Incident, IncidentDraft
from statuspage.staff_auth import console
from tests.components.factories import ComponentFactory
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
