"""Staff run a health check from its admin page and see the result without a page load."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from components.models import CheckResult, Verdict
from tests.components.factories import HealthCheckFactory
from tests.incidents.factories import StaffFactory, sign_in_staff


@pytest.fixture
def allow_local_targets(settings):
    settings.BEACON_CHECKS_ALLOW_PRIVATE = True


def change_url(check):
    return reverse("admin:components_healthcheck_change", args=[check.pk])


@pytest.mark.django_db(transaction=True)
def test_run_now_shows_the_result_without_a_page_load(
    live_server,
    browser_page,
    client,
    httpserver,
    allow_local_targets,
):
    httpserver.expect_request("/health").respond_with_data("boom", status=503)
    check = HealthCheckFactory(name="Health endpoint", url=httpserver.url_for("/health"))
    sign_in_staff(client, StaffFactory(is_superuser=True))
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    browser_page.goto(live_server.url + change_url(check))
    browser_page.evaluate("window.stillTheSamePage = true")

    browser_page.get_by_role("button", name="Run now").click()

    outcome = browser_page.locator("#run-result .run-outcome")
    expect(outcome).to_contain_text("Down")
    expect(outcome).to_contain_text("Status 503, expected 200–399")
    expect(browser_page.locator("#run-result")).to_contain_text("Last 1 result")
    assert browser_page.evaluate("window.stillTheSamePage") is True
    assert CheckResult.objects.filter(health_check=check, verdict=Verdict.DOWN).exists()
