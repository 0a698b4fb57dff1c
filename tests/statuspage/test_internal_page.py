"""/internal/: everything, marked, for staff, allowed networks and emailed sign-in links."""

import re
import shutil
import time

import httpx
import pytest
from django.core.signing import TimestampSigner, b62_encode
from django.test import Client

from incidents.notify import links
from incidents.notify.models import Audience, Subscriber
from statuspage.lib import internal_access
from statuspage.models import PageSettings
from statuspage.public.snapshots import keys, store
from statuspage.services import page_settings_update
from tests.incidents.factories import (
    StaffFactory,
    SubscriberFactory,
    open_incident,
    sign_in_staff,
)
from tests.incidents.notify.conftest import CapturingHandler, serving_smtp
from tests.nginx import shipped_nginx
from tests.statuspage.test_internal_hidden import SECRET_NAMES, world  # noqa: F401 - fixture
from tests.statuspage.test_public_outage import database_unreachable
from tests.statuspage.test_snapshots import call_wsgi

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED_DOMAIN = "example.com"


@pytest.fixture
def settings_for_internal(world, settings):  # noqa: F811 - the fixture
    page_settings_update(
        page=PageSettings.objects.get(),
        changes={
            "internal_networks": "10.0.0.0/8\n2001:db8::/32",
            "internal_email_domains": ALLOWED_DOMAIN,
        },
    )
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return world


@pytest.fixture
def smtp(settings):
    with serving_smtp(CapturingHandler(), settings) as handler:
        yield handler


def assert_shows_everything(response, world):  # noqa: F811 - the fixture
    assert response.status_code == 200
    body = response.content.decode()
    for name in ("Zebracorn", "Quokkagroup", "Marmotcache", "Walrusoutage", "Narwhalupgrade"):
        assert name in body, name
    assert 'class="internal-mark"' in body
    assert response["Cache-Control"] == "private, no-store"
    assert "noindex" in response["X-Robots-Tag"]
    assert '<meta name="robots" content="noindex">' in body
    assert "also shows what the public status page does not" in body
    internal_incident = world["internal_incidents"][0]
    assert f'href="/internal/incidents/{internal_incident.public_id}/"' in body
    assert f'href="/incidents/{internal_incident.public_id}/"' not in body


def assert_sent_to_sign_in(response):
    assert response.status_code == 302
    assert response["Location"] == "/internal/sign-in/"
    assert response["Cache-Control"] == "private, no-store"
    for name in SECRET_NAMES:
        assert name not in response.content.decode()


# Anyone else


def test_a_stranger_is_sent_to_sign_in_whatever_the_url(settings_for_internal, client):
    real = settings_for_internal["internal_incidents"][0].public_id
    for url in [
        "/internal/",
        "/internal/history/",
        "/internal/history/?page=2",
        f"/internal/incidents/{real}/",
        "/internal/incidents/madeupcode12/",
    ]:
        assert_sent_to_sign_in(client.get(url, REMOTE_ADDR="203.0.113.5"))


def test_a_signed_in_user_who_is_not_staff_is_a_stranger(settings_for_internal, client):
    sign_in_staff(client, StaffFactory(is_staff=False))
    assert_sent_to_sign_in(client.get("/internal/", REMOTE_ADDR="203.0.113.5"))


# Staff


def test_staff_see_everything_marked_internal(settings_for_internal, client):
    items = settings_for_internal
    sign_in_staff(client, StaffFactory())

    assert_shows_everything(client.get("/internal/", REMOTE_ADDR="203.0.113.5"), items)
    internal_incident = items["internal_incidents"][0]
    detail = client.get(f"/internal/incidents/{internal_incident.public_id}/")
    assert detail.status_code == 200
    assert "Walrusoutage" in detail.content.decode()
    assert detail["Cache-Control"] == "private, no-store"
    history = client.get("/internal/history/")
    assert "Walrusoutage" in history.content.decode()
    assert client.get("/internal/incidents/madeupcode12/").status_code == 404
    # The public page has not changed.
    public = client.get("/").content.decode()
    assert "Walrusoutage" not in public and "Zebracorn" not in public


def test_internal_pages_are_snapshots_kept_apart_from_the_files_nginx_serves(
    settings_for_internal, client, settings
):
    sign_in_staff(client, StaffFactory())
    client.get("/internal/")
    snapshot = store.load("/internal/")
    assert snapshot is not None and "Walrusoutage" in snapshot.body.decode()
    files = settings.BEACON_SNAPSHOT_DIR / "files"
    written = [p for p in files.rglob("*") if p.is_file()] if files.exists() else []
    assert not any("internal" in str(p.relative_to(files)) for p in written)
    assert not any(key.startswith("/internal") for key in keys.public_keys(everything=True))


# Allowed networks


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "10.255.255.254", "2001:db8::7", "::ffff:10.1.2.3"]
)
def test_a_visitor_from_an_allowed_network_sees_everything(settings_for_internal, address):
    response = Client().get("/internal/", REMOTE_ADDR=address)
    assert_shows_everything(response, settings_for_internal)


@pytest.mark.parametrize("address", ["203.0.113.5", "11.0.0.1", "2001:db9::1", "", "garbage"])
def test_a_visitor_from_elsewhere_is_sent_to_sign_in(settings_for_internal, address):
    assert_sent_to_sign_in(Client().get("/internal/", REMOTE_ADDR=address))


def test_x_forwarded_for_counts_only_from_trusted_hops(settings_for_internal, settings):
    outside = Client()
    # No trusted proxy: the header is the client's own word and means nothing.
    settings.BEACON_TRUSTED_PROXY_HOPS = 0
    assert_sent_to_sign_in(
        outside.get("/internal/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="10.1.2.3")
    )
    # One trusted proxy: only the entry it appended is the client.
    settings.BEACON_TRUSTED_PROXY_HOPS = 1
    spoofed = "10.1.2.3, 203.0.113.5"  # the client wrote the first, the proxy saw the second
    assert_sent_to_sign_in(
        outside.get("/internal/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=spoofed)
    )
    behind_proxy = outside.get(
        "/internal/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="203.0.113.5, 10.1.2.3"
    )
    assert_shows_everything(behind_proxy, settings_for_internal)


@pytest.mark.parametrize("value", ["10.0.0.0/33", "not a network", "10.0.0.0/8\nexample.com"])
def test_networks_that_are_not_cidrs_are_refused(settings_for_internal, value):
    with pytest.raises(Exception, match="is not a network"):
        page_settings_update(page=PageSettings.objects.get(), changes={"internal_networks": value})


# Emailed sign-in links


def ask_for_link(client, email, **extra):
    return client.post("/internal/sign-in/", {"email": email}, REMOTE_ADDR="203.0.113.5", **extra)


def link_in(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"https?://\S+/internal/sign-in/\S+/", text).group(0)


def use_link(client, link):
    path = re.sub(r"^https?://[^/]+", "", link)
    shown = client.get(path)
    assert shown.status_code == 200  # a button: opening the link uses nothing
    return client.post(path, REMOTE_ADDR="203.0.113.5")


def test_a_link_to_an_allowed_domain_lets_its_reader_in_once(settings_for_internal, smtp):
    reader = Client()
    asked = ask_for_link(reader, "Ops@Example.com")
    assert asked.status_code == 200
    assert "If this address may view" in asked.content.decode()
    [message] = smtp.messages
    assert message["To"] == "ops@example.com"
    link = link_in(message)

    used = use_link(reader, link)
    assert used.status_code == 302 and used["Location"] == "/internal/"
    cookie = used.cookies[internal_access.VIEWER_COOKIE]
    assert cookie["httponly"] and cookie["path"] == "/internal/"
    assert_shows_everything(
        reader.get("/internal/", REMOTE_ADDR="203.0.113.5"), settings_for_internal
    )

    again = use_link(Client(), link)
    assert again.status_code == 400
    assert "no longer works" in again.content.decode()


@pytest.mark.parametrize(
    "email",
    [
        "ops@evil.test",
        "ops@sub.example.com",
        "ops@example.com.evil.test",
        "ops@evil.test@example.com",
        "example.com",
        "ops@example.com\r\nBcc: thief@evil.test",
        "ops@example.com\x00",
    ],
)
def test_other_addresses_get_the_same_answer_and_no_email(settings_for_internal, smtp, email):
    allowed = ask_for_link(Client(), "someone@example.com").content.decode()
    smtp.messages.clear()
    other = ask_for_link(Client(), email)
    if email.count("@") == 1 and email.isprintable():
        assert other.status_code == 200
        strip = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')
        assert strip.sub("", other.content.decode()) == strip.sub("", allowed)
    else:
        assert other.status_code == 400
    assert smtp.messages == []


def test_a_tampered_link_is_refused(settings_for_internal, smtp):
    ask_for_link(Client(), "ops@example.com")
    link = link_in(smtp.messages[0])
    token = link.rstrip("/").rsplit("/", 1)[1]
    for forged in [token[:-1] + ("A" if token[-1] != "A" else "B"), token[:20], "x" * 40]:
        response = use_link(Client(), link.replace(token, forged))
        assert response.status_code == 400
        assert internal_access.VIEWER_COOKIE not in response.cookies
    signed_elsewhere = TimestampSigner(salt="another.purpose").sign_object(
        {"e": "ops@example.com", "n": "x"}, compress=True
    )
    assert use_link(Client(), link.replace(token, signed_elsewhere)).status_code == 400


class OldSigner(TimestampSigner):
    def timestamp(self):
        return b62_encode(int(time.time()) - internal_access.LINK_MAX_AGE - 5)


def test_an_expired_link_is_refused(settings_for_internal):
    token = OldSigner(salt=internal_access.LINK_SALT).sign_object(
        {"e": "ops@example.com", "n": "old"}, compress=True
    )
    response = use_link(Client(), f"/internal/sign-in/{token}/")
    assert response.status_code == 400
    assert internal_access.use_sign_in_token(token).refusal == "expired"


def test_a_forged_or_expired_cookie_lets_nobody_in(settings_for_internal):
    forged = Client()
    forged.cookies[internal_access.VIEWER_COOKIE] = "ops@example.com:forged"
    assert_sent_to_sign_in(forged.get("/internal/", REMOTE_ADDR="203.0.113.5"))
    old = Client()
    old.cookies[internal_access.VIEWER_COOKIE] = OldSigner(
        salt=internal_access.VIEWER_SALT
    ).sign_object({"e": "ops@example.com"})
    assert internal_access.viewer_from_cookie(old.cookies[internal_access.VIEWER_COOKIE].value)
    # Old by minutes only: still good for 12 h; one older than that is refused.
    ancient = TimestampSigner(salt=internal_access.VIEWER_SALT)
    ancient.timestamp = lambda: b62_encode(int(time.time()) - internal_access.VIEWER_MAX_AGE - 5)
    old.cookies[internal_access.VIEWER_COOKIE] = ancient.sign_object({"e": "ops@example.com"})
    assert_sent_to_sign_in(old.get("/internal/", REMOTE_ADDR="203.0.113.5"))


def test_links_are_rate_limited_per_address_and_per_client(settings_for_internal, smtp):
    visitor = Client()
    for _ in range(5):
        assert ask_for_link(visitor, "ops@example.com").status_code == 200
    refused = ask_for_link(visitor, "ops@example.com")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert len(smtp.messages) == 5
    # Other addresses from the same client, up to the client's own limit (20 attempts).
    for number in range(14):
        assert ask_for_link(visitor, f"person{number}@example.com").status_code == 200
    assert ask_for_link(visitor, "last@example.com").status_code == 429
    assert (
        ask_for_link(visitor, "last@example.com", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code
        == 429
    )


# With PostgreSQL away


def test_link_and_network_viewers_keep_seeing_the_page_while_the_database_is_away(
    settings_for_internal, smtp, monkeypatch
):
    reader = Client()
    ask_for_link(reader, "ops@example.com")
    use_link(reader, link_in(smtp.messages[0]))
    assert_shows_everything(reader.get("/internal/"), settings_for_internal)
    network = Client()
    assert network.get("/internal/", REMOTE_ADDR="10.1.2.3").status_code == 200
    staff = Client()
    sign_in_staff(staff, StaffFactory())

    with database_unreachable(monkeypatch):
        assert_shows_everything(
            reader.get("/internal/", REMOTE_ADDR="203.0.113.5"), settings_for_internal
        )
        assert_shows_everything(
            network.get("/internal/", REMOTE_ADDR="10.1.2.3"), settings_for_internal
        )
        # A link used while the database is away still signs its reader in.
        token = internal_access.sign_in_token("oncall@example.com")
        late = Client()
        assert use_link(late, f"/internal/sign-in/{token}/").status_code == 302
        assert_shows_everything(
            late.get("/internal/", REMOTE_ADDR="203.0.113.5"), settings_for_internal
        )
        # Staff sessions live in the database: staff are asked to sign in with a link.
        assert_sent_to_sign_in(staff.get("/internal/", REMOTE_ADDR="203.0.113.5"))
        assert Client().get("/internal/sign-in/").status_code == 200


# nginx


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
def test_nginx_always_asks_django_for_internal_pages(tmp_path, live_server):
    files = tmp_path / "files"
    (files / "internal").mkdir(parents=True)
    # Even a file left where the internal page would be is never served.
    (files / "internal/index.html").write_text("Walrusoutage")
    (files / "index.html").write_text("<!doctype html><title>Status</title>")
    upstream = live_server.url.removeprefix("http://")
    with shipped_nginx(tmp_path, files=files, upstream=upstream) as base:
        answer = httpx.get(base + "/internal/", follow_redirects=False)
        public = httpx.get(base + "/")

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/internal/sign-in/"
    assert "Walrusoutage" not in answer.text
    assert public.status_code == 200  # the files tree itself is served


def test_a_network_viewer_is_answered_from_the_snapshot_without_a_query(
    settings_for_internal, django_assert_max_num_queries
):
    viewer = Client()
    assert viewer.get("/internal/", REMOTE_ADDR="10.1.2.3").status_code == 200
    with django_assert_max_num_queries(0):
        again = viewer.get("/internal/", REMOTE_ADDR="10.1.2.3")
    assert_shows_everything(again, settings_for_internal)


# Internal subscribers


def test_strangers_cannot_use_the_internal_subscribe_form(settings_for_internal):
    stranger = Client()
    assert_sent_to_sign_in(stranger.get("/internal/subscribe/", REMOTE_ADDR="203.0.113.5"))
    response = stranger.post(
        "/internal/subscribe/", {"email": "someone@evil.test"}, REMOTE_ADDR="203.0.113.5"
    )
    assert_sent_to_sign_in(response)
    assert not Subscriber.objects.exists()


def test_the_internal_page_subscribes_internal_subscribers_to_internal_components(
    settings_for_internal,
):
    viewer = Client()
    page = viewer.get("/internal/", REMOTE_ADDR="10.1.2.3").content.decode()
    assert 'href="/internal/subscribe/"' in page
    form = viewer.get("/internal/subscribe/", REMOTE_ADDR="10.1.2.3")
    body = form.content.decode()
    assert form.status_code == 200 and "Zebracorn" in body and "Marmotcache" in body
    assert 'action="/internal/subscribe/"' in body
    secret = settings_for_internal["internal_components"][0]

    answer = viewer.post(
        "/internal/subscribe/",
        {"email": "oncall@example.com", "components": [secret.pk]},
        REMOTE_ADDR="10.1.2.3",
    )

    assert answer.status_code == 200
    subscriber = Subscriber.objects.get()
    assert subscriber.audience == Audience.INTERNAL
    assert list(subscriber.components.all()) == [secret]
    # Its own preferences page offers the internal components; a public subscriber's not.
    manage = Client().get(links.manage_path(subscriber)).content.decode()
    assert "Zebracorn" in manage
    public = SubscriberFactory(email="reader@example.test")
    assert "Zebracorn" not in Client().get(links.manage_path(public)).content.decode()
    refused = Client().post(links.manage_path(public), {"components": [secret.pk]})
    assert refused.status_code == 400
    assert not public.components.exists()


@pytest.mark.parametrize("channel", ["slack", "discord", "teams", "webhook"])
def test_the_internal_subscribe_form_takes_email_only(settings_for_internal, channel):
    viewer = Client()
    form = viewer.get(f"/internal/subscribe/?channel={channel}", REMOTE_ADDR="10.1.2.3")
    body = form.content.decode()
    assert form.status_code == 200 and 'class="channel-choice"' not in body
    assert 'name="channel" value="email"' in body

    answer = viewer.post(
        "/internal/subscribe/",
        {
            "channel": channel,
            "endpoint": "https://hooks.slack.com/services/T0/B0/x",
            "email": "oncall@example.com",
        },
        REMOTE_ADDR="10.1.2.3",
    )

    assert answer.status_code == 400
    assert "email subscriptions only" in answer.content.decode()
    assert not Subscriber.objects.exists()


def test_the_public_form_refuses_internal_components(settings_for_internal):
    secret = settings_for_internal["internal_components"][0]
    response = Client().post(
        "/subscribe/", {"email": "reader@example.test", "components": [secret.pk]}
    )
    assert response.status_code == 400
    assert not Subscriber.objects.exists()


def test_the_wsgi_fast_path_never_serves_an_internal_snapshot(settings_for_internal):
    assert Client().get("/internal/", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert store.memory().get("/internal/") is not None  # held by this process

    answer = call_wsgi("/internal/")

    assert answer["status"].startswith("302")
    assert answer["headers"]["Location"] == "/internal/sign-in/"
    for name in SECRET_NAMES:
        assert name.encode() not in answer["body"]


def test_removing_a_domain_shuts_out_its_signed_in_readers(settings_for_internal):
    reader = Client()
    token = internal_access.sign_in_token("ops@example.com")
    use_link(reader, f"/internal/sign-in/{token}/")
    assert reader.get("/internal/", REMOTE_ADDR="203.0.113.5").status_code == 200

    page_settings_update(
        page=PageSettings.objects.get(), changes={"internal_email_domains": "example.org"}
    )

    assert_sent_to_sign_in(reader.get("/internal/", REMOTE_ADDR="203.0.113.5"))


def test_only_the_page_number_selects_another_internal_history_snapshot(settings_for_internal):
    for number in range(30):
        open_incident(name=f"Walrusoutage {number}", internal=True)
    viewer = Client()
    first = viewer.get("/internal/history/", REMOTE_ADDR="10.1.2.3")
    second = viewer.get("/internal/history/?page=2", REMOTE_ADDR="10.1.2.3")
    assert first.status_code == second.status_code == 200
    assert first.content != second.content
    for query in ["page=1", "page=abc", "x=1", "page=2&x=1"]:
        viewer.get(f"/internal/history/?{query}", REMOTE_ADDR="10.1.2.3")
    assert store.load("/internal/history/?page=2&x=1") is None
    assert store.load("/internal/history/?x=1") is None
    assert store.load("/internal/history/?page=1") is None
    assert viewer.get("/internal/history/?page=9", REMOTE_ADDR="10.1.2.3").status_code == 404
