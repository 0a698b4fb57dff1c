"""The whole journey in a real browser: a visitor follows an incident that staff update from
another browser, subscribes through the email a real SMTP server receives, and leaves.

With BEACON_SCREENSHOTS=docs/screenshots the run keeps the screenshots shown in the README.
"""

import pytest
from playwright.sync_api import expect

from incidents.models import Incident
from incidents.notify.models import Subscriber, SubscriberState
from statuspage.models import AuditAction, AuditEvent
from tests.browser import steps
from tests.browser.steps import (
    VARIANTS,
    assert_fits_width,
    attacker_is_locked_out,
    link_in,
    new_context,
    screenshot,
    staff_context,
    staff_enrols_authenticator_app,
    staff_posts_incident,
    staff_posts_update,
    staff_signs_in_with_code,
    staff_signs_out,
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


def test_staff_enrol_sign_in_with_a_code_and_post_an_incident_while_an_attacker_is_locked_out(
    live_server, browser, reports, settings, status_page
):
    settings.AXES_FAILURE_LIMIT = 5
    ada = StaffFactory(username="ada", is_superuser=True)
    ada.set_password(steps.STAFF_PASSWORD)
    ada.save()
    staff = new_context(browser, reports)

    secret = staff_enrols_authenticator_app(staff, live_server, "ada")
    staff_signs_out(staff, live_server)
    staff_signs_in_with_code(staff, live_server, "ada", secret)
    staff_posts_incident(
        staff,
        live_server,
        name="Sign-in failures",
        body="Some people cannot sign in; we are investigating.",
        component="API",
        status="Partial outage",
    )
    assert Incident.objects.filter(name="Sign-in failures").exists()
    visitor = new_context(browser, reports)
    page = visitor_opens_page(visitor, live_server.url + "/")
    expect(page.get_by_role("link", name="Sign-in failures").first).to_be_visible()

    attacker = attacker_is_locked_out(browser, reports, live_server, "ada", failures=5)
    screenshot(attacker, "staff-locked-out")
    assert AuditEvent.objects.filter(action=AuditAction.LOCKED_OUT, actor_name="ada").exists()
    # Ada's own signed-in session is not the attacker's: she keeps working.
    admin = staff.new_page()
    admin.goto(live_server.url + "/admin/incidents/incident/")
    expect(admin.locator("#result_list")).to_contain_text("Sign-in failures")

    for context in (staff, visitor, attacker.context):
        context.close()
    # The lock-out page is a 429, which the browser notes in its console.
    reports.assert_clean(expected_errors=("status of 429",))
