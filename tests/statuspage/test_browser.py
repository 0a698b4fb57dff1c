"""The public page in a real browser (Debian's Chromium): live refresh, layout, keyboard."""

import re

import pytest
from playwright.sync_api import expect

from components.models import ComponentStatus
from incidents.models import Incident, IncidentStatus
from incidents.services import incident_post_update
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def components(page):
    platform = ComponentGroupFactory(name="Platform")
    api = ComponentFactory(name="API", group=platform, description="The public REST API.")
    ComponentFactory(name="Background workers", group=platform)
    ComponentFactory(name="Website")
    return {"api": api}


def show_latest(browser_page):
    """What a returning visitor's tab does: the page becomes visible again."""
    browser_page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")


def test_a_new_incident_appears_without_a_reload(live_server, browser_page, components):
    browser_page.goto(live_server.url + "/")
    expect(browser_page.locator("#overall-status")).to_have_text(re.compile("All Systems"))
    browser_page.evaluate("window.stillTheSamePage = true")

    open_incident(
        name="API requests failing",
        body="We are investigating **elevated errors**.",
        component_statuses={components["api"]: ComponentStatus.MAJOR_OUTAGE},
    )
    show_latest(browser_page)

    active = browser_page.locator("section[aria-labelledby=active-incidents]")
    expect(active).to_contain_text("API requests failing")
    expect(active).to_contain_text("elevated errors")
    expect(browser_page.locator("#overall-status")).to_have_text(re.compile("Partial System"))
    assert browser_page.evaluate("window.stillTheSamePage") is True

    # The swapped-in content keeps refreshing, and times stay localised after swaps.
    incident = Incident.objects.get(name="API requests failing")
    incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Found it.")
    show_latest(browser_page)

    expect(active).to_contain_text("Found it.")
    expect(browser_page.locator("[data-last-updated] .ago")).to_have_text(" (just now)")
    assert browser_page.evaluate("window.stillTheSamePage") is True


def test_the_page_polls_every_30_seconds(live_server, browser_page, components):
    browser_page.clock.install()
    browser_page.goto(live_server.url + "/")
    browser_page.evaluate("window.stillTheSamePage = true")

    schedule_maintenance(name="Router replacement")
    browser_page.clock.run_for(29_000)
    expect(browser_page.locator("#scheduled-maintenance")).to_have_count(0)
    browser_page.clock.run_for(2_000)

    expect(browser_page.locator("#scheduled-maintenance")).to_be_visible()
    expect(browser_page.get_by_text("Router replacement")).to_be_visible()
    assert browser_page.evaluate("window.stillTheSamePage") is True


def test_a_hidden_tab_does_not_poll(live_server, browser_page, components):
    browser_page.clock.install()
    browser_page.goto(live_server.url + "/")
    requests = []
    browser_page.on("request", lambda request: requests.append(request.url))
    browser_page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {get: () => 'hidden'})"
    )

    browser_page.clock.run_for(95_000)

    assert requests == []


def test_no_horizontal_scroll_at_360_px(live_server, browser, components):
    open_incident(
        name="A rather long incident name that goes on and on about elevated error rates",
        body="https://example.com/a/very/long/link/without/any/spaces/" + "x" * 80,
        component_statuses={components["api"]: ComponentStatus.PARTIAL_OUTAGE},
    )
    schedule_maintenance(name="Database upgrade")
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()

    for path in ["/", "/history/"]:
        page.goto(live_server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path

    page.goto(live_server.url + "/")
    # The last 30 days fill the bar: the runs shown cover 30 days, edge to edge.
    shown = page.locator("#main .bar").first.evaluate(
        """bar => {
            const cells = [...bar.children].filter(li => li.offsetParent !== null);
            const span = li => Number(getComputedStyle(li).getPropertyValue("--n") || 1);
            const days = cells.reduce((n, li) => n + span(li), 0);
            const first = cells[0].getBoundingClientRect();
            const last = cells.at(-1).getBoundingClientRect();
            const box = bar.getBoundingClientRect();
            return {days, left: first.left - box.left, right: box.right - last.right};
        }"""
    )
    assert shown["days"] == 30
    assert abs(shown["left"]) < 1 and abs(shown["right"]) < 1
    expect(page.get_by_text("30 days ago").first).to_be_visible()
    context.close()


def test_dark_mode_follows_the_system(live_server, browser_page, components):
    browser_page.goto(live_server.url + "/")
    background = "getComputedStyle(document.body).backgroundColor"
    light = browser_page.evaluate(background)

    browser_page.emulate_media(color_scheme="dark")
    dark = browser_page.evaluate(background)

    assert light == "rgb(255, 255, 255)"
    assert dark != light
    assert dark == "rgb(13, 17, 23)"


def test_keyboard_focus_on_an_uptime_day_shows_its_tooltip(live_server, browser_page, page):
    ComponentFactory(name="API")
    browser_page.goto(live_server.url + "/")

    for _ in range(30):
        browser_page.keyboard.press("Tab")
        if browser_page.evaluate("document.activeElement.matches('.bar > li')"):
            break
    else:
        pytest.fail("Tab never reached an uptime bar")

    tooltip = "getComputedStyle(document.activeElement, '::after')"
    today = browser_page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert browser_page.evaluate(f"{tooltip}.display") == "block"
    assert today in browser_page.evaluate(f"{tooltip}.content")
    assert "100% uptime" in today

    browser_page.keyboard.press("ArrowLeft")

    yesterday = browser_page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert yesterday != today and "No data" in yesterday
    assert browser_page.evaluate(f"{tooltip}.display") == "block"
    assert yesterday in browser_page.evaluate(f"{tooltip}.content")


def test_help_tooltip_shows_on_focus(live_server, browser_page, components):
    browser_page.goto(live_server.url + "/")
    browser_page.locator("details.group summary").first.click()

    browser_page.get_by_role("button", name="About API").focus()

    expect(browser_page.get_by_role("tooltip")).to_have_text("The public REST API.")


def test_every_request_stays_on_our_origin(live_server, browser_page, components):
    requested = []
    browser_page.on("request", lambda request: requested.append(request.url))
    incident = open_incident(name="Something", body="[Docs](https://docs.example.com)")

    browser_page.goto(live_server.url + "/")
    show_latest(browser_page)
    browser_page.wait_for_load_state("networkidle")
    browser_page.goto(f"{live_server.url}/incidents/{incident.public_id}/")
    browser_page.goto(live_server.url + "/history/")
    browser_page.wait_for_load_state("networkidle")

    assert any(url.endswith("/static/js/htmx.min.js") for url in requested)
    assert any(url.endswith("/static/css/beacon.css") for url in requested)
    offsite = [url for url in requested if not url.startswith(live_server.url)]
    assert offsite == []


def test_times_are_shown_in_the_visitors_time_zone(live_server, browser, components):
    open_incident(name="Slow pages")
    context = browser.new_context(timezone_id="Asia/Tokyo", locale="en-US")
    page = context.new_page()

    page.goto(live_server.url + "/")

    first_time = page.locator("section[aria-labelledby=active-incidents] time").first
    expect(first_time).to_have_text(re.compile(r"GMT\+9"))
    context.close()


def test_without_javascript_the_page_is_complete(live_server, browser, components):
    incident = open_incident(
        name="Login failures",
        body="Some users cannot sign in.",
        component_statuses={components["api"]: ComponentStatus.PARTIAL_OUTAGE},
    )
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()

    page.goto(live_server.url + "/")

    expect(page.locator("#overall-status")).to_have_text(re.compile("Minor Service Outage"))
    active = page.locator("section[aria-labelledby=active-incidents]")
    expect(active).to_contain_text("Login failures")
    expect(active).to_contain_text("Some users cannot sign in.")
    for name in ["API", "Background workers", "Website"]:  # the degraded group is open
        expect(page.locator(".component-name", has_text=name)).to_be_visible()
    expect(page.locator("[data-last-updated] time")).to_have_text(re.compile("UTC"))

    page.get_by_role("link", name="Login failures").first.click()
    expect(page).to_have_url(f"{live_server.url}/incidents/{incident.public_id}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Login failures")
    context.close()
