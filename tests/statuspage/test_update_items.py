"""A timeline's updates are rendered once per process (the `update_item` tag) and kept under
everything they are rendered from: a page rendered again renders only what is new, and no
edit, translation, rename, zone or language is ever shown from an older rendering."""

import re
from datetime import timedelta

import pytest

from components.services import component_update
from incidents import services
from incidents.models import IncidentStatus, IncidentUpdateTranslation
from statuspage.models import PageSettings
from statuspage.public.snapshots import build
from statuspage.services import page_settings_update
from statuspage.templatetags import beacon
from tests.incidents.factories import open_incident
from tests.statuspage.test_languages import api, set_languages  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(api):  # noqa: F811
    set_languages(enabled=("en", "de"))
    beacon.update_items.clear()
    opened = open_incident(
        name="Checkout errors", body="We see **errors**.", component_statuses={api: "major_outage"}
    )
    services.incident_post_update(
        incident=opened, status=IncidentStatus.IDENTIFIED, body="A bad deploy."
    )
    return opened


def page(incident, language="") -> str:
    prefix = f"/{language}" if language else ""
    return build.render_key(f"{prefix}/incidents/{incident.public_id}/").body.decode()


@pytest.fixture
def renders(monkeypatch):
    made = []
    real = beacon.render_to_string

    def counted(name, context=None, *args, **kwargs):
        if name == "statuspage/_update.html":
            made.append(context["body"])
        return real(name, context, *args, **kwargs)

    monkeypatch.setattr(beacon, "render_to_string", counted)
    return made


def test_a_page_rendered_again_renders_only_its_new_update(incident, renders):
    first = page(incident)
    assert sorted(renders) == ["A bad deploy.", "We see **errors**."]
    assert "<strong>errors</strong>" in first

    assert page(incident) == first
    services.incident_post_update(
        incident=incident, status=IncidentStatus.MONITORING, body="Rolled back."
    )
    again = page(incident)
    assert renders[2:] == ["Rolled back."]
    assert "Rolled back." in again and "A bad deploy." in again


def test_each_language_renders_its_own(incident, renders):
    english, german = page(incident, "en"), page(incident, "de")
    assert len(renders) == 4
    assert "Identified" in english and "Identified" not in german


def test_an_edited_body_is_shown_as_edited(incident):
    assert "A bad deploy." in page(incident)
    update = incident.updates.get(body="A bad deploy.")
    update.body = "A bad <em>config</em> deploy."
    update.save()
    shown = page(incident)
    assert "A bad deploy." not in shown
    assert "A bad <em>config</em> deploy." in shown


def test_a_translation_is_shown_in_its_language_only(incident):
    page(incident, "de")
    update = incident.updates.get(body="A bad deploy.")
    IncidentUpdateTranslation.objects.create(
        update=update, language="de", body="Ein fehlerhaftes Deployment."
    )
    assert "Ein fehlerhaftes Deployment." in page(incident, "de")
    assert "Ein fehlerhaftes Deployment." not in page(incident, "en")


def test_a_renamed_component_is_shown_renamed(incident, api):  # noqa: F811
    assert "API</span>" in page(incident)
    component_update(component=api, changes={"name": "Public API"})
    assert "Public API</span>" in page(incident)


def update_times(html: str) -> list[str]:
    return re.findall(r'<p class="update-head">.*?(<time .*?</time>)', html)


def test_a_new_time_zone_shows_the_updates_times_in_it(incident):
    before = update_times(page(incident))
    page_settings_update(page=PageSettings.load(), changes={"time_zone": "Asia/Tokyo"})
    after = update_times(page(incident))
    assert len(after) == len(before) == 2
    assert all(new != old for new, old in zip(after, before, strict=True))


def update_heads(html: str) -> list[str]:
    return re.findall(r'<p class="update-head">(.*?)</p>', html)


@pytest.mark.parametrize("edit", ["status", "display_at"])
def test_an_update_s_new_status_or_time_is_shown(incident, edit):
    before = update_heads(page(incident))
    update = incident.updates.get(body="A bad deploy.")
    if edit == "status":
        update.status = IncidentStatus.MONITORING
    else:
        update.display_at = update.display_at - timedelta(days=400)
    update.save()
    after = update_heads(page(incident))
    assert len(after) == len(before) == 2
    changed = [head for head in after if head not in before]
    assert len(changed) == 1
    shown = "Monitoring" if edit == "status" else str(update.display_at.year)
    assert shown in changed[0]


def test_a_component_change_s_statuses_are_shown_as_they_are_now(incident, api):  # noqa: F811
    assert "Major outage" in page(incident) or "Major Outage" in page(incident)
    change = incident.updates.get(body="We see **errors**.").affected_components.get()
    change.new_status = "partial_outage"
    change.save()
    shown = page(incident)
    assert "tone-major" in shown or "Partial" in shown
    assert "Partial outage" in shown or "Partial Outage" in shown
