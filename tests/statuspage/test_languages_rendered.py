"""Each shipped language, as a visitor's browser shows it (Debian's Chromium): the page under
its prefix speaks that language, from the fixed words to the dates, with no English left in
the words we check. With BEACON_SCREENSHOTS=docs/screenshots the run keeps one screenshot per
language (docs/screenshots/status-<language>.png, shown in the README)."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import translation
from django.utils.translation import gettext
from playwright.sync_api import expect

from components.models import ComponentStatus
from components.services import component_set_status
from tests.browser.steps import DESKTOP, screenshot
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db(transaction=True)

# Words the page shows whatever happens on it, each looked up in the language's catalogue.
FIXED_WORDS = ["Components", "Past incidents", "Scheduled maintenance", "Subscribe to updates"]
LANGUAGES = [code for code, _name in django_settings.LANGUAGES]


@pytest.fixture
def busy_page(page, settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    api = ComponentFactory(name="API")
    ComponentFactory(name="Web app")
    component_set_status(component=api, status=ComponentStatus.PARTIAL_OUTAGE)
    open_incident(name="Elevated API errors", affected_components=[api])
    schedule_maintenance(name="Database upgrade", starts_in=timedelta(days=2))


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_page_speaks_each_shipped_language(browser, live_server, busy_page, language):
    with translation.override(language):
        words = [gettext(word) for word in FIXED_WORDS]
        status = str(ComponentStatus.PARTIAL_OUTAGE.label)
        just_now = gettext("just now")
    if language != "en":
        # A catalogue that fell back to English would pass the checks below unnoticed.
        assert not set(words) & set(FIXED_WORDS), words
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    tab = context.new_page()
    try:
        tab.goto(f"{live_server.url}/{language}/")
        assert tab.locator("html").get_attribute("lang") == language
        main = tab.locator("main")
        for word in words:
            expect(tab.locator("body")).to_contain_text(word)
        expect(main).to_contain_text(status)
        # Incident text stays as staff wrote it.
        expect(main).to_contain_text("Elevated API errors")
        if language != "en":
            for english in FIXED_WORDS:
                expect(main).not_to_contain_text(english)
        # Times the browser writes in the visitor's zone speak the page's language, not the
        # browser's (this one is set to en-US).
        updated = tab.locator("[data-last-updated]")
        expect(updated.locator(".ago")).to_have_text(f" ({just_now})")
        month = tab.evaluate(
            """lang => new Intl.DateTimeFormat(lang, {month: "short"}).format(
                new Date(document.querySelector("[data-last-updated] time").dateTime))""",
            language,
        )
        expect(updated.locator("time")).to_contain_text(month)
        screenshot(tab, f"status-{language}")
    finally:
        context.close()
