"""Subscribing from the status page in a real browser (Debian's Chromium)."""

import re

import pytest
from playwright.sync_api import expect

from components.models import ComponentStatus
from incidents.notify.models import Subscriber, SubscriberState
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import open_incident

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def components(page, settings):
    # The confirmation email is queued by a task: run it here, not on a broker.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    platform = ComponentGroupFactory(name="Platform")
    api = ComponentFactory(name="API", group=platform)
    ComponentFactory(name="Background workers", group=platform)
    ComponentFactory(name="Website")
    return {"api": api}


@pytest.fixture
def console_errors(browser_page):
    errors = []
    browser_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_the_form_opens_and_answers_in_place_on_the_status_page(
    live_server, browser_page, components, console_errors, mailoutbox
):
    home = live_server.url + "/"
    browser_page.goto(home)
    browser_page.evaluate("window.stillTheSamePage = true")

    browser_page.get_by_role("link", name="Subscribe to updates").click()

    panel = browser_page.locator("#subscribe-panel")
    email = panel.get_by_label("Email address")
    expect(email).to_be_focused()
    expect(panel.get_by_role("group", name="Platform")).to_be_visible()
    expect(browser_page).to_have_url(home)

    email.fill("reader@example.test")
    panel.get_by_label("API").check()
    panel.get_by_role("button", name="Subscribe").click()

    expect(panel).to_contain_text("Check your inbox: we sent a link to confirm")
    expect(panel).to_contain_text("reader@example.test")
    expect(browser_page).to_have_url(home)
    assert browser_page.evaluate("window.stillTheSamePage") is True
    subscriber = Subscriber.objects.get()
    assert subscriber.state == SubscriberState.UNCONFIRMED
    assert list(subscriber.components.all()) == [components["api"]]
    assert [m.to for m in mailoutbox] == [["reader@example.test"]]
    assert console_errors == []


def test_a_mistyped_address_is_shown_in_place(
    live_server, browser_page, components, console_errors
):
    browser_page.goto(live_server.url + "/")
    browser_page.get_by_role("link", name="Subscribe to updates").click()
    panel = browser_page.locator("#subscribe-panel")
    # The browser checks the format itself; the server still checks what gets through.
    panel.get_by_label("Email address").fill("reader@example")
    panel.get_by_role("button", name="Subscribe").click()

    expect(panel.locator(".field-error")).to_have_text("Enter a valid email address.")
    expect(panel.get_by_label("Email address")).to_have_value("reader@example")
    assert Subscriber.objects.count() == 0
    assert console_errors == []


def test_the_live_refresh_keeps_the_open_form(live_server, browser_page, components):
    browser_page.goto(live_server.url + "/")
    browser_page.get_by_role("link", name="Subscribe to updates").click()
    email = browser_page.locator("#subscribe-panel").get_by_label("Email address")
    email.fill("half-typed@exa")

    open_incident(
        name="API requests failing",
        component_statuses={components["api"]: ComponentStatus.MAJOR_OUTAGE},
    )
    browser_page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")

    expect(browser_page.locator("#active-incidents")).to_be_visible()
    expect(email).to_have_value("half-typed@exa")


def test_without_javascript_the_link_leads_to_a_page_that_subscribes(
    live_server, browser, components
):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + "/")

    page.get_by_role("link", name="Subscribe to updates").click()

    expect(page).to_have_url(live_server.url + "/subscribe/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Subscribe to updates")
    page.get_by_label("Email address").fill("reader@example.test")
    page.get_by_label("Website").check()
    page.get_by_role("button", name="Subscribe").click()

    expect(page.get_by_text("Check your inbox: we sent a link to confirm")).to_be_visible()
    assert Subscriber.objects.get().email == "reader@example.test"
    context.close()


def test_a_reader_confirms_from_the_email_then_changes_and_leaves(
    live_server, browser_page, components, console_errors, mailoutbox, page
):
    page.url = live_server.url  # the links in the emails lead to this server
    page.save()
    browser_page.goto(live_server.url + "/subscribe/")
    browser_page.get_by_label("Email address").fill("reader@example.test")
    browser_page.get_by_role("button", name="Subscribe").click()
    expect(browser_page.get_by_text("Check your inbox")).to_be_visible()

    (confirmation,) = mailoutbox
    link = re.search(r"https?://\S+/subscriptions/confirm/\S+/", confirmation.body).group(0)
    browser_page.goto(link)
    assert Subscriber.objects.get().state == SubscriberState.UNCONFIRMED  # a GET only asks
    browser_page.get_by_role("button", name="Confirm").click()
    expect(browser_page.get_by_text("You're subscribed")).to_be_visible()
    assert Subscriber.objects.get().state == SubscriberState.ACTIVE

    browser_page.get_by_role("link", name="Choose components or unsubscribe").click()
    browser_page.get_by_label("API").check()
    browser_page.get_by_role("button", name=re.compile("Save", re.I)).click()
    expect(browser_page.get_by_role("status")).to_contain_text("Saved.")
    subscriber = Subscriber.objects.get()
    assert (subscriber.all_components, list(subscriber.components.all())) == (
        False,
        [components["api"]],
    )

    browser_page.get_by_role("button", name="Unsubscribe").click()
    if browser_page.get_by_role("button", name="Unsubscribe").count():  # asked to be sure
        browser_page.get_by_role("button", name="Unsubscribe").click()
    expect(browser_page.get_by_text(re.compile("unsubscribed", re.I)).first).to_be_visible()
    assert not Subscriber.objects.exists()
    assert console_errors == []


def test_choosing_a_chat_channel_swaps_the_fields_in_place_and_says_what_is_wrong(
    live_server, browser_page, components, console_errors
):
    home = live_server.url + "/"
    browser_page.goto(home)
    browser_page.evaluate("window.stillTheSamePage = true")
    browser_page.get_by_role("link", name="Subscribe to updates").click()
    panel = browser_page.locator("#subscribe-panel")

    panel.get_by_role("link", name="Slack").click()

    url = panel.get_by_label("Slack incoming webhook URL")
    expect(url).to_be_focused()
    expect(panel.get_by_label("Email address")).to_have_count(0)
    url.fill("https://hooks.slack.com.evil.test/services/T/B/X")
    panel.get_by_role("button", name="Subscribe").click()

    expect(panel).to_contain_text("Enter the service's own webhook URL")
    expect(browser_page).to_have_url(home)
    assert browser_page.evaluate("window.stillTheSamePage") is True
    assert not Subscriber.objects.exists()
    assert console_errors == []
