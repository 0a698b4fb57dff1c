"""Internal components, groups, incidents and maintenances never reach a public output."""

from datetime import timedelta

import pytest
from django.utils import timezone

from components.models import Component, ComponentStatus
from components.reports.models import ReportCount
from incidents.models import Incident
from incidents.notify.models import Audience, NotificationEvent
from incidents.notify.selectors import audience, event_is_internal
from incidents.series.services import series_create
from statuspage.public import publish
from statuspage.public.snapshots import keys
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import SubscriberFactory, open_incident, schedule_maintenance
from tests.statuspage.test_publish import s3, s3_endpoint  # noqa: F401 - fixtures
from tests.statuspage.test_static_export import export
from tests.statuspage.test_visitor_reports import SAME_ORIGIN

# Distinctive words that appear nowhere in Beacon's own templates.
SECRET_NAMES = [
    "Zebracorn",
    "Quokkagroup",
    "Marmotcache",
    "Walrusoutage",
    "Narwhalupgrade",
    "Okapipatching",
]


@pytest.fixture
def world(page):
    """A public page with one internal item of each kind, and a public incident that names an
    internal component (in major outage: the page must not say so)."""
    public_group = ComponentGroupFactory(name="Platform")
    api = ComponentFactory(name="Sunlit API", group=public_group)
    website = ComponentFactory(name="Website")
    secret = ComponentFactory(name="Zebracorn", internal=True)
    internal_group = ComponentGroupFactory(name="Quokkagroup", internal=True)
    grouped = ComponentFactory(name="Marmotcache", group=internal_group)
    public_incident = open_incident(
        name="Public hiccup",
        body="Some requests fail.",
        component_statuses={
            api: ComponentStatus.DEGRADED_PERFORMANCE,
            secret: ComponentStatus.MAJOR_OUTAGE,
            grouped: ComponentStatus.MAJOR_OUTAGE,
        },
    )
    internal_incident = open_incident(
        name="Walrusoutage",
        body="Walrusoutage body",
        internal=True,
        component_statuses={website: ComponentStatus.PARTIAL_OUTAGE},
    )
    maintenance = schedule_maintenance(
        name="Narwhalupgrade", body="Narwhalupgrade body", internal=True
    )
    series = series_create(
        name="Okapipatching",
        body="Okapipatching body",
        rule="FREQ=WEEKLY",
        dtstart=timezone.now() + timedelta(days=1),
        duration=timedelta(hours=1),
        components=[website],
        internal=True,
    )
    occurrences = list(Incident.objects.filter(series=series))
    assert occurrences
    return {
        "public": [api, website],
        "internal_components": [secret, grouped],
        "internal_group": internal_group,
        "public_incident": public_incident,
        "internal_incidents": [internal_incident, maintenance, *occurrences],
        "internal_series": series,
    }


def secrets_of(world) -> list[str]:
    """Every name and id of an internal item: none may appear in a public output."""
    return [
        *SECRET_NAMES,
        *(c.public_id for c in world["internal_components"]),
        world["internal_group"].public_id,
        *(i.public_id for i in world["internal_incidents"]),
        world["internal_series"].public_id,
    ]


def assert_hidden(text: str, world, where: str) -> None:
    assert "internal-mark" not in text, where
    for secret in secrets_of(world):
        assert secret not in text, f"{secret} in {where}"


def every_public_key(world) -> list[str]:
    public_keys = keys.public_keys(everything=True)
    # Every public URL name is among them (none added since this test was written is missed).
    names = {keys.url_match(key.partition("?")[0])[0] for key in public_keys}
    assert names == set(keys.PUBLIC_URLS)
    return public_keys


@pytest.mark.django_db
def test_no_public_output_names_an_internal_item(world, client):
    public_keys = every_public_key(world)
    assert len(public_keys) > len(keys.PUBLIC_URLS)
    for key in public_keys:
        response = client.get(key)
        assert response.status_code == 200, key
        assert_hidden(response.content.decode(), world, key)
    assert world["public_incident"].get_absolute_url() in public_keys


@pytest.mark.django_db
def test_internal_items_have_no_public_urls(world, client):
    for incident in world["internal_incidents"]:
        assert client.get(incident.get_absolute_url()).status_code == 404
    for component in world["internal_components"]:
        for name in keys.COMPONENT_URL_NAMES:
            url = keys.reverse(name, args=[component.public_id])
            assert client.get(url).status_code == 404, url
    known = keys.read_known_outputs()
    assert not known.incident_codes & {i.public_id for i in world["internal_incidents"]}
    assert not known.component_ids & {c.public_id for c in world["internal_components"]}


@pytest.mark.django_db
def test_the_status_counts_only_public_components_and_incidents(world, client):
    summary = client.get("/api/v2/summary.json").json()
    # Only the public API is degraded: the internal major outages and the internal incident's
    # partial outage of the website do not enter.
    assert summary["status"]["indicator"] == "minor"
    assert [i["name"] for i in summary["incidents"]] == ["Public hiccup"]
    assert summary["scheduled_maintenances"] == []
    names = {c["name"] for c in summary["components"]}
    assert names == {"Platform", "Sunlit API", "Website"}
    (incident,) = summary["incidents"]
    assert {c["name"] for c in incident["components"]} == {"Sunlit API"}


@pytest.mark.django_db
def test_history_counts_only_public_incidents(world, client):
    for number in range(30):
        open_incident(name=f"Walrusoutage {number}", internal=True)
    assert keys.read_known_outputs().history_pages == 1
    assert client.get("/history/?page=2").status_code == 404


@pytest.mark.django_db
def test_the_static_export_holds_no_internal_item(world, tmp_path):
    target = tmp_path / "copy"
    export(target)
    files = [path for path in target.rglob("*") if path.is_file()]
    assert any(path.name == "summary.json" for path in files)
    for path in files:
        if path.suffix in {".html", ".json", ".atom", ".rss", ".ics", ".js", ".svg", ".txt"}:
            assert_hidden(path.read_text(), world, str(path.relative_to(target)))
    assert_hidden(" ".join(str(path) for path in files), world, "file names")


@pytest.mark.django_db
def test_the_bucket_holds_no_internal_item(world, s3):  # noqa: F811 - the fixture
    publish.publish_site_to_bucket()
    listed = s3.list_objects_v2(Bucket=s3.beacon_bucket).get("Contents", [])
    assert listed
    for item in listed:
        assert_hidden(item["Key"], world, "object names")
        body = s3.get_object(Bucket=s3.beacon_bucket, Key=item["Key"])["Body"].read()
        if not item["Key"].endswith((".png", ".gz", ".br")):
            assert_hidden(body.decode(), world, item["Key"])


@pytest.mark.django_db
def test_visitors_cannot_report_an_internal_component(world, client):
    assert client.get("/api/v2/summary.json").status_code == 200
    for component in world["internal_components"]:
        response = client.post("/reports/", {"components": [component.public_id]}, **SAME_ORIGIN)
        assert response.status_code == 400
    assert not ReportCount.objects.exists()


@pytest.mark.django_db
def test_the_subscribe_form_offers_only_public_components(world, client):
    body = client.get("/subscribe/").content.decode()
    assert "Sunlit API" in body
    assert_hidden(body, world, "/subscribe/")
    secret = world["internal_components"][0]
    response = client.post(
        "/subscribe/", {"email": "someone@example.test", "components": [secret.pk]}
    )
    assert secret.subscribers.count() == 0
    assert response.status_code in (200, 400)


@pytest.mark.django_db
def test_only_internal_subscribers_hear_of_internal_events(world):
    public = SubscriberFactory(email="public@example.test")
    internal = SubscriberFactory(email="staff@example.test", audience=Audience.INTERNAL)
    internal_incident, maintenance, *_occurrences = world["internal_incidents"]
    for incident in (internal_incident, maintenance, world["public_incident"]):
        event = NotificationEvent.objects.filter(incident=incident).first()
        assert event is not None
        heard = set(audience(event.component_ids, internal=event_is_internal(event)))
        expected = {internal} if incident.internal else {public, internal}
        assert heard == expected, incident.name
    secret = world["internal_components"][0]
    change_event = NotificationEvent(status_change=secret.status_changes.latest("at"))
    assert event_is_internal(change_event)
    assert not Component.objects.public().filter(pk=secret.pk).exists()
