"""The embeddable notice (/embed.js) on a customer's site, another origin, in Chromium."""

import json
import socket
from datetime import timedelta

import pytest
from django.conf import settings
from playwright.sync_api import expect

from components.models import ComponentStatus
from incidents.services import incident_post_update, maintenances_advance_due
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db(transaction=True)

SUMMARY = "/api/v2/summary.json"
# What Chromium itself logs for a failed request; the script cannot prevent these lines.
NETWORK_LOG = "Failed to load resource"


@pytest.fixture
def api(page):
    return ComponentFactory(name="API")


@pytest.fixture
def console_errors(browser_page):
    errors = []
    browser_page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    browser_page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    return errors


@pytest.fixture
def customer_site(httpserver):
    """Serves the customer's own page, on an origin of its own, with the script tag in it."""

    def serve(script_src: str, *, head: str = "", attributes: str = "") -> str:
        html = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel=icon href="data:,"><title>Example Corp</title>{head}</head>'
            "<body><h1>Example Corp</h1><p>Our product.</p>"
            f'<script src="{script_src}" async {attributes}></script></body></html>'
        )
        httpserver.expect_request("/").respond_with_data(html, content_type="text/html")
        return httpserver.url_for("/")

    return serve


def load(browser_page, url: str) -> None:
    """Open the customer's page and wait until the script has read the summary."""
    with browser_page.expect_response(lambda response: response.url.endswith(SUMMARY)):
        browser_page.goto(url)
    browser_page.wait_for_timeout(200)


def reload(browser_page) -> None:
    with browser_page.expect_response(lambda response: response.url.endswith(SUMMARY)):
        browser_page.reload()
    browser_page.wait_for_timeout(200)


def embeds(browser_page):
    return browser_page.locator("[data-beacon-embed]")


def test_an_open_incident_shows_a_notice_on_the_customer_site(
    live_server, browser_page, customer_site, api, console_errors
):
    incident = open_incident(
        name="API requests failing", component_statuses={api: ComponentStatus.MAJOR_OUTAGE}
    )
    site = customer_site(f"{live_server.url}/embed.js")
    assert site.split("/")[2] != live_server.url.split("/")[2]

    browser_page.goto(site)

    notice = browser_page.get_by_role("status")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("API requests failing")
    expect(notice).to_contain_text("Investigating")
    expect(notice).to_have_attribute("aria-live", "polite")
    link = notice.get_by_role("link", name="View status page")
    expect(link).to_have_attribute(
        "href", f"https://status.acme.test/incidents/{incident.public_id}/"
    )
    expect(link).to_have_attribute("rel", "noopener")
    assert console_errors == []


def test_the_notice_shows_the_latest_update_of_the_worst_incident(
    live_server, browser_page, customer_site, api
):
    open_incident(name="Slow dashboards", component_statuses={api: "degraded_performance"})
    worst = open_incident(
        name="Checkout down",
        component_statuses={ComponentFactory(name="Checkout"): ComponentStatus.MAJOR_OUTAGE},
        impact_override="critical",
    )
    incident_post_update(incident=worst, status="identified", body="A bad deploy.")

    browser_page.goto(customer_site(f"{live_server.url}/embed.js"))

    notice = browser_page.get_by_role("status")
    expect(notice).to_contain_text("Checkout down")
    expect(notice).to_contain_text("Identified")
    expect(notice).to_contain_text("and 1 more")


def test_a_dismissed_notice_stays_dismissed_until_a_new_incident(
    live_server, browser_page, customer_site, api
):
    open_incident(name="API requests failing", component_statuses={api: "major_outage"})
    site = customer_site(f"{live_server.url}/embed.js")
    browser_page.goto(site)
    notice = browser_page.get_by_role("status")
    expect(notice).to_be_visible()

    notice.get_by_role("button", name="Dismiss").click()

    expect(notice).to_be_hidden()
    reload(browser_page)
    expect(browser_page.get_by_role("status")).to_have_count(0)
    expect(browser_page.get_by_text("API requests failing")).to_have_count(0)

    open_incident(name="Search is down", component_statuses={api: "major_outage"})
    reload(browser_page)

    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Search is down")
    expect(notice).not_to_contain_text("API requests failing")
    expect(notice).not_to_contain_text("more")


def test_nothing_shows_while_all_is_well(
    live_server, browser_page, customer_site, api, console_errors
):
    schedule_maintenance(name="Database upgrade", starts_in=timedelta(hours=2))

    load(browser_page, customer_site(f"{live_server.url}/embed.js"))

    expect(embeds(browser_page)).to_have_count(0)
    expect(browser_page.get_by_role("status")).to_have_count(0)
    assert console_errors == []


def test_a_maintenance_in_progress_shows_a_notice(live_server, browser_page, customer_site, api):
    schedule_maintenance(
        name="Database upgrade", starts_in=timedelta(minutes=-5), affected_components=[api]
    )
    assert maintenances_advance_due() == 1

    browser_page.goto(customer_site(f"{live_server.url}/embed.js"))

    notice = browser_page.get_by_role("status")
    expect(notice).to_contain_text("Database upgrade")
    expect(notice).to_contain_text("Maintenance in progress")
    expect(notice.get_by_role("link", name="View status page")).to_be_visible()


def test_a_new_incident_appears_within_a_minute(live_server, browser_page, customer_site, api):
    browser_page.clock.install()
    load(browser_page, customer_site(f"{live_server.url}/embed.js"))
    expect(embeds(browser_page)).to_have_count(0)

    open_incident(name="API requests failing", component_statuses={api: "major_outage"})
    browser_page.clock.run_for(61_000)

    expect(browser_page.get_by_role("status")).to_contain_text("API requests failing")


def test_a_hidden_tab_does_not_poll(live_server, browser_page, customer_site, api):
    browser_page.clock.install()
    load(browser_page, customer_site(f"{live_server.url}/embed.js"))
    requests = []
    browser_page.on("request", lambda request: requests.append(request.url))
    browser_page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {get: () => 'hidden'})"
    )

    browser_page.clock.run_for(185_000)

    assert requests == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_status_server_shows_nothing_and_logs_no_errors(
    browser_page, customer_site, console_errors
):
    browser_page.goto(customer_site(f"http://127.0.0.1:{closed_port()}/embed.js"))
    browser_page.wait_for_timeout(500)

    expect(embeds(browser_page)).to_have_count(0)
    assert [e for e in console_errors if not e.startswith(NETWORK_LOG)] == []


@pytest.mark.parametrize(
    "api_response",
    [
        {"status": 500, "response_data": "Internal Server Error"},
        {"status": 200, "response_data": "<html>not json</html>"},
        {"status": 200, "response_data": json.dumps({"incidents": "nope", "page": None})},
        {"status": 200, "response_data": json.dumps([{"incidents": [{"id": 1}]}])},
    ],
)
def test_a_failing_status_api_shows_nothing_and_logs_no_errors(
    browser_page, httpserver, customer_site, console_errors, api_response
):
    """The script as served, on a server whose API is broken."""
    script = (settings.BASE_DIR / "static" / "js" / "embed.js").read_text()
    httpserver.expect_request("/embed.js").respond_with_data(script, content_type="text/javascript")
    httpserver.expect_request(SUMMARY).respond_with_data(
        content_type="application/json", **api_response
    )

    load(browser_page, customer_site(httpserver.url_for("/embed.js")))

    expect(embeds(browser_page)).to_have_count(0)
    assert [e for e in console_errors if not e.startswith(NETWORK_LOG)] == []


def test_hostile_host_css_leaves_the_notice_legible_on_a_phone(
    live_server, browser, customer_site, api
):
    open_incident(
        name="A rather long incident name about elevated error rates in every region at once",
        component_statuses={api: "major_outage"},
    )
    hostile = (
        "<style>* { color: red !important; font-size: 40px !important; "
        "background: yellow !important; line-height: 3 !important }"
        "div, button, a, span { display: none !important; position: static !important; "
        "padding: 80px !important; width: 2000px !important }</style>"
    )
    context = browser.new_context(viewport={"width": 360, "height": 740})
    phone = context.new_page()

    phone.goto(customer_site(f"{live_server.url}/embed.js", head=hostile))

    notice = phone.get_by_role("status")
    expect(notice).to_be_visible()
    box = notice.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360
    assert box["y"] >= 0 and box["y"] + box["height"] <= 740
    title = notice.get_by_text("A rather long incident name")
    assert title.evaluate("e => getComputedStyle(e).fontSize") == "14px"
    assert title.evaluate("e => getComputedStyle(e).color") != "rgb(255, 0, 0)"
    expect(notice.get_by_role("button", name="Dismiss")).to_be_visible()
    expect(notice.get_by_role("link", name="View status page")).to_be_in_viewport()
    context.close()


def test_the_notice_does_not_restyle_the_host_page(live_server, browser_page, customer_site, api):
    open_incident(name="API requests failing", component_statuses={api: "major_outage"})
    browser_page.goto(customer_site(f"{live_server.url}/embed.js"))
    heading = browser_page.get_by_role("heading", name="Example Corp")
    before = heading.evaluate("e => [getComputedStyle(e).fontFamily, getComputedStyle(e).color]")

    expect(browser_page.get_by_role("status")).to_be_visible()

    after = heading.evaluate("e => [getComputedStyle(e).fontFamily, getComputedStyle(e).color]")
    assert after == before
    assert browser_page.evaluate("document.styleSheets.length") == 0


def test_the_notice_can_sit_bottom_left(live_server, browser_page, customer_site, api):
    open_incident(name="API requests failing", component_statuses={api: "major_outage"})

    browser_page.goto(
        customer_site(f"{live_server.url}/embed.js", attributes='data-position="bottom-left"')
    )

    notice = browser_page.get_by_role("status")
    expect(notice).to_be_visible()
    box = notice.bounding_box()
    assert box["x"] < 100
    assert box["y"] + box["height"] > 900 - 100


# The customer's page may have a strict Content-Security-Policy of its own; Beacon's own pages
# may not be framed by it (frame-ancestors 'none'): the notice is a script, not an iframe.


def test_the_notice_shows_styled_on_a_site_with_a_strict_policy_of_its_own(
    live_server, browser_page, customer_site, api, console_errors
):
    open_incident(name="API requests failing", component_statuses={api: "major_outage"})
    policy = (
        f"default-src 'none'; script-src {live_server.url}; connect-src {live_server.url}; "
        "style-src 'self'; img-src 'self'"
    )
    browser_page.goto(
        customer_site(
            f"{live_server.url}/embed.js",
            head=f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
        )
    )
    notice = browser_page.get_by_role("status")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("API requests failing")
    assert notice.evaluate("e => getComputedStyle(e).position") == "fixed"
    assert console_errors == []


def test_beacon_pages_cannot_be_framed_by_another_site(
    live_server, browser_page, customer_site, api, console_errors
):
    paths = ["/", "/subscribe/", "/admin/login/", "/api/v2/summary.json"]
    frames = "".join(f'<iframe src="{live_server.url}{p}" title="{p}"></iframe>' for p in paths)
    browser_page.goto(customer_site(f"{live_server.url}/embed.js", head=frames))
    browser_page.wait_for_load_state("load")
    browser_page.wait_for_timeout(300)

    framed = browser_page.main_frame.child_frames
    assert len(framed) == len(paths)
    for frame in framed:
        assert not frame.url.startswith(live_server.url), frame.url  # Chromium's error page
    refused = [error for error in console_errors if "frame-ancestors" in error]
    assert len(refused) == len(paths), console_errors
