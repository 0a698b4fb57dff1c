"""Language selection: a cookie-free prefix per enabled language, Accept-Language at the
unprefixed pages, the switcher and hreflang, a snapshot per language, served without
PostgreSQL."""

import re
import shutil
import subprocess

import httpx
import pytest
from django.core.cache import cache
from django.test import Client

from statuspage.lib.languages import accepted_languages, negotiate, split_prefix
from statuspage.models import PageSettings
from statuspage.public.snapshots import keys, store
from statuspage.services import page_settings_update
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident
from tests.nginx import shipped_nginx
from tests.statuspage.test_public_outage import database_unreachable
from tests.statuspage.test_snapshots import call_wsgi

pytestmark = pytest.mark.django_db

ALL = ("en", "de", "fr", "es", "ja", "pt-br")


@pytest.fixture
def api(page, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    return ComponentFactory(name="API")


def set_languages(*, default="en", enabled=ALL):
    page_settings_update(
        page=PageSettings.load(),
        changes={"default_language": default, "enabled_languages": list(enabled)},
    )


# Accept-Language, as a table


@pytest.mark.parametrize(
    ("header", "enabled", "default", "chosen"),
    [
        ("de", ALL, "en", "de"),
        ("de-DE,de;q=0.9,en;q=0.8", ALL, "en", "de"),
        ("en;q=0.5,fr;q=0.9", ALL, "en", "fr"),
        ("fr;q=0.1,ja", ALL, "en", "ja"),
        ("pt-BR", ALL, "en", "pt-br"),
        ("pt", ALL, "en", "pt-br"),
        ("pt-PT;q=0.9,es;q=0.8", ALL, "en", "pt-br"),
        ("de-AT", ALL, "en", "de"),
        ("en-GB,de", ALL, "en", "en"),
        ("zh-CN,ko", ALL, "en", "en"),
        ("zh-CN,ko,es;q=0.2", ALL, "en", "es"),
        ("de", ("en", "fr"), "en", "en"),  # disabled
        ("de;q=0,fr;q=0.3", ALL, "en", "fr"),  # refused with q=0
        ("*", ALL, "de", "de"),
        ("", ALL, "fr", "fr"),
        ("en", ALL, "de", "en"),
        # Garbage: skipped, never an error.
        (";;;,,,q=1", ALL, "en", "en"),
        ("de;q=abc,fr", ALL, "en", "fr"),
        ("de;q=2", ALL, "en", "en"),
        ("<script>,fr", ALL, "en", "fr"),
        ("d\x00e,ja", ALL, "en", "ja"),
        ("de;level=1", ALL, "en", "en"),
        # Huge: read up to a bound, cut at a comma.
        ("x-" + "a" * 100_000 + ",de", ALL, "en", "en"),
        (",".join(["zz"] * 10_000) + ",de", ALL, "en", "en"),
        ("ja," + ",".join(["zz"] * 10_000), ALL, "en", "ja"),
    ],
)
def test_accept_language_chooses_an_enabled_language(header, enabled, default, chosen):
    assert negotiate(header, enabled=enabled, default=default) == chosen


def test_equal_qualities_keep_the_header_order():
    assert accepted_languages("fr, de;q=1.0, ja;q=0.9") == ["fr", "de", "ja"]


@pytest.mark.parametrize(
    ("path", "split"),
    [
        ("/de/", ("de", "/")),
        ("/pt-br/history/", ("pt-br", "/history/")),
        ("/de", (None, "/de")),
        ("/history/", (None, "/history/")),
        ("/xx/", (None, "/xx/")),
        ("/DE/", (None, "/DE/")),
    ],
)
def test_the_prefix_names_a_shipped_language(path, split):
    assert split_prefix(path) == split


# Routing


def test_every_enabled_language_has_its_prefix_and_the_unprefixed_page_the_default(client, api):
    set_languages(default="de", enabled=("en", "de", "fr"))
    for path, language in [("/", "de"), ("/de/", "de"), ("/en/", "en"), ("/fr/", "fr")]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert f'<html lang="{language}">' in response.content.decode(), path


def test_django_s_own_words_follow_the_prefix(client, api):
    open_incident(name="Database delays")
    html = client.get("/de/history/").content.decode()
    # Month names come from Django's own catalogues, whatever ours hold, long or short.
    months = {"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August"}
    months |= {"September", "Oktober", "November", "Dezember"}
    months |= {"Jan", "Feb", "Mär", "Apr", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"}
    assert any(f">{month}" in html or f" {month} " in html for month in months)


@pytest.mark.parametrize(
    "path",
    [
        "/es/",
        "/es/history/",
        "/es/history.atom",
        "/es/maintenance.ics",
        "/es/badge.svg",
        "/es/embed.js",
    ],
)
def test_a_disabled_language_s_prefix_is_a_404(client, api, path):
    set_languages(enabled=("en", "de"))
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/de/api/v2/summary.json", "/de/api/v1/pages/x", "/de/robots.txt", "/de/admin/", "/de/de/"],
)
def test_language_neutral_outputs_have_no_prefix(client, api, path):
    assert client.get(path).status_code == 404
    assert client.get("/api/v2/summary.json").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/de/history/",
        "/de/history.atom",
        "/de/history.rss",
        "/de/maintenance.ics",
        "/de/badge.svg",
        "/de/badge.json",
        "/de/embed.js",
        "/de/subscribe/",
    ],
)
def test_localized_outputs_answer_under_a_prefix(client, api, path):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_a_feed_under_a_prefix_names_its_own_address_and_language(client, api, fmt):
    page = PageSettings.load()
    page.url = "https://status.acme.test"
    page.save()
    open_incident(name="Database delays")
    german = client.get(f"/de/history.{fmt}").content.decode()
    english = client.get(f"/history.{fmt}").content.decode()
    if fmt == "atom":
        assert 'xml:lang="de"' in german and 'xml:lang="en-US"' in english
        assert 'href="https://status.acme.test/de/history.atom" rel="self"' in german
        assert 'href="https://status.acme.test/de/" rel="alternate"' in german
        assert "<id>tag:status.acme.test,2005:/de/history</id>" in german
        assert "<id>tag:status.acme.test,2005:/history</id>" in english
    else:
        assert "<language>de</language>" in german and "<language>en-us</language>" in english
        assert "<link>https://status.acme.test/de/</link>" in german
        assert 'href="https://status.acme.test/de/history.rss"' in german
    assert "https://status.acme.test/de/incidents/" in german
    assert "/de/" not in english


def test_a_component_feed_under_a_prefix_keeps_it(client, api):
    feed = client.get(f"/de/components/{api.public_id}/history.atom").content.decode()
    assert f'/de/components/{api.public_id}/history.atom" rel="self"' in feed


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("de-DE,de;q=0.9", "Anmelden"),
        ("ja", "ログイン"),
        ("fr-CA, en;q=0.5", "Connexion"),
        ("", "Log in"),
        ("xx, *;q=0.1", "Log in"),
        ("de;q=garbage," * 200, "Log in"),
    ],
)
def test_staff_pages_speak_their_browser_s_language(client, api, header, words):
    # The page's languages do not limit staff: disabling German for visitors keeps it here.
    set_languages(enabled=("en", "fr"))
    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE=header)
    assert response.status_code == 200
    assert words in response.content.decode()
    assert "Accept-Language" in response["Vary"]


def test_the_api_keeps_english_whatever_the_browser(client, api):
    response = client.get("/api/v2/status.json", HTTP_ACCEPT_LANGUAGE="de")
    assert "All Systems Operational" in response.content.decode()


def test_a_prefix_without_its_slash_is_redirected_to_it(client, api):
    response = client.get("/fr")
    assert (response.status_code, response["Location"]) == (301, "/fr/")


def test_links_in_a_page_rendered_for_a_prefix_stay_under_it(client, api):
    incident = open_incident(component_statuses={api: "major_outage"})
    html = client.get("/fr/").content.decode()
    assert f'href="/fr/incidents/{incident.public_id}/"' in html
    assert 'href="/fr/history/"' in html
    assert 'href="/fr/history.atom"' in html
    assert 'href="/history/"' not in html
    # The next page renders unprefixed links again.
    assert 'href="/history/"' in client.get("/").content.decode()


# Accept-Language at the unprefixed pages


@pytest.mark.parametrize(
    ("path", "header", "location"),
    [
        ("/", "de-DE,de;q=0.9", "/de/"),
        ("/", "pt-BR", "/pt-br/"),
        ("/history/", "ja", "/ja/history/"),
        ("/history/?page=2", "fr", "/fr/history/?page=2"),
        ("/", "en-US,en;q=0.9", None),
        ("/", "zh", None),
        ("/", "", None),
        ("/", "garbage;;;", None),
    ],
)
def test_unprefixed_pages_send_other_languages_to_their_prefix(client, api, path, header, location):
    headers = {"HTTP_ACCEPT_LANGUAGE": header} if header else {}
    response = client.get(path, **headers)
    if location is None:
        assert response.status_code in (200, 404)
    else:
        assert (response.status_code, response["Location"]) == (302, location)
    assert "Accept-Language" in response.get("Vary", "")


def test_prefixed_pages_never_negotiate(client, api):
    response = client.get("/fr/", HTTP_ACCEPT_LANGUAGE="de")
    assert response.status_code == 200
    assert "Accept-Language" not in response["Vary"]


def test_a_page_with_one_language_never_redirects(client, api):
    set_languages(enabled=("en",))
    assert client.get("/", HTTP_ACCEPT_LANGUAGE="de").status_code == 200


def test_the_fast_path_negotiates_too(client, api):
    client.get("/")  # the snapshot, now in this process's memory
    answer = call_wsgi("/", accept_language="ja;q=0.8,en;q=0.5")
    assert answer["status"] == "302 Found"
    assert answer["headers"]["Location"] == "/ja/"
    answer = call_wsgi("/", accept_language="en")
    assert answer["status"].startswith("200")
    assert answer["headers"]["Vary"] == "Accept-Encoding, Accept-Language"


# The switcher and the alternates


def switcher(html: str) -> str:
    match = re.search(r'<nav class="language-switcher".*?</nav>', html, flags=re.S)
    return match.group(0) if match else ""


def test_every_public_page_links_to_itself_in_each_enabled_language(client, api):
    set_languages(enabled=("en", "de", "ja"))
    incident = open_incident(component_statuses={api: "major_outage"})
    path = f"/incidents/{incident.public_id}/"
    html = client.get(f"/ja{path}").content.decode()
    nav = switcher(html)
    assert f'<a href="/en{path}" lang="en" hreflang="en">English</a>' in nav
    assert f'<a href="/de{path}" lang="de" hreflang="de">Deutsch</a>' in nav
    assert f'<a href="/ja{path}" lang="ja" hreflang="ja" aria-current="true">日本語</a>' in nav
    assert "/fr" not in nav
    alternates = re.findall(r'<link rel="alternate" hreflang="([^"]+)" href="([^"]+)">', html)
    base = "https://status.acme.test"  # the page's published URL
    assert alternates == [
        ("en", f"{base}/en{path}"),
        ("de", f"{base}/de{path}"),
        ("ja", f"{base}/ja{path}"),
        ("x-default", f"{base}{path}"),
    ]
    for page in ("/", "/history/", "/de/history/", "/subscribe/", "/de/subscribe/"):
        assert switcher(client.get(page).content.decode()), page


def test_the_switcher_is_hidden_with_one_language(client, api):
    set_languages(default="fr", enabled=("fr",))
    html = client.get("/").content.decode()
    assert not switcher(html)
    assert "hreflang" not in html
    assert '<html lang="fr">' in html


def test_the_unprefixed_page_marks_the_default_as_current(client, api):
    set_languages(default="de", enabled=("en", "de"))
    nav = switcher(client.get("/").content.decode())
    assert 'hreflang="de" aria-current="true"' in nav
    assert 'hreflang="en" aria-current' not in nav


# Snapshots per language


def test_each_language_is_a_snapshot_of_its_own(client, api):
    set_languages(enabled=("en", "de"))
    english, german = client.get("/history/"), client.get("/de/history/")
    assert english.content != german.content
    assert store.memory().get("/history/") is not None
    assert store.memory().get("/de/history/") is not None


def test_the_hot_set_holds_every_enabled_language_s_outputs(api):
    set_languages(enabled=("en", "de", "fr"))
    incident = open_incident(component_statuses={api: "major_outage"})
    hot = keys.public_keys()
    for prefix in ("", "/en", "/de", "/fr"):
        assert f"{prefix}/" in hot
        assert f"{prefix}/history.atom" in hot
        assert f"{prefix}/embed.js" in hot
        assert f"{prefix}/incidents/{incident.public_id}/" in hot
    assert not any(key.startswith(("/es/", "/ja/", "/pt-br/")) for key in hot)
    assert "/de/api/v2/summary.json" not in hot
    everything = keys.public_keys(everything=True)
    assert f"/de/components/{api.public_id}/badge.svg" in everything or any(
        key.startswith("/de/") and api.public_id in key for key in everything
    )


def test_known_outputs_refuse_disabled_languages_without_a_query(api, django_assert_num_queries):
    set_languages(enabled=("en", "de"))
    known = store.refresh_known_outputs()
    assert known.enabled_languages == ("en", "de")
    with django_assert_num_queries(0):
        assert known.may_exist("/de/history/")
        assert not known.may_exist("/fr/history/")


@pytest.mark.django_db(transaction=True)
def test_languages_are_served_and_negotiated_while_postgresql_is_away(api, monkeypatch):
    set_languages(default="en", enabled=("en", "de"))
    client = Client()
    for path in ("/", "/de/", "/de/history/"):
        assert client.get(path).status_code == 200
    store.refresh_known_outputs()
    with database_unreachable(monkeypatch):
        store.reset_memory()  # a fresh process: only the cache and the disk
        assert client.get("/de/").status_code == 200
        assert '<html lang="de">' in client.get("/de/history/").content.decode()
        response = client.get("/", HTTP_ACCEPT_LANGUAGE="de")
        assert (response.status_code, response["Location"]) == (302, "/de/")
        assert client.get("/fr/").status_code == 404
        assert client.get("/", HTTP_ACCEPT_LANGUAGE="en").status_code == 200


def test_serving_a_prefixed_snapshot_costs_no_query(client, api, django_assert_num_queries):
    client.get("/de/")
    with django_assert_num_queries(0):
        assert client.get("/de/").status_code == 200
        assert client.get("/", HTTP_ACCEPT_LANGUAGE="de").status_code == 302


def test_rendering_a_prefixed_page_costs_what_the_unprefixed_one_does(
    client, api, django_assert_max_num_queries
):
    open_incident(component_statuses={api: "major_outage"})
    with django_assert_max_num_queries(12):
        assert client.get("/de/").status_code == 200


# nginx in front


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
@pytest.mark.parametrize(
    ("header", "answered_by"),
    [
        (None, "file"),
        ("en", "file"),
        ("en-US,en;q=0.9,de;q=0.8", "file"),
        ("de-DE,de;q=0.9", "django"),
        ("pt-BR", "django"),
        ("enx", "django"),
        ("garbage;;;", "django"),
    ],
)
def test_nginx_sends_home_page_visitors_of_other_languages_to_django(
    tmp_path, httpserver, header, answered_by
):
    files = tmp_path / "files"
    (files / "de").mkdir(parents=True)
    (files / "index.html").write_text("from the file")
    (files / "de/index.html").write_text("german file")
    httpserver.expect_request("/").respond_with_data(
        "", status=302, headers={"Location": "/de/", "Vary": "Accept-Language"}
    )
    with shipped_nginx(tmp_path, files=files, upstream=f"127.0.0.1:{httpserver.port}") as base:
        headers = {"Accept-Language": header} if header is not None else {}
        home = httpx.get(base + "/", headers=headers)
        german = httpx.get(base + "/de/", headers=headers)

    if answered_by == "file":
        assert (home.status_code, home.text) == (200, "from the file")
        assert "Accept-Language" in home.headers["Vary"]
    else:
        assert (home.status_code, home.headers["Location"]) == (302, "/de/")
    # Prefixed files are served like the others, whatever the browser prefers.
    assert (german.status_code, german.text) == (200, "german file")


def test_the_refresh_notice_speaks_the_page_s_language(api, tmp_path, settings):
    folder = tmp_path / "locale/de/LC_MESSAGES"
    folder.mkdir(parents=True)
    source = (
        "We cannot refresh this page right now. It shows the status as of %(time)s; "
        "we are working on it."
    )
    (folder / "django.po").write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        f'msgid "{source}"\nmsgstr "Aktualisierung <gerade> nicht möglich: Stand %(time)s."\n',
        encoding="utf-8",
    )
    subprocess.run(
        ["msgfmt", "-o", str(folder / "django.mo"), str(folder / "django.po")], check=True
    )
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    client = Client()
    client.get("/")
    client.get("/de/")
    cache.set(keys.REFRESH_FAILING_KEY, 1_800_000_000.0)  # as the outage module says it
    german = client.get("/de/").content.decode()
    english = client.get("/").content.decode()
    assert "Aktualisierung &lt;gerade&gt; nicht möglich: Stand <time datetime=" in german
    assert "We cannot refresh this page right now. It shows the status as of <time" in english
