"""The "Having problems?" control in a real browser (Debian's Chromium), with and without
JavaScript, at a phone's width."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from components.reports.models import ReportCount
from components.reports.services import report_counts_persist
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def components(page):
    return ComponentFactory(name="API"), ComponentFactory(name="Chat")


def test_a_visitor_reports_with_the_keyboard_and_sees_the_thanks(live_server, browser, components):
    api, chat = components
    open_incident(name="Chat messages delayed", affected_components=[chat])
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.goto(live_server.url + "/")
    control = page.locator("#report-form")
    expect(control.get_by_role("heading", name="Having problems?")).to_be_visible()
    chat_box = control.get_by_role("checkbox", name="Chat")
    chat_box.focus()
    page.keyboard.press("Space")
    expect(chat_box).to_be_checked()
    control.get_by_role("radio", name="Slow").check()
    # The form fits a phone's width: nothing sticks out sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    control.get_by_role("button", name="Report").click()
    thanks = page.locator("#report-form [role=status]")
    expect(thanks).to_contain_text("Thank you, your report is counted.")
    expect(thanks.get_by_role("link", name="Chat messages delayed")).to_be_visible()
    assert page.url == live_server.url + "/"  # htmx swapped the control in place
    context.close()
    report_counts_persist(now=timezone.now())
    assert [(r.component_id, r.symptom, r.count) for r in ReportCount.objects.all()] == [
        (chat.pk, "slow", 1)
    ]


def test_the_control_works_without_javascript(live_server, browser, components):
    api, _ = components
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + "/")
    page.locator("#report-form").get_by_role("checkbox", name="API").check()
    page.locator("#report-form").get_by_role("button", name="Report").click()
    expect(page.locator("[role=status]")).to_contain_text("Thank you, your report is counted.")
    assert page.url == live_server.url + "/reports/"
    context.close()
