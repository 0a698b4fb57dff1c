"""The whole journey in a real browser: a visitor follows an incident that staff update from
another browser, subscribes through the email a real SMTP server receives, and leaves.

With BEACON_SCREENSHOTS=docs/screenshots the run keeps the screenshots shown in the README.
"""

import pytest
from playwright.sync_api import expect

from incidents.notify.models import Subscriber, SubscriberState
from tests.browser.steps import (
    VARIANTS,
    assert_fits_width,
    link_in,
    new_context,
    screenshot,
    staff_context,
    staff_posts_update,
    visitor_confirms,
    visitor_expands_group,
    visitor_keeps_page_open,
    visitor_opens_page,
    visitor_reads_incident,
    visitor_sees_without_reload,
    visitor_subscribes,
    visitor_unsubscribes,
    wait_for_email,
)
from tests.incidents.factories import StaffFactory

pytestmark = pytest.mark.django_db(transaction=True)

READER = "reader@example.test"


def test_the_page_looks_right_on_desktop_and_phone_in_light_and_dark(
    live_server, browser, reports, status_page
):
    for name, viewport, scheme in VARIANTS:
        context = new_context(browser, reports, viewport=viewport, color_scheme=scheme)
        page = visitor_opens_page(context, live_server.url + "/")
        expect(page.locator("#overall-status")).to_contain_text("Partially Degraded Service")
        dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        assert dark is (scheme == "dark")
        assert_fits_width(page)
        screenshot(page, f"status-{name}")

        page.get_by_role("link", name="Slow page loads").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Slow page loads")
        assert_fits_width(page)
        screenshot(page, f"incident-{name}")
        context.close()
    reports.assert_clean()


def test_a_visitor_follows_an_incident_staff_update_then_subscribes_and_leaves(
    live_server, browser, reports, smtp_server, worker, status_page
):
    visitor = new_context(browser, reports)
    page = visitor_opens_page(visitor, live_server.url + "/")

    visitor_expands_group(page, "Platform")
    expect(page.locator(".component-name", has_text="Background workers")).to_be_visible()
    reading = visitor_opens_page(visitor, live_server.url + "/")
    visitor_reads_incident(
        reading,
        "Slow page loads",
        ["A cache node is overloaded.", "We are investigating slow page loads on the website."],
    )

    visitor_subscribes(page, READER)
    confirmation = wait_for_email(smtp_server, READER, "Confirm")
    visitor_confirms(visitor, link_in(confirmation, "/subscriptions/confirm/"))
    assert Subscriber.objects.get(email=READER).state == SubscriberState.ACTIVE

    staff = staff_context(browser, reports, live_server, StaffFactory(is_superuser=True))
    watching = visitor_keeps_page_open(visitor, live_server.url + "/")
    staff_posts_update(
        staff,
        live_server,
        status_page,
        status="Monitoring",
        body="A fix is in place; page loads are back to normal.",
    )
    visitor_sees_without_reload(watching, "A fix is in place; page loads are back to normal.")

    notification = wait_for_email(smtp_server, READER, "Slow page loads")
    assert "A fix is in place" in notification.get_body(preferencelist=("plain",)).get_content()
    visitor_unsubscribes(visitor, link_in(notification, "/subscriptions/unsubscribe/"))
    assert not Subscriber.objects.filter(email=READER).exists()

    staff.close()
    visitor.close()
    reports.assert_clean()
