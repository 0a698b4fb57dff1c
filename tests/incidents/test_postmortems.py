"""Structured postmortems: the timeline drawn from the incident, the Markdown composed from the
sections, the services that store and publish them, the admin's editor and the public outputs."""

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation

from incidents import services
from incidents.models import MAX_POSTMORTEM_BODY, IncidentStatus
from incidents.notify.models import EventKind, NotificationEvent
from incidents.postmortems import (
    MAX_TIMELINE_ENTRIES,
    ActionItem,
    Postmortem,
    TimelineEntry,
    default_impact_minutes,
    generated_timeline,
    postmortem_initial,
    postmortem_markdown,
)
from statuspage.lib.markdown import render_markdown
from statuspage.models import PageSettings
from tests.incidents.factories import (
    StaffFactory,
    full_postmortem,
    open_incident,
    resolved_incident,
    schedule_maintenance,
    sign_in_staff,
)

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


# The timeline drawn from the incident


def test_timeline_is_drawn_from_updates_and_public_component_changes():
    incident = resolved_incident()

    texts = [entry.text for entry in generated_timeline(incident)]

    assert texts[0] == "Investigating: We are looking into errors."
    assert "API: Operational → Major outage" in texts
    assert "Identified: A bad deploy." in texts
    assert "API: Major outage → Partial outage" in texts
    assert texts[-1].startswith("API: Partial outage → Operational") or "Resolved" in texts[-1]
    assert not any("Secret" in text for text in texts)
    times = [entry.at for entry in generated_timeline(incident)]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("body", "entry"),
    [
        ("**Web chat** is failing to load.", "Investigating: Web chat is failing to load."),
        ("\n\n# Errors on `/login`\n\nMore below.", "Investigating: Errors on /login"),
        ("- [the API](https://example.com) is slow\n- more", "Investigating: the API is slow"),
        (HOSTILE + "Broken.", "Investigating: Broken."),
        ("Fish &amp; chips &lt;3", "Investigating: Fish & chips <3"),
    ],
)
def test_a_timeline_entry_says_what_an_update_said_without_its_markup(body, entry):
    incident = open_incident(body=body)

    assert generated_timeline(incident)[0].text == entry


def test_default_minutes_of_impact_run_from_the_first_update_to_the_resolution():
    incident = open_incident()
    first = incident.updates.get()
    first.display_at = timezone.now() - timedelta(minutes=90)
    first.save()
    services.incident_resolve(incident=incident)
    incident.refresh_from_db()

    assert default_impact_minutes(incident) == 90
    assert default_impact_minutes(open_incident()) is None  # not resolved


def test_an_old_free_form_postmortem_becomes_the_summary_in_the_editor():
    incident = resolved_incident()
    services.postmortem_save_draft(incident=incident, body="Old *free-form* text.")
    incident.refresh_from_db()

    initial = postmortem_initial(incident)

    assert initial.summary == "Old *free-form* text."
    assert initial.timeline  # drawn from the incident
    assert incident.postmortem == {}


# The Markdown composed


def test_markdown_has_every_section_with_figures_timeline_and_actions():
    incident = resolved_incident()
    postmortem = full_postmortem(
        incident,
        timeline=[TimelineEntry(at=datetime(2026, 3, 1, 14, 5, tzinfo=UTC), text="Alerts *fired*")],
        actions=[
            ActionItem(description="Add the index", owner="Ops", due=date(2030, 1, 2), done=True),
            ActionItem(description="Write a runbook"),
        ],
    )

    markdown = postmortem_markdown(postmortem)

    assert markdown.split("\n\n")[:2] == ["## Summary", "A **deploy** broke the API."]
    assert (
        "## Impact\n\nRequests failed.\n\n"
        "- Minutes of impact: 42\n- Users affected: 12.5 %" in markdown
    )
    assert "## Timeline\n\n- 2026-03-01 14:05 UTC: Alerts \\*fired\\*" in markdown
    assert "## Root cause\n\nA missing index." in markdown
    assert "- [x] Add the index (owner: Ops, due 2030-01-02)\n- [ ] Write a runbook" in markdown


def test_markdown_headings_are_in_the_pages_default_language_whoever_asks(page):
    page.default_language = "de"
    page.save()
    PageSettings.forget_cached()

    with translation.override("ja"):
        markdown = postmortem_markdown(Postmortem(summary="Kaputt.", root_cause="DNS."))

    assert markdown == "## Zusammenfassung\n\nKaputt.\n\n## Ursache\n\nDNS."


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("latency < 200ms", "latency &lt; 200ms"),
        ("<b>bold</b> & more", "&lt;b&gt;bold&lt;/b&gt; &amp; more"),
        ("says &lt; literally", "says &amp;lt; literally"),
        ("*not* [a](link) #1 | `code`", "*not* [a](link) #1 | `code`"),
    ],
)
def test_plain_text_in_the_markdown_renders_as_written_without_backslashes(text, shown):
    at = datetime(2026, 3, 1, 14, 5, tzinfo=UTC)
    markdown = postmortem_markdown(
        Postmortem(timeline=[TimelineEntry(at=at, text=text)], actions=[ActionItem(text)])
    )

    html = render_markdown(markdown)

    assert html.count(shown) == 2, html
    assert "\\" not in html


def test_markdown_leaves_out_empty_sections():
    assert postmortem_markdown(Postmortem(root_cause="DNS.")) == "## Root cause\n\nDNS."
    assert postmortem_markdown(Postmortem()) == ""


def test_stored_postmortem_round_trips_through_json():
    incident = resolved_incident()
    postmortem = full_postmortem(incident)

    assert Postmortem.from_json(json.loads(json.dumps(postmortem.to_json()))) == postmortem


# The services


def test_saving_a_structured_draft_stores_its_markdown_as_the_body():
    incident = resolved_incident()
    postmortem = full_postmortem(incident)

    incident = services.postmortem_save_draft(incident=incident, structured=postmortem)

    assert incident.postmortem_body == postmortem_markdown(postmortem)
    assert incident.postmortem_published_at is None
    incident.refresh_from_db()
    assert Postmortem.from_json(incident.postmortem) == postmortem


def test_a_free_form_body_replaces_a_structured_postmortem():
    incident = resolved_incident()
    services.postmortem_save_draft(incident=incident, structured=full_postmortem(incident))

    incident = services.postmortem_save_draft(incident=incident, body="Just text.")

    assert incident.postmortem == {}
    assert incident.postmortem_body == "Just text."


def test_publishing_notifies_once_and_can_be_quiet(page):
    incident = resolved_incident()
    quiet = resolved_incident()

    services.postmortem_publish(incident=incident, structured=full_postmortem(incident))
    services.postmortem_publish(
        incident=incident, structured=full_postmortem(incident, summary="Corrected.")
    )
    services.postmortem_publish(
        incident=quiet, structured=full_postmortem(quiet), notify_subscribers=False
    )

    events = NotificationEvent.objects.filter(kind=EventKind.POSTMORTEM_PUBLISHED)
    assert list(events.values_list("incident", flat=True)) == [incident.pk]
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.POSTMORTEM
    assert incident.postmortem_body.startswith("## Summary\n\nCorrected.")


def test_an_unresolved_incident_cannot_publish_and_a_maintenance_has_none():
    incident = open_incident()
    with pytest.raises(ValidationError):
        services.postmortem_publish(incident=incident, structured=full_postmortem(incident))
    incident.refresh_from_db()
    assert incident.postmortem_published_at is None

    maintenance = schedule_maintenance()
    with pytest.raises(ValidationError):
        services.postmortem_save_draft(
            incident=maintenance, structured=full_postmortem(maintenance)
        )


def test_a_postmortem_longer_than_the_cap_is_refused_and_nothing_is_written():
    incident = resolved_incident()
    huge = full_postmortem(incident, summary="x" * MAX_POSTMORTEM_BODY)

    with pytest.raises(ValidationError):
        services.postmortem_save_draft(incident=incident, structured=huge)

    incident.refresh_from_db()
    assert incident.postmortem == {} and incident.postmortem_body == ""


def test_deleting_clears_the_structured_postmortem_too():
    incident = resolved_incident()
    services.postmortem_publish(incident=incident, structured=full_postmortem(incident))

    incident = services.postmortem_delete(incident=incident)

    assert incident.postmortem == {} and incident.postmortem_body == ""


# The admin's editor


def editor_url(incident):
    return reverse("admin:incidents_incident_postmortem", args=[incident.pk])


def preview_url(incident):
    return reverse("admin:incidents_incident_postmortem_preview", args=[incident.pk])


def local(value):
    shown = timezone.localtime(value)
    return shown.strftime("%Y-%m-%d"), shown.strftime("%H:%M:%S")


def editor_data(incident, *, timeline=(), actions=(), **fields):
    """What the editor posts: the sections, then the rows of its two formsets."""
    data = {
        "summary": "The API failed.",
        "impact": "Errors for everyone.",
        "impact_minutes": "30",
        "users_affected_percent": "",
        "root_cause": "A bad deploy.",
        "notify_subscribers": "on",
        "timeline-TOTAL_FORMS": str(len(timeline)),
        "timeline-INITIAL_FORMS": "0",
        "actions-TOTAL_FORMS": str(len(actions)),
        "actions-INITIAL_FORMS": "0",
    }
    for i, (at, text) in enumerate(timeline):
        day, time = local(at) if isinstance(at, datetime) else at
        data |= {f"timeline-{i}-at_0": day, f"timeline-{i}-at_1": time, f"timeline-{i}-text": text}
    for i, action in enumerate(actions):
        data |= {f"actions-{i}-{name}": value for name, value in action.items()}
    return data | fields


def test_editor_opens_with_the_drawn_timeline_and_minutes(client, responder):
    incident = resolved_incident()

    response = client.get(editor_url(incident))

    assert response.status_code == 200
    html = response.text
    assert "Investigating: We are looking into errors." in html
    assert "API: Operational → Major outage" in html
    assert 'name="impact_minutes"' in html
    change = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    assert editor_url(incident) in change.text


def test_editor_round_trip_saves_then_publishes_and_the_page_shows_it(client, responder, page):
    incident = resolved_incident()
    data = editor_data(
        incident,
        timeline=[(incident.started_at, "Alerts fired")],
        actions=[{"description": "Add an index", "owner": "Ops", "due": "2030-01-02"}],
    )

    saved = client.post(editor_url(incident), data | {"_save": "1"})

    assert saved.status_code == 302
    incident.refresh_from_db()
    assert incident.postmortem["summary"] == "The API failed."
    assert incident.postmortem_published_at is None
    html = client.get(editor_url(incident)).text
    assert "Alerts fired" in html and "Add an index" in html

    published = client.post(editor_url(incident), data | {"_publish": "1"})

    assert published.status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.POSTMORTEM
    assert NotificationEvent.objects.filter(kind=EventKind.POSTMORTEM_PUBLISHED).count() == 1
    public = client.get(incident.get_absolute_url()).text
    assert "<h3>Summary</h3>" in public and "<h3>What we are changing</h3>" in public
    timeline = re.search(r'<ol class="postmortem-timeline">(.*?)</ol>', public, re.S).group(1)
    assert '<time datetime="' in timeline and "Alerts fired" in timeline
    assert "Ops" in public and '<time datetime="2030-01-02">' in public

    unpublished = client.post(editor_url(incident), {"_unpublish": "1"})

    assert unpublished.status_code == 302
    incident.refresh_from_db()
    assert incident.postmortem_published_at is None
    assert incident.status == IncidentStatus.RESOLVED


def test_publishing_from_the_editor_without_notifying(client, responder):
    incident = resolved_incident()
    data = editor_data(incident)
    del data["notify_subscribers"]

    client.post(editor_url(incident), data | {"_publish": "1"})

    incident.refresh_from_db()
    assert incident.postmortem_published_at is not None
    assert not NotificationEvent.objects.filter(kind=EventKind.POSTMORTEM_PUBLISHED).exists()


def preview_of(html):
    return re.search(r'<section id="postmortem-preview".*?</section>', html, re.S).group(0)


def test_preview_renders_the_public_html_without_saving(client, responder):
    incident = resolved_incident()
    data = editor_data(incident, summary=f"**Bold** {HOSTILE}")

    fragment = client.post(preview_url(incident), data, HTTP_HX_REQUEST="true")
    full = client.post(editor_url(incident), data | {"_preview": "1"})

    for response in (fragment, full):
        assert response.status_code == 200
        shown = preview_of(response.text)
        assert "<strong>Bold</strong>" in shown
        assert "<script" not in shown and "<img" not in shown
    assert fragment.text.lstrip().startswith('<section id="postmortem-preview"')
    incident.refresh_from_db()
    assert incident.postmortem == {}


def test_preview_of_an_invalid_form_lists_its_errors(client, responder):
    incident = resolved_incident()
    data = editor_data(incident, users_affected_percent="101", impact_minutes="-5")

    fragment = client.post(preview_url(incident), data)
    full = client.post(editor_url(incident), data | {"_preview": "1"})

    assert "Correct these first" in fragment.text
    assert "less than or equal to 100" in fragment.text
    assert "greater than or equal to 0" in fragment.text
    assert full.status_code == 200 and "Correct these first" in full.text


@pytest.mark.parametrize(
    "fields",
    [
        {"users_affected_percent": "101"},
        {"users_affected_percent": "-1"},
        {"impact_minutes": "-5"},
        {"impact_minutes": "99999999999999999999"},
        {"summary": "Bad \x07 bell"},
        {"root_cause": "x" * 25_001},
    ],
)
def test_bad_sections_are_form_errors_and_write_nothing(client, responder, fields):
    incident = resolved_incident()

    response = client.post(editor_url(incident), editor_data(incident, **fields) | {"_save": "1"})

    assert response.status_code == 200
    assert "errorlist" in response.text
    incident.refresh_from_db()
    assert incident.postmortem == {}


@pytest.mark.parametrize(
    "row",
    [
        ("outside", timedelta(days=3)),
        ("outside", -timedelta(days=3)),
        (("0001-01-01", "00:00:00"), "Far past"),
        (("9999-12-31", "23:59:59"), "Far future"),
        (("2026-13-45", "25:61:00"), "Not a date"),
        ("inside", "Ring \x07 the bell"),
        ("inside", "x" * 1001),
    ],
)
def test_bad_timeline_rows_are_form_errors(client, responder, row):
    incident = resolved_incident()
    at, text = row
    if at == "outside":
        at, text = incident.resolved_at + text, "Out of range"
    elif at == "inside":
        at = incident.started_at

    response = client.post(
        editor_url(incident), editor_data(incident, timeline=[(at, text)]) | {"_save": "1"}
    )

    assert response.status_code == 200
    assert "errorlist" in response.text
    incident.refresh_from_db()
    assert incident.postmortem == {}


def test_bad_action_items_are_form_errors(client, responder):
    incident = resolved_incident()
    actions = [
        {"description": "", "owner": "Ops"},
        {"description": "Fix", "due": "1999-01-01"},
        {"description": "Fix", "due": "99999-01-01"},
        {"description": "x" * 1001},
    ]

    response = client.post(
        editor_url(incident), editor_data(incident, actions=actions) | {"_save": "1"}
    )

    assert response.status_code == 200
    assert response.text.count('class="errorlist') >= 4
    incident.refresh_from_db()
    assert incident.postmortem == {}


def test_too_many_rows_and_too_long_markdown_are_form_errors(client, responder):
    incident = resolved_incident()
    rows = editor_data(incident) | {"timeline-TOTAL_FORMS": str(MAX_TIMELINE_ENTRIES + 1)}
    long_rows = [(incident.started_at, "y" * 1000)] * 120  # 120 KB of timeline

    too_many = client.post(editor_url(incident), rows | {"_save": "1"})
    too_long = client.post(
        editor_url(incident), editor_data(incident, timeline=long_rows) | {"_save": "1"}
    )

    assert too_many.status_code == 200 and "errorlist" in too_many.text
    assert too_long.status_code == 200 and "The postmortem is too long" in too_long.text
    incident.refresh_from_db()
    assert incident.postmortem == {}


def test_regenerating_the_timeline_needs_the_box_ticked(client, responder):
    incident = resolved_incident()
    data = editor_data(incident, timeline=[(incident.started_at, "My own entry")])

    refused = client.post(editor_url(incident), data | {"_regenerate": "1"})
    regenerated = client.post(
        editor_url(incident), data | {"_regenerate": "1", "confirm_regenerate": "on"}
    )

    assert "My own entry" in refused.text and "Tick this box" in refused.text
    assert "My own entry" not in regenerated.text
    assert "Investigating: We are looking into errors." in regenerated.text
    assert "The API failed." in regenerated.text  # the rest as sent
    incident.refresh_from_db()
    assert incident.postmortem == {}  # nothing saved


def test_publishing_an_unresolved_incident_is_a_form_error(client, responder):
    incident = open_incident()

    response = client.post(editor_url(incident), editor_data(incident) | {"_publish": "1"})

    assert response.status_code == 200
    assert "Only a resolved incident can have a postmortem." in response.text
    incident.refresh_from_db()
    assert incident.postmortem_published_at is None and incident.postmortem == {}


def test_a_maintenance_has_no_postmortem_editor(client, responder):
    maintenance = schedule_maintenance()

    assert client.get(editor_url(maintenance)).status_code == 404
    assert client.post(preview_url(maintenance), {}).status_code == 404


def test_staff_who_cannot_change_incidents_cannot_open_the_editor(client):
    viewer = StaffFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_incident"))
    sign_in_staff(client, viewer)
    incident = resolved_incident()

    assert client.get(editor_url(incident)).status_code == 403


def test_an_old_free_form_postmortem_still_edits_on_the_change_page(client, responder):
    incident = resolved_incident()
    services.postmortem_publish(incident=incident, body="Old text.")

    change = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))

    assert 'name="postmortem_body"' in change.text
    public = client.get(incident.get_absolute_url()).text
    assert "Old text." in public and "postmortem-sections" not in public


def test_a_structured_postmortem_publishes_from_the_change_page_unchanged(client, responder):
    incident = resolved_incident()
    services.postmortem_save_draft(incident=incident, structured=full_postmortem(incident))
    incident.refresh_from_db()
    url = reverse("admin:incidents_incident_change", args=[incident.pk])

    change = client.get(url)
    assert change.status_code == 200
    assert 'name="postmortem_body"' not in change.text  # written in the editor
    data = {
        "name": incident.name,
        "publish_postmortem": "on",
        "updates-TOTAL_FORMS": incident.updates.count(),
        "updates-INITIAL_FORMS": incident.updates.count(),
    }
    for i, update in enumerate(incident.updates.all()):
        day, time = local(update.display_at)
        data |= {
            f"updates-{i}-id": update.pk,
            f"updates-{i}-incident": incident.pk,
            f"updates-{i}-body": update.body,
            f"updates-{i}-display_at_0": day,
            f"updates-{i}-display_at_1": time,
        }
    response = client.post(url, data)

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.postmortem_published_at is not None
    assert incident.postmortem["root_cause"] == "A missing index."
    assert incident.postmortem_body == postmortem_markdown(full_postmortem(incident))


def test_a_post_without_the_rows_management_data_is_a_form_error_not_a_500(client, responder):
    incident = resolved_incident()

    preview = client.post(preview_url(incident), {"summary": "x"})
    saved = client.post(editor_url(incident), {"summary": "x", "_save": "1"})

    assert preview.status_code == 200 and "Correct these first" in preview.text
    assert saved.status_code == 200 and "errornote" in saved.text
    assert client.get(preview_url(incident)).status_code == 405
    incident.refresh_from_db()
    assert incident.postmortem == {}
