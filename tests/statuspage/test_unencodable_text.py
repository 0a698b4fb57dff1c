"""Text that no database, XML document or UTF-8 stream can carry: lone surrogates (which JSON
can spell as "\\ud800") and the noncharacters XML forbids."""

import json
import xml.etree.ElementTree as ET

import feedparser
import pytest

from incidents.models import Incident, IncidentUpdate
from tests.incidents.factories import open_incident

pytestmark = pytest.mark.django_db

SURROGATES = ["\\ud800", "\\udfff", "a\\udc80b", "\\ud83d"]  # as JSON escapes: lone halves


@pytest.mark.parametrize("escape", SURROGATES)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/incidents", '{"incident": {"name": "Down%s", "status": "investigating"}}'),
        (
            "post",
            "/incidents",
            '{"incident": {"name": "Down", "status": "investigating", "body": "x%s"}}',
        ),
        ("post", "/components", '{"component": {"name": "API%s"}}'),
        ("patch", "", '{"page": {"name": "Acme%s"}}'),
        ("post", "/incidents", '{"incident": {"name": "Down", "metadata": {"k%s": "v"}}}'),
    ],
)
def test_the_api_refuses_a_lone_surrogate_with_a_400_and_writes_nothing(
    manage_api, escape, method, path, body
):
    incidents_before = Incident.objects.count()

    response = manage_api(method, path, raw=body % escape)

    assert response.status_code == 400, response.content
    assert "surrogate" in response.json()["error"]
    assert Incident.objects.count() == incidents_before


@pytest.mark.parametrize("char", ["\ufffe", "\uffff", "\x0b", "\x1b", "\x7f\ufffe\x08"])
@pytest.mark.parametrize("url", ["/history.atom", "/history.rss"])
def test_feeds_stay_well_formed_xml_whatever_an_old_body_holds(client, page, char, url):
    incident = open_incident(name="API errors")
    IncidentUpdate.objects.filter(incident=incident).update(body=f"before{char}after")
    incident.postmortem_body = f"pm{char}"

    response = client.get(url)

    assert response.status_code == 200
    ET.fromstring(response.content)  # raises on a character XML cannot carry
    assert not feedparser.parse(response.content).bozo
    assert b"beforeafter" in response.content


def test_the_api_still_takes_characters_outside_the_basic_plane(manage_api):
    response = manage_api(
        "post",
        "/incidents",
        raw=json.dumps({"incident": {"name": "Down \U0001f525", "status": "investigating"}}),
    )
    assert response.status_code == 201, response.content
    assert Incident.objects.get().name == "Down \U0001f525"
