"""The public uptime history: /uptime/, /uptime/<id>/, and API v2's uptime JSON and CSV."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from components.models import ComponentGroup, ComponentStatus, DailyUptime
from components.selectors import monthly_totals, monthly_uptime
from components.uptime import DayUptime, months_back, uptime_percent_over
from statuspage.api_v1 import schemas
from statuspage.lib.signals import announce_public_change
from statuspage.lib.text import spreadsheet_cell as csv_safe
from statuspage.models import PageSettings
from statuspage.public.snapshots import keys
from statuspage.services import page_settings_update
from tests.components.factories import ComponentFactory, bulk_uptime_history
from tests.incidents.factories import open_incident

BERLIN = ZoneInfo("Europe/Berlin")
DAY = 24 * 3600


def rollup(component, day: date, **seconds: int) -> DailyUptime:
    fields = {f"{status}_seconds": value for status, value in seconds.items()}
    return DailyUptime.objects.create(component=component, day=day, **fields)


def backdate(component, *, days: int, now: datetime) -> None:
    """A component created `days` ago whose time is counted in rollups up to `now`."""
    type(component).objects.filter(pk=component.pk).update(
        created_at=now - timedelta(days=days), uptime_accounted_until=now
    )
    component.refresh_from_db()


def set_page(**fields) -> PageSettings:
    """Through the service, as staff change them; the change is announced as its commit would
    (the test's transaction never commits)."""
    page = page_settings_update(page=PageSettings.load(), changes=fields)
    announce_public_change()
    return page


# The months


def test_a_months_uptime_is_the_uptime_over_its_days(page):
    now = timezone.now()
    component = ComponentFactory()
    backdate(component, days=400, now=now)
    zone = page.zone
    today = now.astimezone(zone).date()
    last_month = months_back(today, 1)
    rollup(component, last_month, operational=DAY - 3600, major_outage=3600)
    rollup(component, last_month + timedelta(days=3), operational=DAY - 7200, partial_outage=7200)
    rollup(component, last_month + timedelta(days=5), under_maintenance=DAY)
    months = monthly_uptime([component], months=12, now=now, zone=zone)[component.pk]

    assert len(months) == 12
    assert [m.month for m in months] == [months_back(today, 11 - i) for i in range(12)]
    month = months[-2]
    assert month.month == last_month
    counted = [d for d in month.days if d.has_data]
    assert month.uptime_percent == pytest.approx(uptime_percent_over(counted))
    assert month.uptime_percent < 100
    assert month.worst_status == ComponentStatus.MAJOR_OUTAGE


@pytest.mark.parametrize(("month", "days"), [(3, 31), (10, 31), (2, 28)])
def test_a_dst_month_in_berlin_has_its_calendar_days(page, month, days):
    set_page(time_zone="Europe/Berlin")
    first = date(2025, month, 1)
    now = datetime(2025, month + 1, 1, 12, tzinfo=UTC)  # the month is the one before this
    component = ComponentFactory()
    backdate(component, days=60, now=now)
    # The DST day is 23 (March) or 25 (October) hours long, and stored as such.
    switch = {3: date(2025, 3, 30), 10: date(2025, 10, 26)}.get(month)
    lengths = {date(2025, 3, 30): DAY - 3600, date(2025, 10, 26): DAY + 3600}
    for n in range(days):
        day = first + timedelta(days=n)
        rollup(component, day, operational=lengths.get(day, DAY) - 60, major_outage=60)
    months = monthly_uptime([component], months=12, now=now, zone=BERLIN)[component.pk]
    current = months[-2]
    assert current.month == first
    assert [d.day.day for d in current.days] == list(range(1, days + 1))
    assert sum(len([c for c in week if c]) for week in current.weeks) == days
    assert all(len(week) == 7 for week in current.weeks)
    assert current.weeks[0].index(current.days[0]) == first.weekday()
    assert all(d.has_data for d in current.days)
    counted = sum(d.counted_seconds for d in current.days)
    expected = days * DAY + {3: -3600, 10: 3600}.get(month, 0)
    assert counted == expected
    assert current.uptime_percent == pytest.approx(100 * (1 - 60 * days / expected))
    if switch:
        assert next(d for d in current.days if d.day == switch).counted_seconds == lengths[switch]
    # The month after: only its first day so far, the rest without data.
    assert [d.has_data for d in months[-1].days].count(True) <= 1


def test_the_overviews_sums_agree_with_the_days(page):
    """monthly_totals (SQL sums, the overview) and monthly_uptime (the days) say the same."""
    now = timezone.now()
    today = now.astimezone(page.zone).date()
    steady = ComponentFactory(status=ComponentStatus.PARTIAL_OUTAGE)
    backdate(steady, days=200, now=now - timedelta(hours=2))
    imported = ComponentFactory()  # rows before its first day: read day by day
    backdate(imported, days=20, now=now)
    for n in range(1, 200):
        day = today - timedelta(days=n)
        if n % 7 == 0:
            rollup(steady, day, operational=DAY - 900, major_outage=600, under_maintenance=300)
        else:
            rollup(steady, day, operational=DAY)
        if n % 30 == 0:
            rollup(imported, day, major_outage=DAY)
    components = [steady, imported]
    totals = monthly_totals(components, months=12, now=now, zone=page.zone)
    exact = monthly_uptime(components, months=12, now=now, zone=page.zone)
    for component in components:
        for summed, month in zip(totals[component.pk], exact[component.pk], strict=True):
            assert summed.month == month.month
            assert summed.has_data == month.has_data
            assert summed.worst_status == month.worst_status
            if month.uptime_percent is None:
                assert summed.uptime_percent is None
            else:
                assert summed.uptime_percent == pytest.approx(month.uptime_percent)
    # Today's live time in the partial outage counts in this month.
    assert totals[steady.pk][-1].seconds[ComponentStatus.PARTIAL_OUTAGE] >= 7000


def test_a_component_created_mid_month_has_no_data_before(page):
    now = datetime(2025, 6, 20, 10, tzinfo=UTC)
    component = ComponentFactory()
    type(component).objects.filter(pk=component.pk).update(
        created_at=datetime(2025, 6, 10, 8, tzinfo=UTC), uptime_accounted_until=now
    )
    component.refresh_from_db()
    for n in range(5):  # rows before the component existed (imported) are not shown
        rollup(component, date(2025, 6, 5 + n), major_outage=DAY)
    for n in range(10, 20):
        rollup(component, date(2025, 6, n), operational=DAY)
    months = monthly_uptime([component], months=12, now=now, zone=page.zone)[component.pk]
    june = months[-1]
    # Today (the 20th) has no row yet and nothing spent since the mark: no data either.
    assert [d.day.day for d in june.days if d.has_data] == list(range(10, 20))
    assert june.uptime_percent == 100
    assert not any(m.has_data for m in months[:-1])


def test_month_boundaries_follow_the_pages_time_zone(page):
    set_page(time_zone="Pacific/Auckland")
    zone = ZoneInfo("Pacific/Auckland")
    # 2025-03-31 13:00 UTC is already April 1st in Auckland.
    now = datetime(2025, 3, 31, 13, tzinfo=UTC)
    component = ComponentFactory()
    backdate(component, days=60, now=now)
    months = monthly_uptime([component], months=12, now=now, zone=zone)[component.pk]
    assert months[-1].month == date(2025, 4, 1)
    assert months[0].month == date(2024, 5, 1)


# The pages


@pytest.fixture
def components(page):
    now = timezone.now()
    api = ComponentFactory(name="API")
    web = ComponentFactory(name="=HYPERLINK(evil)")
    hidden = ComponentFactory(name="Secret DB", internal=True)
    group = ComponentGroup.objects.create(name="Ops", internal=True)
    grouped = ComponentFactory(name="Grouped secret", group=group)
    quiet = ComponentFactory(name="Not showcased", showcase=False)
    for component in (api, web, hidden, grouped, quiet):
        backdate(component, days=120, now=now)
        rollup(component, now.astimezone(page.zone).date() - timedelta(days=3), major_outage=DAY)
    return {"api": api, "web": web, "hidden": hidden, "grouped": grouped, "quiet": quiet}


def test_the_overview_lists_showcased_public_components_with_links(client, components):
    html = client.get("/uptime/").content.decode()
    assert "API" in html and "=HYPERLINK(evil)" in html
    assert "Secret DB" not in html and "Grouped secret" not in html
    assert "Not showcased" not in html
    assert f'href="/uptime/{components["api"].public_id}/"' in html
    assert html.count('<ol class="month-strip"') == 2
    assert html.count("<li class=") >= 24


def test_a_components_page_has_twelve_calendars_and_its_incidents(client, components):
    api = components["api"]
    incident = open_incident(name="API down", affected_components=[api])
    secret = open_incident(name="Hush", affected_components=[api], internal=True)
    response = client.get(f"/uptime/{api.public_id}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<table class="calendar">') == 12
    assert html.count('<th scope="col">') == 12 * 7
    assert f'href="/incidents/{incident.public_id}/"' in html
    assert secret.public_id not in html and "Hush" not in html
    assert "Worst status: Major outage." in html  # the outage day's words
    assert 'tabindex="0"' in html


def test_internal_and_unknown_components_have_no_page(client, components):
    for name in ("hidden", "grouped", "quiet"):
        assert client.get(f"/uptime/{components[name].public_id}/").status_code == 404
    assert client.get("/uptime/nope/").status_code == 404
    assert client.get("/uptime/%00x/").status_code == 404


def test_the_history_is_a_404_when_turned_off(client, components):
    assert client.get("/uptime/").status_code == 200
    set_page(show_uptime_history=False)
    assert client.get("/uptime/").status_code == 404
    assert client.get(f"/uptime/{components['api'].public_id}/").status_code == 404
    assert "/uptime/" not in keys.public_keys(everything=True)
    assert 'href="/uptime/"' not in client.get("/").content.decode()


def test_the_status_page_links_to_the_history(client, components):
    assert 'href="/uptime/"' in client.get("/").content.decode()
    assert "/uptime/" in keys.public_keys()
    everything = keys.public_keys(everything=True)
    assert f"/uptime/{components['api'].public_id}/" in everything
    assert f"/uptime/{components['quiet'].public_id}/" not in everything
    assert f"/uptime/{components['hidden'].public_id}/" not in everything


def test_the_history_speaks_german_under_its_prefix(client, components):
    set_page(enabled_languages=["en", "de"])
    response = client.get("/de/uptime/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="de">' in html
    assert "Verfügbarkeitsverlauf" in html
    detail = client.get(f"/de/uptime/{components['api'].public_id}/").content.decode()
    assert '<abbr title="Montag">Mo</abbr>' in detail
    assert "/de/uptime/" in keys.public_keys()


def test_a_snapshot_is_served_without_a_query(client, components, django_assert_num_queries):
    client.get("/uptime/")
    client.get(f"/uptime/{components['api'].public_id}/")
    with django_assert_num_queries(0):
        assert client.get("/uptime/").status_code == 200
        assert client.get(f"/uptime/{components['api'].public_id}/").status_code == 200


def test_rendering_costs_a_bounded_number_of_queries(
    client, components, django_assert_max_num_queries
):
    for n in range(20):
        component = ComponentFactory(name=f"More {n}")
        rollup(component, date.today() - timedelta(days=40), partial_outage=600)
    with django_assert_max_num_queries(12):
        assert client.get("/uptime/").status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(f"/uptime/{components['api'].public_id}/").status_code == 200


# JSON and CSV


def test_the_json_has_the_management_apis_uptime_shape(client, components):
    api = components["api"]
    open_incident(name="API down", affected_components=[api])
    body = client.get(f"/api/v2/components/{api.public_id}/uptime.json").json()
    types = {
        "id": str,
        "name": str,
        "range_start": str,
        "range_end": str,
        "uptime_percentage": float,
        "major_outage": int,
        "partial_outage": int,
        "warnings": list,
        "related_events": list,
    }
    assert set(body) == set(types) == set(schemas.Uptime.model_fields)
    for name, kind in types.items():
        assert isinstance(body[name], kind), name
    schemas.Uptime.model_validate(body)  # the management API's response model, extras refused
    assert body["major_outage"] == DAY
    assert len(body["related_events"]) == 1
    today = timezone.now().astimezone(PageSettings.load().zone).date()
    assert body["range_end"] == today.isoformat()
    assert body["range_start"] == (today - timedelta(days=89)).isoformat()


@pytest.mark.parametrize(
    "query",
    [
        "start=yesterday",
        "start=2025-13-01",
        "end=2025-02-30",
        "start=2025-06-10&end=2025-06-01",
        "start=2025-06-01%0A",
        "start=2025-06-01%00",
        "end=" + "9" * 5000,
        "end=1969-12-31",
    ],
)
def test_bad_ranges_are_a_400_with_a_json_error(client, components, query):
    for suffix in ("json", "csv"):
        response = client.get(
            f"/api/v2/components/{components['api'].public_id}/uptime.{suffix}?{query}"
        )
        assert response.status_code == 400, (query, suffix)
        assert response.json()["error"]


def test_internal_components_have_no_json_or_csv(client, components):
    for name in ("hidden", "grouped"):
        for suffix in ("json", "csv"):
            path = f"/api/v2/components/{components[name].public_id}/uptime.{suffix}"
            response = client.get(path)
            assert response.status_code == 404
            assert response.json()["error"]
            assert response["Cache-Control"] == "public, max-age=30"
    assert client.get("/de/api/v2/components/x/uptime.json").status_code == 404


def test_the_csv_has_a_row_per_day_and_neutralises_formulas(client, components, page):
    web = components["web"]
    today = timezone.now().astimezone(page.zone).date()
    start = today - timedelta(days=9)
    response = client.get(
        f"/api/v2/components/{web.public_id}/uptime.csv?start={start}&end={today}"
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="uptime-{web.public_id}.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "component",
        "date",
        "uptime_percent",
        "operational_seconds",
        "degraded_performance_seconds",
        "partial_outage_seconds",
        "major_outage_seconds",
        "under_maintenance_seconds",
        "worst_status",
    ]
    days = rows[1:]
    assert [row[1] for row in days] == [(start + timedelta(days=n)).isoformat() for n in range(10)]
    assert {row[0] for row in days} == {"'=HYPERLINK(evil)"}
    outage = next(row for row in days if row[1] == (today - timedelta(days=3)).isoformat())
    assert outage[2] == "0.0000" and outage[6] == str(DAY) and outage[8] == "major_outage"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(value):
    assert csv_safe(value) == "'" + value
    assert csv_safe("API") == "API"


def test_json_and_csv_are_cached_per_generation(client, components, django_assert_max_num_queries):
    path = f"/api/v2/components/{components['api'].public_id}/uptime.json"
    client.get(path)
    with django_assert_max_num_queries(2):  # the component's row, the generation
        assert client.get(path).status_code == 200
    cache.clear()


def test_the_days_helper_sees_maintenance_as_uncounted():
    day = DayUptime(date(2025, 1, 1), {ComponentStatus.UNDER_MAINTENANCE: DAY})
    assert day.has_data and day.uptime_percent is None


# A page of 1,000 components, a year each (the page's budget: bench/uptime.py)


@pytest.fixture
def thousand_components(page):
    """1,000 showcased components with 365 days of rollups each (bulk_create)."""
    return bulk_uptime_history(1000, days=365, now=timezone.now(), zone=page.zone)


def test_a_thousand_components_render_in_a_bounded_number_of_queries(
    thousand_components, client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(8):
        response = client.get("/uptime/")
    html = response.content.decode()
    assert html.count('<ol class="month-strip"') == 1000
    with django_assert_max_num_queries(12):
        assert client.get(f"/uptime/{thousand_components[0].public_id}/").status_code == 200


def test_each_language_reuses_the_generations_figures(client, components):
    set_page(enabled_languages=["en", "de", "fr"])
    assert client.get("/uptime/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/de/uptime/").status_code == 200
        assert client.get("/fr/uptime/").status_code == 200
    assert not [q for q in queries.captured_queries if "dailyuptime" in q["sql"]]
