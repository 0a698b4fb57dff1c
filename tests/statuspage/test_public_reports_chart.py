"""The 24-hour reports chart on the public page (PageSettings.show_reports_chart): an output
of its own, /reports/chart.svg, rendered by the beat task that persists the counts."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from components.reports import public_chart
from components.reports.models import ReportCount
from components.reports.public_chart import reports_chart_publish, stored_chart
from components.tasks import persist_report_counts
from statuspage.services import page_settings_update
from tests.components.factories import ComponentFactory
from tests.statuspage.test_public_outage import database_unreachable
from tests.statuspage.test_snapshots import unreachable_redis
from tests.statuspage.test_static_export import export

CHART = "/reports/chart.svg"


def show_chart(page, on=True):
    page_settings_update(page=page, changes={"show_reports_chart": on})


def reports(component, count, *, symptom="errors", ago=timedelta(0)):
    minute = (timezone.now() - ago).replace(second=0, microsecond=0)
    ReportCount.objects.create(component=component, symptom=symptom, minute=minute, count=count)


@pytest.fixture
def api(db, page):
    return ComponentFactory(name="API <b>v2</b>")


def test_with_the_setting_off_the_page_has_no_chart_and_there_is_none(client, api):
    reports(api, 3)
    persist_report_counts()
    assert CHART not in client.get("/").content.decode()
    assert client.get(CHART).status_code == 404
    assert stored_chart() is None


def test_with_the_setting_on_the_page_shows_the_chart_the_task_renders(client, page, api):
    show_chart(page)
    body = client.get("/").content.decode()
    assert f'<img class="reports-chart-image" src="{CHART}" alt="' in body
    assert "style=" not in body.split('class="reports-chart"', 1)[1].split("</section>")[0]

    reports(api, 3)
    reports(None, 1, symptom="", ago=timedelta(hours=2))
    persist_report_counts()
    response = client.get(CHART)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"] == "public, max-age=60"
    assert "Content-Security-Policy" in response  # the page's headers, as on every answer
    svg = response.content.decode()
    assert svg.startswith('<svg class="rc-chart"') and 'viewBox="0 0 640 ' in svg
    assert "4 reports in the last 24 hours. By component: API &lt;b&gt;v2&lt;/b&gt; 3 (75 %)" in svg
    assert "<b>" not in svg and "style=" not in svg and "<script" not in svg
    again = client.get(CHART, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert client.head(CHART).status_code == 200
    assert client.post(CHART).status_code == 405


def test_the_task_writes_only_when_the_chart_changed_and_withdraws_it_when_off(page, api):
    show_chart(page)
    now = timezone.now()
    assert reports_chart_publish(now=now) is True  # the first: "no reports" until some come
    assert "No reports in the last 24 hours." in stored_chart().svg.decode()
    assert reports_chart_publish(now=now) is False
    reports(api, 2)
    assert reports_chart_publish(now=now) is True
    assert public_chart.chart_path().read_bytes() == stored_chart().svg
    show_chart(page, on=False)
    assert reports_chart_publish(now=now) is True
    assert stored_chart() is None and not public_chart.chart_path().exists()


def test_before_the_task_ran_the_chart_is_rendered_on_first_request(client, page, api):
    show_chart(page)
    reports(api, 5)
    response = client.get(CHART)
    assert response.status_code == 200 and "5 reports in the last 24 hours" in response.text
    assert stored_chart() is not None


def _seven_reports_charted(page):
    show_chart(page)
    reports(ComponentFactory(name="API"), 7)
    persist_report_counts()


@pytest.mark.django_db(transaction=True)
def test_served_while_postgresql_is_down(page, monkeypatch, django_assert_num_queries):
    _seven_reports_charted(page)
    client = Client(raise_request_exception=False)
    with django_assert_num_queries(0), database_unreachable(monkeypatch):
        response = client.get(CHART)
    assert response.status_code == 200 and "7 reports in the last 24 hours" in response.text


@pytest.mark.django_db(transaction=True)
def test_served_from_disk_while_redis_is_down_too(page, settings, monkeypatch):
    _seven_reports_charted(page)
    settings.CACHES = {"default": unreachable_redis()}
    client = Client(raise_request_exception=False)
    with database_unreachable(monkeypatch):
        response = client.get(CHART)
    assert response.status_code == 200 and "7 reports in the last 24 hours" in response.text


@pytest.mark.django_db(transaction=True)
def test_never_built_and_postgresql_down_is_a_placeholder_not_a_broken_image(page, monkeypatch):
    show_chart(page)
    cache.set(page.CACHE_KEY, page, None)  # the settings as a running site has them cached
    client = Client(raise_request_exception=False)
    with database_unreachable(monkeypatch):
        response = client.get(CHART)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"] == "no-store"
    assert "The reports chart cannot be shown right now." in response.text


def test_the_static_export_leaves_the_chart_out(page, api, tmp_path):
    show_chart(page)
    export(tmp_path / "copy")
    index = (tmp_path / "copy" / "index.html").read_text()
    assert "reports-chart" not in index and "chart.svg" not in index
