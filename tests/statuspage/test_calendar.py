"""The maintenance calendar as a calendar app subscribed to /maintenance.ics reads it."""

from datetime import UTC, timedelta

import pytest
from django.urls import reverse
from icalendar import Calendar

from incidents.models import IncidentStatus
from incidents.services import incident_post_update, incident_resolve
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db


def fetch(client, **headers):
    response = client.get("/maintenance.ics", **headers)
    assert response.status_code == 200
    return response


def events(client) -> dict[str, dict]:
    """Each VEVENT by its SUMMARY."""
    calendar = Calendar.from_ical(fetch(client).content)
    return {str(event["SUMMARY"]): event for event in calendar.walk("VEVENT")}


def test_calendar_holds_upcoming_running_and_recent_maintenances_only(client, page):
    schedule_maintenance(name="Upcoming")
    running = schedule_maintenance(name="Running", starts_in=-timedelta(minutes=30))
    incident_post_update(incident=running, status=IncidentStatus.IN_PROGRESS, body="Started.")
    verifying = schedule_maintenance(name="Verifying", starts_in=-timedelta(hours=2))
    incident_post_update(incident=verifying, status=IncidentStatus.VERIFYING, body="Checking.")
    recent = schedule_maintenance(name="Recent", starts_in=-timedelta(days=10))
    incident_post_update(
        incident=recent, status=IncidentStatus.COMPLETED, display_at=recent.scheduled_until
    )
    old = schedule_maintenance(name="Old", starts_in=-timedelta(days=120))
    incident_post_update(
        incident=old, status=IncidentStatus.COMPLETED, display_at=old.scheduled_until
    )
    open_incident(name="An incident")

    response = fetch(client)

    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(response.content)
    assert str(calendar["X-WR-CALNAME"]) == "Acme maintenance"
    assert str(calendar["VERSION"]) == "2.0"
    assert calendar["PRODID"]
    summaries = [str(event["SUMMARY"]) for event in calendar.walk("VEVENT")]
    assert summaries == ["Recent", "Verifying", "Running", "Upcoming"]
    assert all(str(event["STATUS"]) == "CONFIRMED" for event in calendar.walk("VEVENT"))


def test_event_window_is_the_maintenance_window_in_utc(client, page):
    maintenance = schedule_maintenance(
        name="Database upgrade", starts_in=timedelta(days=2), lasts=timedelta(hours=3)
    )

    event = events(client)["Database upgrade"]

    start, end = event["DTSTART"].dt, event["DTEND"].dt
    assert start.utcoffset() == end.utcoffset() == timedelta(0)
    assert start == maintenance.scheduled_for.replace(microsecond=0)
    assert end == maintenance.scheduled_until.replace(microsecond=0)
    assert f"DTSTART:{maintenance.scheduled_for.astimezone(UTC):%Y%m%dT%H%M%S}Z" in (
        fetch(client).content.decode()
    )


def test_event_describes_the_maintenance_in_plain_text_with_its_link(client, page):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    maintenance = schedule_maintenance(
        name="Database upgrade",
        body="We will **upgrade** the <b>primary</b> database.\n\nSee [notes](https://x.test).",
        affected_components=[api, web],
    )
    url = f"https://status.acme.test/incidents/{maintenance.public_id}/"

    event = events(client)["Database upgrade"]

    description = str(event["DESCRIPTION"])
    assert "<" not in description
    assert "&" not in description
    assert "We will upgrade the primary database." in description
    assert "See notes." in description
    assert "API, Web" in description
    assert description.endswith(url)
    assert str(event["URL"]) == url
    assert str(event["UID"]) == f"{maintenance.public_id}@status.acme.test"


def test_description_follows_the_latest_update(client, page):
    maintenance = schedule_maintenance(name="Database upgrade", starts_in=-timedelta(minutes=5))
    incident_post_update(incident=maintenance, status="in_progress", body="Now *underway*.")

    description = str(events(client)["Database upgrade"]["DESCRIPTION"])

    assert description.startswith("Now underway.")
    assert "We will upgrade" not in description


def test_uid_is_stable_and_sequence_grows_with_each_update(
    client, page, django_capture_on_commit_callbacks
):
    maintenance = schedule_maintenance(name="Database upgrade", starts_in=-timedelta(minutes=5))
    first = events(client)["Database upgrade"]
    assert events(client)["Database upgrade"]["UID"] == first["UID"]

    with django_capture_on_commit_callbacks(execute=True):
        incident_post_update(incident=maintenance, status="in_progress", body="Started.")
    second = events(client)["Database upgrade"]
    with django_capture_on_commit_callbacks(execute=True):
        incident_post_update(incident=maintenance, status="verifying", body="Checking.")
    third = events(client)["Database upgrade"]

    assert first["UID"] == second["UID"] == third["UID"]
    assert first["SEQUENCE"] < second["SEQUENCE"] < third["SEQUENCE"]
    maintenance.refresh_from_db()
    assert third["LAST-MODIFIED"].dt == maintenance.updated_at.replace(microsecond=0)
    assert third["DTSTAMP"].dt == maintenance.updated_at.replace(microsecond=0)


def test_completed_maintenance_stays_with_its_uid(client, page, django_capture_on_commit_callbacks):
    maintenance = schedule_maintenance(name="Database upgrade", starts_in=-timedelta(minutes=5))
    before = events(client)["Database upgrade"]

    with django_capture_on_commit_callbacks(execute=True):
        incident_resolve(incident=maintenance)

    after = events(client)["Database upgrade"]
    assert after["UID"] == before["UID"]
    assert after["SEQUENCE"] > before["SEQUENCE"]


def test_uid_uses_the_request_host_without_a_page_url(client, page):
    page.url = ""
    page.save()
    maintenance = schedule_maintenance(name="Database upgrade")

    event = events(client)["Database upgrade"]

    assert str(event["UID"]) == f"{maintenance.public_id}@testserver"
    assert str(event["URL"]) == f"http://testserver/incidents/{maintenance.public_id}/"


def test_calendar_revalidates_with_etag_and_costs_no_query_when_warm(
    client, page, django_assert_num_queries
):
    schedule_maintenance(name="Database upgrade")
    first = fetch(client)

    with django_assert_num_queries(0):
        again = fetch(client)
        not_modified = client.get("/maintenance.ics", HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.content == first.content
    assert not_modified.status_code == 304
    assert not_modified["ETag"] == first["ETag"]
    assert first["Access-Control-Allow-Origin"] == "*"


def test_calendar_url_is_named(page):
    assert reverse("maintenance-ics") == "/maintenance.ics"
