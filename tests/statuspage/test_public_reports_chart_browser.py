"""In a browser: the public page's reports chart is an image that loads (never a broken
one), with no Content-Security-Policy violation."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from components.reports.models import ReportCount
from statuspage.models import PageSettings
from statuspage.services import page_settings_update
from tests.components.factories import ComponentFactory


@pytest.mark.django_db(transaction=True)
def test_the_chart_loads_on_the_page(live_server, browser_page, csp_violations):
    page_settings_update(page=PageSettings.load(), changes={"show_reports_chart": True})
    api = ComponentFactory(name="API")
    minute = timezone.now().replace(second=0, microsecond=0)
    ReportCount.objects.create(component=api, symptom="slow", minute=minute, count=4)
    browser_page.goto(live_server.url + "/")
    image = browser_page.locator("img.reports-chart-image")
    expect(image).to_be_visible()
    browser_page.wait_for_function("document.querySelector('img.reports-chart-image').complete")
    width = image.evaluate("image => image.naturalWidth")
    assert width == 640  # loaded: a broken image has no natural width
    assert csp_violations == []
