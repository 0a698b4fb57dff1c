"""Every public output in an S3-compatible bucket after a change, and the CDN purged.

A real S3 API (moto's server on a free port) and real HTTP for the purges (pytest-httpserver).
"""

import io
import logging
import re
import socket
import time
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError
from celery.signals import task_retry
from django.core.management import CommandError, call_command
from moto.server import ThreadedMotoServer

from components.services import component_set_status
from incidents.services import incident_delete, incident_resolve
from statuspage.models import PageSettings
from statuspage.public import cdn, publish
from statuspage.public.snapshots import keys
from statuspage.public.static_export import key_to_file
from statuspage.tasks import publish_outputs, rebuild_snapshots
from tests.components.factories import ComponentFactory
from tests.incidents.factories import open_incident

SECRET = "s3-secret-that-must-not-be-logged"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(settings, s3_endpoint):
    """A fresh bucket on the S3 server, and the settings that point Beacon at it."""
    settings.BEACON_OBJECT_STORAGE_BUCKET = f"beacon-{uuid.uuid4().hex[:12]}"
    settings.BEACON_OBJECT_STORAGE_ENDPOINT_URL = s3_endpoint
    settings.BEACON_OBJECT_STORAGE_REGION = "us-east-1"
    settings.BEACON_OBJECT_STORAGE_ACCESS_KEY_ID = "beacon-test"
    settings.BEACON_OBJECT_STORAGE_SECRET_ACCESS_KEY = SECRET
    settings.BEACON_OBJECT_STORAGE_PREFIX = ""
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="beacon-test",
        aws_secret_access_key=SECRET,
    )
    client.create_bucket(Bucket=settings.BEACON_OBJECT_STORAGE_BUCKET)
    client.beacon_bucket = settings.BEACON_OBJECT_STORAGE_BUCKET
    return client


def _objects(s3, prefix=""):
    listed = s3.list_objects_v2(Bucket=s3.beacon_bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"]: item for item in listed}


def _get(s3, key):
    return s3.get_object(Bucket=s3.beacon_bucket, Key=key)


@pytest.fixture
def site(page):
    api = ComponentFactory(name="API")
    ComponentFactory(name="Website")
    incident = open_incident(name="Slow API", affected_components=[api])
    return api, incident


@pytest.fixture
def change(django_capture_on_commit_callbacks):
    """A component's status changed, with the new generation its commit starts."""

    def set_status(component, status):
        with django_capture_on_commit_callbacks(execute=True):
            component_set_status(component=component, status=status)

    return set_status


# The bucket


@pytest.mark.django_db
def test_every_output_is_in_the_bucket_as_the_site_serves_it(site, s3, client):
    result = publish.publish_site_to_bucket()

    expected = {key_to_file(k, for_export=True): k for k in keys.public_keys(everything=True)}
    assert set(_objects(s3)) == set(expected)
    assert sorted(result.written) == sorted(expected)
    for path, key in expected.items():
        served = client.get(key)
        stored = _get(s3, path)
        assert served.status_code == 200, key
        assert stored["Body"].read() == served.content, key
        assert stored["ContentType"] == served["Content-Type"], key
        assert stored["CacheControl"] == served["Cache-Control"], key
    incident = site[1]
    assert f"incidents/{incident.public_id}/index.html" in expected
    assert "api/v2/summary.json" in expected


@pytest.mark.django_db
def test_objects_go_under_the_prefix(site, s3, settings):
    settings.BEACON_OBJECT_STORAGE_PREFIX = "/status/"
    publish.publish_site_to_bucket()
    stored = _objects(s3)
    assert "status/index.html" in stored
    assert all(name.startswith("status/") for name in stored)


@pytest.mark.django_db
def test_a_publish_that_changes_nothing_uploads_nothing(site, s3):
    first = publish.publish_site_to_bucket()
    modified = {name: item["LastModified"] for name, item in _objects(s3).items()}

    again = publish.publish_site_to_bucket()

    assert again.written == [] and again.deleted == []
    assert again.unchanged == len(first.written)
    assert {name: item["LastModified"] for name, item in _objects(s3).items()} == modified


@pytest.mark.django_db
def test_a_change_uploads_only_the_outputs_it_changed(site, s3, change):
    publish.publish_site_to_bucket()
    change(site[0], "major_outage")

    result = publish.publish_site_to_bucket()

    assert "index.html" in result.written
    assert "api/v2/summary.json" in result.written
    assert "robots.txt" not in result.written
    assert result.unchanged > 0
    assert b"Major outage" in _get(s3, "index.html")["Body"].read()


@pytest.mark.django_db
def test_one_component_change_uploads_and_purges_only_what_shows_that_component(
    page, s3, cloudflare, change, caplog
):
    api, website, database = (ComponentFactory(name=n) for n in ("API", "Website", "Database"))
    incidents = [open_incident(name=f"Incident {n}", affected_components=[website]) for n in "ABCD"]
    for incident in incidents[:2]:
        incident_resolve(incident=incident, body="Fixed.")
    publish_outputs.apply()
    objects = len(_objects(s3))
    cloudflare.clear_log()
    time.sleep(1)  # a render time in whole seconds would differ now

    change(database, "major_outage")
    with caplog.at_level(logging.INFO, logger="beacon.publish"):
        publish_outputs.apply()

    purged = sorted(
        url.removeprefix("https://status.acme.test") for url in _purged_by_cloudflare(cloudflare)
    )
    # The status page (its "Last updated" is visible), the page's and the component's badges,
    # and every API v2 file: each carries page.updated_at, the time of the last public change,
    # as Statuspage's do. No incident page, history page or feed shows a component's status.
    # Each in every enabled language too, but the language-neutral API. The uptime history
    # colours today's cell by the day's worst status, so it and the component's page change.
    localized = [
        "/",
        "/badge.json",
        "/badge.svg",
        f"/components/{database.public_id}/badge.json",
        f"/components/{database.public_id}/badge.svg",
        "/uptime/",
        f"/uptime/{database.public_id}/",
    ]
    assert purged == sorted(
        [
            *localized,
            *(
                f"/{language}{path}"
                for language in PageSettings.load().languages
                for path in localized
            ),
            "/api/v2/components.json",
            "/api/v2/incidents.json",
            "/api/v2/incidents/unresolved.json",
            "/api/v2/scheduled-maintenances.json",
            "/api/v2/scheduled-maintenances/active.json",
            "/api/v2/scheduled-maintenances/upcoming.json",
            "/api/v2/status.json",
            "/api/v2/summary.json",
        ]
    )
    written = len(purged)
    assert f": {written} written, {objects - written} unchanged, 0 deleted" in caplog.text


@pytest.mark.django_db
def test_a_deleted_incident_loses_its_objects_and_assets_are_left_be(site, s3):
    incident = site[1]
    publish.publish_site_to_bucket()
    path = f"incidents/{incident.public_id}/index.html"
    assert path in _objects(s3)
    s3.put_object(Bucket=s3.beacon_bucket, Key="static/css/beacon.css", Body=b"body{}")

    incident_delete(incident=incident)
    result = publish.publish_site_to_bucket()

    assert path in result.deleted
    assert path not in _objects(s3)
    with pytest.raises(ClientError):
        _get(s3, path)
    assert "static/css/beacon.css" in _objects(s3)


@pytest.mark.django_db
def test_a_missing_bucket_fails_without_naming_the_secret(site, s3, settings):
    settings.BEACON_OBJECT_STORAGE_BUCKET = "no-such-bucket"
    with pytest.raises(publish.PublishFailed) as failed:
        publish.publish_site_to_bucket()
    assert "NoSuchBucket" in str(failed.value)
    assert SECRET not in str(failed.value)


# The task


@pytest.fixture
def retries():
    """Each retry of a task, and a hook to run before it (the fault going away)."""
    seen = []
    hooks = []

    def on_retry(sender=None, reason=None, **kwargs):
        seen.append(str(reason))
        while hooks:
            hooks.pop()()

    task_retry.connect(on_retry, weak=False)
    yield seen, hooks
    task_retry.disconnect(on_retry)


@pytest.mark.django_db
def test_a_failed_publish_is_retried_and_logged_without_secrets(
    site, s3, settings, retries, caplog
):
    seen, hooks = retries
    bucket = settings.BEACON_OBJECT_STORAGE_BUCKET
    settings.BEACON_OBJECT_STORAGE_BUCKET = f"{bucket}-later"
    # The bucket only appears before the first retry: the first attempt really fails.
    hooks.append(lambda: s3.create_bucket(Bucket=f"{bucket}-later"))
    s3.beacon_bucket = f"{bucket}-later"

    with caplog.at_level(logging.WARNING, logger="beacon.publish"):
        publish_outputs.apply()

    assert len(seen) == 1
    assert "index.html" in _objects(s3)
    assert "NoSuchBucket" in caplog.text and "retry 1 of" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.django_db
def test_a_publish_waits_for_the_one_running_and_follows_it(site, s3, monkeypatch):
    queued = []
    monkeypatch.setattr(
        publish_outputs, "apply_async", lambda **kwargs: queued.append(kwargs), raising=False
    )
    with publish.exclusive() as ours:
        assert ours
        publish_outputs.apply(kwargs={"purge_urls": ["https://status.acme.test/"]})
        with publish.exclusive() as second:
            assert not second
    assert _objects(s3) == {}
    assert queued == [
        {"kwargs": {"upload": True, "purge_urls": ["https://status.acme.test/"]}, "countdown": 5}
    ]
    publish_outputs.apply()  # the lock is free again
    assert "index.html" in _objects(s3)


@pytest.mark.django_db
def test_the_rebuild_task_publishes_when_a_bucket_is_set(site, s3, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the publish it queues runs here
    rebuild_snapshots.apply()
    assert "index.html" in _objects(s3)


# The CDN


@pytest.fixture
def cloudflare(settings, httpserver):
    settings.BEACON_CDN_PURGE = "cloudflare"
    settings.BEACON_CDN_PURGE_API_URL = httpserver.url_for("/")
    settings.BEACON_CDN_PURGE_ZONE = "zone123"
    settings.BEACON_CDN_PURGE_TOKEN = "cf-token"
    httpserver.expect_request(
        "/client/v4/zones/zone123/purge_cache",
        method="POST",
        headers={"Authorization": "Bearer cf-token"},
    ).respond_with_json({"success": True, "errors": [], "messages": [], "result": {}})
    return httpserver


def _purged_by_cloudflare(httpserver):
    return [url for request, _ in httpserver.log for url in request.get_json()["files"]]


@pytest.mark.django_db
def test_cloudflare_is_asked_to_purge_what_changed_and_nothing_when_nothing_did(
    site, s3, cloudflare, change
):
    publish_outputs.apply()
    first = _purged_by_cloudflare(cloudflare)
    assert "https://status.acme.test/" in first
    assert f"https://status.acme.test/incidents/{site[1].public_id}/" in first
    assert all(len(request.get_json()["files"]) <= 30 for request, _ in cloudflare.log)

    cloudflare.clear_log()
    publish_outputs.apply()
    assert cloudflare.log == []

    change(site[0], "major_outage")
    publish_outputs.apply()
    purged = _purged_by_cloudflare(cloudflare)
    assert "https://status.acme.test/" in purged
    assert "https://status.acme.test/api/v2/summary.json" in purged
    assert "https://status.acme.test/robots.txt" not in purged


@pytest.mark.django_db
def test_cloudflare_gets_at_most_30_urls_a_request(cloudflare):
    urls = [f"https://status.acme.test/incidents/{n}/" for n in range(31)]
    cdn.purge(urls)
    assert [len(r.get_json()["files"]) for r, _ in cloudflare.log] == [30, 1]
    assert _purged_by_cloudflare(cloudflare) == urls


@pytest.mark.django_db
def test_fastly_is_asked_to_purge_each_changed_url(site, s3, settings, httpserver, change):
    settings.BEACON_CDN_PURGE = "fastly"
    settings.BEACON_CDN_PURGE_API_URL = httpserver.url_for("/")
    settings.BEACON_CDN_PURGE_TOKEN = "fastly-key"
    httpserver.expect_request(
        re.compile(r"^/purge/status\.acme\.test/.*"),
        method="POST",
        headers={"Fastly-Key": "fastly-key"},
    ).respond_with_json({"status": "ok", "id": "1"})
    publish.publish_site_to_bucket()
    change(site[0], "major_outage")

    publish_outputs.apply()

    asked = [request.path for request, _ in httpserver.log]
    assert "/purge/status.acme.test/" in asked
    assert "/purge/status.acme.test/api/v2/summary.json" in asked
    assert "/purge/status.acme.test/robots.txt" not in asked
    assert all(response.status_code == 200 for _, response in httpserver.log)


def test_fastly_gets_a_query_escaped_in_the_cached_url(settings, httpserver):
    settings.BEACON_CDN_PURGE = "fastly"
    settings.BEACON_CDN_PURGE_API_URL = httpserver.url_for("/")
    settings.BEACON_CDN_PURGE_TOKEN = "fastly-key"
    httpserver.expect_request(
        "/purge/status.acme.test/history/?page=2", method="POST"
    ).respond_with_json({"status": "ok"})
    cdn.purge(["https://status.acme.test/history/?page=2"])
    assert httpserver.log[0][0].query_string == b""


@pytest.mark.django_db
def test_a_webhook_gets_the_urls_as_json(page, settings, httpserver):
    settings.BEACON_CDN_PURGE = "webhook"
    settings.BEACON_CDN_PURGE_WEBHOOK_URL = httpserver.url_for("/purge")
    settings.BEACON_CDN_PURGE_TOKEN = "hook-token"
    httpserver.expect_request(
        "/purge",
        method="POST",
        headers={"Authorization": "Bearer hook-token"},
        json={"urls": ["https://status.acme.test/"]},
    ).respond_with_data("ok")
    cdn.purge(cdn.public_urls(["/"]))
    assert len(httpserver.log) == 1
    assert httpserver.log[0][1].status_code == 200


@pytest.mark.django_db
def test_a_purge_that_fails_is_tried_again_then_reported(page, cloudflare):
    cloudflare.clear_all_handlers()
    cloudflare.expect_ordered_request("/client/v4/zones/zone123/purge_cache").respond_with_data(
        "busy", status=503
    )
    cloudflare.expect_ordered_request("/client/v4/zones/zone123/purge_cache").respond_with_json(
        {"success": True}
    )
    waited = []
    cdn.purge(["https://status.acme.test/"], sleep=waited.append)
    assert waited == [1]
    assert len(cloudflare.log) == 2

    cloudflare.clear_all_handlers()
    cloudflare.expect_request("/client/v4/zones/zone123/purge_cache").respond_with_data(
        "no", status=403
    )
    with pytest.raises(cdn.PurgeFailed, match="HTTP 403") as failed:
        cdn.purge(["https://status.acme.test/"], sleep=waited.append)
    assert "cf-token" not in str(failed.value)


# The command


@pytest.mark.django_db
def test_the_command_publishes_and_purges_everything_on_demand(site, s3, cloudflare):
    out = io.StringIO()
    call_command("publish_outputs", stdout=out)
    assert "deleted" in out.getvalue()
    assert "index.html" in _objects(s3)

    cloudflare.clear_log()
    call_command("publish_outputs", "--purge-all", stdout=out)
    assert "https://status.acme.test/robots.txt" in _purged_by_cloudflare(cloudflare)


@pytest.mark.django_db
def test_the_command_with_force_uploads_objects_whose_body_already_matches(site, s3, cloudflare):
    call_command("publish_outputs", stdout=io.StringIO())
    outputs = len(_objects(s3))
    # Edited by hand: the same body, other headers. The ETag still matches the body.
    body = _get(s3, "index.html")["Body"].read()
    s3.put_object(
        Bucket=s3.beacon_bucket,
        Key="index.html",
        Body=body,
        ContentType="application/octet-stream",
        CacheControl="no-cache",
    )
    cloudflare.clear_log()

    out = io.StringIO()
    call_command("publish_outputs", stdout=out)
    assert out.getvalue().startswith(f"0 written, {outputs} unchanged")
    assert _get(s3, "index.html")["ContentType"] == "application/octet-stream"
    assert cloudflare.log == []

    out = io.StringIO()
    call_command("publish_outputs", "--force", stdout=out)
    assert out.getvalue().startswith(f"{outputs} written, 0 unchanged, 0 deleted.")
    stored = _get(s3, "index.html")
    assert stored["Body"].read() == body
    assert stored["ContentType"] == "text/html; charset=utf-8"
    assert stored["CacheControl"].startswith("public, max-age=0")
    purged = _purged_by_cloudflare(cloudflare)
    assert len(purged) == outputs
    assert "https://status.acme.test/robots.txt" in purged


@pytest.mark.django_db
def test_the_command_refuses_force_without_upload(site, s3):
    with pytest.raises(CommandError, match="--no-upload"):
        call_command("publish_outputs", "--force", "--no-upload")
    assert _objects(s3) == {}


@pytest.mark.django_db
def test_the_command_says_when_there_is_no_bucket(settings):
    settings.BEACON_OBJECT_STORAGE_BUCKET = ""
    with pytest.raises(CommandError, match="OBJECT_STORAGE_BUCKET"):
        call_command("publish_outputs")
