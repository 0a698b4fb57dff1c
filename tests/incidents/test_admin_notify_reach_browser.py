"""In a browser: the reach of "Notify subscribers" follows the components staff choose, with
no Content-Security-Policy violation."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, SubscriberFactory, sign_in_staff


@pytest.mark.django_db(transaction=True)
def test_the_count_follows_the_chosen_components(live_server, browser_page, client):
    api = ComponentFactory(name="API")
    SubscriberFactory()
    SubscriberFactory(components=[api])
    SubscriberFactory(webhook=True, components=[api])
    sign_in_staff(client, StaffFactory(is_superuser=True))
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    violations: list[str] = []
    browser_page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    browser_page.goto(live_server.url + reverse("admin:incidents_incident_add"))
    reach = browser_page.locator(".notify-reach")
    expect(reach).to_have_text("Will notify 1 subscriber: 1 by email, none by webhook.")

    browser_page.select_option(f"#id_component_{api.pk}", "major_outage")
    expect(reach).to_have_text("Will notify 3 subscribers: 2 by email, 1 by webhook.")

    browser_page.uncheck("#id_deliver_notifications")
    expect(reach).to_have_text("Nobody will be notified (3 subscribers would be).")
    assert violations == []
