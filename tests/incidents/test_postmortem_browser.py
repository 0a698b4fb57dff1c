"""In a browser: the postmortem editor's Preview asks htmx for the public HTML of the unsaved
form, in place, with no Content-Security-Policy violation."""

import pytest
from django.urls import reverse
from django.utils import timezone
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


@pytest.mark.django_db(transaction=True)
def test_rows_added_in_the_browser_are_saved_with_the_others(
    live_server, staff_browser_page, csp_violations
):
    incident = resolved_incident()
    browser_page = staff_browser_page
    url = reverse("admin:incidents_incident_postmortem", args=[incident.pk])
    browser_page.goto(live_server.url + url)
    rows_at_first = browser_page.locator("#timeline-rows tr").count()

    add_action = browser_page.get_by_role("button", name="Add an action")
    add_action.click()
    add_action.click()
    rows = browser_page.locator("#actions-rows tr")
    expect(rows).to_have_count(4)  # the two empty rows, and two more
    for number in range(4):
        rows.nth(number).locator("input[name$=-description]").fill(f"Action {number}")
        rows.nth(number).locator("input[name$=-owner]").fill("SRE")
    browser_page.get_by_role("button", name="Add an entry").click()
    entry = browser_page.locator("#timeline-rows tr").nth(rows_at_first)
    expect(entry.locator(".datetimeshortcuts")).to_have_count(2)  # Today and Now, as the others
    at = incident.resolved_at.astimezone(timezone.get_current_timezone())
    entry.locator("input[name$=-at_0]").fill(at.strftime("%Y-%m-%d"))
    entry.locator("input[name$=-at_1]").fill(at.strftime("%H:%M:%S"))
    entry.locator("input[name$=-text]").fill("Customers told by email")
    browser_page.click("input[name=_save]")

    expect(browser_page.locator(".messagelist")).to_be_visible()
    incident.refresh_from_db()
    assert [item["description"] for item in incident.postmortem["actions"]] == [
        f"Action {number}" for number in range(4)
    ]
    assert incident.postmortem["timeline"][-1]["text"] == "Customers told by email"
    assert csp_violations == []
