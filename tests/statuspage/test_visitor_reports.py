"""`POST /reports/`: the "Having problems?" control on the public page (docs/reports.md)."""

import logging
import os
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from components.reports.models import ReportCount
from components.reports.services import count_key, minute_of, report_counts_persist
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident
from tests.statuspage.test_public_outage import database_unreachable
from tests.statuspage.test_snapshots import unreachable_redis

ADDRESS = "203.0.113.77"
AGENT = "Mozilla/5.0 ReportTestBrowser/7f3a"
SAME_ORIGIN = {
    "HTTP_SEC_FETCH_SITE": "same-origin",
    "HTTP_ORIGIN": "http://testserver",
    "HTTP_USER_AGENT": AGENT,
    "REMOTE_ADDR": ADDRESS,
}


@pytest.fixture
def components(db, page, client):
    api = ComponentFactory(name="API")
    chat = ComponentFactory(name="Chat")
    return api, chat


def warm(client):
    """What a visitor's page view leaves behind: the snapshots and the cached settings."""
    assert client.get("/").status_code == 200
    assert client.get("/api/v2/summary.json").status_code == 200


def report(client, data, **headers):
    return client.post("/reports/", data, **{**SAME_ORIGIN, **headers})


def counted():
    return {(r.component_id, r.symptom): r.count for r in ReportCount.objects.all()}


def persist():
    report_counts_persist(now=timezone.now())


def test_the_status_page_shows_the_control_with_every_component(client, components):
    api, chat = components
    body = client.get("/").content.decode()
    assert 'id="report-form"' in body
    assert f'value="{api.public_id}"' in body and f'value="{chat.public_id}"' in body
    assert 'value="other"' in body
    assert 'name="website" tabindex="-1" autocomplete="off"' in body
    assert "<legend>What fails for you?</legend>" in body
    assert "csrfmiddlewaretoken" not in body.split('id="report-form"')[1]


def test_a_report_is_accepted_and_counted(client, components):
    api, chat = components
    warm(client)
    response = report(client, {"components": [api.public_id, "other"], "symptom": "slow"})
    assert response.status_code == 202
    assert "Thank you, your report is counted." in response.content.decode()
    persist()
    assert counted() == {(api.pk, "slow"): 1, (None, "slow"): 1}


def test_htmx_gets_the_control_back_with_the_thanks(client, components):
    api, _ = components
    warm(client)
    response = report(client, {"components": [api.public_id]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 202
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="report-form"')
    assert "Thank you" in body and "<html" not in body


def test_the_post_reads_nothing_from_postgresql(
    client, components, django_assert_num_queries, settings
):
    api, _ = components
    warm(client)
    with django_assert_num_queries(0):
        response = report(client, {"components": [api.public_id], "symptom": "errors"})
        bad = report(client, {"components": ["nope"]}, REMOTE_ADDR="198.51.100.2")
    assert (response.status_code, bad.status_code) == (202, 400)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Pick at least one component"),
        ({"components": ["zzzzzzzzzzzz"]}, "not on this page"),
        ({"components": ["other"], "symptom": "bored"}, "not one of the choices"),
        ({"components": ["other"], "symptom": ["slow", "errors"]}, "one symptom at most"),
        ({"components": ["other"] * 101}, "too many values"),
        ({"components": ["other\x00"]}, "characters or values no form sends"),
        ({"components": ["other"], "symptom": "slow\r\nX-Injected: 1"}, "no form sends"),
        ({"components": ["x" * 500]}, "no form sends"),
    ],
)
def test_bad_input_is_a_400_with_a_message(client, components, data, message):
    warm(client)
    response = report(client, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ReportCount.objects.exists()


def test_an_oversized_body_is_a_400(client, components):
    warm(client)
    response = client.post(
        "/reports/",
        "components=other&website=" + "a" * 10_000,
        content_type="application/x-www-form-urlencoded",
        **SAME_ORIGIN,
    )
    assert response.status_code == 400
    assert "too large" in response.content.decode()


def test_bad_input_from_htmx_keeps_the_control_with_the_message(client, components):
    warm(client)
    response = report(client, {"components": ["nope"]}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200  # htmx swaps only 2xx answers
    assert 'role="alert"' in body and "not on this page" in body


def test_a_body_that_is_not_a_form_is_a_400(client, components):
    warm(client)
    response = client.post(
        "/reports/", b"\xff\xfe{]", content_type="application/json", **SAME_ORIGIN
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_SEC_FETCH_SITE": "same-site"},
        {"HTTP_SEC_FETCH_SITE": "none"},
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_ORIGIN": "https://testserver"},  # another scheme is another origin
    ],
)
def test_a_cross_site_post_is_refused(client, components, headers):
    warm(client)
    response = report(client, {"components": ["other"]}, **headers)
    assert response.status_code == 403
    persist()
    assert not ReportCount.objects.exists()


def test_a_post_without_browser_headers_is_taken(client, components):
    """No Origin and no Sec-Fetch-Site: not a browser running another site's page."""
    warm(client)
    response = client.post("/reports/", {"components": ["other"]}, REMOTE_ADDR=ADDRESS)
    assert response.status_code == 202


def test_get_is_not_allowed(client, components):
    assert client.get("/reports/").status_code == 405


def test_the_honeypot_is_thanked_and_not_counted(client, components):
    api, _ = components
    warm(client)
    response = report(client, {"components": [api.public_id], "website": "http://spam.test"})
    assert response.status_code == 202
    assert "Thank you" in response.content.decode()
    persist()
    assert not ReportCount.objects.exists()


def test_one_visitor_counts_once_per_component_per_day(client, components):
    api, chat = components
    warm(client)
    for symptom in ("slow", "errors", ""):
        response = report(client, {"components": [api.public_id], "symptom": symptom})
        assert response.status_code == 202
    report(client, {"components": [api.public_id, chat.public_id]})
    # Another visitor: another address, the same browser.
    report(client, {"components": [api.public_id]}, REMOTE_ADDR="198.51.100.9")
    persist()
    assert counted() == {(api.pk, "slow"): 1, (chat.pk, ""): 1, (api.pk, ""): 1}


def test_the_rate_limit_answers_429_with_retry_after(client, components, settings):
    settings.BEACON_REPORTS_LIMIT_PER_IP = 2
    warm(client)
    for _ in range(2):
        assert report(client, {"components": ["other"]}).status_code == 202
    refused = report(client, {"components": ["other"]})
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Another address is not held back.
    assert report(client, {"components": ["other"]}, REMOTE_ADDR="198.51.100.3").status_code == 202


@pytest.mark.parametrize(
    "spent",
    [
        {"components": ["nonexistent"]},  # refused: 400
        {"components": ["other"], "website": "http://spam.test"},  # the honeypot
        {"components": ["other"]},  # counted
    ],
    ids=["refused", "honeypot", "counted"],
)
def test_every_kind_of_post_spends_the_limit(client, components, settings, spent):
    """A flood of bad or bot posts is held back as a flood of good ones is, and a report
    over the limit counts nothing."""
    settings.BEACON_REPORTS_LIMIT_PER_IP = 3
    warm(client)
    for _ in range(3):
        assert report(client, spent).status_code in (202, 400)
    for data in ({"components": ["other"]}, {"components": ["nonexistent"]}, spent):
        assert report(client, data).status_code == 429
    persist()
    # One visitor counts once a day, however often they report.
    expected = 1 if spent == {"components": ["other"]} else 0
    assert sum(counted().values()) == expected


def test_the_rate_limit_holds_without_redis_too(client, components, settings):
    """The embedded default's file cache takes the other path of report_record."""
    settings.BEACON_REPORTS_LIMIT_PER_IP = 2
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "reports-limit",
        }
    }
    warm(client)
    # Browsers of one household behind one address: counted apart, limited together.
    codes = [
        report(client, {"components": ["other"]}, HTTP_USER_AGENT=f"Browser/{n}").status_code
        for n in range(3)
    ]
    assert codes == [202, 202, 429]
    now = minute_of(timezone.now())
    minutes = (now, now - timedelta(minutes=1))  # the posts may straddle a minute's end
    assert sum(cache.get(count_key(minute, "other", ""), 0) for minute in minutes) == 2


def test_the_rate_limit_counts_the_address_the_trusted_proxy_saw(client, components, settings):
    settings.BEACON_REPORTS_LIMIT_PER_IP = 1
    settings.BEACON_TRUSTED_PROXY_HOPS = 1
    warm(client)
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    first = report(client, {"components": ["other"]}, HTTP_X_FORWARDED_FOR=ADDRESS, **proxy)
    other = report(client, {"components": ["other"]}, HTTP_X_FORWARDED_FOR="198.51.100.4", **proxy)
    again = report(client, {"components": ["other"]}, HTTP_X_FORWARDED_FOR=ADDRESS, **proxy)
    assert (first.status_code, other.status_code, again.status_code) == (202, 202, 429)


def test_an_open_incident_on_a_chosen_component_is_named(client, components):
    api, chat = components
    incident = open_incident(name="Sign-in failures", affected_components=[api])
    warm(client)
    response = report(client, {"components": [api.public_id]})
    body = response.content.decode()
    assert response.status_code == 202
    assert "We know:" in body and "Sign-in failures" in body
    assert f'href="/incidents/{incident.public_id}/"' in body
    # A report about another component hears nothing of it.
    other = report(client, {"components": [chat.public_id]}, REMOTE_ADDR="198.51.100.5")
    assert "We know" not in other.content.decode()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="reads the Redis keys")
def test_no_address_or_user_agent_is_stored_or_logged(client, components, caplog, settings):
    api, _ = components
    caplog.set_level(logging.DEBUG)
    warm(client)
    settings.BEACON_REPORTS_LIMIT_PER_IP = 1
    report(client, {"components": [api.public_id], "symptom": "slow"})
    report(client, {"components": ["nope"]})  # refused by the rate limit, logged by Django
    report(client, {"components": ["nope"]}, REMOTE_ADDR="198.51.100.6")  # a 400
    persist()
    redis = cache._cache.get_client(write=False)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    stored = []
    for key in redis.scan_iter(match=f"{prefix}:*"):
        value = redis.get(key) if redis.type(key) == b"string" else b""
        stored.append(key + b" " + (value or b""))
    assert any(b"beacon:reports:count" in item for item in stored)
    assert any(b"beacon:reports:seen" in item for item in stored)
    for item in stored:
        assert ADDRESS.encode() not in item and b"ReportTestBrowser" not in item
    for row in ReportCount.objects.values():
        assert ADDRESS not in str(row) and "ReportTestBrowser" not in str(row)
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    assert "Too Many Requests: /reports/" in logged  # Django logs the 4xx answers, path only
    assert ADDRESS not in logged and "ReportTestBrowser" not in logged
    assert "198.51.100.6" not in logged


@pytest.mark.django_db(transaction=True)
def test_reports_are_taken_while_postgresql_is_down(client, components, monkeypatch):
    api, _ = components
    warm(client)
    with database_unreachable(monkeypatch):
        response = report(client, {"components": [api.public_id], "symptom": "errors"})
        plain = report(client, {"components": ["other"]}, REMOTE_ADDR="198.51.100.7")
    assert (response.status_code, plain.status_code) == (202, 202)
    persist()  # PostgreSQL is back: the beat task catches up
    assert counted() == {(api.pk, "errors"): 1, (None, ""): 1}


@pytest.mark.django_db(transaction=True)
def test_with_no_snapshot_and_postgresql_down_the_answer_is_a_503(components, monkeypatch):
    client = Client(raise_request_exception=False)
    with database_unreachable(monkeypatch):
        response = report(client, {"components": ["other"]})
    assert response.status_code == 503
    assert "cannot be taken right now" in response.content.decode()


def test_a_hidden_component_is_not_offered_and_still_taken(client, components):
    hidden = ComponentFactory(name="Quiet thing", only_show_if_degraded=True)
    warm(client)
    assert "Quiet thing" not in client.get("/").content.decode()
    answer = report(client, {"components": ["other"]}, HTTP_HX_REQUEST="true")
    assert "Quiet thing" not in answer.content.decode()
    # A page opened while it was shown may still name it.
    response = report(client, {"components": [hidden.public_id]}, REMOTE_ADDR="198.51.100.8")
    assert response.status_code == 202


def test_with_redis_away_a_report_is_a_503_not_a_500(client, components, settings, caplog):
    api, _ = components
    warm(client)  # this process keeps the summary snapshot in memory
    settings.CACHES = {"default": unreachable_redis()}
    response = report(client, {"components": [api.public_id]})
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert "reports: not counted, the cache is unreachable" in caplog.text
    assert ADDRESS not in caplog.text and "ReportTestBrowser" not in caplog.text


@pytest.mark.parametrize(
    "data", [{"components": ["other"]}, {"components": ["nonexistent"]}], ids=["202", "400"]
)
def test_no_answer_is_kept_by_a_cache(client, components, data):
    warm(client)
    response = report(client, data)
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_a_report_from_a_page_in_another_language_answers_under_its_prefix(client, components):
    api, _chat = components
    incident = open_incident(name="Sign-in failures", affected_components=[api])
    warm(client)
    data = {"components": [api.public_id]}
    htmx = {**SAME_ORIGIN, "HTTP_HX_REQUEST": "true"}
    # The same answer in two languages: each keeps its own rendering, whichever came first.
    german = client.post("/de/reports/", data, **htmx)
    english = client.post("/reports/", data, **{**htmx, "REMOTE_ADDR": "198.51.100.7"})
    again = client.post("/de/reports/", data, **{**htmx, "REMOTE_ADDR": "198.51.100.8"})
    assert german.status_code == english.status_code == 202
    assert f'href="/de/incidents/{incident.public_id}/"' in german.content.decode()
    assert f'href="/incidents/{incident.public_id}/"' in english.content.decode()
    assert again.content == german.content
    assert client.post("/xx/reports/", data, **htmx).status_code == 404
