"""Status badges: shields.io-style SVG and endpoint JSON, for the page and each component."""

import json
import xml.etree.ElementTree as ET

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from components.models import ComponentStatus
from components.services import component_set_status
from statuspage.public.badges import BLUE, GREEN, ORANGE, RED, YELLOW, Badge, text_width
from tests.components.factories import ComponentFactory

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


def parse_svg(response) -> ET.Element:
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    return ET.fromstring(response.content)


def badge_texts(svg: ET.Element) -> list[str]:
    """The visible (not shadow) texts: label, then message."""
    return [t.text for t in svg.iter(f"{SVG}text") if t.get("aria-hidden") != "true"]


def message_fill(svg: ET.Element) -> str:
    return svg.findall(f"{SVG}g/{SVG}rect")[1].get("fill")


def svg_width(svg: ET.Element) -> int:
    return int(svg.get("width"))


@pytest.mark.parametrize(
    ("status", "message", "color"),
    [
        (ComponentStatus.OPERATIONAL, "operational", GREEN),
        (ComponentStatus.DEGRADED_PERFORMANCE, "degraded performance", YELLOW),
        (ComponentStatus.PARTIAL_OUTAGE, "partial outage", ORANGE),
        (ComponentStatus.MAJOR_OUTAGE, "major outage", RED),
        (ComponentStatus.UNDER_MAINTENANCE, "under maintenance", BLUE),
    ],
)
def test_a_component_badge_shows_its_name_status_and_colour(client, page, status, message, color):
    api = ComponentFactory(name="API", status=status)

    svg = parse_svg(client.get(f"/components/{api.public_id}/badge.svg"))

    assert badge_texts(svg) == ["API", message]
    assert message_fill(svg) == color
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == f"API: {message}"
    assert svg.find(f"{SVG}title").text == f"API: {message}"


@pytest.mark.parametrize(
    ("statuses", "message", "color"),
    [
        ([], "all systems operational", GREEN),
        (["operational", "operational"], "all systems operational", GREEN),
        (["operational", "degraded_performance"], "partially degraded service", YELLOW),
        (["operational", "partial_outage"], "minor service outage", YELLOW),
        (["operational", "operational", "major_outage"], "partial system outage", ORANGE),
        (["major_outage", "major_outage"], "major system outage", RED),
        (["operational", "under_maintenance"], "service under maintenance", BLUE),
    ],
)
def test_the_page_badge_shows_the_overall_status(client, page, statuses, message, color):
    for status in statuses:
        ComponentFactory(status=status)

    svg = parse_svg(client.get("/badge.svg"))

    assert badge_texts(svg) == ["Acme", message]
    assert message_fill(svg) == color
    assert svg.get("aria-label") == f"Acme: {message}"


def test_names_are_escaped_and_the_svg_stays_valid(client, page):
    page.name = 'Tom & Jerry\'s <"status">'
    page.save()
    api = ComponentFactory(name='<script>alert("x")</script> & co\x07')

    page_svg = client.get("/badge.svg")
    component_svg = client.get(f"/components/{api.public_id}/badge.svg")

    assert badge_texts(parse_svg(page_svg))[0] == 'Tom & Jerry\'s <"status">'
    assert b"<script" not in component_svg.content
    parsed = parse_svg(component_svg)
    assert badge_texts(parsed)[0] == '<script>alert("x")</script> & co'
    assert parsed.get("aria-label") == '<script>alert("x")</script> & co: operational'
    assert json.loads(client.get("/badge.json").content)["label"] == 'Tom & Jerry\'s <"status">'


def test_badges_grow_with_their_text(client, page):
    short = ComponentFactory(name="API")
    long = ComponentFactory(name="Background job processing")

    short_svg = parse_svg(client.get(f"/components/{short.public_id}/badge.svg"))
    long_svg = parse_svg(client.get(f"/components/{long.public_id}/badge.svg"))

    assert svg_width(long_svg) > svg_width(short_svg)
    label_rect = long_svg.findall(f"{SVG}g/{SVG}rect")[0]
    assert int(label_rect.get("width")) == round(text_width("Background job processing")) + 10


def test_text_width_follows_verdana_metrics():
    # shields.io lays out "build" in 27px and "passing" in about 43px of Verdana 11px.
    assert text_width("build") == pytest.approx(27, abs=1)
    assert text_width("passing") == pytest.approx(42, abs=1.5)
    assert text_width("WWW") > text_width("iii")
    assert text_width("状态") == 22
    assert text_width("é") > 0


def test_long_and_wide_messages_fit_inside_their_badge():
    badge = Badge(label="Zahlungsabwicklung 支付", message="degraded performance", color=GREEN)
    svg = ET.fromstring(badge.as_svg())

    label_rect, message_rect = svg.findall(f"{SVG}g/{SVG}rect")[:2]
    assert int(label_rect.get("width")) >= text_width("Zahlungsabwicklung 支付")
    assert int(message_rect.get("width")) >= text_width("degraded performance")
    assert svg_width(svg) == int(label_rect.get("width")) + int(message_rect.get("width"))


def test_the_json_badges_follow_the_shields_endpoint_format(client, page):
    api = ComponentFactory(name="API", status=ComponentStatus.PARTIAL_OUTAGE)
    ComponentFactory(name="Website")

    overall = client.get("/badge.json")
    component = client.get(f"/components/{api.public_id}/badge.json")

    assert overall["Content-Type"] == "application/json"
    assert json.loads(overall.content) == {
        "schemaVersion": 1,
        "label": "Acme",
        "message": "minor service outage",
        "color": YELLOW.removeprefix("#"),
    }
    assert json.loads(component.content) == {
        "schemaVersion": 1,
        "label": "API",
        "message": "partial outage",
        "color": ORANGE.removeprefix("#"),
    }


@pytest.mark.parametrize("suffix", ["svg", "json"])
def test_an_unknown_component_is_a_404(client, page, suffix):
    ComponentFactory()

    assert client.get(f"/components/nosuchthing1/badge.{suffix}").status_code == 404


def test_badges_allow_cors_and_revalidate_with_etags(client, page):
    api = ComponentFactory()
    for path in ["/badge.svg", "/badge.json", f"/components/{api.public_id}/badge.svg"]:
        response = client.get(path)
        assert response["Access-Control-Allow-Origin"] == "*"
        assert response["Cache-Control"].startswith("public, max-age=")
        assert response["Last-Modified"]

        again = client.get(path, headers={"If-None-Match": response["ETag"]})

        assert again.status_code == 304
        assert again.content == b""


def test_query_strings_do_not_make_new_badges(client, page):
    ComponentFactory()
    client.get("/badge.svg")

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/badge.svg?label=Hacked&cachebust=1")

    assert len(queries) == 0
    assert b"Hacked" not in response.content


def test_warm_badges_cost_no_queries(client, page):
    api = ComponentFactory()
    paths = [
        "/badge.svg",
        "/badge.json",
        f"/components/{api.public_id}/badge.svg",
        f"/components/{api.public_id}/badge.json",
        "/components/nosuchthing1/badge.svg",
    ]
    for path in paths:
        client.get(path)

    with CaptureQueriesContext(connection) as queries:
        statuses = [client.get(path).status_code for path in paths]

    assert statuses == [200, 200, 200, 200, 404]
    assert len(queries) == 0


def test_a_status_change_changes_the_badges(client, page, django_capture_on_commit_callbacks):
    api = ComponentFactory(name="API")
    before = client.get(f"/components/{api.public_id}/badge.svg")
    overall_before = client.get("/badge.json")

    with django_capture_on_commit_callbacks(execute=True):
        component_set_status(component=api, status=ComponentStatus.MAJOR_OUTAGE)

    after = client.get(f"/components/{api.public_id}/badge.svg")
    assert after["ETag"] != before["ETag"]
    assert (
        client.get(
            f"/components/{api.public_id}/badge.svg", headers={"If-None-Match": before["ETag"]}
        ).status_code
        == 200
    )
    assert badge_texts(parse_svg(after)) == ["API", "major outage"]
    assert message_fill(parse_svg(after)) == RED
    assert json.loads(overall_before.content)["message"] == "all systems operational"
    assert json.loads(client.get("/badge.json").content)["message"] == "major system outage"


def test_a_new_component_gets_a_badge_at_once(client, page, django_capture_on_commit_callbacks):
    ComponentFactory()
    client.get("/components/nosuchthing1/badge.svg")

    with django_capture_on_commit_callbacks(execute=True):
        added = ComponentFactory(name="Search")

    assert client.get(f"/components/{added.public_id}/badge.svg").status_code == 200


def test_the_embed_script_is_served_as_cached_javascript(client, page):
    response = client.get("/embed.js")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cache-Control"] == "public, max-age=300"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert b"/api/v2/summary.json" in response.content
    assert client.get("/embed.js", headers={"If-None-Match": response["ETag"]}).status_code == 304
    with CaptureQueriesContext(connection) as queries:
        client.get("/embed.js")
    assert len(queries) == 0
