"""Management API v1: a checked key is kept in the cache for a second, by its hash.

One cache lookup and no query authenticates a request in the common case; what Beacon
changes itself (revoking, deactivating or deleting) applies at once, anything else within
AUTH_CACHE_SECONDS.
"""

import logging
import os
import pickle
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
import time_machine
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from statuspage.api_v1.keys import (
    AUTH_CACHE_SECONDS,
    KeyRecord,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    auth_cache_key,
    record_from_cache,
)
from statuspage.models import ApiKey, ApiKeyScope
from tests.components.factories import ComponentFactory
from tests.incidents.factories import StaffFactory
from tests.statuspage.test_snapshots import unreachable_redis

pytestmark = pytest.mark.django_db

EXPIRED = "This API key has expired: ask for a new one."
# The rows a key's check reads: the key, its owner and the owner's permissions.
AUTH_TABLES = ("statuspage_apikey", "auth_user", "auth_group", "auth_permission")
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="counts Redis commands")


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    # The limiter makes its own cache round trips.
    settings.BEACON_API_RATE_LIMIT_PER_MINUTE = 0


@pytest.fixture
def owner():
    return StaffFactory(groups=["Admins"])


def key_for(owner, **kwargs) -> str:
    return api_key_create(owner=owner, name="CI", **kwargs)[1]


def call(client, raw, method="get", path="/api/v1/pages", **kwargs):
    return getattr(client, method)(path, HTTP_AUTHORIZATION=f"OAuth {raw}", **kwargs)


@contextmanager
def redis_commands():
    """Every command sent to Redis inside, as (name, *arguments)."""
    sent: list[tuple] = []
    execute_command = redis.client.Redis.execute_command

    def counted(self, *args, **options):
        sent.append(args)
        return execute_command(self, *args, **options)

    redis.client.Redis.execute_command = counted
    try:
        yield sent
    finally:
        redis.client.Redis.execute_command = execute_command


def about_keys(commands) -> list[tuple]:
    return [args for args in commands if any("api-v1:key:" in str(arg) for arg in args[1:])]


def auth_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if any(f'"{t}' in q["sql"] for t in AUTH_TABLES)]


def everything_cached() -> list[tuple[str, bytes]]:
    """Each key and value in the test's cache, as stored."""
    if os.environ.get("REDIS_URL"):
        client = cache._cache.get_client()
        keys = client.keys(f"{cache.key_prefix}:*")
        return [(key.decode(), client.get(key) or b"") for key in keys]
    return list(cache._cache.items())


@needs_redis
def test_a_known_key_is_one_cache_lookup_and_no_query(client, page, owner):
    raw = key_for(owner)
    api_key_authenticate(raw)  # the first use reads the rows

    with redis_commands() as commands, CaptureQueriesContext(connection) as queries:
        record = api_key_authenticate(raw)
    assert isinstance(record, KeyRecord) and record.owner_pk == owner.pk
    assert [args[0] for args in commands] == ["GET"]
    assert len(queries) == 0


@needs_redis
def test_a_read_touches_neither_the_key_nor_its_owner_in_the_database(client, page, owner):
    ComponentFactory.create_batch(3)
    raw = key_for(owner)
    path = f"/api/v1/pages/{page.public_id}/components"
    assert call(client, raw, path=path).status_code == 200

    with redis_commands() as commands, CaptureQueriesContext(connection) as queries:
        response = call(client, raw, path=path)
    assert response.status_code == 200 and len(response.json()) == 3
    # Nor does anything after the view (the audit trail, sessions, axes…) load request.user.
    assert auth_queries(queries) == []
    assert [args[0] for args in about_keys(commands)] == ["GET"]


@needs_redis
def test_a_record_lives_one_second_at_most(client, page, owner):
    raw = key_for(owner)
    call(client, raw)
    client_ = cache._cache.get_client()
    assert 0 < client_.pttl(cache.make_key(auth_cache_key(raw))) <= AUTH_CACHE_SECONDS * 1000


def test_a_key_revoked_through_beacon_stops_on_the_next_request(client, page, owner):
    raw = key_for(owner)
    assert call(client, raw).status_code == 200
    api_key_revoke(key=ApiKey.objects.get())
    assert call(client, raw).status_code == 401


def test_a_key_revoked_behind_beacons_back_stops_within_a_second(client, page, owner):
    raw = key_for(owner)
    assert call(client, raw).status_code == 200
    ApiKey.objects.update(revoked_at=timezone.now())
    time.sleep(AUTH_CACHE_SECONDS + 0.05)
    assert call(client, raw).status_code == 401


def test_a_deactivated_owners_key_stops_on_the_next_request(client, page, owner):
    raw = key_for(owner)
    assert call(client, raw).status_code == 200
    owner.is_active = False
    owner.save()
    assert call(client, raw).status_code == 401


def test_a_deleted_key_or_owner_stops_on_the_next_request(client, page, owner):
    raw, other = key_for(owner), key_for(owner)
    assert call(client, raw).status_code == call(client, other).status_code == 200
    ApiKey.objects.get(prefix=raw[:10]).delete()
    assert call(client, raw).status_code == 401
    owner.delete()
    assert call(client, other).status_code == 401


def test_a_permission_taken_away_applies_within_a_second(client, page, owner):
    raw = key_for(owner)
    path = f"/api/v1/pages/{page.public_id}/components"
    assert call(client, raw, path=path).status_code == 200
    owner.groups.remove(Group.objects.get(name="Admins"))
    time.sleep(AUTH_CACHE_SECONDS + 0.05)
    response = call(client, raw, path=path)
    assert response.status_code == 403
    assert response.json()["error"] == (
        f"{owner.username} may not do this (components.view_component)."
    )


def test_a_kept_key_that_expires_is_refused_with_the_reason(client, page, owner):
    now = timezone.now()
    raw = key_for(owner, expires_at=now + timedelta(minutes=10))
    assert call(client, raw).status_code == 200
    with time_machine.travel(now + timedelta(minutes=10, seconds=1)):
        response = call(client, raw)
    assert response.status_code == 401
    assert response.json() == {"error": EXPIRED, "message": EXPIRED}


def test_a_kept_read_only_key_still_cannot_write(client, page, owner):
    component = ComponentFactory(name="API")
    raw = key_for(owner, scope=ApiKeyScope.READ)
    path = f"/api/v1/pages/{page.public_id}/components/{component.public_id}"
    assert call(client, raw, path=path).status_code == 200
    response = call(
        client,
        raw,
        "patch",
        path,
        data='{"component": {"status": "major_outage"}}',
        content_type="application/json",
    )
    assert response.status_code == 403 and "read-only" in response.json()["error"]
    component.refresh_from_db()
    assert component.status == "operational"


def test_the_key_itself_is_never_in_the_cache(client, page, owner):
    raw = key_for(owner)
    component = ComponentFactory(name="API")
    path = f"/api/v1/pages/{page.public_id}/components/{component.public_id}"
    call(client, raw, path=path)
    call(client, raw, "patch", path, data="{}", content_type="application/json")

    cached = everything_cached()
    assert any(auth_cache_key(raw) in key for key, _ in cached)
    for key, value in cached:
        assert raw not in key and raw.encode() not in value
        assert raw[3:].encode() not in value  # nor without its bk_


def test_with_redis_away_keys_are_checked_in_the_database(client, page, owner, settings, caplog):
    raw = key_for(owner)
    settings.CACHES = {"default": unreachable_redis()}
    with caplog.at_level(logging.DEBUG):
        response = call(client, raw, path=f"/api/v1/pages/{page.public_id}/components")
        refused = call(client, "bk_" + "x" * 43)
    assert response.status_code == 200
    assert refused.status_code == 401
    assert raw not in caplog.text
    api_key_revoke(key=ApiKey.objects.get())  # forgetting fails quietly too
    assert call(client, raw).status_code == 401


def test_the_file_cache_keeps_records_too(client, page, owner, settings, tmp_path):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    raw = key_for(owner)
    assert call(client, raw).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api_key_authenticate(raw) is not None
    assert len(queries) == 0
    time.sleep(AUTH_CACHE_SECONDS + 0.05)
    with CaptureQueriesContext(connection) as queries:
        assert api_key_authenticate(raw) is not None
    assert auth_queries(queries)  # expired: read again


def test_use_is_still_noted_at_most_once_a_minute(client, page, owner):
    raw = key_for(owner)
    with CaptureQueriesContext(connection) as queries:
        call(client, raw)
        first = ApiKey.objects.get().last_used_at
        time.sleep(AUTH_CACHE_SECONDS + 0.05)  # read from the rows again: not a use to note
        call(client, raw)
        call(client, raw)
    updates = [q for q in queries if q["sql"].startswith('UPDATE "statuspage_apikey"')]
    assert first is not None and len(updates) == 1

    later = timezone.now() + timedelta(seconds=61)
    with time_machine.travel(later, tick=False):
        call(client, raw)  # the record kept from before says it is due
    assert ApiKey.objects.get().last_used_at == later


def test_a_cached_value_of_another_shape_is_not_a_record(client, page, owner):
    raw = key_for(owner)
    record = api_key_authenticate(raw)
    assert record_from_cache(record) == record
    assert record_from_cache(pickle.loads(pickle.dumps(record))) == record
    from_older_release = object.__new__(KeyRecord)
    object.__setattr__(from_older_release, "key_pk", record.key_pk)
    for value in (None, "x", {"key_pk": record.key_pk}, from_older_release):
        assert record_from_cache(value) is None
    # Such a value is read past: the rows answer, and the record replaces it.
    cache.set(auth_cache_key(raw), from_older_release, 60)
    assert call(client, raw).status_code == 200
    assert record_from_cache(cache.get(auth_cache_key(raw))) == api_key_authenticate(raw)


def test_a_record_answers_for_its_owners_permissions(owner, page):
    superuser = StaffFactory(is_superuser=True)
    mine = api_key_authenticate(key_for(owner))
    theirs = api_key_authenticate(key_for(superuser))
    assert mine.has_perms("components.view_component", "incidents.add_incident")
    assert mine.perms == frozenset(owner.get_all_permissions())
    assert not mine.has_perms("components.view_component", "statuspage.not_a_permission")
    assert theirs.has_perms("statuspage.not_a_permission") and theirs.perms == frozenset()
