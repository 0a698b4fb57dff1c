"""The console's 24-hour chart of visitors' reports: its own partial, refreshed each minute."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from components.reports.models import ReportCount
from tests.components.factories import ComponentFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 5, 12, 30, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_the_console_shows_the_chart_and_its_partial_refreshes_it(
    client, responder, page, django_assert_max_num_queries
):
    hostile = ComponentFactory(name="<script>alert(1)</script>")
    api = ComponentFactory(name="API")
    ReportCount.objects.create(component=api, symptom="errors", minute=NOW, count=3)
    ReportCount.objects.create(
        component=hostile, symptom="slow", minute=NOW - timedelta(hours=2), count=1
    )
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="console-reports-chart"' in html and 'hx-trigger="every 60s"' in html
    assert "4 reports in the last 24 hours." in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html

    for _ in range(20):
        ReportCount.objects.create(
            component=ComponentFactory(), symptom="slow", minute=NOW, count=1
        )
    with django_assert_max_num_queries(8):
        response = client.get(reverse("admin:console_reports_chart"))
    partial = response.content.decode()
    assert partial.lstrip().startswith('<section id="console-reports-chart"')
    assert '<th scope="row">API</th><td>3</td>' in partial


def test_an_empty_chart_says_so(client, responder):
    partial = client.get(reverse("admin:console_reports_chart")).content.decode()
    assert "No reports in the last 24 hours." in partial and "<svg" not in partial


def test_the_chart_is_staff_only(client):
    response = client.get(reverse("admin:console_reports_chart"))
    assert response.status_code == 302 and "/login/" in response["Location"]
