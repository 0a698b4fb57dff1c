"""Render-on-write snapshots: what readers get after every kind of change, and when parts fail."""

import gzip
import logging
import os
import pickle
import time
from datetime import timedelta

import brotli
import pytest
from django.db import OperationalError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client
from django.utils import timezone

from components.models import ComponentStatus
from components.services import component_set_status, roll_up_uptime
from incidents.services import incident_post_update, maintenances_advance_due
from statuspage.celery import app as celery_app
from statuspage.lib import files
from statuspage.lib.signals import announce_public_change, announce_public_change_on_commit
from statuspage.models import PageSettings
from statuspage.public import public_cache
from statuspage.public.snapshots import build, keys, outage, serve, store
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident, schedule_maintenance

pytestmark = pytest.mark.django_db(transaction=True)

HOT = ["/", "/api/v2/summary.json", "/history.atom", "/badge.svg"]


@pytest.fixture
def api(page):
    return ComponentFactory(name="API")


def body(client, url, **headers):
    response = client.get(url, **headers)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def rebuilds(caplog, key):
    return [r for r in caplog.records if r.getMessage().startswith(f"snapshot rebuilt path={key} ")]


# Every kind of change reaches every output


def rename_page(api):
    page = PageSettings.objects.get(pk=1)
    page.name = "Renamed Co"
    page.save()


def open_outage(api):
    open_incident(name="Logins failing", component_statuses={api: "major_outage"})


def degrade(api):
    component_set_status(component=api, status="partial_outage")


@pytest.mark.parametrize(
    ("change", "expected", "changed_urls"),
    [
        (open_outage, "Logins failing", HOT),
        # The history feed lists incidents only; a status change leaves it as it was.
        (degrade, "artial", ["/", "/api/v2/summary.json", "/badge.svg"]),
        (rename_page, "Renamed Co", HOT),
    ],
    ids=["incident", "component-status", "page-settings"],
)
def test_no_output_is_stale_after_a_change(client, api, change, expected, changed_urls):
    before = {url: body(client, url) for url in HOT}
    change(api)
    after = {url: body(client, url) for url in HOT}
    assert [url for url in changed_urls if after[url] == before[url]] == []
    assert expected in after["/"] and expected in after["/api/v2/summary.json"]


def test_an_update_a_maintenance_start_and_a_rollup_all_refresh_the_page(client, api):
    incident = open_incident(name="Slow API", component_statuses={api: "degraded_performance"})
    body(client, "/")
    incident_post_update(incident=incident, status="identified", body="Found the slow query.")
    assert "Found the slow query." in body(client, "/")

    maintenance = schedule_maintenance(
        name="Router swap", starts_in=timedelta(minutes=1), affected_components=[api]
    )
    assert "Router swap" in body(client, "/api/v2/scheduled-maintenances/upcoming.json")
    maintenances_advance_due(now=timezone.now() + timedelta(minutes=2))
    assert "Router swap" in body(client, "/api/v2/scheduled-maintenances/active.json")
    assert maintenance.name in body(client, f"/incidents/{maintenance.public_id}/")

    first = client.get("/")["ETag"]
    roll_up_uptime(until=timezone.now() + timedelta(hours=1))
    assert client.get("/")["ETag"] != first


# Serving


def test_a_fresh_snapshot_is_served_without_the_database(client, api, django_assert_num_queries):
    body(client, "/")
    with django_assert_num_queries(0):
        for url in ["/", "/?utm=1", "/?cachebust=42"]:
            body(client, url)
            body(client, url, HTTP_CACHE_CONTROL="no-cache", HTTP_PRAGMA="no-cache")
        body(client, "/", HTTP_HX_REQUEST="true")


def test_variants_are_precompressed_and_revalidate(client, api):
    plain = client.get("/api/v2/summary.json")
    gzipped = client.get("/api/v2/summary.json", HTTP_ACCEPT_ENCODING="gzip")
    brotlied = client.get("/api/v2/summary.json", HTTP_ACCEPT_ENCODING="gzip, br")

    assert gzipped["Content-Encoding"] == "gzip" and brotlied["Content-Encoding"] == "br"
    assert gzip.decompress(gzipped.content) == plain.content
    assert brotli.decompress(brotlied.content) == plain.content
    assert plain["Vary"] == "Accept-Encoding"
    assert len({plain["ETag"], gzipped["ETag"], brotlied["ETag"]}) == 3
    for response in (plain, gzipped, brotlied):
        again = client.get(
            "/api/v2/summary.json",
            HTTP_IF_NONE_MATCH=response["ETag"],
            HTTP_ACCEPT_ENCODING="gzip, br",
        )
        assert again.status_code == 304 and not again.content
    since = client.get("/api/v2/summary.json", HTTP_IF_MODIFIED_SINCE=plain["Last-Modified"])
    assert since.status_code == 304


def test_pages_are_for_cdns_and_revalidated_by_browsers(client, api):
    page = client.get("/")
    assert page["Cache-Control"] == build.PAGE_CACHE_CONTROL
    assert "stale-while-revalidate" in page["CDN-Cache-Control"]
    assert "stale-while-revalidate" in client.get("/api/v2/status.json")["Cache-Control"]


def test_head_answers_with_the_length_and_no_body(client, api):
    get = client.get("/badge.svg")
    head = client.head("/badge.svg")
    assert head.status_code == 200 and head.content == b""
    assert head["Content-Length"] == str(len(get.content))


def test_made_up_urls_are_not_stored(client, api, settings):
    assert client.get("/incidents/doesnotexist/").status_code == 404
    assert client.get("/components/nope/badge.svg").status_code == 404
    entries = settings.BEACON_SNAPSHOT_DIR / "entries"
    assert not entries.exists() or len(list(entries.iterdir())) == 0


# Coalescing


def test_a_burst_of_changes_costs_one_or_two_rebuilds(client, api, settings, caplog):
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 0.3
    settings.BEACON_SNAPSHOT_MAX_STALE_SECONDS = 60  # only the settling coalesces here
    caplog.set_level(logging.INFO, logger="beacon.snapshots")
    body(client, "/")
    caplog.clear()

    statuses = [ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE]
    for n in range(50):
        component_set_status(component=api, status=statuses[n % 2])
        client.get("/")  # readers keep coming during the burst
    time.sleep(0.35)
    assert "Partial outage" in body(client, "/")

    assert 1 <= len(rebuilds(caplog, "/")) <= 2


def test_a_steady_stream_of_changes_does_not_starve_readers(client, api, settings, caplog):
    settings.BEACON_SNAPSHOT_SETTLE_SECONDS = 10
    settings.BEACON_SNAPSHOT_MAX_STALE_SECONDS = 0.3
    body(client, "/")
    component_set_status(component=api, status="major_outage")
    time.sleep(0.35)
    assert "Major outage" in body(client, "/")


# Render on write


def test_the_worker_rebuilds_the_hot_set_and_writes_files_for_nginx(client, api, settings):
    incident = open_incident(name="Queue delays", component_statuses={api: "major_outage"})
    built = build.rebuild_hot_snapshots()

    files = settings.BEACON_SNAPSHOT_DIR / "files"
    assert built >= 15
    assert "Queue delays" in (files / "index.html").read_text()
    assert (files / "api/v2/summary.json").exists()
    assert (
        gzip.decompress((files / "index.html.gz").read_bytes())
        == (files / "index.html").read_bytes()
    )
    assert (files / f"incidents/{incident.public_id}/index.html").exists()
    assert oct((files / "index.html").stat().st_mode & 0o777) == "0o644"
    # Already current: a second run builds nothing.
    assert build.rebuild_hot_snapshots() == 0


def test_pages_that_leave_the_hot_set_are_removed_from_the_files_tree(client, api, settings):
    old = open_incident(name="Old one", started_at=timezone.now() - timedelta(days=40))
    build.rebuild_hot_snapshots()
    files = settings.BEACON_SNAPSHOT_DIR / "files"
    assert (files / f"incidents/{old.public_id}/index.html").exists()
    from incidents.services import incident_resolve

    incident_resolve(incident=old)
    build.rebuild_hot_snapshots()
    assert not (files / f"incidents/{old.public_id}/index.html").exists()
    assert "Old one" in body(client, f"/incidents/{old.public_id}/")  # Django still has it


def test_a_change_queues_one_rebuild_on_the_snapshots_queue(api, settings, monkeypatch):
    settings.BEACON_SNAPSHOT_RENDER_ON_WRITE = True
    queued = []
    # Sent by name (the snapshot module sits below statuspage/tasks.py): the registered task.
    monkeypatch.setattr(
        "statuspage.tasks.rebuild_snapshots.apply_async", lambda *a, **kw: queued.append(1)
    )
    for status in ["major_outage", "operational", "partial_outage"]:
        component_set_status(component=api, status=status)
    assert queued == [1]
    keys.rebuild_started()
    component_set_status(component=api, status="operational")
    assert queued == [1, 1]
    route = celery_app.amqp.router.route({}, keys.REBUILD_TASK)
    assert route["queue"].name == "snapshots"


def test_a_change_announced_by_domain_code_makes_the_outputs_stale_once_committed():
    # Domain code never imports the renderer: it announces (statuspage/lib/signals.py).
    before = public_cache.generation()
    with transaction.atomic():
        announce_public_change_on_commit()
        assert public_cache.generation() == before  # not before the commit
    assert public_cache.generation() != before


def test_a_change_announced_in_a_rolled_back_transaction_changes_nothing():
    before = public_cache.generation()
    with pytest.raises(RuntimeError), transaction.atomic():
        announce_public_change_on_commit()
        raise RuntimeError("rolled back")
    assert public_cache.generation() == before


def test_an_announced_change_queues_the_rebuild_like_a_saved_row(settings, monkeypatch):
    settings.BEACON_SNAPSHOT_RENDER_ON_WRITE = True
    queued = []
    monkeypatch.setattr(
        "statuspage.tasks.rebuild_snapshots.apply_async", lambda *a, **kw: queued.append(1)
    )
    announce_public_change()
    assert queued == [1]


# When parts fail


def test_the_database_going_away_keeps_pages_up_and_says_since_when(api, monkeypatch):
    # The failing rebuild is answered inside Beacon; the test client must not re-raise it.
    client = Client(raise_request_exception=False)
    before = {url: body(client, url) for url in HOT}

    def refuse(self):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed')

    connection.close()
    monkeypatch.setattr(BaseDatabaseWrapper, "ensure_connection", refuse)
    try:
        assert {url: body(client, url) for url in HOT} == before
        # A change elsewhere (another process) makes the snapshots stale; rebuilding fails.
        public_cache.invalidate()
        html = body(client, "/")
        assert "We cannot refresh this page right now" in html
        assert "All Systems Operational" in html
        assert client.get("/api/v2/summary.json").content.decode() == before["/api/v2/summary.json"]
        assert client.get("/history/?page=7").status_code == 503  # never built: nothing to show
    finally:
        monkeypatch.undo()
    # Back again: the next read rebuilds, and the notice is gone.
    outage.probe_database_now()
    assert "We cannot refresh" not in body(client, "/")


def unreachable_redis() -> dict:
    """Redis stopped: the real client against a closed port, or a stand-in without Redis."""
    if os.environ.get("REDIS_URL"):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    return {"BACKEND": "tests.statuspage.broken_cache.UnreachableCache"}


def test_with_redis_gone_pages_come_from_the_disk_copy(
    client, api, settings, django_assert_num_queries
):
    before = {url: body(client, url) for url in HOT}
    store.reset_memory()  # a process that starts while Redis is away
    settings.CACHES = {"default": unreachable_redis()}

    with django_assert_num_queries(0):
        assert {url: body(client, url) for url in HOT} == before
    # Changes still reach readers: the generation is on disk too.
    component_set_status(component=api, status="major_outage")
    assert "Major outage" in body(client, "/")


def _as_written_by(path, old_module):
    """Rewrite a copy on disk as a release that kept the store at `old_module` wrote it."""
    text = pickle.dumps(pickle.loads(path.read_bytes()), protocol=0)  # noqa: S301
    for name, home in (("Snapshot", "store"), ("KnownOutputs", "keys")):
        text = text.replace(
            f"cstatuspage.public.snapshots.{home}\n{name}\n".encode(),
            f"c{old_module}\n{name}\n".encode(),
        )
    assert b"statuspage.public.snapshots." not in text
    path.write_bytes(text)


@pytest.mark.parametrize("old_module", ["statuspage.snapshots", "statuspage.public.snapshots"])
def test_copies_on_disk_from_an_earlier_release_serve_while_the_database_is_down(
    client, api, settings, django_assert_num_queries, old_module
):
    before = {url: body(client, url) for url in HOT}
    copies = list(settings.BEACON_SNAPSHOT_DIR.rglob("*.pickle"))
    assert len(copies) >= len(HOT)
    for path in copies:
        _as_written_by(path, old_module)
    store.reset_memory()  # the new release starts while Redis is away and the database down
    settings.CACHES = {"default": unreachable_redis()}

    with django_assert_num_queries(0):
        assert {url: body(client, url) for url in HOT} == before


def test_snapshots_are_served_with_the_security_headers(client, api):
    for response in (client.get("/"), client.get("/"), client.get("/api/v2/status.json")):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize(
    ("path", "query", "key"),
    [
        ("/history/", "", "/history/"),
        ("/history/", "page=1", "/history/"),
        ("/history/", "page=abc&x=1", "/history/"),
        ("/history/", "page=3&utm_source=x", "/history/?page=3"),
        ("/", "page=3", "/"),
        ("/api/v2/summary.json", "callback=x", "/api/v2/summary.json"),
        ("/admin/", "", None),
        ("/static/css/beacon.css", "", None),
    ],
)
def test_only_the_history_page_number_selects_another_snapshot(path, query, key):
    assert keys.key_for(path, query) == key


# The WSGI fast path: a current snapshot answered before Django builds a request


def call_wsgi(path, **headers):
    from io import BytesIO

    from statuspage.wsgi import application

    environ = {
        "REQUEST_METHOD": headers.pop("method", "GET"),
        "PATH_INFO": path,
        "QUERY_STRING": headers.pop("query", ""),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": headers.pop("host", "testserver"),
        "wsgi.url_scheme": "http",
        "wsgi.input": BytesIO(),
        "wsgi.errors": BytesIO(),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(response_headers)

    answer["body"] = b"".join(application(environ, start_response))
    return answer


def test_the_wsgi_fast_path_serves_the_same_answer_without_django(
    client, api, django_assert_num_queries, settings
):
    settings.ALLOWED_HOSTS = ["testserver"]
    through_django = client.get("/api/v2/summary.json", HTTP_ACCEPT_ENCODING="gzip")
    with django_assert_num_queries(0):
        fast = call_wsgi("/api/v2/summary.json", accept_encoding="gzip")
    assert fast["status"] == "200 OK"
    assert fast["body"] == through_django.content
    assert fast["headers"]["ETag"] == through_django["ETag"]
    assert fast["headers"]["X-Content-Type-Options"] == "nosniff"
    assert fast["headers"]["Access-Control-Allow-Origin"] == "*"

    again = call_wsgi("/api/v2/summary.json", if_none_match=fast["headers"]["ETag"])
    assert again["status"] == "304 Not Modified" and again["body"] == b""
    head = call_wsgi("/api/v2/summary.json", method="HEAD")
    assert head["body"] == b"" and int(head["headers"]["Content-Length"]) > 0


def test_the_wsgi_fast_path_leaves_stale_snapshots_and_strange_hosts_to_django(
    client, api, settings
):
    settings.ALLOWED_HOSTS = ["testserver"]
    client.get("/")
    assert call_wsgi("/", host="evil.example")["status"].startswith("400")
    component_set_status(component=api, status="major_outage")
    answer = call_wsgi("/")
    assert answer["status"] == "200 OK" and b"Major outage" in answer["body"]


def test_a_starting_worker_loads_the_hot_snapshots_without_the_database(
    client, api, django_assert_num_queries, settings
):
    settings.ALLOWED_HOSTS = ["testserver"]
    build.rebuild_hot_snapshots()
    store.reset_memory()  # a new worker process
    assert serve.fresh_in_memory("/", "") is None

    with django_assert_num_queries(0):
        warmed = serve.warm_memory()
        first = call_wsgi("/")
        german = call_wsgi("/de/")

    localized = [name for name in keys.HOT_URL_NAMES if name in keys.LOCALIZED_URL_NAMES]
    languages = len(settings.LANGUAGES)  # every language is enabled by default
    assert warmed == len(keys.HOT_URL_NAMES) + languages * len(localized)
    assert first["status"] == "200 OK" and b"API" in first["body"]
    assert german["status"] == "200 OK" and b'<html lang="de">' in german["body"]
    # A stale copy is not warmed: the worker renders the current one instead.
    store.reset_memory()
    component_set_status(component=api, status="major_outage")
    assert serve.warm_memory() == 0


def test_pruning_the_files_tree_leaves_a_file_being_written_and_removes_one_left_behind(
    settings,
):
    """Two rebuilds at once (a worker of concurrency 2, or the follower beside it): one
    prunes while the other is between writing its temporary file and renaming it."""
    root = settings.BEACON_SNAPSHOT_DIR / "files"
    (root / "api/v2").mkdir(parents=True)
    being_written = root / "api/v2" / f"{files.TEMP_PREFIX}abc123"
    left_behind = root / f"{files.TEMP_PREFIX}old456"
    stray = root / "incidents/gone/index.html"
    stray.parent.mkdir(parents=True)
    for path in (being_written, left_behind, stray):
        path.write_bytes(b"x")
    long_ago = time.time() - store.TEMP_MAX_AGE_SECONDS - 60
    os.utime(left_behind, (long_ago, long_ago))

    assert store.prune_files_tree(set()) == 2
    assert being_written.exists()
    assert not left_behind.exists() and not stray.exists()
    # The rename that follows still finds its file.
    os.replace(being_written, root / "api/v2/summary.json")


def test_a_write_to_the_files_tree_that_fails_leaves_no_temporary_file(settings, tmp_path):
    target = tmp_path / "tree" / "page"
    target.mkdir(parents=True)  # a directory where the file should go: the rename fails
    with pytest.raises(OSError):
        files.atomic_write(target, b"body")
    assert [p.name for p in target.parent.iterdir()] == ["page"]
