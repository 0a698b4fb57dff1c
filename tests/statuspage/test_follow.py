"""The follower of a web host: "snapshot changed" on Redis, copied to this host's disk.

A worker's host and a follower's host are two snapshot directories here, switched in
settings; the store reads the directory at each call.
"""

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from statuspage.lib.redis_cache import redis_client
from statuspage.public import public_cache
from statuspage.public.snapshots import keys, outage, store
from statuspage.public.snapshots.follow import Follower
from statuspage.public.snapshots.store import Snapshot

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="announcements and followers need Redis"
)


def snapshot(
    key: str, body: bytes, generation: str, content_type: str = "application/json"
) -> Snapshot:
    gzipped, brotli_compressed = store.compressed(body, brotli_quality=1)
    return Snapshot(
        key=key,
        status=200,
        content_type=content_type,
        headers=(),
        body=body,
        gzip=gzipped,
        brotli=brotli_compressed,
        etag=str(hash(body)),
        last_modified=0,
        generation=generation,
        built_at=time.time(),
    )


@pytest.fixture
def hosts(settings, tmp_path) -> tuple[Path, Path]:
    """The worker's directory and the follower's; the follower's is current."""
    worker, follower = tmp_path / "worker", tmp_path / "follower"
    settings.BEACON_SNAPSHOT_DIR = follower
    return worker, follower


@pytest.fixture
def follower(hosts) -> Follower:
    """A follower of the follower's directory, caught up (nothing was announced yet)."""
    started = Follower()
    started.catch_up("start")
    return started


@pytest.fixture
def pubsub() -> Iterator[redis.client.PubSub]:
    subscribed = subscribe()
    yield subscribed
    subscribed.close()


def as_worker(settings, worker: Path) -> None:
    settings.BEACON_SNAPSHOT_DIR = worker
    store.reset_memory()


def as_follower(settings, follower: Path) -> None:
    settings.BEACON_SNAPSHOT_DIR = follower
    store.reset_memory()


def subscribe() -> redis.client.PubSub:
    client = redis_client()
    assert client is not None
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.shared_name(keys.CHANGED_CHANNEL))
    return pubsub


def next_message(pubsub: redis.client.PubSub) -> bytes:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            return message["data"]
    pytest.fail("nothing was announced")


def test_storing_a_snapshot_announces_its_key_and_generation_numbered_without_the_bytes(pubsub):
    store.store(snapshot("/api/v2/status.json", b'{"big": "body"}', "g1"), write_file=True)
    number, _, body = next_message(pubsub).decode().partition(" ")
    assert int(number) >= 1
    assert json.loads(body) == {
        "op": "stored",
        "key": "/api/v2/status.json",
        "generation": "g1",
        "files": True,
    }
    store.store(snapshot("/api/v2/status.json", b"{}", "g2"))
    assert int(next_message(pubsub).split(b" ")[0]) == int(number) + 1


def test_a_follower_writes_an_announced_snapshot_to_its_own_disk(settings, hosts, follower, pubsub):
    worker, follower_dir = hosts
    as_worker(settings, worker)
    store.store(snapshot("/api/v2/status.json", b'{"status": "new"}', "g1"), write_file=True)
    data = next_message(pubsub)

    as_follower(settings, follower_dir)
    follower.receive(data)
    assert (follower_dir / "files/api/v2/status.json").read_bytes() == b'{"status": "new"}'
    copied = store.disk_entry("/api/v2/status.json")
    assert copied is not None and copied.generation == "g1"


def test_a_gap_in_the_numbers_makes_the_follower_catch_up(
    settings, hosts, follower, pubsub, caplog
):
    worker, follower_dir = hosts
    as_worker(settings, worker)
    store.store(snapshot("/api/v2/status.json", b"missed", "g1"), write_file=True)
    store.share_files_tree(["/api/v2/status.json"], "g1")
    next_message(pubsub)  # never reaches the follower
    last = next_message(pubsub)

    as_follower(settings, follower_dir)
    with caplog.at_level(logging.INFO, logger="beacon.snapshots"):
        follower.receive(last)
    assert (follower_dir / "files/api/v2/status.json").read_bytes() == b"missed"
    assert "caught up reason=missed message" in caplog.text


def test_catching_up_rewrites_what_is_stale_and_nothing_else(settings, hosts, caplog):
    worker, follower_dir = hosts
    # What the follower's host has from before: one stale entry, one current, a removed file.
    as_follower(settings, follower_dir)
    store.keep_on_disk(snapshot("/api/v2/status.json", b"old", "g0"), write_file=True)
    current = snapshot("/api/v2/components.json", b"same", "g1")
    store.keep_on_disk(current, write_file=True)
    store.keep_on_disk(snapshot("/incidents/gone/", b"<p>gone</p>", "g0"), write_file=True)

    as_worker(settings, worker)
    public_cache.invalidate()
    generation = public_cache.generation()
    store.store(snapshot("/api/v2/status.json", b"new", generation), write_file=True)
    store.store(current, write_file=True)
    store.share_files_tree(["/api/v2/status.json", "/api/v2/components.json"], generation)

    as_follower(settings, follower_dir)
    with caplog.at_level(logging.INFO, logger="beacon.snapshots"):
        done = Follower().catch_up("start")
    assert (done.entries, done.files, done.pruned) == (1, 1, 2)  # the page and its .gz
    assert (follower_dir / "files/api/v2/status.json").read_bytes() == b"new"
    assert not (follower_dir / "files/incidents/gone/index.html").exists()
    assert public_cache.disk_generation() == generation
    assert caplog.text.count("snapshot follower caught up") == 1


def test_the_follower_mirrors_the_outage_state_and_its_notice(settings, hosts, follower, pubsub):
    worker, follower_dir = hosts
    as_worker(settings, worker)
    page = b"<p>All good</p>" + store.REFRESH_NOTICE_MARKER
    store.store(snapshot("/", page, "g1", "text/html; charset=utf-8"), write_file=True)
    stored = next_message(pubsub)
    as_follower(settings, follower_dir)
    follower.receive(stored)
    assert (follower_dir / "files/index.html").read_bytes() == page

    as_worker(settings, worker)
    outage.refresh_failed()  # noticed on the worker's host
    noticed = next_message(pubsub)
    as_follower(settings, follower_dir)
    follower.receive(noticed)
    assert store.read_failing_file() is not None
    assert (
        b"We cannot refresh this page right now" in (follower_dir / "files/index.html").read_bytes()
    )


def test_a_lost_connection_is_retried_with_backoff(monkeypatch, caplog):
    follower = Follower()
    waits: list[float] = []

    def pubsub(**kwargs: object) -> redis.client.PubSub:
        raise redis.ConnectionError("Redis went away")

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 3:
            follower.stop.set()
        return follower.stop.is_set()

    monkeypatch.setattr(follower.client, "pubsub", pubsub)
    monkeypatch.setattr(follower.stop, "wait", wait)
    with caplog.at_level(logging.WARNING, logger="beacon.snapshots"):
        follower.run()
    assert waits == [0.5, 1.0, 2.0]
    assert caplog.text.count("snapshot follower lost Redis") == 3


def test_an_idle_follower_notices_a_message_it_never_got(settings, hosts, follower):
    worker, follower_dir = hosts
    client = redis_client()
    assert client is not None
    deaf = client.pubsub(ignore_subscribe_messages=True)  # subscribed to nothing
    as_worker(settings, worker)
    store.store(snapshot("/api/v2/status.json", b"lost", "g1"), write_file=True)
    as_follower(settings, follower_dir)
    started = time.monotonic()
    assert follower._listen(deaf) == "missed message"
    assert time.monotonic() - started < 3
    deaf.close()
