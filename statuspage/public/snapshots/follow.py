"""Keeping this host's disk in step with the shared store: the follower of a web host.

With several web hosts, each keeps its own copy on disk (the entries Django falls back on
while Redis is away, and the files tree its nginx serves), but only the host whose worker
rendered a snapshot writes it there. The follower (`manage.py follow_snapshots`, one per web
host, next to the web server) listens for "snapshot changed" on Redis (store.announce) and
copies each new snapshot from the cache to this host's disk with the store's own writers.

Messages are numbered. On start, after a lost connection, and when the numbers show a gap
(a missed message), the follower catches up instead: it compares the generation, the known
outputs, the files tree and every entry on its disk with the cache and rewrites what is
stale, logging one line. An idle follower also checks the number every second, so a lost
last message is noticed too. Nothing here touches PostgreSQL.
"""

import json
import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.core.cache import cache

from statuspage.lib.redis_cache import redis_client
from statuspage.public import public_cache
from statuspage.public.snapshots import keys, store
from statuspage.public.snapshots.store import Snapshot

logger = logging.getLogger("beacon.snapshots")

IDLE_CHECK_SECONDS = 1.0
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


class FollowerUnavailable(Exception):
    """There is no Redis to follow (REDIS_URL is not set)."""


@dataclass
class CatchUp:
    """What one catch-up rewrote."""

    generation: str | None
    entries: int = 0
    files: int = 0
    pruned: int = 0


def _same(disk: Snapshot | None, shared: Snapshot) -> bool:
    return disk is not None and (disk.etag, disk.generation, disk.built_at) == (
        shared.etag,
        shared.generation,
        shared.built_at,
    )


class Follower:
    """Copies snapshots announced on Redis to this host's disk; see the module's docstring."""

    def __init__(self, *, stop: threading.Event | None = None) -> None:
        client = redis_client()
        if client is None:
            raise FollowerUnavailable(
                "following snapshots needs Redis (REDIS_URL or REDIS_SENTINELS)"
            )
        self.client: redis.Redis = client
        self.stop = stop or threading.Event()
        self.last_number: int | None = None

    # The loop

    def run(self) -> None:
        """Follow until `stop` is set, reconnecting with backoff."""
        backoff = FIRST_BACKOFF_SECONDS
        reason = "start"
        while not self.stop.is_set():
            pubsub: redis.client.PubSub | None = None
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                # Subscribed first: what changes during the catch-up still arrives after it.
                pubsub.subscribe(store.shared_name(keys.CHANGED_CHANNEL))
                self.catch_up(reason)
                backoff = FIRST_BACKOFF_SECONDS
                # Back when the subscription missed a message: subscribe afresh, catch up.
                reason = self._listen(pubsub)
            except (redis.RedisError, OSError) as error:
                logger.warning(
                    "snapshot follower lost Redis (%s); reconnecting in %.1f s", error, backoff
                )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                reason = "reconnect"
            finally:
                if pubsub is not None:
                    pubsub.close()

    def _listen(self, pubsub: redis.client.PubSub) -> str:
        """Apply messages until stopped, or until one never arrived (returns why)."""
        checked_at = time.monotonic()
        while not self.stop.is_set():
            message = pubsub.get_message(timeout=IDLE_CHECK_SECONDS)
            if message is not None and message.get("type") == "message":
                self.receive(message["data"])
            elif time.monotonic() - checked_at >= IDLE_CHECK_SECONDS:
                checked_at = time.monotonic()
                if self._shared_number() != self.last_number:
                    return "missed message"  # a silent subscription must not stay so
        return "stopped"

    def _shared_number(self) -> int:
        value = self.client.get(store.shared_name(keys.CHANGED_SEQUENCE))
        return int(value) if isinstance(value, bytes | str | int) else 0

    # One message

    def receive(self, data: bytes | str) -> None:
        """Apply one "snapshot changed" message, or catch up when one was missed."""
        text = data.decode() if isinstance(data, bytes) else data
        number_text, _, body = text.partition(" ")
        try:
            number = int(number_text)
            message = json.loads(body)
        except ValueError:
            logger.warning("snapshot follower ignored a malformed message %.100r", text)
            return
        if self.last_number is not None and number <= self.last_number:
            return  # already on disk: the catch-up that read this number copied it
        if self.last_number is None or number != self.last_number + 1:
            self.catch_up("missed message")
            return
        self.last_number = number
        if not isinstance(message, dict):
            return
        op = message.get("op")
        if op == "stored" and isinstance(message.get("key"), str):
            shared = store.shared_entry(message["key"])
            if shared is not None:
                store.keep_on_disk(shared, write_file=bool(message.get("files")))
            self._copy_generation()
        elif op == "files":
            self._copy_generation()
            self._copy_known_outputs()
            self._follow_files_tree(CatchUp(None))
        elif op == "notice":
            self._copy_refresh_state()

    # Catching up

    def catch_up(self, reason: str) -> CatchUp:
        """Rewrite whatever on this host's disk differs from the shared store."""
        started = time.monotonic()
        # The number first: anything announced after it arrives as a message and is applied.
        number = self._shared_number()
        done = CatchUp(self._copy_generation())
        self._copy_known_outputs()
        self._copy_refresh_state()
        for disk in store.disk_entries():
            shared = store.shared_entry(disk.key)
            if shared is not None and not _same(disk, shared):
                store.keep_on_disk(shared, write_file=False)
                done.entries += 1
        self._follow_files_tree(done)
        self.last_number = number
        logger.info(
            "snapshot follower caught up reason=%s generation=%s entries=%d files=%d pruned=%d "
            "seconds=%.3f",
            reason,
            done.generation,
            done.entries,
            done.files,
            done.pruned,
            time.monotonic() - started,
        )
        return done

    def _copy_generation(self) -> str | None:
        shared = cache.get(public_cache.GENERATION_KEY)  # raises while Redis is away
        if isinstance(shared, str) and shared != public_cache.disk_generation():
            public_cache.keep_generation_on_disk(shared)
        return shared if isinstance(shared, str) else None

    def _copy_known_outputs(self) -> None:
        shared = store.shared_known_outputs()
        if shared is not None and shared != store.disk_known_outputs():
            store.keep_known_on_disk(shared)

    def _copy_refresh_state(self) -> None:
        since = store.shared_failing_since()
        if since != store.read_failing_file():
            store.write_failing_file(since)
            store.remember_refresh_failing_since(since)
            store.rewrite_pages_in_files_tree()

    def _follow_files_tree(self, done: CatchUp) -> None:
        """The files tree holds the worker's last hot set, each file current."""
        shared = store.shared_files_tree()
        if shared is None:
            return
        hot = shared[1]
        for key in hot:
            snapshot = store.shared_entry(key)
            if snapshot is None:
                continue
            if not _same(store.disk_entry(key), snapshot):
                store.keep_on_disk(snapshot, write_file=False)
                done.entries += 1
            if not store.files_tree_is_current(snapshot):
                store.write_files_tree(snapshot)
                done.files += 1
        done.pruned += store.prune_files_tree(set(hot))
