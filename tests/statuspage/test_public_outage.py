"""The public surface while PostgreSQL is away: every page says since when it cannot be
refreshed, whichever process or URL serves it; errors are never cached, JSON on API paths and
503 with Retry-After; made-up URLs cost no query; and the outage is logged once, not per
request."""

import json
import logging
import threading
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client

from components.services import component_set_status
from statuspage.public import public_cache
from statuspage.public.snapshots import build, outage, store
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident
from tests.statuspage.test_snapshots import call_wsgi, unreachable_redis

pytestmark = pytest.mark.django_db(transaction=True)

NOTICE = "We cannot refresh this page right now"


@pytest.fixture
def api(page, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    return ComponentFactory(name="API")


@pytest.fixture
def lenient():
    """A client that gets Beacon's error answers instead of the exception re-raised."""
    return Client(raise_request_exception=False)


@contextmanager
def database_unreachable(monkeypatch):
    """PostgreSQL stopped: every new connection is refused, as the driver would say."""

    def refuse(self):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed')

    connection.close()
    with monkeypatch.context() as patch:
        patch.setattr(BaseDatabaseWrapper, "ensure_connection", refuse)
        yield


@contextmanager
def another_process():
    """Run the block as a separate web or worker process would: with its own memory."""
    mine = store._memory
    store.reset_memory()
    try:
        yield
    finally:
        store._memory = mine


def text(answer) -> str:
    return answer["body"].decode()


# The banner on hot pages, whoever noticed and whoever serves


def test_a_hot_page_served_from_memory_says_it_cannot_refresh_once_any_process_noticed(
    api, monkeypatch, settings
):
    incident = open_incident(name="Slow logins", component_statuses={api: "degraded_performance"})
    build.rebuild_hot_snapshots()
    hot = ["/", f"/incidents/{incident.public_id}/", "/history/"]
    assert all(NOTICE not in text(call_wsgi(url)) for url in hot)

    with database_unreachable(monkeypatch):
        # The worker's next rebuild finds the database gone.
        with another_process(), pytest.raises(OperationalError):
            build.rebuild_hot_snapshots()
        # No change happened: this process still holds current snapshots in memory (and any
        # query would raise here).
        answers = {url: text(call_wsgi(url)) for url in hot}
        for url, html in answers.items():
            assert NOTICE in html and "Slow logins" in html, url
        # The files nginx serves say so too.
        files = settings.BEACON_SNAPSHOT_DIR / "files"
        assert NOTICE in (files / "index.html").read_text()
        assert NOTICE in (files / f"incidents/{incident.public_id}/index.html").read_text()
        # Machine-readable outputs stay as they were: they have no banner to show.
        assert NOTICE not in text(call_wsgi("/api/v2/summary.json"))

    outage.probe_database_now()  # back
    assert all(NOTICE not in text(call_wsgi(url)) for url in hot)
    assert NOTICE not in (settings.BEACON_SNAPSHOT_DIR / "files/index.html").read_text()


def test_the_fast_path_itself_has_the_database_probed(api, monkeypatch, settings):
    build.rebuild_hot_snapshots()
    assert NOTICE not in text(call_wsgi("/"))
    settings.BEACON_SNAPSHOT_PROBE_SECONDS = 0
    with database_unreachable(monkeypatch):
        call_wsgi("/badge.svg")  # any URL at all starts the background probe
        for thread in threading.enumerate():
            if thread.name == "beacon-db-probe":
                thread.join(timeout=5)
        assert store.refresh_failing_since() is not None
        assert NOTICE in text(call_wsgi("/"))


def test_the_beat_probe_marks_and_clears_the_outage_with_no_web_traffic(api, monkeypatch, settings):
    """nginx may answer every request from files: the worker's probe still gets them the notice."""
    from statuspage.tasks import probe_database

    build.rebuild_hot_snapshots()
    page = settings.BEACON_SNAPSHOT_DIR / "files/index.html"
    with database_unreachable(monkeypatch), another_process():
        probe_database.apply()
    assert NOTICE in page.read_text()
    with another_process():
        probe_database.apply()
    assert NOTICE not in page.read_text()
    assert store.refresh_failing_since() is None


def test_with_redis_away_too_the_state_is_shared_on_disk(api, monkeypatch, settings):
    build.rebuild_hot_snapshots()
    settings.CACHES = {"default": unreachable_redis()}
    with database_unreachable(monkeypatch):
        with another_process():
            outage.probe_database_now()
        with another_process():  # a web process that starts now, reading disk copies
            html = Client().get("/").content.decode()
    assert NOTICE in html and "All Systems Operational" in html
    with another_process():
        outage.probe_database_now()
    with another_process():
        assert NOTICE not in Client().get("/").content.decode()


def test_a_page_never_built_during_the_outage_is_a_503_that_is_not_cached(
    api, monkeypatch, lenient
):
    with database_unreachable(monkeypatch):
        for url in ["/", "/history/?page=7", "/incidents/abcdef123456/"]:
            response = lenient.get(url)
            assert response.status_code == 503, url
            assert response["Cache-Control"] == "no-store"
            assert int(response["Retry-After"]) > 0
            assert "CDN-Cache-Control" not in response


# Errors: no-store, JSON on API paths, 503 + Retry-After while the database is away


def test_api_errors_are_json_even_while_the_database_is_away(api, monkeypatch, lenient):
    key = "OAuth 0123456789abcdef"
    with database_unreachable(monkeypatch):
        answers = [
            lenient.get("/api/v2/summary.json"),  # never built
            lenient.get("/api/v1/pages/x/incidents", HTTP_AUTHORIZATION=key),
            lenient.get("/api/v1/pages/x/incidents.json", HTTP_AUTHORIZATION=key),
            lenient.post(
                "/api/v1/pages/x/incidents",
                data="{}",
                content_type="application/json",
                HTTP_AUTHORIZATION=key,
            ),
        ]
    for response in answers:
        assert response.status_code == 503, response.content
        assert response["Content-Type"].startswith("application/json")
        assert "error" in json.loads(response.content)
        assert response["Cache-Control"] == "no-store"
        assert int(response["Retry-After"]) > 0


def test_staff_pages_answer_503_while_the_database_is_away(api, monkeypatch, lenient):
    lenient.cookies["sessionid"] = "0123456789abcdefghijklmnopqrstuv"  # a signed-in browser
    with database_unreachable(monkeypatch):
        for response in (lenient.get("/admin/"), lenient.post("/subscribe/", {"email": "a@b.c"})):
            assert response.status_code == 503
            assert response["Cache-Control"] == "no-store"
            assert "Retry-After" in response
            assert b"Traceback" not in response.content


def test_a_bug_is_a_500_that_is_never_cached(api, monkeypatch, lenient):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("statuspage.public.views.selectors.build_status_page", broken)
    monkeypatch.setattr("statuspage.public.api_v2.component_tree", broken)
    page = lenient.get("/")
    assert page.status_code == 500 and page["Cache-Control"] == "no-store"
    assert "CDN-Cache-Control" not in page and "Retry-After" not in page
    assert store.refresh_failing_since() is None  # a bug is not an outage
    summary = lenient.get("/api/v2/summary.json")
    assert summary.status_code == 500 and summary["Cache-Control"] == "no-store"
    assert "error" in json.loads(summary.content)


@pytest.mark.parametrize(
    "url",
    [
        "/incidents/doesnotexist/",
        "/incidents/a-b/",
        "/incidents/" + "x" * 5000 + "/",
        "/history/?page=999",
        "/components/nope/badge.svg",
        "/components/nope/history.rss",
        "/api/v2/nope.json",
        "/nothing/here/",
    ],
)
def test_public_404s_are_kept_briefly_and_never_served_stale(api, client, url):
    for _ in range(2):  # the first one rendered, the second from what is known
        response = client.get(url)
        assert response.status_code == 404
        assert response["Cache-Control"] == build.NOT_FOUND_CACHE_CONTROL
        assert "stale" not in response.get("CDN-Cache-Control", "")
    if url.startswith("/api/"):
        assert json.loads(response.content)["error"]


# Misses answered without the database


def test_made_up_incidents_and_history_pages_cost_no_query(
    api, client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    real = open_incident(name="Real one")
    client.get("/incidents/madeup000001/")  # the first miss learns what exists
    with django_assert_num_queries(0):
        for n in range(30):
            assert client.get(f"/incidents/madeup{n:06d}/").status_code == 404
            assert client.get(f"/history/?page={n + 2}").status_code == 404
        assert client.get("/incidents/%00/").status_code == 404
        assert client.get("/incidents/" + "x" * 5000 + "/").status_code == 404
        assert client.get("/components/madeup/badge.json").status_code == 404
        assert client.get("/components/madeup/history.atom").status_code == 404
    # What exists is still found, and so is what is created afterwards.
    assert client.get(f"/incidents/{real.public_id}/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        later = open_incident(name="Created later")
    assert client.get(f"/incidents/{later.public_id}/").status_code == 200
    assert client.get(f"/components/{api.public_id}/badge.json").status_code == 200


def test_made_up_addresses_by_the_thousand_write_no_warning_apiece(api, client, caplog):
    caplog.set_level(logging.INFO)
    for n in range(200):
        assert client.get(f"/incidents/scan{n:08d}/").status_code == 404
        assert client.get(f"/wp-login{n}.php").status_code == 404
        assert client.get(f"/api/v2/scan{n}.json").status_code == 404

    assert not [r for r in caplog.records if r.name == "django.request"]


def test_the_worker_rebuild_shares_what_exists_with_every_process(
    api, client, django_assert_num_queries
):
    build.rebuild_hot_snapshots()
    with another_process(), django_assert_num_queries(0):
        assert client.get("/incidents/neverexisted/").status_code == 404
        assert client.get("/history/?page=2").status_code == 404


# One log line per outage state change


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    api, monkeypatch, lenient, caplog
):
    for url in ["/", "/history/", "/api/v2/summary.json"]:
        lenient.get(url)
    caplog.clear()
    caplog.set_level(logging.INFO)
    lenient.cookies["sessionid"] = "0123456789abcdefghijklmnopqrstuv"
    with database_unreachable(monkeypatch):
        public_cache.invalidate()  # another process changed something: rebuilds must fail
        for _ in range(10):
            for url in [
                "/",
                "/history/",
                "/history/?page=9",
                "/api/v2/summary.json",
                "/api/v2/incidents.json",
                "/admin/",
                "/api/v1/pages/x/incidents",
            ]:
                lenient.get(url, HTTP_AUTHORIZATION="OAuth 0123456789abcdef")
            with another_process():
                outage.probe_database_now()
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[0].split(" since")[0] for r in failures] == [
        "cannot refresh public snapshots"
    ]
    assert not [r for r in caplog.records if r.exc_info]

    caplog.clear()
    for _ in range(3):
        with another_process():
            outage.probe_database_now()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "public snapshots refresh again: the database is back"
    ]
    component_set_status(component=api, status="major_outage")
    assert "Major outage" in lenient.get("/").content.decode()


def test_uptime_json_and_csv_asked_before_are_served_while_the_database_is_away(
    api, monkeypatch, lenient
):
    asked = f"/api/v2/components/{api.public_id}/uptime"
    before = {suffix: lenient.get(f"{asked}.{suffix}") for suffix in ("json", "csv")}
    assert [answer.status_code for answer in before.values()] == [200, 200]

    with database_unreachable(monkeypatch):
        again = {suffix: lenient.get(f"{asked}.{suffix}") for suffix in ("json", "csv")}
        never_asked = lenient.get(f"{asked}.json?start=2020-01-01")

    for suffix, answer in again.items():
        assert answer.status_code == 200, suffix
        assert answer.content == before[suffix].content
    assert never_asked.status_code == 503
    assert "error" in json.loads(never_asked.content)
    assert never_asked["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "made_up", ["x" * 5000, "abc%22def", "abc.def", "\u00e9t\u00e9", "\u0663" * 3]
)
def test_a_made_up_component_in_the_uptime_address_costs_no_query(
    api, lenient, django_assert_num_queries, made_up
):
    with django_assert_num_queries(0):
        response = lenient.get(f"/api/v2/components/{made_up}/uptime.json")

    assert response.status_code == 404
    assert json.loads(response.content)["error"]


@pytest.mark.parametrize("made_up", ["\u00e9t\u00e9", "\u0663" * 3, "\uff41bc"])
def test_an_incident_code_in_other_letters_or_digits_costs_no_query(
    api, lenient, django_assert_num_queries, made_up
):
    lenient.get("/incidents/madeup000001/")  # the first miss learns what exists
    with django_assert_num_queries(0):
        response = lenient.get(f"/incidents/{made_up}/")

    assert response.status_code == 404
