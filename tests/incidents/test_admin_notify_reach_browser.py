"""In a browser: the reach of "Notify subscribers" follows the components staff choose, with
no Content-Security-Policy violation."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.components.factories import ComponentFactory
from tests.incidents.factories import SubscriberFactory


@pytest.mark.django_db(transaction=True)
def test_the_count_follows_the_chosen_components(live_server, staff_browser_page, csp_violations):
    api = ComponentFactory(name="API")
    SubscriberFactory()
    SubscriberFactory(components=[api])
    SubscriberFactory(webhook=True, components=[api])
    browser_page = staff_browser_page
    browser_page.goto(live_server.url + reverse("admin:incidents_incident_add"))
    reach = browser_page.locator(".notify-reach")
    expect(reach).to_have_text("Will notify 1 subscriber: 1 by email, none by webhook.")

    browser_page.select_option(f"#id_component_{api.pk}", "major_outage")
    expect(reach).to_have_text("Will notify 3 subscribers: 2 by email, 1 by webhook.")

    browser_page.uncheck("#id_deliver_notifications")
    expect(reach).to_have_text("Nobody will be notified (3 subscribers would be).")
    assert csp_violations == []
