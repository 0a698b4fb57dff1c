"""In a browser: the postmortem editor's Preview asks htmx for the public HTML of the unsaved
form, in place, with no Content-Security-Policy violation."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.incidents.factories import resolved_incident


@pytest.mark.django_db(transaction=True)
def test_preview_shows_the_unsaved_postmortem_in_place(
    live_server, staff_browser_page, csp_violations
):
    incident = resolved_incident()
    browser_page = staff_browser_page
    url = reverse("admin:incidents_incident_postmortem", args=[incident.pk])
    browser_page.goto(live_server.url + url)

    browser_page.fill("#id_summary", "A **deploy** broke the API.")
    browser_page.fill("#id_users_affected_percent", "12.5")
    browser_page.click("button[name=_preview]")

    preview = browser_page.locator("#postmortem-preview")
    expect(preview.locator("strong")).to_have_text("deploy")
    expect(preview.locator(".postmortem-timeline li").first).to_contain_text("Investigating")
    assert browser_page.url == live_server.url + url  # in place: no page load

    browser_page.fill("#id_users_affected_percent", "101")
    browser_page.click("button[name=_preview]")
    expect(preview).to_contain_text("Correct these first")
    assert csp_violations == []
