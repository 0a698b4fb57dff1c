"""Building snapshots: rendering an output through Django and keeping it, once per change.

An output is rendered by a request made up here and passed through the whole stack, so it is
byte for byte what a visitor would get. A stale snapshot is rebuilt by exactly one process (a
short lock in the cache) while the others keep serving the stale copy; rebuilds wait until the
generation has been still for a moment, so a burst of changes costs one or two rebuilds. The
worker rebuilds the hot outputs right after each change (render on write, `rebuild_hot_snapshots`),
so readers rarely build anything themselves.
"""

import hashlib
import logging
import sys
import time
from io import BytesIO
from typing import cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse

from statuspage.lib import shared_reads
from statuspage.lib.outage import database_unreachable
from statuspage.public import public_cache
from statuspage.public.snapshots import keys, outage, store
from statuspage.public.snapshots.keys import current_generation, generation_is_settled
from statuspage.public.snapshots.store import Snapshot

logger = logging.getLogger("beacon.snapshots")

COLD_WAIT_SECONDS = 3.0
DEFAULT_CACHE_CONTROL = "public, max-age=15, stale-while-revalidate=60, stale-if-error=86400"
# Pages: browsers revalidate each live refresh (a 304 while nothing changed) and never show a
# stale copy while revalidating, which would hide a new incident for a whole refresh; shared
# caches keep them briefly, and CDNs that read CDN-Cache-Control (RFC 9213) may serve them
# stale while they revalidate.
PAGE_CACHE_CONTROL = "public, max-age=0, s-maxage=15, stale-if-error=86400"
PAGE_CDN_CACHE_CONTROL = "max-age=15, stale-while-revalidate=60, stale-if-error=86400"
# A 404 may become a page (the next incident, the next page of history), so caches keep it
# briefly and never serve it in place of an error; errors are never kept at all.
NOT_FOUND_CACHE_CONTROL = "public, max-age=30"
ERROR_CACHE_CONTROL = "no-store"
# How long a client should wait before asking again while the database is away.
RETRY_AFTER_SECONDS = 30
# Response headers a snapshot keeps from the view that rendered it. The security headers are
# not kept: serve.representation() adds them to every answer as it is served.
KEPT_HEADERS = (
    "Cache-Control",
    "CDN-Cache-Control",
    "Access-Control-Allow-Origin",
    "X-Robots-Tag",
)


class RefreshFailed(Exception):
    """The output could not be built because the database is away."""


class RenderFailed(Exception):
    """The output could not be built because rendering it raised: a bug, not an outage."""


class RenderRequest(WSGIRequest):
    """A request made up by the renderer; SnapshotMiddleware passes it to the view."""

    beacon_render = True
    # What made the render answer 500, so that a bug is not taken for an outage.
    beacon_render_error: BaseException | None = None


def render_key(key: str, *, base_url: str | None = None) -> Snapshot:
    """Render the output of `key` fresh from the database (not stored)."""
    path, _, query = key.partition("?")
    host = _request_host(base_url)
    # Where plain HTTP is redirected, the made-up request is an HTTPS one, or it would render
    # the redirect.
    https = settings.SECURE_SSL_REDIRECT
    request = RenderRequest(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": host,
            "SERVER_PORT": "443" if https else "80",
            "HTTP_HOST": host,
            "wsgi.url_scheme": "https" if https else "http",
            "wsgi.input": BytesIO(),
        }
    )
    generation = current_generation()
    shared_reads.render_generation(generation)
    # Every public output's view answers with a plain HttpResponse, never a streaming one.
    response = cast(HttpResponse, _handler().get_response(request))
    if response.status_code >= 500:
        error = request.beacon_render_error
        if error is None or database_unreachable(error):
            raise RefreshFailed(f"{key} answered {response.status_code}") from error
        raise RenderFailed(f"{key}: {type(error).__name__}: {error}") from error
    return make_snapshot(key, response, generation=generation)


def _remember_render_error(
    sender: object, request: HttpRequest | None = None, **kwargs: object
) -> None:
    """Keep what made a render answer 500, so that a bug is not taken for an outage."""
    if isinstance(request, RenderRequest):
        request.beacon_render_error = sys.exc_info()[1]


got_request_exception.connect(_remember_render_error, dispatch_uid="beacon-snapshot-render")


def make_snapshot(key: str, response: HttpResponse, *, generation: str) -> Snapshot:
    body = response.content
    headers = tuple((name, response[name]) for name in KEPT_HEADERS if response.has_header(name))
    if response.status_code != 200:
        # Whatever the view said, a miss is never kept long nor served in place of an error.
        cache_control = NOT_FOUND_CACHE_CONTROL if response.status_code < 500 else "no-store"
        headers = tuple(h for h in headers if h[0] not in ("Cache-Control", "CDN-Cache-Control"))
        headers += (("Cache-Control", cache_control),)
    elif not response.has_header("Cache-Control"):
        headers += (("Cache-Control", DEFAULT_CACHE_CONTROL),)
    gzipped, brotli_compressed = store.compressed(body, brotli_quality=6)
    return Snapshot(
        key=key,
        status=response.status_code,
        content_type=response["Content-Type"],
        headers=headers,
        body=body,
        gzip=gzipped,
        brotli=brotli_compressed,
        etag=hashlib.sha256(body).hexdigest()[:32],
        last_modified=int(public_cache.changed_at(generation)),
        generation=generation,
        built_at=time.time(),
    )


_handler_instance: BaseHandler | None = None


def _handler() -> BaseHandler:
    global _handler_instance
    if _handler_instance is None:
        handler = BaseHandler()
        handler.load_middleware()
        _handler_instance = handler
    return _handler_instance


def _request_host(base_url: str | None) -> str:
    """A host this installation answers to, for requests made up by the renderer."""
    for candidate in (base_url, _remembered_base_url()):
        if candidate:
            host = urlsplit(candidate).netloc
            if host:
                return host
    allowed = [h for h in settings.ALLOWED_HOSTS if h and "*" not in h and not h.startswith(".")]
    return allowed[0] if allowed else "localhost"


def _remembered_base_url() -> str | None:
    try:
        base_url = cache.get(keys.BASE_URL_KEY)
    except Exception:
        return None
    return base_url if isinstance(base_url, str) else None


def remember_base_url(request: HttpRequest) -> None:
    """Renderers outside a request (the worker) reuse the host visitors reach the page at."""
    memory = store.memory()
    if memory.base_url_remembered:
        return
    try:
        cache.set(keys.BASE_URL_KEY, f"{request.scheme}://{request.get_host()}", None)
        memory.base_url_remembered = True
    except Exception:
        logger.debug("could not remember the base URL", exc_info=True)


def rebuild(
    key: str, *, base_url: str | None = None, wait: bool = False, write_file: bool = False
) -> Snapshot | None:
    """Rebuild one output under its lock; None when another process holds the lock.

    With `wait`, wait a little for the other process and return what it built.
    """
    lock = keys.LOCK_KEY.format(key)
    deadline = time.monotonic() + (COLD_WAIT_SECONDS if wait else 0)
    while True:
        try:
            acquired = cache.add(lock, 1, keys.LOCK_SECONDS)
        except Exception:
            acquired = True  # no shared cache: nobody to share the work with
        if acquired:
            # Whoever held the lock before may have just built it: then there is nothing to do.
            fresh = store.load_shared(key)
            if fresh is not None and fresh.generation == current_generation(fresh=True):
                _release(lock)
                store.memory().put(fresh)
                if write_file:
                    store.write_files_tree(fresh)
                return fresh
            break
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
        fresh = store.load_shared(key)
        if fresh is not None and fresh.generation == current_generation():
            store.memory().put(fresh)
            if write_file:
                store.write_files_tree(fresh)
            return fresh
    try:
        started = time.monotonic()
        snapshot = render_key(key, base_url=base_url)
        if snapshot.status == 200:  # a 404 is not kept: made-up URLs must not fill storage
            store.store(snapshot, write_file=write_file)
        logger.info(
            "snapshot rebuilt path=%s bytes=%d seconds=%.3f",
            key,
            len(snapshot.body),
            time.monotonic() - started,
        )
        outage.refresh_succeeded()
        return snapshot
    except RenderFailed:
        raise
    except Exception as error:
        if isinstance(error, RefreshFailed) or database_unreachable(error):
            outage.refresh_failed()
        raise
    finally:
        _release(lock)


def _release(lock: str) -> None:
    try:
        cache.delete(lock)
    except Exception:
        logger.debug("could not release %s", lock, exc_info=True)


class _StreamWatch:
    """Whether changes have begun to come less than SNAPSHOT_SETTLE_SECONDS apart since a
    rebuild began: two generations seen in turn, both newer than the rebuild's, that began
    closer together than that."""

    def __init__(self, generation: str) -> None:
        self.first = self.last = generation

    def began(self) -> bool:
        seen = current_generation(fresh=True)
        if seen == self.last:
            return False
        apart = public_cache.changed_at(seen) - public_cache.changed_at(self.last)
        quick = self.last != self.first and apart < settings.BEACON_SNAPSHOT_SETTLE_SECONDS
        self.last = seen
        return quick


def rebuild_hot_snapshots(
    *, base_url: str | None = None, paced: bool = False, deferred: bool = False
) -> int | None:
    """Rebuild the hot outputs once the generation has settled; returns how many were built,
    None when (`paced`) it left the rebuild to a later task.

    The body of the worker's rebuild task (statuspage.tasks.rebuild_snapshots). When changes
    kept coming all through the wait for the generation to settle, the next rebuild is paced
    (`keys.pace_rebuilds`); with `paced` (the worker's task), this one too if it is the
    stream's first (`deferred`: a task queued again by the pacing never is): it is queued
    again and builds nothing (`keys.begin_pacing`).
    """
    generation = current_generation(fresh=True)
    deadline = time.monotonic() + settings.BEACON_SNAPSHOT_SETTLE_SECONDS * 5
    while not generation_is_settled(generation) and time.monotonic() < deadline:
        time.sleep(0.05)
        generation = current_generation(fresh=True)
    changes_kept_coming = not generation_is_settled(generation)
    if paced and changes_kept_coming and not deferred and keys.begin_pacing():
        return None
    if paced and not changes_kept_coming:
        keys.end_pacing()  # the stream, if there was one, is over
    stream = _StreamWatch(generation) if paced and not changes_kept_coming else None
    rendering_started = time.monotonic()
    try:
        hot = keys.public_keys()
        store.refresh_known_outputs()
    except Exception as error:
        if database_unreachable(error):
            outage.refresh_failed()
        raise
    built = 0
    with shared_reads.sharing():
        for key in hot:
            if stream is not None and stream.began() and keys.hand_over_to_stream():
                # Begun after a calm, and a stream of changes has begun since: its own rebuild
                # (queued) waits for it, and paces it, rather than this one rendering on through
                # it. A change now and then does not stop it, nor does a stream when the last
                # rebuild the worker finished is older than the longest gap.
                return None
            current = store.load(key)
            if current is not None and current.generation == generation:
                store.write_files_tree(current)
                continue
            try:
                if rebuild(key, base_url=base_url, wait=True, write_file=True) is not None:
                    built += 1
            except RenderFailed as error:
                # One broken output keeps its last good copy; the others are still rebuilt.
                logger.error("could not render %s: %s", key, error)
    store.prune_files_tree(set(hot))
    store.share_files_tree(hot, generation)
    keys.note_rebuild_completed()
    if changes_kept_coming:
        keys.pace_rebuilds(render_seconds=time.monotonic() - rendering_started)
    return built
