"""The uptime history in Chromium: readable at 360 px without scrolling sideways, day cells
that say what they stand for on focus. With BEACON_SCREENSHOTS=docs/screenshots the run
keeps docs/screenshots/uptime.png (shown in the README)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from components.models import DailyUptime
from statuspage.models import PageSettings
from tests.browser.steps import DESKTOP, PHONE, assert_fits_width, screenshot
from tests.components.factories import ComponentFactory

pytestmark = pytest.mark.django_db(transaction=True)
DAY = 24 * 3600


@pytest.fixture
def history(page, settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    now = timezone.now()
    today = now.astimezone(PageSettings.load().zone).date()
    names = ["API", "Web app", "Payments with a rather long name", "Search", "Email delivery"]
    components = [ComponentFactory(name=name) for name in names]
    rows = []
    for index, component in enumerate(components):
        type(component).objects.filter(pk=component.pk).update(
            created_at=now - timedelta(days=300 - 40 * index), uptime_accounted_until=now
        )
        for n in range(1, 300 - 40 * index):
            day = today - timedelta(days=n)
            seconds = {"operational_seconds": DAY}
            if (n + 7 * index) % 37 == 0:
                seconds = {"operational_seconds": DAY - 5400, "major_outage_seconds": 5400}
            elif (n + 3 * index) % 23 == 0:
                seconds = {"operational_seconds": DAY - 7200, "partial_outage_seconds": 7200}
            elif (n + index) % 61 == 0:
                seconds = {"operational_seconds": DAY - 3600, "under_maintenance_seconds": 3600}
            rows.append(DailyUptime(component=component, day=day, **seconds))
    DailyUptime.objects.bulk_create(rows)
    return components


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_uptime_history_fits_the_window_and_says_each_day(
    browser, live_server, history, viewport
):
    context = browser.new_context(viewport=viewport, locale="en-US")
    tab = context.new_page()
    try:
        tab.goto(f"{live_server.url}/uptime/")
        expect(tab.locator(".month-strip")).to_have_count(len(history))
        assert_fits_width(tab)
        if viewport is DESKTOP:
            screenshot(tab, "uptime")
        tab.get_by_role("link", name="API", exact=True).click()
        expect(tab.locator("table.calendar")).to_have_count(12)
        assert_fits_width(tab)
        cell = tab.locator("td.day.tone-critical").first
        cell.focus()
        tip = cell.evaluate("cell => getComputedStyle(cell, '::after').content")
        assert "Major outage" in tip and "uptime" in tip
        expect(cell.locator(".visually-hidden")).to_contain_text("Worst status: Major outage.")
        headers = tab.locator("table.calendar").first.locator("th[scope=col]")
        expect(headers).to_have_count(7)
        expect(headers.first).to_have_text("Mon")
    finally:
        context.close()
