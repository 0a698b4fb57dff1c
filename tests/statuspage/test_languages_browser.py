"""The language switcher in a real browser (Debian's Chromium): plain links that work
without JavaScript, and a browser whose preferred language is German sent to /de/."""

import pytest
from playwright.sync_api import expect

from tests.components.factories import ComponentFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def components(page, settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    ComponentFactory(name="API")


def test_the_switcher_works_without_javascript(browser, live_server, components):
    context = browser.new_context(java_script_enabled=False, locale="en-US")
    tab = context.new_page()
    try:
        tab.goto(live_server.url + "/history/")
        # By class, not by its label: the label is translated.
        switcher = tab.locator("nav.language-switcher")
        expect(switcher.get_by_role("link", name="English")).to_have_attribute(
            "aria-current", "true"
        )
        switcher.get_by_role("link", name="Deutsch").click()
        tab.wait_for_url(live_server.url + "/de/history/")
        assert tab.locator("html").get_attribute("lang") == "de"
        expect(switcher.get_by_role("link", name="Deutsch")).to_have_attribute(
            "aria-current", "true"
        )
        # Its links stay in German.
        tab.locator(".header-nav a").first.click()
        tab.wait_for_url(live_server.url + "/de/")
    finally:
        context.close()


def test_a_german_browser_lands_on_the_german_page(browser, live_server, components):
    context = browser.new_context(locale="de-DE")
    tab = context.new_page()
    try:
        tab.goto(live_server.url + "/")
        tab.wait_for_url(live_server.url + "/de/")
        assert tab.locator("html").get_attribute("lang") == "de"
    finally:
        context.close()
