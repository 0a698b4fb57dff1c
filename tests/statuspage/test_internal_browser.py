"""/internal/ in a real browser (Debian's Chromium), from an allowed network."""

import re

import pytest
from playwright.sync_api import expect

from incidents.notify.models import Audience, Subscriber
from statuspage.models import PageSettings
from statuspage.services import page_settings_update
from tests.browser.steps import screenshot
from tests.statuspage.test_internal_hidden import world  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def from_the_office(world, settings):  # noqa: F811 - the fixture
    # The live server sees the browser at 127.0.0.1.
    page_settings_update(
        page=PageSettings.objects.get(), changes={"internal_networks": "127.0.0.0/8"}
    )
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return world


def test_an_office_visitor_reads_the_internal_page_and_subscribes_to_it(
    from_the_office, live_server, browser_page, csp_violations
):
    internal_incident = from_the_office["internal_incidents"][0]
    browser_page.goto(live_server.url + "/internal/")

    expect(browser_page.locator(".component-name", has_text="Zebracorn")).to_be_visible()
    expect(browser_page.locator(".internal-mark").first).to_be_visible()
    notice = browser_page.locator(".notice-title", has_text="Walrusoutage")
    expect(notice.locator(".internal-mark")).to_have_text("Internal")
    screenshot(browser_page, "internal-page")

    notice.get_by_role("link", name="Walrusoutage").click()
    expect(browser_page).to_have_url(
        re.compile(rf"/internal/incidents/{internal_incident.public_id}/$")
    )
    expect(browser_page.locator("h1.incident-name")).to_contain_text("Walrusoutage")

    browser_page.goto(live_server.url + "/internal/")
    browser_page.get_by_role("link", name="Subscribe to updates").click()
    form = browser_page.locator("#subscribe-panel")
    form.get_by_label("Email address").fill("oncall@example.com")
    form.get_by_label("Zebracorn").check()
    form.get_by_role("button", name="Subscribe").click()
    expect(form).to_contain_text("Check your inbox")

    subscriber = Subscriber.objects.get()
    assert subscriber.audience == Audience.INTERNAL
    assert [c.name for c in subscriber.components.all()] == ["Zebracorn"]
    assert csp_violations == []
