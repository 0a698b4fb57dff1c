"""The 24-hour chart of visitors' reports (components/reports/chart.py) and its selector."""

from datetime import UTC, datetime, timedelta

import pytest

from components.reports.chart import (
    EMPTY,
    HourlyTally,
    reports_chart,
    reports_chart_html,
    reports_chart_svg,
)
from components.reports.models import ReportCount
from components.reports.selectors import reports_last_day
from tests.components.factories import ComponentFactory

NOW = datetime(2026, 12, 5, 12, 30, tzinfo=UTC)
HOUR = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def tally(component_id, name, symptom, hours_ago, count):
    return HourlyTally(component_id, name, symptom, HOUR - timedelta(hours=hours_ago), count)


def test_shares_per_component_and_symptom_of_a_known_series():
    chart = reports_chart(
        [
            tally(1, "API", "errors", 0, 30),
            tally(1, "API", "slow", 1, 10),
            tally(2, "Website", "", 1, 20),
            tally(None, None, "errors", 23, 20),
            tally(1, "API", "errors", 24, 999),  # 25 hours ago: outside the chart
        ],
        now=NOW,
    )
    assert chart.total == 80
    assert [(s.label, s.count, s.percent) for s in chart.components] == [
        ("API", 40, "50 %"),
        ("Something else", 20, "25 %"),
        ("Website", 20, "25 %"),
    ]
    assert [(s.label, s.count, s.percent) for s in chart.symptoms] == [
        ("Errors", 50, "62 %"),
        ("No symptom given", 20, "25 %"),
        ("Slow", 10, "12 %"),
    ]
    assert len(chart.hours) == 24 and chart.hours[-1] == HOUR
    api = chart.series[0]
    assert api.counts[-1] == 30 and api.counts[-2] == 10 and sum(api.counts) == 40

    svg = reports_chart_svg(chart)
    assert svg.startswith('<svg class="rc-chart"') and 'role="img"' in svg
    assert "<title" in svg and "<desc" in svg
    assert "80 reports in the last 24 hours. By component: API 40 (50 %)" in svg
    assert "Errors 50 (62 %)" in svg
    assert "API: 30 reports, 12:00" in svg  # the bar's own title
    assert svg.count('class="rc-bar') == 4
    assert reports_chart_svg(chart) == svg  # the same data renders the same bytes


def test_past_five_components_the_rest_are_others():
    tallies = [tally(n, f"Service {n}", "slow", 0, 10 + n) for n in range(8)]
    chart = reports_chart(tallies, now=NOW)
    labels = [s.label for s in chart.components]
    assert labels == ["Service 7", "Service 6", "Service 5", "Service 4", "Service 3", "Others"]
    assert chart.components[-1].count == 10 + 11 + 12
    assert 'fill="#8c8c8c"' in reports_chart_svg(chart)


def test_a_hostile_component_name_is_escaped():
    chart = reports_chart([tally(1, "<script>alert(1)</script>", "errors", 0, 3)], now=NOW)
    for html in (reports_chart_svg(chart), reports_chart_html(chart)):
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_empty_state():
    chart = reports_chart([], now=NOW)
    assert chart.total == 0
    assert reports_chart_html(chart) == f'<p class="rc-empty">{EMPTY}</p>'
    svg = reports_chart_svg(chart)
    assert 'role="img"' in svg and str(EMPTY) in svg and "rc-bar" not in svg


def test_the_html_has_the_numbers_as_tables():
    chart = reports_chart([tally(1, "API", "errors", 0, 1_204)], now=NOW)
    html = reports_chart_html(chart)
    assert "<caption>By component</caption>" in html
    assert '<th scope="row">API</th><td>1,204</td><td>100 %</td>' in html
    assert '<th scope="row">Errors</th><td>1,204</td><td>100 %</td>' in html


@pytest.mark.django_db
def test_the_selector_sums_minutes_into_hours_in_one_query(django_assert_num_queries):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Website")
    for minute in range(0, 60, 5):
        ReportCount.objects.create(
            component=api, symptom="errors", minute=HOUR + timedelta(minutes=minute), count=2
        )
    ReportCount.objects.create(
        component=web, symptom="", minute=HOUR - timedelta(hours=3, minutes=-7), count=5
    )
    ReportCount.objects.create(component=None, symptom="slow", minute=HOUR, count=1)
    # Before the 24 hours: not counted.
    ReportCount.objects.create(
        component=web, symptom="", minute=HOUR - timedelta(hours=23, minutes=1), count=100
    )
    for _ in range(30):  # more components do not mean more queries
        ReportCount.objects.create(
            component=ComponentFactory(), symptom="slow", minute=HOUR, count=1
        )
    with django_assert_num_queries(1):
        chart = reports_last_day(now=NOW)
    assert chart.total == 24 + 5 + 1 + 30
    shares = {s.label: s.count for s in chart.components}
    assert shares["API"] == 24 and shares["Website"] == 5
    # Past the top five (ties by name), "something else" and the rest of the thirty.
    assert len(shares) == 6 and shares["Others"] == 60 - 24 - 5 - 3
    api = chart.series[0]
    assert api.label == "API" and api.counts[-1] == 24
    website = next(s for s in chart.series if s.label == "Website")
    assert website.counts[-4] == 5
