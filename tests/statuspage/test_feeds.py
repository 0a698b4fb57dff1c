"""The history feeds as a feed reader, and a parser written against Statuspage, reads them."""

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import feedparser
import pytest
from django.urls import reverse
from django.utils import timezone

from components.models import ComponentStatus
from incidents.models import IncidentStatus
from incidents.services import incident_post_update, incident_resolve, postmortem_publish
from statuspage.models import PageSettings
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "https://status.acme.test"


def fetch(client, url, **headers):
    response = client.get(url, **headers)
    assert response.status_code == 200, response.content
    return response


def parsed(client, url):
    feed = feedparser.parse(fetch(client, url).content)
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


def atom_entries(client, url="/history.atom") -> list[dict]:
    """The entries as the raw XML has them (feedparser would re-sanitise the HTML)."""
    root = ET.fromstring(fetch(client, url).content)
    return [
        {
            "id": entry.findtext(f"{ATOM}id"),
            "title": entry.findtext(f"{ATOM}title"),
            "link": entry.find(f"{ATOM}link").get("href"),
            "published": entry.findtext(f"{ATOM}published"),
            "updated": entry.findtext(f"{ATOM}updated"),
            "content": entry.findtext(f"{ATOM}content"),
        }
        for entry in root.iter(f"{ATOM}entry")
    ]


def rss_items(client, url="/history.rss") -> list[dict]:
    channel = ET.fromstring(fetch(client, url).content).find("channel")
    return [
        {child.tag: child.text for child in item} | {"guid_attrs": item.find("guid").attrib}
        for item in channel.iter("item")
    ]


def paragraph(when: str, label: str, body: str) -> str:
    month, day, time, zone = when.split()
    return (
        f"<p><small>{month} <var data-var='date'>{day:>2}</var>, "
        f"<var data-var='time'>{time}</var> {zone}</small><br>"
        f"<strong>{label}</strong> - {body}</p>"
    )


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


# Structure


def test_atom_feed_has_statuspage_structure(client, page):
    incident = open_incident(name="API errors")

    response = fetch(client, "/history.atom")

    assert response["Content-Type"] == "application/atom+xml; charset=utf-8"
    root = ET.fromstring(response.content)
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}id") == "tag:status.acme.test,2005:/history"
    links = {link.get("rel"): link.attrib for link in root.findall(f"{ATOM}link")}
    assert links["alternate"] == {"rel": "alternate", "type": "text/html", "href": BASE}
    assert links["self"] == {
        "rel": "self",
        "type": "application/atom+xml",
        "href": f"{BASE}/history.atom",
    }
    assert root.findtext(f"{ATOM}title") == "Acme Status - Incident History"
    assert root.findtext(f"{ATOM}author/{ATOM}name") == "Acme"
    [entry] = atom_entries(client)
    assert entry["id"] == f"tag:status.acme.test,2005:Incident/{incident.public_id}"
    assert entry["link"] == f"{BASE}/incidents/{incident.public_id}/"
    assert entry["title"] == "API errors"
    assert entry["content"].startswith("<p><small>")
    assert "<strong>Investigating</strong> - We are investigating.</p>" in entry["content"]


def test_feeds_parse_cleanly_in_a_feed_reader(client, page):
    component = ComponentFactory()
    incident = open_incident(name="API errors", affected_components=[component])
    schedule_maintenance(name="Database upgrade", affected_components=[component])

    atom = parsed(client, "/history.atom")
    rss = parsed(client, "/history.rss")

    assert atom.version == "atom10"
    assert rss.version == "rss20"
    assert atom.feed.title == rss.feed.title == "Acme Status - Incident History"
    assert atom.feed.link == rss.feed.link == BASE
    assert [e.title for e in atom.entries] == ["Database upgrade", "API errors"]
    assert [e.title for e in rss.entries] == ["Database upgrade", "API errors"]
    assert atom.entries[1].id == f"tag:status.acme.test,2005:Incident/{incident.public_id}"
    assert rss.entries[1].id == rss.entries[1].link == f"{BASE}/incidents/{incident.public_id}/"
    for url in (
        f"/components/{component.public_id}/history.atom",
        f"/components/{component.public_id}/history.rss",
    ):
        assert len(parsed(client, url).entries) == 2


def test_rss_items_carry_the_same_html_dates_and_permalink(client, page):
    incident = open_incident(name="API errors", started_at=at(18, 17, 5))

    [item] = rss_items(client)
    [entry] = atom_entries(client)

    url = f"{BASE}/incidents/{incident.public_id}/"
    assert item["title"] == "API errors"
    assert item["link"] == item["guid"] == url
    assert item["guid_attrs"] == {"isPermaLink": "true"}
    assert item["description"] == entry["content"]
    assert parsedate_to_datetime(item["pubDate"]) == at(18, 17, 5)
    assert fetch(client, "/history.rss")["Content-Type"] == "application/rss+xml; charset=utf-8"


def test_entries_are_newest_first_by_when_they_were_published(client, page):
    now = timezone.now()
    oldest = open_incident(name="Oldest", started_at=now - timedelta(hours=5))
    middle = open_incident(name="Middle", started_at=now - timedelta(hours=3))
    newest = schedule_maintenance(name="Newest", created_at=now - timedelta(hours=1))
    incident_post_update(incident=oldest, status=IncidentStatus.IDENTIFIED, body="Found it.")

    entries = atom_entries(client)

    assert [e["title"] for e in entries] == ["Newest", "Middle", "Oldest"]
    assert entries[0]["id"].endswith(f"Incident/{newest.public_id}")
    assert entries[1]["id"].endswith(f"Incident/{middle.public_id}")
    oldest.refresh_from_db()
    assert entries[2]["published"] == f"{oldest.created_at:%Y-%m-%dT%H:%M:%SZ}"
    assert entries[2]["updated"] == f"{oldest.updated_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def test_feed_holds_the_50_newest(client, page):
    now = timezone.now()
    for n in range(52):
        open_incident(name=f"Incident {n}", started_at=now - timedelta(minutes=60 - n))

    titles = [e["title"] for e in atom_entries(client)]

    assert len(titles) == 50
    assert titles[0] == "Incident 51"
    assert titles[-1] == "Incident 2"


# Entry content


def test_content_lists_every_update_newest_first_with_statuspage_labels(client, page):
    incident = open_incident(body="Looking into errors.", started_at=at(18, 17, 5))
    incident_post_update(
        incident=incident, status="investigating", body="Still looking.", display_at=at(18, 17, 20)
    )
    incident_post_update(
        incident=incident, status="identified", body="A bad deploy.", display_at=at(18, 17, 48)
    )
    incident_post_update(
        incident=incident, status="monitoring", body="Rolled back.", display_at=at(18, 18, 4)
    )
    incident_resolve(incident=incident, body="All good.")
    incident.updates.filter(status="resolved").update(display_at=at(18, 18, 9))

    [entry] = atom_entries(client)

    assert entry["content"] == "".join(
        [
            paragraph("Nov 18 18:09 UTC", "Resolved", "All good."),
            paragraph("Nov 18 18:04 UTC", "Monitoring", "Rolled back."),
            paragraph("Nov 18 17:48 UTC", "Identified", "A bad deploy."),
            paragraph("Nov 18 17:20 UTC", "Update", "Still looking."),
            paragraph("Nov 18 17:05 UTC", "Investigating", "Looking into errors."),
        ]
    )


def test_times_are_shown_in_the_page_time_zone_with_a_padded_day(client, page):
    page.time_zone = "America/Chicago"
    page.save()
    open_incident(body="Looking.", started_at=at(6, 17, 5, month=6))

    [entry] = atom_entries(client)

    assert entry["content"] == paragraph("Jun 6 12:05 CDT", "Investigating", "Looking.")
    assert "<var data-var='date'> 6</var>" in entry["content"]


def test_maintenance_entries_use_maintenance_labels(client, page):
    maintenance = schedule_maintenance(starts_in=-timedelta(minutes=30), body="Planned.")
    incident_post_update(incident=maintenance, status="in_progress", body="Started.")
    incident_post_update(incident=maintenance, status="verifying", body="Checking.")
    incident_resolve(incident=maintenance)

    [entry] = atom_entries(client)

    labels = [part.split("</strong>")[0] for part in entry["content"].split("<strong>")[1:]]
    assert labels == ["Completed", "Verifying", "In progress", "Scheduled"]


def test_published_postmortem_comes_first(client, page):
    incident = open_incident(body="Looking.")
    incident_resolve(incident=incident)
    postmortem_publish(incident=incident, body="The **root cause** was DNS.")

    [entry] = atom_entries(client)

    assert entry["content"].startswith("<p><small>")
    first = entry["content"].split("</p>")[0]
    assert "<strong>Postmortem</strong> - The <strong>root cause</strong> was DNS." in first
    assert entry["content"].count("<p><small>") == 3


def test_markdown_paragraphs_stay_inside_the_update_paragraph(client, page):
    open_incident(body="First line.\n\nSee [the docs](https://docs.acme.test).")

    [entry] = atom_entries(client)

    assert entry["content"].endswith(
        '- First line.<br /><br />See <a href="https://docs.acme.test" '
        'rel="noopener noreferrer nofollow">the docs</a>.</p>'
    )
    assert entry["content"].count("<p>") == 1


def test_bodies_are_sanitised(client, page):
    incident = open_incident(body="Hi <script>alert(1)</script> there")
    incident_post_update(
        incident=incident, status="identified", body="<img src=x onerror=alert(1)> Found it."
    )

    [entry] = atom_entries(client)
    [item] = rss_items(client)

    for html in (entry["content"], item["description"]):
        assert "<script" not in html
        assert "alert(1)" not in html
        assert "onerror" not in html
        assert "<img" not in html
        assert "<strong>Identified</strong> - Found it." in html


# Links


def test_links_fall_back_to_the_request_host_without_a_page_url(client, page):
    page.url = ""
    page.save()
    incident = open_incident()

    feed = parsed(client, "/history.atom")
    [item] = rss_items(client)

    assert feed.feed.id == "tag:testserver,2005:/history"
    assert feed.feed.link == "http://testserver"
    assert feed.entries[0].link == f"http://testserver/incidents/{incident.public_id}/"
    assert feed.entries[0].id == f"tag:testserver,2005:Incident/{incident.public_id}"
    assert item["guid"] == f"http://testserver/incidents/{incident.public_id}/"


# Component feeds


def test_component_feed_holds_only_incidents_affecting_it(client, page):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    open_incident(name="API down", component_statuses={api: ComponentStatus.MAJOR_OUTAGE})
    open_incident(name="Web slow", affected_components=[web])
    schedule_maintenance(name="API upgrade", affected_components=[api])

    atom = parsed(client, f"/components/{api.public_id}/history.atom")
    rss = parsed(client, f"/components/{api.public_id}/history.rss")

    assert [e.title for e in atom.entries] == ["API upgrade", "API down"]
    assert [e.title for e in rss.entries] == ["API upgrade", "API down"]
    assert atom.feed.title == "Acme Status - API Incident History"
    assert atom.feed.id == f"tag:status.acme.test,2005:/components/{api.public_id}/history"
    self_link = next(link for link in atom.feed.links if link.rel == "self")
    assert self_link.href == f"{BASE}/components/{api.public_id}/history.atom"


def test_feeds_say_they_changed_when_their_newest_entry_did_never_when_rendered(client, page):
    api, web = ComponentFactory(name="API"), ComponentFactory(name="Web")
    incident = open_incident(name="Web slow", affected_components=[web])
    settings_changed = timezone.now() - timedelta(hours=1)
    PageSettings.objects.filter(pk=page.pk).update(updated_at=settings_changed)
    PageSettings.forget_cached()

    def updated(path):
        atom = parsed(client, f"{path}.atom").feed.updated_parsed
        rss = parsed(client, f"{path}.rss").feed.updated_parsed
        assert atom == rss
        return datetime(*atom[:6], tzinfo=UTC)

    def whole_seconds(moment):
        return moment.astimezone(UTC).replace(microsecond=0)

    incident.refresh_from_db()
    assert updated("/history") == whole_seconds(incident.updated_at)
    assert updated(f"/components/{web.public_id}/history") == whole_seconds(incident.updated_at)
    # Without entries, the page settings' last change: the same bytes at every render.
    assert updated(f"/components/{api.public_id}/history") == whole_seconds(settings_changed)


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_unknown_component_is_a_404_that_is_not_cached(
    client, page, fmt, django_capture_on_commit_callbacks
):
    url = f"/components/nosuchthing1/history.{fmt}"
    assert client.get(url).status_code == 404
    assert client.get(url).status_code == 404

    with django_capture_on_commit_callbacks(execute=True):  # the commit bumps the generation
        ComponentFactory(public_id="nosuchthing1")

    assert client.get(url).status_code == 200


# Cache and queries


def test_warm_read_costs_no_query_and_revalidates(client, page, django_assert_num_queries):
    component = ComponentFactory()
    open_incident(affected_components=[component])
    urls = [
        "/history.atom",
        "/history.rss",
        f"/components/{component.public_id}/history.atom",
        f"/components/{component.public_id}/history.rss",
    ]
    first = {url: fetch(client, url) for url in urls}

    with django_assert_num_queries(0):
        for url in urls:
            again = fetch(client, url)
            assert again.content == first[url].content
            assert again["ETag"] == first[url]["ETag"]
            assert again["Access-Control-Allow-Origin"] == "*"
            revalidated = client.get(url, HTTP_IF_NONE_MATCH=first[url]["ETag"])
            assert revalidated.status_code == 304


def test_a_new_update_appears_after_commit(client, page, django_capture_on_commit_callbacks):
    incident = open_incident()
    before = fetch(client, "/history.atom")

    with django_capture_on_commit_callbacks(execute=True):
        incident_post_update(incident=incident, status="identified", body="A bad deploy.")

    after = fetch(client, "/history.atom")
    assert after["ETag"] != before["ETag"]
    [entry] = atom_entries(client)
    assert "<strong>Identified</strong> - A bad deploy.</p>" in entry["content"].split("<p>")[1]


@pytest.mark.parametrize("n_incidents", [5, 60])
@pytest.mark.parametrize(
    "url", ["/history.atom", "/history.rss", "/components/{component}/history.atom"]
)
def test_queries_do_not_grow_with_the_number_of_incidents(
    client, page, django_assert_max_num_queries, n_incidents, url
):
    component = ComponentFactory()
    for n in range(n_incidents):
        incident = open_incident(
            name=f"Incident {n}", component_statuses={component: ComponentStatus.PARTIAL_OUTAGE}
        )
        incident_resolve(incident=incident)

    with django_assert_max_num_queries(5):
        fetch(client, url.format(component=component.public_id))


def test_feed_urls_are_named(page):
    assert reverse("history-atom") == "/history.atom"
    assert reverse("history-rss") == "/history.rss"
    assert reverse("component-history-atom", args=["abc"]) == "/components/abc/history.atom"
    assert reverse("component-history-rss", args=["abc"]) == "/components/abc/history.rss"
