"""Control characters in names and settings: refused where they are written (admin, API v1,
apply_config), and harmless in what is sent when old rows still hold them (emails, the
maintenance calendar, the feeds, the page)."""

import json
from io import StringIO
from xml.etree import ElementTree

import feedparser
import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from icalendar import Calendar

from components.models import Component, ComponentGroup
from incidents.automatic import staff_email
from incidents.models import Incident, IncidentDraft, IncidentTemplate, IncidentUpdate
from incidents.notify import delivery
from incidents.notify.channels.email import subscription_email_send
from incidents.notify.models import NotificationEvent
from statuspage.lib.text import one_line, without_control_characters
from statuspage.models import PageSettings
from tests.components.factories import ComponentFactory, ComponentGroupFactory
from tests.incidents.factories import (
    StaffFactory,
    SubscriberFactory,
    open_incident,
    schedule_maintenance,
    sign_in_staff,
)
from tests.incidents.notify.conftest import serving_smtp
from tests.incidents.notify.test_email import RecordingHandler

pytestmark = pytest.mark.django_db

# One of each class; NUL is refused by the API's parser already and PostgreSQL cannot store it.
CHARACTERS = {
    "LF": "\n",
    "CR": "\r",
    "TAB": "\t",
    "BEL": "\x07",
    "VT": "\x0b",
    "ESC": "\x1b",
    "US": "\x1f",
    "DEL": "\x7f",
    "NEL": "\x85",
    "CSI": "\x9b",
    "LS": "\u2028",
    "PS": "\u2029",
    "RLO": "\u202e",
    "LRI": "\u2066",
}
# Refused even in text of several lines, where LF, CR and TAB belong.
IN_TEXT = {name: char for name, char in CHARACTERS.items() if name not in ("LF", "CR", "TAB")}


def hostile(char: str) -> str:
    return f"Login{char}Bcc: victim@example.com"


@pytest.fixture(params=list(CHARACTERS), ids=list(CHARACTERS))
def char(request):
    return CHARACTERS[request.param]


@pytest.fixture(params=list(IN_TEXT), ids=list(IN_TEXT))
def text_char(request):
    return IN_TEXT[request.param]


# Refused where it is written: the models' own rules (the admin's forms and apply_config)

ONE_LINE_FIELDS = [
    (PageSettings, "name"),
    (PageSettings, "url"),
    (PageSettings, "home_url"),
    (PageSettings, "support_url"),
    (Component, "name"),
    (ComponentGroup, "name"),
    (Incident, "name"),
    (IncidentTemplate, "name"),
    (IncidentTemplate, "title"),
    (IncidentDraft, "name"),
]
TEXT_FIELDS = [
    (PageSettings, "footer_text"),
    (Component, "description"),
    (ComponentGroup, "description"),
    (Incident, "postmortem_body"),
    (IncidentUpdate, "body"),
    (IncidentTemplate, "body"),
    (IncidentDraft, "body"),
]


@pytest.mark.parametrize(("model", "name"), ONE_LINE_FIELDS)
def test_names_and_urls_refuse_every_control_character(model, name, char):
    field = model._meta.get_field(name)
    value = "https://status.acme.test/a" + char if "url" in name else hostile(char)

    with pytest.raises(Exception) as refused:
        field.run_validators(value)

    assert "Remove" in str(refused.value)
    field.run_validators("https://status.acme.test/a" if "url" in name else "Login – Société")


@pytest.mark.parametrize(("model", "name"), TEXT_FIELDS)
def test_bodies_keep_their_lines_and_refuse_other_control_characters(model, name, text_char):
    field = model._meta.get_field(name)

    with pytest.raises(Exception, match="Remove"):
        field.run_validators(f"**Fine**{text_char}text")
    field.run_validators("**Fine**\r\n\n\tindented text")


def test_the_admin_shows_a_form_error_for_a_page_name_with_a_line_break(client, page):
    from tests.statuspage.test_admin import change_url, settings_data

    sign_in_staff(client, StaffFactory(groups=["Admins"]))

    response = client.post(change_url(page), settings_data(name="Acme\r\nBcc: x@example.com"))

    assert response.status_code == 200
    assert "Remove a carriage return" in response.content.decode()
    assert PageSettings.objects.get().name == "Acme"


def test_the_admin_refuses_an_update_body_longer_than_the_cap(client, page):
    from incidents.forms import UpdateMessageFields
    from incidents.models import MAX_UPDATE_BODY

    form = UpdateMessageFields(data={"body": "x" * (MAX_UPDATE_BODY + 1)})

    assert not form.is_valid() and "body" in form.errors


def yaml_quoted(text: str) -> str:
    escaped = json.dumps(text)  # a YAML double-quoted scalar, but for DEL
    return escaped.replace("\x7f", "\\x7f")


def test_apply_config_refuses_a_component_name_with_a_control_character(page, tmp_path, char):
    path = tmp_path / "beacon.yaml"
    path.write_text(f"components:\n  - name: {yaml_quoted(hostile(char))}\n")
    err = StringIO()

    with pytest.raises(CommandError, match="nothing was written"):
        call_command("apply_config", str(path), stdout=StringIO(), stderr=err)

    assert "components[0].name" in err.getvalue() and "Remove" in err.getvalue()
    assert not Component.objects.exists()


def test_apply_config_refuses_a_group_description_with_a_control_character(
    page, tmp_path, text_char
):
    path = tmp_path / "beacon.yaml"
    description = yaml_quoted(f"Our{text_char}apps")
    path.write_text(f"groups:\n  - name: Apps\n    description: {description}\n")

    with pytest.raises(CommandError, match="nothing was written"):
        call_command("apply_config", str(path), stdout=StringIO(), stderr=StringIO())

    assert not ComponentGroup.objects.exists()


# Refused where it is written: the management API


def assert_refused(response, field: str):
    assert response.status_code == 400, response.content
    assert field in response.json()["error"] and "Remove" in response.json()["error"]


def test_the_api_refuses_control_characters_in_incident_names(manage_api, char):
    response = manage_api("post", "/incidents", {"incident": {"name": hostile(char)}})

    assert_refused(response, "incident.name")
    assert not Incident.objects.exists()


def test_the_api_refuses_control_characters_in_update_bodies_and_postmortems(manage_api, text_char):
    incident = open_incident(name="Slow")
    path = f"/incidents/{incident.public_id}"

    response = manage_api("patch", path, {"incident": {"body": f"a{text_char}b"}})
    assert_refused(response, "incident.body")
    response = manage_api("put", path + "/postmortem", {"postmortem": {"body_draft": text_char}})
    assert_refused(response, "postmortem.body_draft")
    assert incident.updates.count() == 1


def test_the_api_keeps_line_breaks_in_bodies(manage_api):
    incident = open_incident(name="Slow")

    response = manage_api(
        "patch", f"/incidents/{incident.public_id}", {"incident": {"body": "a\r\n\n\tb"}}
    )

    assert response.status_code == 200, response.content


def test_the_api_refuses_control_characters_in_component_and_group_names(manage_api, char):
    component = ComponentFactory(name="API")
    group = ComponentGroupFactory(name="Apps")

    assert_refused(
        manage_api("post", "/components", {"component": {"name": hostile(char)}}),
        "component.name",
    )
    assert_refused(
        manage_api(
            "patch", f"/components/{component.public_id}", {"component": {"name": hostile(char)}}
        ),
        "component.name",
    )
    assert_refused(
        manage_api(
            "post",
            "/component-groups",
            {"component_group": {"name": hostile(char), "components": [component.public_id]}},
        ),
        "component_group.name",
    )
    assert_refused(
        manage_api(
            "patch",
            f"/component-groups/{group.public_id}",
            {"component_group": {"name": hostile(char)}},
        ),
        "component_group.name",
    )
    assert list(Component.objects.values_list("name", flat=True)) == ["API"]
    assert list(ComponentGroup.objects.values_list("name", flat=True)) == ["Apps"]


def test_the_api_refuses_control_characters_in_the_page_name_and_url(manage_api, char):
    assert_refused(manage_api("patch", "", {"page": {"name": f"Acme{char}"}}), "page.name")
    assert_refused(
        manage_api("patch", "", {"page": {"url": f"https://status.acme.test/{char}x"}}),
        "page.url",
    )
    assert PageSettings.objects.get().name == "Acme"


def test_incident_services_refuse_control_characters_in_names(page, char):
    from django.core.exceptions import ValidationError

    from incidents.services import incident_edit

    with pytest.raises(ValidationError, match="Remove"):
        open_incident(name=hostile(char))
    incident = open_incident(name="Fine")
    with pytest.raises(ValidationError, match="Remove"):
        incident_edit(incident=incident, name=hostile(char))


# Harmless when old rows hold them


def old_rows(char: str) -> Incident:
    """Rows written before the rules, with `char` in every name."""
    component = ComponentFactory(name="API")
    incident = schedule_maintenance(name="Upgrade", affected_components=[component])
    PageSettings.objects.update(
        name=f"Acme{char}Bcc: victim@example.com", footer_text=f"Foot{char}er"
    )
    PageSettings.forget_cached()
    Component.objects.update(name=f"API{char}gateway")
    Incident.objects.update(name=f"Upgrade{char}now")
    IncidentUpdate.objects.update(body=f"We upgrade{char}the database.")
    return Incident.objects.get(pk=incident.pk)


@pytest.fixture
def smtp_server(settings):
    with serving_smtp(RecordingHandler(), settings) as handler:
        yield handler


def test_subscriber_emails_go_out_when_old_names_hold_control_characters(page, smtp_server, char):
    reader = SubscriberFactory()
    incident = old_rows(char)
    event = NotificationEvent.objects.get(update__incident=incident)

    for batch in delivery.event_expand(event_id=event.pk):
        delivery.batch_send(batch=batch)

    [message] = smtp_server.to(reader.email)
    assert message["Subject"] == "[Acme Bcc: victim@example.com] Upgrade now – Scheduled"
    assert message["From"].addresses[0].display_name == "Acme Bcc: victim@example.com"
    assert message["Bcc"] is None
    assert "database" in message.get_body(("plain",)).get_content()


def test_confirmation_emails_go_out_when_the_page_name_holds_a_control_character(
    page, smtp_server, char
):
    old_rows(char)
    subscriber = SubscriberFactory(state="unconfirmed")

    subscription_email_send(which="confirm", subscriber=subscriber)

    [message] = smtp_server.to(subscriber.email)
    assert message["Subject"] == "[Acme Bcc: victim@example.com] Confirm your subscription"
    assert message["Bcc"] is None


def test_staff_emails_go_out_when_the_page_name_holds_a_control_character(page, char):
    StaffFactory(groups=["Admins"], email="admin@acme.test")
    old_rows(char)

    assert staff_email(subject=f"API{char}gateway: major outage", text="Down.") == 1

    [message] = mail.outbox
    assert message.subject == "[Acme Bcc: victim@example.com] API gateway: major outage"


def test_the_maintenance_calendar_stays_valid_with_old_control_characters(client, page, char):
    old_rows(char)

    response = client.get("/maintenance.ics")

    assert response.status_code == 200
    calendar = Calendar.from_ical(response.content)
    assert str(calendar["X-WR-CALNAME"]) == "Acme Bcc: victim@example.com maintenance"
    [event] = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]) == "Upgrade now"
    assert "API gateway" in str(event["DESCRIPTION"])
    assert not any(c in response.content.decode() for c in IN_TEXT.values())


def test_the_feeds_stay_valid_xml_with_old_control_characters(client, page, text_char):
    old_rows(text_char)

    for url in ("/history.atom", "/history.rss"):
        response = client.get(url)
        assert response.status_code == 200
        ElementTree.fromstring(response.content)  # well-formed XML 1.0
        assert not feedparser.parse(response.content).bozo
        assert "Upgrade now" in response.content.decode()


def test_the_page_and_the_incident_page_render_with_old_control_characters(client, page, char):
    incident = old_rows(char)

    assert client.get("/").status_code == 200
    response = client.get(incident.get_absolute_url())
    assert response.status_code == 200
    assert "upgrade" in response.content.decode()


def test_one_line_turns_every_control_run_into_one_space():
    assert one_line("a\r\n\tb\x07\u2028c\u202e  d") == "a b c d"
    assert one_line("") == ""


def test_text_keeps_its_lines_and_loses_the_rest():
    assert without_control_characters("a\r\nb\tc\x07\x1b\u2028d") == "a\r\nb\tcd"


@pytest.mark.parametrize(
    "address", ['"a\x07b"@example.com', '"a\x1bb"@example.com', "a@exa\u2028mple.com"]
)
def test_subscribing_refuses_an_address_with_control_characters(client, page, address):
    from incidents.notify.models import Subscriber

    response = client.post("/subscribe/", {"email": address})

    assert "valid email address" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_the_api_refuses_a_subscriber_address_with_control_characters(manage_api):
    from incidents.notify.models import Subscriber

    response = manage_api("post", "/subscribers", {"subscriber": {"email": '"a\x07b"@x.test'}})

    assert response.status_code in (400, 422) and "email" in response.json()["error"]
    assert not Subscriber.objects.exists()


def test_badges_stay_valid_with_old_control_characters(client, page, char):
    old_rows(char)
    component = Component.objects.get()

    for url in ("/badge.svg", f"/components/{component.public_id}/badge.svg"):
        response = client.get(url)
        assert response.status_code == 200
        ElementTree.fromstring(response.content)
    assert client.get(f"/components/{component.public_id}/badge.json").json()


def test_the_public_json_apis_answer_with_old_control_characters(client, page, char):
    old_rows(char)

    for url in ("/api/v2/summary.json", "/api/v2/scheduled-maintenances.json"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.json()


# Every text has a cap


def test_component_descriptions_are_capped_in_the_api_and_the_config(manage_api, tmp_path):
    from components.models import MAX_DESCRIPTION

    long = "x" * (MAX_DESCRIPTION + 1)
    response = manage_api(
        "post", "/components", {"component": {"name": "API", "description": long}}
    )
    assert response.status_code == 400 and "component.description" in response.json()["error"]

    path = tmp_path / "beacon.yaml"
    path.write_text(f"components:\n  - name: API\n    description: {long}\n")
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("apply_config", str(path), stdout=StringIO(), stderr=err)
    assert "components[0].description" in err.getvalue()
    assert not Component.objects.exists()


def test_bodies_over_their_cap_are_refused_by_the_api(manage_api):
    from incidents.models import MAX_POSTMORTEM_BODY, MAX_UPDATE_BODY

    incident = open_incident(name="Slow")
    path = f"/incidents/{incident.public_id}"

    response = manage_api("patch", path, {"incident": {"body": "x" * (MAX_UPDATE_BODY + 1)}})
    assert response.status_code == 400 and "incident.body" in response.json()["error"]
    too_long = "x" * (MAX_POSTMORTEM_BODY + 1)
    response = manage_api("put", path + "/postmortem", {"postmortem": {"body_draft": too_long}})
    assert response.status_code == 400 and "postmortem.body_draft" in response.json()["error"]


def test_an_old_page_url_with_a_control_character_breaks_no_output(client, page, smtp_server, char):
    reader = SubscriberFactory()
    incident = old_rows(char)
    PageSettings.objects.update(url=f"https://status.acme.test/{char}")
    PageSettings.forget_cached()

    for url in ("/history.atom", "/history.rss"):
        response = client.get(url)
        assert response.status_code == 200
        ElementTree.fromstring(response.content)
        assert "https://status.acme.test/incidents/" in response.content.decode()
    calendar = Calendar.from_ical(client.get("/maintenance.ics").content)
    [event] = calendar.walk("VEVENT")
    assert str(event["URL"]).startswith("https://status.acme.test/incidents/")
    event = NotificationEvent.objects.get(update__incident=incident)
    for batch in delivery.event_expand(event_id=event.pk):
        delivery.batch_send(batch=batch)
    [message] = smtp_server.to(reader.email)
    assert "https://status.acme.test/incidents/" in message.get_body(("plain",)).get_content()


def test_an_old_incident_name_does_not_block_a_change_of_impact_or_an_update(manage_api):
    incident = open_incident(name="Fine")
    Incident.objects.filter(pk=incident.pk).update(name="Old\nname")
    path = f"/incidents/{incident.public_id}"

    response = manage_api("patch", path, {"incident": {"impact_override": "major"}})
    assert response.status_code == 200, response.content
    response = manage_api("patch", path, {"incident": {"body": "Still looking."}})
    assert response.status_code == 200, response.content
