"""axe-core (from the npm registry, tests/browser/package.json) finds no serious or critical
violation on any public page, at desktop and phone widths, in light and dark."""

import pytest
from playwright.sync_api import expect

from incidents.notify.links import confirm_url
from tests.browser.steps import (
    PHONE,
    VARIANTS,
    accessibility_problems,
    assert_fits_width,
    new_context,
)
from tests.incidents.factories import SubscriberFactory

pytestmark = pytest.mark.django_db(transaction=True)


def public_pages(page, live_server, incident):
    """Every public page a visitor can reach, in turn: yields a name once each is shown."""
    page.goto(live_server.url + "/")
    yield "status page"
    page.get_by_role("link", name="Subscribe to updates").click()
    expect(page.locator("#subscribe-panel").get_by_label("Email address")).to_be_visible()
    yield "status page with the subscribe form open"
    page.goto(f"{live_server.url}/incidents/{incident.public_id}/")
    yield "incident page"
    page.goto(live_server.url + "/history/")
    yield "history"
    page.goto(live_server.url + "/subscribe/")
    yield "subscribe page"
    page.get_by_label("Email address").fill("not-an-address@example")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator(".field-error")).to_be_visible()
    yield "subscribe page with an error"
    page.get_by_role("link", name="Slack").click()
    page.get_by_label("Slack incoming webhook URL").fill("https://evil.test/services/T/B/X")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator(".field-error")).to_be_visible()
    yield "subscribe page, a Slack channel with an error"

    page.goto(confirm_url(SubscriberFactory(unconfirmed=True)))
    yield "confirmation page"
    page.get_by_role("button", name="Confirm subscription").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're subscribed")
    yield "confirmed page"
    page.get_by_role("link", name="Choose components or unsubscribe").click()
    yield "manage page"
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    yield "manage page, saved"
    page.goto(page.url.replace("/manage/", "/unsubscribe/"))
    yield "unsubscribe page"
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    yield "unsubscribed page"

    page.goto(live_server.url + "/subscriptions/confirm/expired-or-made-up/")
    yield "expired confirmation link"
    page.goto(live_server.url + "/subscriptions/manage/made-up/")
    yield "unknown subscription"
    page.goto(live_server.url + "/no-such-page/")
    yield "404 page"


@pytest.mark.parametrize(("variant", "viewport", "scheme"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_no_serious_accessibility_violation_on_any_public_page(
    live_server, browser, reports, axe, status_page, variant, viewport, scheme
):
    context = new_context(browser, reports, viewport=viewport, color_scheme=scheme)
    page = context.new_page()
    problems, seen = [], []

    for name in public_pages(page, live_server, status_page):
        seen.append(name)
        problems += [f"{name}: {problem}" for problem in accessibility_problems(page, axe)]
        if viewport == PHONE:
            assert_fits_width(page)

    assert len(seen) == 16
    assert problems == [], "\n".join(problems)
    context.close()
    # The made-up links' pages are answered 404 and 410, which the console reports.
    reports.assert_clean(expected_errors=("status of 404 (Not Found)", "status of 410 (Gone)"))
