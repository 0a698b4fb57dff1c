"""Staff's translations of an update: shown under that language's prefix and to subscribers
who read it; everything else (unprefixed pages, other languages, JSON, feeds) keeps the
words staff wrote."""

import pytest
from django.test import Client
from django.urls import reverse

from incidents.models import IncidentUpdateTranslation
from incidents.notify import delivery
from incidents.notify.models import NotificationEvent
from statuspage.models import PageSettings
from statuspage.public import public_cache
from statuspage.services import page_settings_update
from tests.incidents.factories import StaffFactory, SubscriberFactory, open_incident, sign_in_staff
from tests.incidents.notify.conftest import CapturingHandler, serving_smtp

pytestmark = pytest.mark.django_db

ORIGINAL = "We are looking into slow logins."
GERMAN = "Wir untersuchen langsame Anmeldungen."


@pytest.fixture
def incident(page, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    return open_incident(name="Slow logins", body=ORIGINAL)


def translate(incident, language="de", body=GERMAN):
    update = incident.updates.get()
    return IncidentUpdateTranslation.objects.create(update=update, language=language, body=body)


def test_the_translation_is_shown_only_under_its_language(incident):
    translate(incident)
    client = Client()
    code = incident.public_id
    for path in ("/de/", f"/de/incidents/{code}/", "/de/history/"):
        html = client.get(path).content.decode()
        assert GERMAN in html and ORIGINAL not in html, path
    for path in ("/", f"/incidents/{code}/", "/fr/", f"/ja/incidents/{code}/", "/en/history/"):
        html = client.get(path).content.decode()
        assert ORIGINAL in html and GERMAN not in html, path


def test_json_and_feeds_keep_the_original(incident):
    translate(incident)
    client = Client()
    for path in ("/api/v2/incidents.json", "/api/v2/summary.json", "/de/history.atom"):
        body = client.get(path).content.decode()
        assert GERMAN not in body, path
    assert ORIGINAL in client.get("/api/v2/incidents.json").content.decode()


@pytest.mark.parametrize(
    ("body", "kept", "gone"),
    [
        ("**Wichtig** <script>alert(1)</script>", "<strong>Wichtig</strong>", "<script>"),
        ('<img src=x onerror="alert(1)">Bild', "Bild", "onerror"),
        ("[Link](javascript:alert(1))", "Link", "javascript:"),
    ],
)
def test_a_translation_goes_through_the_markdown_sanitiser(incident, body, kept, gone):
    translate(incident, body=body)
    html = Client().get(f"/de/incidents/{incident.public_id}/").content.decode()
    assert kept in html
    assert gone not in html


def test_editing_a_translation_is_a_public_change(incident, django_capture_on_commit_callbacks):
    generation = public_cache.generation()
    with django_capture_on_commit_callbacks(execute=True):
        translation = translate(incident)
    assert public_cache.generation() != generation
    generation = public_cache.generation()
    with django_capture_on_commit_callbacks(execute=True):
        translation.body = "Behoben."
        translation.save()
    assert public_cache.generation() != generation


def test_translations_cost_one_query_per_page(incident, django_assert_max_num_queries):
    for n in range(5):
        other = open_incident(name=f"Other {n}", body="Original")
        translate(other, body=f"Übersetzt {n}")
    translate(incident)
    with django_assert_max_num_queries(14):
        html = Client().get("/de/").content.decode()
    assert "Übersetzt 4" in html


def test_subscribers_reading_that_language_get_the_translation(page, settings):
    with serving_smtp(CapturingHandler(), settings) as smtp:
        german = SubscriberFactory(language="de")
        english = SubscriberFactory(language="en")
        incident = open_incident(name="Slow logins", body=ORIGINAL)
        translate(incident)
        event = NotificationEvent.objects.get()
        for batch in delivery.event_expand(event_id=event.pk):
            delivery.batch_send(batch=batch)
    text = smtp.to(german.email)[0].get_body(("plain",)).get_content()
    assert GERMAN in text and ORIGINAL not in text
    text = smtp.to(english.email)[0].get_body(("plain",)).get_content()
    assert ORIGINAL in text and GERMAN not in text


# The admin


def change_url(update):
    return reverse("admin:incidents_incidentupdate_change", args=[update.pk])


def test_a_responder_adds_a_translation_from_the_update_s_page(incident, client):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    update = incident.updates.get()
    incident_page = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    assert change_url(update) in incident_page.content.decode()

    response = client.post(
        change_url(update),
        {
            "translations-TOTAL_FORMS": "1",
            "translations-INITIAL_FORMS": "0",
            "translations-0-language": "de",
            "translations-0-body": GERMAN,
        },
    )

    assert response.status_code == 302
    assert update.translations.get().body == GERMAN


@pytest.mark.parametrize("language", ["en", "es", "xx"])
def test_only_enabled_languages_but_the_default_can_be_translated(incident, client, language):
    page_settings_update(
        page=PageSettings.load(), changes={"enabled_languages": ["en", "de", "fr"]}
    )
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    update = incident.updates.get()
    html = client.get(change_url(update)).content.decode()
    assert '<option value="de">' in html and '<option value="fr">' in html
    assert f'<option value="{language}">' not in html

    response = client.post(
        change_url(update),
        {
            "translations-TOTAL_FORMS": "1",
            "translations-INITIAL_FORMS": "0",
            "translations-0-language": language,
            "translations-0-body": GERMAN,
        },
    )

    assert response.status_code == 200
    assert not update.translations.exists()


def test_a_translation_with_control_characters_is_refused(incident, client):
    sign_in_staff(client, StaffFactory(groups=["Responders"]))
    update = incident.updates.get()
    response = client.post(
        change_url(update),
        {
            "translations-TOTAL_FORMS": "1",
            "translations-INITIAL_FORMS": "0",
            "translations-0-language": "de",
            "translations-0-body": "Hallo\u202eWelt",
        },
    )
    assert response.status_code == 200
    assert not update.translations.exists()


def test_an_update_is_never_deleted_from_its_translations_page(incident, client):
    sign_in_staff(client, StaffFactory(groups=["Admins"]))
    update = incident.updates.get()
    html = client.get(change_url(update)).content.decode()
    assert "deletelink" not in html
    delete_url = reverse("admin:incidents_incidentupdate_delete", args=[update.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert incident.updates.exists()
