"""Subscribers read their emails in the language of the page they subscribed on, which they
can change on their preferences page; one batch speaks every language it must, rendering each
once. Through a real SMTP server, with a tiny German catalogue compiled for the test (the
shipped catalogues are not what is tested here)."""

import re
import subprocess

import pytest
from django.test import Client
from django.utils import timezone, translation

from incidents import services
from incidents.models import IncidentStatus
from incidents.notify import delivery, links
from incidents.notify.channels import email as email_channel
from incidents.notify.models import NotificationEvent, Subscriber
from statuspage.lib.local_format import format_date
from statuspage.models import PageSettings
from statuspage.services import page_settings_update
from tests.components.factories import ComponentFactory
from tests.incidents.factories import SubscriberFactory, open_incident
from tests.incidents.notify.conftest import CapturingHandler, serving_smtp

pytestmark = pytest.mark.django_db

GERMAN = {
    "Confirm your subscription": "Bitte bestätigen Sie Ihr Abonnement",
    "You are already subscribed": "Sie haben dieses Abonnement schon",
    "Manage your subscription: %(manage_url)s": "Abonnement verwalten: %(manage_url)s",
}


@pytest.fixture
def german(tmp_path, settings):
    """A catalogue with a few German words, compiled into a directory of the test's own."""
    folder = tmp_path / "locale/de/LC_MESSAGES"
    folder.mkdir(parents=True)
    entries = "".join(
        f'msgid "{source}"\nmsgstr "{target}"\n\n' for source, target in GERMAN.items()
    )
    header = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
    (folder / "django.po").write_text(header + entries, encoding="utf-8")
    subprocess.run(
        ["msgfmt", "-o", str(folder / "django.mo"), str(folder / "django.po")], check=True
    )
    settings.LOCALE_PATHS = [tmp_path / "locale"]  # resets Django's translation caches
    return GERMAN


@pytest.fixture
def smtp_server(settings):
    with serving_smtp(CapturingHandler(), settings) as handler:
        yield handler


@pytest.fixture
def public(page, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.BEACON_SUBSCRIBE_LIMIT_PER_IP = 1000
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the subscription email's task, at once
    return page


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def month_in(language: str) -> str:
    """Today as the emails write it in `language` (its locale's date form, Django's month
    names)."""
    with translation.override(language):
        return format_date(timezone.now(), "date")


def subscribe(client: Client, path: str, address: str):
    return client.post(path, {"email": address})


# Subscribing on a page in a language


@pytest.mark.parametrize(
    ("path", "language"),
    [("/de/subscribe/", "de"), ("/ja/subscribe/", "ja"), ("/subscribe/", "en")],
)
def test_the_page_they_subscribe_on_sets_their_language(
    public, smtp_server, german, path, language, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert subscribe(Client(), path, "reader@example.test").status_code == 200

    assert Subscriber.objects.get(email="reader@example.test").language == language
    [message] = smtp_server.to("reader@example.test")
    if language == "de":
        assert message["Subject"] == f"[Acme] {german['Confirm your subscription']}"
    elif language == "en":
        assert message["Subject"] == "[Acme] Confirm your subscription"


def test_the_default_language_is_what_unprefixed_pages_speak(public, smtp_server):
    page_settings_update(page=PageSettings.load(), changes={"default_language": "fr"})
    subscribe(Client(), "/subscribe/", "reader@example.test")
    assert Subscriber.objects.get().language == "fr"


def test_a_disabled_language_s_form_subscribes_nobody(public, smtp_server):
    page_settings_update(page=PageSettings.load(), changes={"enabled_languages": ["en"]})
    assert subscribe(Client(), "/de/subscribe/", "reader@example.test").status_code == 404
    assert not Subscriber.objects.exists()


def test_already_subscribed_is_said_in_their_own_language(
    public, smtp_server, german, django_capture_on_commit_callbacks
):
    SubscriberFactory(email="reader@example.test", language="de")
    # Asked again from an English page: the email is theirs, so in their language.
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(Client(), "/subscribe/", "reader@example.test")
    [message] = smtp_server.to("reader@example.test")
    assert message["Subject"] == f"[Acme] {german['You are already subscribed']}"
    assert Subscriber.objects.get().language == "de"


# Their preferences


def test_they_change_their_language_on_their_preferences_page(public):
    reader = SubscriberFactory(language="de")
    path = links.manage_path(reader)
    client = Client()
    html = client.get(path).content.decode()
    assert re.search(r'<option value="de" selected>Deutsch</option>', html)
    assert '<option value="ja">日本語</option>' in html

    response = client.post(path, {"language": "ja"})

    assert response.status_code == 200
    reader.refresh_from_db()
    assert reader.language == "ja"


def lang_of(response) -> str:
    return re.search(r'<html lang="([^"]*)"', response.content.decode()).group(1)


def test_the_links_in_their_emails_open_pages_in_their_language(public):
    reader = SubscriberFactory(language="de", unconfirmed=True)
    client = Client()
    assert lang_of(client.get(reverse_path(links.confirm_url(reader)))) == "de"
    assert lang_of(client.get(links.manage_path(reader))) == "de"
    assert lang_of(client.get(reverse_path(links.unsubscribe_url(reader)))) == "de"
    # Leaving: the goodbye is in their language too.
    assert lang_of(client.post(reverse_path(links.unsubscribe_url(reader)))) == "de"
    # A prefix chosen by hand wins; a reader without a language gets the page's default.
    assert lang_of(client.get("/ja" + links.manage_path(reader))) == "ja"
    assert lang_of(client.get(links.manage_path(SubscriberFactory(language="")))) == "en"


def test_a_language_the_page_no_longer_offers_falls_back_to_the_default(public):
    page_settings_update(page=PageSettings.load(), changes={"enabled_languages": ["en", "fr"]})
    reader = SubscriberFactory(language="de")
    assert lang_of(Client().get(links.manage_path(reader))) == "en"


@pytest.mark.parametrize("token", ["garbage", "x" * 5000, "a:b:c"])
def test_a_bad_token_opens_the_page_in_the_default_language(public, token):
    response = Client().get(f"/subscriptions/manage/{token}/")
    assert response.status_code in (404, 410)
    assert lang_of(response) == "en"


def reverse_path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@pytest.mark.parametrize("language", ["xx", "<script>", "es" * 100, "pt-BR"])
def test_a_language_the_page_does_not_offer_is_refused(public, language):
    page_settings_update(page=PageSettings.load(), changes={"enabled_languages": ["en", "de"]})
    reader = SubscriberFactory(language="de")
    response = Client().post(links.manage_path(reader), {"language": language})
    assert response.status_code == 400
    reader.refresh_from_db()
    assert reader.language == "de"


def test_a_page_with_one_language_asks_nothing_about_it(public):
    page_settings_update(page=PageSettings.load(), changes={"enabled_languages": ["en"]})
    html = Client().get(links.manage_path(SubscriberFactory())).content.decode()
    assert 'name="language"' not in html


# Notifications


def test_a_batch_speaks_each_subscriber_s_language_rendering_each_once(
    page, smtp_server, german, monkeypatch
):
    readers = {
        "en": SubscriberFactory.create_batch(2, language="en"),
        "de": SubscriberFactory.create_batch(3, language="de"),
        "ja": SubscriberFactory.create_batch(2, language="ja"),
    }
    incident = open_incident(name="Database delays")
    update = services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED)
    event = NotificationEvent.objects.get(update=update)
    renders = []
    real = email_channel._email_content

    def counting(event, page):
        renders.append(translation.get_language())
        return real(event, page)

    monkeypatch.setattr(email_channel, "_email_content", counting)

    for batch in delivery.event_expand(event_id=event.pk):
        delivery.batch_send(batch=batch)

    # The event's own words (the page's language) at expansion, then one per other language.
    assert sorted(renders) == ["de", "en", "ja"]
    for reader in readers["en"]:
        [message] = smtp_server.to(reader.email)
        text = text_of(message)
        assert "Manage your subscription: " in text
        assert timezone.now().strftime("%b") in text
    for reader in readers["de"]:
        [message] = smtp_server.to(reader.email)
        text = text_of(message)
        assert f"Abonnement verwalten: {links.manage_url(reader)}" in text
        assert month_in("de") in text
        assert message["Subject"].startswith("[Acme] Database delays")  # staff's words stay
    for reader in readers["ja"]:
        assert month_in("ja") in text_of(smtp_server.to(reader.email)[0])


def test_subscribers_without_a_language_read_the_page_s_default(page, smtp_server, german):
    page_settings_update(page=PageSettings.load(), changes={"default_language": "de"})
    reader = SubscriberFactory(language="")
    open_incident(name="Database delays")
    for batch in delivery.event_expand(event_id=NotificationEvent.objects.get().pk):
        delivery.batch_send(batch=batch)
    [message] = smtp_server.to(reader.email)
    assert "Abonnement verwalten: " in text_of(message)


def test_a_confirmation_is_dated_and_worded_in_their_language(page, smtp_server, german):
    ComponentFactory(name="API")
    reader = SubscriberFactory(language="de", unconfirmed=True)
    email_channel.subscription_email_send(which="confirm", subscriber=reader)
    [message] = smtp_server.to(reader.email)
    assert message["Subject"] == f"[Acme] {german['Confirm your subscription']}"


def test_a_language_round_trip_through_the_mail_server(
    public, smtp_server, german, django_capture_on_commit_callbacks
):
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(client, "/de/subscribe/", "reader@example.test")
    [confirmation] = smtp_server.to("reader@example.test")
    assert confirmation["Subject"] == f"[Acme] {german['Confirm your subscription']}"
    [link] = re.findall(
        r"https://status\.acme\.test(/subscriptions/confirm/\S+)", text_of(confirmation)
    )
    assert client.post(link).status_code == 200
    reader = Subscriber.objects.get(email="reader@example.test")
    assert (reader.state, reader.language) == ("active", "de")

    # They would rather read Japanese.
    assert client.post(links.manage_path(reader), {"language": "ja"}).status_code == 200
    open_incident(name="Database delays")
    for batch in delivery.event_expand(event_id=NotificationEvent.objects.get().pk):
        delivery.batch_send(batch=batch)

    notification = smtp_server.to("reader@example.test")[-1]
    text = text_of(notification)
    assert month_in("ja") in text
    assert "Abonnement verwalten" not in text
