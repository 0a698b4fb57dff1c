"""A structured postmortem on the public outputs: the incident page, API v1 and v2, the feeds."""

import json
import xml.etree.ElementTree as ET

import pytest

from incidents import services
from incidents.models import Incident
from incidents.notify.models import EventKind, NotificationEvent
from incidents.notify.webhook_bodies import statuspage_payload
from incidents.postmortems import postmortem_markdown
from tests.incidents.factories import full_postmortem, resolved_incident

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def published(page):
    incident = resolved_incident()
    postmortem = full_postmortem(incident, summary=f"Summary {HOSTILE}")
    services.postmortem_publish(incident=incident, structured=postmortem)
    return Incident.objects.get(pk=incident.pk), postmortem_markdown(postmortem)


def test_the_incident_page_escapes_every_section(client, published, django_assert_max_num_queries):
    incident, _ = published
    with django_assert_max_num_queries(12):
        html = client.get(incident.get_absolute_url()).text

    assert "<script>alert" not in html and "onerror" not in html
    assert "<h3>Root cause</h3>" in html and "<dt>Minutes of impact</dt><dd>42</dd>" in html
    assert "<dd>12.5%</dd>" in html


def test_api_v1_and_the_webhook_body_carry_the_composed_markdown(client, published, manage_api):
    incident, markdown = published

    v1 = manage_api("get", f"/incidents/{incident.public_id}").json()
    v1_postmortem = manage_api("get", f"/incidents/{incident.public_id}/postmortem").json()
    event = NotificationEvent.objects.get(kind=EventKind.POSTMORTEM_PUBLISHED)
    webhook = statuspage_payload(event)

    assert v1["postmortem_body"] == markdown
    assert v1_postmortem["body"] == markdown
    assert webhook["incident"]["postmortem_body"] == markdown


def test_api_v2_keeps_statuspages_keys_only(client, published):
    incident, _ = published

    v2 = json.loads(client.get("/api/v2/incidents.json").content)

    [shown] = [i for i in v2["incidents"] if i["id"] == incident.public_id]
    assert shown["status"] == "postmortem"
    assert not [key for key in shown if key.startswith("postmortem_")]


def test_the_feed_entry_carries_the_postmortem(client, published):
    incident, _ = published

    root = ET.fromstring(client.get("/history.atom").content)
    [entry] = root.findall(f"{ATOM}entry")
    content = entry.findtext(f"{ATOM}content")

    assert "<strong>Postmortem</strong>" in content and "A missing index." in content
    assert "<script" not in content and "onerror" not in content


def test_the_german_page_has_german_headings_and_figures(client, published):
    incident, _ = published

    response = client.get("/de" + incident.get_absolute_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h3>Ursache</h3>" in html and "<h3>Zeitleiste</h3>" in html
    assert "<dd>12,5\u00a0%</dd>" in html
