"""Visitors report problems with a component the page shows operational; a Responder sees the
surge in the console and publishes its draft in one click, and the public page says so."""

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from components.reports.services import report_counts_persist, report_surges_detect
from incidents.models import Incident
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory, sign_in_staff
from tests.statuspage.test_visitor_reports import report, warm


@pytest.mark.django_db(transaction=True)
def test_a_responder_publishes_a_report_surge_draft_in_one_click(
    live_server, browser_page, client, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # staff's email is sent here
    api = ComponentFactory(name="API")
    ComponentFactory(name="Search")
    warm(client)
    for n in range(15):
        response = report(client, {"components": [api.public_id]}, REMOTE_ADDR=f"198.51.100.{n}")
        assert response.status_code == 202
    now = timezone.now()
    report_counts_persist(now=now)
    report_surges_detect(now=now)

    sign_in_staff(client, StaffFactory(is_superuser=True))
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    browser_page.goto(live_server.url + reverse("admin:index"))
    row = browser_page.locator("#console-surges").get_by_role("row", name="API")
    expect(row).to_contain_text("Visitors report problems with API: 15 in 5 min (usually none)")
    expect(browser_page.locator("#console-drafts")).to_contain_text("Report surge")
    row.get_by_role("button", name="Publish draft").click()

    expect(browser_page.locator(".messagelist")).to_contain_text("Published")
    incident = Incident.objects.get()
    assert incident.name == "Investigating problems with API"
    public = browser_page.context.new_page()
    public.goto(live_server.url + "/")
    expect(public.locator("body")).to_contain_text("Investigating problems with API")
    api.refresh_from_db()
    assert api.status == "degraded_performance"
