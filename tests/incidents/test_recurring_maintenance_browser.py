"""In a browser: the series admin's preview follows the rule as staff build it (htmx), with
no Content-Security-Policy violation."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect


@pytest.mark.django_db(transaction=True)
def test_the_preview_follows_the_rule_builder(live_server, staff_browser_page, csp_violations):
    browser_page = staff_browser_page
    browser_page.goto(live_server.url + reverse("admin:incidents_maintenanceseries_add"))
    preview = browser_page.locator("#series-preview")
    expect(preview).to_contain_text("Save the series to see its next occurrences here.")

    browser_page.fill("#id_first_date", "2030-01-07")
    browser_page.fill("#id_first_time", "02:00")
    browser_page.select_option("#id_time_zone", "Europe/Berlin")
    browser_page.fill("#id_duration_minutes", "60")
    browser_page.check("input[name='weekdays'][value='MO']")
    expect(preview.locator("time")).to_have_count(5)
    expect(preview.locator("time").first).to_have_text("Mon, 7 Jan 2030 02:00 CET")

    browser_page.check("input[name='frequency'][value='custom']")
    browser_page.fill("#id_custom_rule", "FREQ=HOURLY")
    expect(preview).to_contain_text("A maintenance can repeat at most daily.")
    assert csp_violations == []
