"""Response times on the public page: charts of shown checks, drawn on the server."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from playwright.sync_api import expect

from components.charts import check_chart_svg, response_time_series, response_time_svg
from components.checks.rollups import check_rollups_update
from components.models import CheckResult, CheckRollup, Verdict
from statuspage.public.selectors import build_status_page, check_metrics
from statuspage.public.snapshots import keys
from tests.components.factories import ComponentFactory, HealthCheckFactory
from tests.statuspage.test_public_pages import html_of, section, text

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)
HOUR = datetime(2025, 3, 10, 12, tzinfo=UTC)
DAY = datetime(2025, 3, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def at_noon(request):
    if "browser_page" in request.fixturenames:  # a real browser keeps the real clock
        yield
        return
    with time_machine.travel(NOW):  # the clock ticks on from here
        yield


def hourly(check, start, *, p50=100.0, p95=200.0, count=60, failures=0):
    return CheckRollup.objects.create(
        health_check=check,
        period="hour",
        start=start,
        count=count,
        failures=failures,
        latency_min=p50 / 2,
        latency_p50=p50,
        latency_p95=p95,
        latency_p99=p95,
        latency_max=p95,
    )


def daily(check, start, *, p50=100.0, p95=200.0, failures=0):
    return CheckRollup.objects.create(
        health_check=check,
        period="day",
        start=start,
        count=1440,
        failures=failures,
        latency_p50=p50,
        latency_p95=p95,
    )


def svgs(html: str) -> list[str]:
    return re.findall(r'<svg class="rt-chart".*?</svg>\s*</div>', html, flags=re.S)


@pytest.fixture
def shown(page):
    api = ComponentFactory(name="API")
    return HealthCheckFactory(component=api, name="Health endpoint", show_on_page=True)


def test_a_shown_check_gets_three_accessible_charts(client, shown):
    hourly(shown, HOUR - timedelta(hours=2), p50=120.0, p95=450.0, failures=2)
    hourly(shown, HOUR, p50=100.0, p95=300.0)
    daily(shown, DAY - timedelta(days=3), p50=90.0, p95=900.0, failures=5)

    metrics = section(html_of(client, "/"), "metrics-title")

    assert "Response times" in text(metrics)
    assert '<h3 class="metric-name" id="metric-1-name">' in metrics
    assert "API Health endpoint" in text(metrics)
    radios = re.findall(r'<input class="range-input[^>]*>', metrics)
    assert len(radios) == 3 and "checked" in radios[0]
    assert all('type="radio" name="metric-1-range"' in radio for radio in radios)
    for key, label, spoken in [("24h", "24 h", "24 hours"), ("7d", "7 d", "7 days")]:
        assert re.search(
            rf'<label class="range-tab tab-{key}" for="metric-1-{key}">'
            rf'<span aria-hidden="true">{label}</span>'
            rf'<span class="visually-hidden">{spoken}</span></label>',
            metrics,
        )
    charts = svgs(metrics)
    assert len(charts) == 3
    for chart in charts:
        assert 'role="img"' in chart
        ids = re.search(r'aria-labelledby="([^"]+)"', chart).group(1).split()
        assert all(f'id="{id_}"' in chart for id_ in ids)
    day_chart, week_chart, month_chart = (
        re.search(r"<desc[^>]*>(.*?)</desc>", chart).group(1) for chart in charts
    )
    assert day_chart == (
        "Median response time 100 ms, 95th percentile up to 450 ms, "
        "2 failed checks over the last 24 hours."
    )
    assert week_chart.endswith("2 failed checks over the last 7 days.")
    assert month_chart == (
        "Median response time 90 ms, 95th percentile up to 900 ms, "
        "5 failed checks over the last 30 days."
    )
    assert "API Health endpoint: response times, last 24 hours</title>" in charts[0]
    assert charts[0].count('class="rt-failure"') == 1
    assert charts[0].count('class="rt-tick"') == 3
    assert ">0 ms</text>" in charts[0] and ">500 ms</text>" in charts[0]
    assert re.findall(r'class="rt-axis"[^>]*>([^<]*)<', charts[0]) == ["13:00", "01:00", "12:00"]
    assert re.findall(r'class="rt-axis"[^>]*>([^<]*)<', charts[2]) == ["Feb 9", "Feb 24", "Mar 10"]


def test_the_section_follows_the_components(client, shown):
    html = html_of(client, "/")

    assert html.index('id="components-title"') < html.index('id="metrics-title"')
    assert html.index('id="metrics-title"') < html.index('id="past-incidents"')


def test_a_check_without_rollups_says_so(client, shown):
    charts = svgs(section(html_of(client, "/"), "metrics-title"))

    assert len(charts) == 3
    assert "<desc" in charts[0] and "No checks ran over the last 24 hours." in charts[0]
    assert 'class="rt-line"' not in charts[0]


def test_no_section_without_a_shown_check(client, page):
    api = ComponentFactory(name="API")
    with time_machine.travel(NOW, tick=False):
        before = html_of(client, "/")
        hidden = HealthCheckFactory(component=api, name="Internal", show_on_page=False)
        HealthCheckFactory(component=api, name="Paused", show_on_page=True, enabled=False)
        hourly(hidden, HOUR)
        keys.publish_change()

        after = html_of(client, "/")

    assert after == before
    assert 'id="metrics"' not in after and "Response times" not in after
    assert build_status_page().metrics == []


def test_names_are_escaped_everywhere(client, page):
    component = ComponentFactory(name="<script>alert(1)</script>")
    check = HealthCheckFactory(
        component=component, name='"><img src=x onerror=alert(2)>', show_on_page=True
    )
    hourly(check, HOUR)

    html = html_of(client, "/")

    assert "<script>alert(1)" not in html and "<img src=x" not in html
    metrics = section(html, "metrics-title")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in metrics
    assert "<title id=" in metrics
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;: response times" in metrics


def test_shown_checks_are_in_page_order(client, page):
    second = ComponentFactory(name="Website", position=2)
    first = ComponentFactory(name="API", position=1)
    HealthCheckFactory(component=second, name="Home", show_on_page=True)
    HealthCheckFactory(component=first, name="Write", show_on_page=True)
    HealthCheckFactory(component=first, name="Read", show_on_page=True)

    names = re.findall(r'<h3 class="metric-name"[^>]*>(.*?)</h3>', html_of(client, "/"))

    assert [re.sub(r"<[^>]+>", "", name) for name in names] == [
        "API Read",
        "API Write",
        "Website Home",
    ]


def test_metrics_take_two_queries_whatever_the_number_of_checks(
    page, django_assert_num_queries, django_assert_max_num_queries
):
    components = ComponentFactory.create_batch(10)
    for i in range(30):
        check = HealthCheckFactory(component=components[i % 10], show_on_page=True)
        hourly(check, HOUR)
        daily(check, DAY)
    page_components = list(components)

    with django_assert_num_queries(2):
        metrics = check_metrics(page_components, now=NOW, zone=UTC)
        charts = [chart for metric in metrics for chart in metric.charts]
    assert len(charts) == 90

    with CaptureQueriesContext(connection) as few:
        build_status_page()
    for _ in range(30):
        hourly(HealthCheckFactory(component=components[0], show_on_page=True), HOUR)
    with django_assert_max_num_queries(len(few)):
        assert len(build_status_page().metrics) == 60


def test_the_page_shows_new_rollups_after_an_update(
    client, shown, django_capture_on_commit_callbacks
):
    html_of(client, "/")  # a snapshot exists
    for minutes, latency in [(5, 123.0), (10, 123.0), (15, 450.0)]:
        CheckResult.objects.create(
            health_check=shown,
            at=HOUR + timedelta(minutes=minutes),
            verdict=Verdict.UP,
            latency_ms=latency,
        )
    CheckResult.objects.create(
        health_check=shown, at=HOUR, verdict=Verdict.DOWN, latency_ms=None, error="Timeout"
    )

    with django_capture_on_commit_callbacks(execute=True):
        check_rollups_update()

    first = svgs(section(html_of(client, "/"), "metrics-title"))[0]
    assert (
        "Median response time 123 ms, 95th percentile up to 450 ms, "
        "1 failed check over the last 24 hours." in first
    )


# The charts themselves


def test_series_cover_each_range_oldest_first(shown):
    hourly(shown, HOUR - timedelta(hours=23), p50=10.0)
    hourly(shown, HOUR - timedelta(hours=24), p50=99.0)  # just outside the 24 hours
    daily(shown, DAY, p50=30.0)

    day = response_time_series(shown, range="24h")
    week = response_time_series(shown, range="7d")
    month = response_time_series(shown, range="30d")

    assert (len(day), len(week), len(month)) == (24, 168, 30)
    assert day[0].start == HOUR - timedelta(hours=23) and day[0].p50 == 10
    assert day[-1].start == HOUR and day[-1].count == 0 and day[-1].p50 is None
    assert week[-25].p50 == 99
    assert month[-1].start == DAY and month[-1].p50 == 30 and month[0].p50 is None


def test_missing_buckets_break_the_line(shown):
    for hours in (20, 19, 5):
        hourly(shown, HOUR - timedelta(hours=hours))

    svg = response_time_svg(response_time_series(shown, range="24h"), title="API", width=600)

    assert svg.count('class="rt-line"') == 2
    assert svg.count('class="rt-band"') == 2
    assert 'width="600"' in svg


def test_the_admin_chart_shows_the_last_day_or_says_there_is_no_data(shown):
    assert check_chart_svg(shown) == '<p class="rt-empty">No data yet.</p>'

    hourly(shown, HOUR - timedelta(hours=30))  # older than the chart
    assert "No data yet." in check_chart_svg(shown)

    hourly(shown, HOUR - timedelta(hours=1), p50=80.0, p95=95.0)
    svg = check_chart_svg(shown)
    assert svg.startswith('<svg class="rt-chart"')
    assert "Health endpoint: response times, last 24 hours" in svg
    assert "Median response time 80 ms, 95th percentile up to 95 ms, 0 failed checks" in svg


def test_chart_text_is_escaped(shown):
    svg = response_time_svg(
        response_time_series(shown, range="24h"), title="</title><script>x()</script>"
    )

    assert "<script>" not in svg
    assert "&lt;/title&gt;&lt;script&gt;x()&lt;/script&gt;</title>" in svg


# In a real browser


@pytest.mark.django_db(transaction=True)
def test_the_ranges_switch_without_javascript_requests(live_server, browser_page, page):
    check = HealthCheckFactory(
        component=ComponentFactory(name="API"), name="Health", show_on_page=True
    )
    now = datetime.now(UTC)
    for hours in range(100):
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
        hourly(check, start, p50=100.0 + hours, p95=300.0, failures=int(hours == 50))
    browser_page.set_viewport_size({"width": 360, "height": 800})
    browser_page.emulate_media(color_scheme="dark")
    browser_page.goto(live_server.url + "/")
    requests = []
    browser_page.on("request", lambda request: requests.append(request.url))
    metric = browser_page.get_by_role("group", name="API Health")
    day = metric.get_by_role("img", name="API Health: response times, last 24 hours")
    week = metric.get_by_role("img", name="API Health: response times, last 7 days")

    expect(day).to_be_visible()
    expect(week).to_be_hidden()
    metric.get_by_text("7 d", exact=True).click()

    expect(week).to_be_visible()
    expect(day).to_be_hidden()
    expect(metric.get_by_role("radio", name="7 days")).to_be_checked()
    metric.get_by_role("radio", name="7 days").press("ArrowRight")
    expect(metric.get_by_role("radio", name="30 days")).to_be_checked()
    expect(metric.get_by_role("img", name=re.compile("last 30 days"))).to_be_visible()
    assert requests == []
    assert browser_page.evaluate("document.documentElement.scrollWidth") <= 360
