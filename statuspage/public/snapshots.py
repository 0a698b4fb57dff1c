"""Render-on-write snapshots: every public output built once per change, then served as bytes.

A snapshot is the complete response for one public URL (body, gzip and brotli variants,
content type, strong ETag). Snapshots live in three places, fastest first: this process's
memory, the shared cache (Redis in production) and a copy on local disk (which nginx can
serve directly and which keeps pages up while Redis is away). Serving one touches neither
PostgreSQL nor the ORM.

Freshness follows the public generation (statuspage.public.public_cache): any change the public can
see bumps it after commit. A snapshot of an older generation is rebuilt by exactly one
process (a short lock in the cache) while the others keep serving the stale copy; rebuilds
wait until the generation has been still for a moment, so a burst of changes costs one or
two rebuilds. The worker rebuilds the hot outputs right after each change (render on write),
so readers rarely build anything themselves. When the database cannot be reached, the last
snapshot keeps being served and pages say since when they could not be refreshed.
"""

import gzip
import hashlib
import logging
import os
import pickle
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import brotli
from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import got_request_exception
from django.db import close_old_connections, connection, transaction
from django.http import HttpResponse
from django.urls import Resolver404, resolve
from django.utils.html import format_html
from django.utils.http import http_date, parse_http_date_safe

from components.models import Component
from incidents.models import Incident
from statuspage.lib import security_headers
from statuspage.lib.outage import database_unreachable
from statuspage.public import public_cache
from statuspage.public.selectors import history_page_count
from statuspage.public.static_export import key_to_file
from statuspage.templatetags.beacon import format_page_time

logger = logging.getLogger("beacon.snapshots")

ENTRY_KEY = "beacon:snap:entry:{}"
LOCK_KEY = "beacon:snap:lock:{}"
BASE_URL_KEY = "beacon:snap:base-url"
REFRESH_FAILING_KEY = "beacon:snap:refresh-failing-since"
REFRESH_FAILING_FILE = "refresh-failing-since"
KNOWN_KEY = "beacon:snap:known"
# Every public write bumps the generation, which retires the known outputs at once; the age
# limit only bounds how long a write that bypassed the signals (a manual SQL fix) goes unseen.
KNOWN_MAX_AGE_SECONDS = 60
REBUILD_QUEUED_KEY = "beacon:snap:rebuild-queued"
REBUILD_TASK = "statuspage.tasks.rebuild_snapshots"
LOCK_SECONDS = 30
# No public output's path is longer (ids are 12 characters): longer ones are left to Django.
MAX_KEY_PATH = 200
COLD_WAIT_SECONDS = 3.0
MEMORY_ENTRIES = 512
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
# Pages with the notice, kept per process so an outage does not recompress them per request.
NOTICED_ENTRIES = 64
REFRESH_NOTICE_MARKER = b"<!--beacon:refresh-notice-->"
# Response headers a snapshot keeps from the view that rendered it.
KEPT_HEADERS = (
    "Cache-Control",
    "CDN-Cache-Control",
    "Access-Control-Allow-Origin",
    "X-Robots-Tag",
)
# The security headers are not kept: representation() adds them to every answer as it is
# served, so that a snapshot never carries an outdated policy, nor HSTS to a plain-HTTP
# request. Snapshots stored by older versions kept them: those copies are left out.
_NOT_SERVED_FROM_SNAPSHOT = security_headers.NAMES

# Public URL names, and the query parameters that select a different output.
PUBLIC_URLS = {
    "status-page": (),
    "incident-detail": (),
    "history": ("page",),
    "history-atom": (),
    "history-rss": (),
    "component-history-atom": (),
    "component-history-rss": (),
    "maintenance-ics": (),
    "badge-svg": (),
    "badge-json": (),
    "component-badge-svg": (),
    "component-badge-json": (),
    "embed-js": (),
    "robots-txt": (),
    "api-v2-summary": (),
    "api-v2-status": (),
    "api-v2-components": (),
    "api-v2-incidents": (),
    "api-v2-incidents-unresolved": (),
    "api-v2-scheduled-maintenances": (),
    "api-v2-scheduled-maintenances-upcoming": (),
    "api-v2-scheduled-maintenances-active": (),
}


@dataclass(frozen=True)
class Snapshot:
    key: str
    status: int
    content_type: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    gzip: bytes
    brotli: bytes
    etag: str
    last_modified: int
    generation: str
    built_at: float

    @cached_property
    def http_last_modified(self) -> str:
        return http_date(self.last_modified)

    @property
    def is_html(self) -> bool:
        return self.content_type.startswith("text/html")


class RefreshFailed(Exception):
    """The output could not be built because the database is away."""


class RenderFailed(Exception):
    """The output could not be built because rendering it raised: a bug, not an outage."""


# Keys


def key_for(path: str, query_string: str = "") -> str | None:
    """The snapshot key of a request path, or None when the path is not a public output.

    Only history pages read the query (`page`); anything else in it selects nothing.
    """
    if len(path) > MAX_KEY_PATH:
        return None  # not ours; it must not become a cache key or fill the URL memo
    name = _url_match(path)[0]
    if name is None or name not in PUBLIC_URLS:
        return None
    if name == "history" and query_string:
        page = parse_qs(query_string).get("page", ["1"])[-1]
        if page.isdigit() and len(page) <= 6 and int(page) > 1:
            return f"{path}?page={int(page)}"
    return path


_url_matches: OrderedDict[str, tuple[str | None, dict]] = OrderedDict()


def _url_match(path: str) -> tuple[str | None, dict]:
    """The URL name and arguments of a path (None when nothing matches), remembered."""
    if path in _url_matches:
        return _url_matches[path]
    try:
        match = resolve(path)
        found: tuple[str | None, dict] = (match.url_name, match.kwargs)
    except Resolver404:
        found = (None, {})
    _url_matches[path] = found
    if len(_url_matches) > 4096:
        _url_matches.popitem(last=False)
    return found


# What exists: made-up URLs answered without the database


@dataclass(frozen=True)
class KnownOutputs:
    """Per generation, the incident codes, component ids and history pages that exist, so
    that a made-up /incidents/<code>/ or /history/?page=N is a 404 without a query."""

    generation: str
    incident_codes: frozenset[str]
    component_ids: frozenset[str]
    history_pages: int
    built_at: float

    def is_current(self, generation: str) -> bool:
        return self.generation == generation and time.time() - self.built_at < KNOWN_MAX_AGE_SECONDS

    def may_exist(self, key: str) -> bool:
        path, _, query = key.partition("?")
        name, kwargs = _url_match(path)
        if name == "incident-detail":
            return kwargs.get("code") in self.incident_codes
        if name in COMPONENT_URL_NAMES:
            return kwargs.get("public_id") in self.component_ids
        if name == "history" and query:
            return int(query.removeprefix("page=")) <= self.history_pages
        return True


def _known_file() -> Path:
    return _snapshot_dir() / "known.pickle"


def known_outputs() -> KnownOutputs | None:
    """The current generation's KnownOutputs from memory, the cache or disk; None if none."""
    generation = current_generation()
    known = _memory.known
    if known is not None and known.is_current(generation):
        return known
    try:
        known = cache.get(KNOWN_KEY)
    except Exception:
        known = None
    if known is None or not known.is_current(generation):
        try:
            known = pickle.loads(_known_file().read_bytes())  # noqa: S301 - our own file
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            known = None
    if known is None or not known.is_current(generation):
        return None
    _memory.known = known
    return known


def refresh_known_outputs() -> KnownOutputs:
    """Read what exists from the database and share it (every rebuild of the hot set)."""
    # The generation first: a change committed meanwhile is then in the sets, or bumps it.
    generation = current_generation(fresh=True)
    known = KnownOutputs(
        generation=generation,
        incident_codes=frozenset(Incident.objects.values_list("public_id", flat=True)),
        component_ids=frozenset(Component.objects.values_list("public_id", flat=True)),
        history_pages=history_page_count(),
        built_at=time.time(),
    )
    _memory.known = known
    try:
        cache.set(KNOWN_KEY, known, None)
    except Exception:
        logger.debug("could not share the known outputs", exc_info=True)
    try:
        _atomic_write(_known_file(), pickle.dumps(known))
    except OSError:
        logger.debug("could not write the known outputs", exc_info=True)
    return known


def may_exist(key: str) -> bool:
    """False only when `key` is certainly not an output: a 404 that needs no database."""
    name = _url_match(key.partition("?")[0])[0]
    if name != "incident-detail" and name not in COMPONENT_URL_NAMES and "?" not in key:
        return True
    known = known_outputs()
    return known is None or known.may_exist(key)


def _learn_what_exists() -> None:
    """After a made-up URL cost a render: read what exists, so the next ones cost nothing.

    (The worker's rebuild also reads it; this covers installs and moments without one.)
    """
    if known_outputs() is not None:
        return
    try:
        refresh_known_outputs()
    except Exception as error:
        if not database_unreachable(error):
            raise
        _refresh_failed()


# Where snapshots are kept


def _snapshot_dir() -> Path:
    return Path(settings.BEACON_SNAPSHOT_DIR)


def _entry_file(key: str) -> Path:
    return _snapshot_dir() / "entries" / f"{hashlib.sha1(key.encode()).hexdigest()}.pickle"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
        handle.write(data)
    os.chmod(handle.name, 0o644)  # nginx's workers run as another user
    os.replace(handle.name, path)


class _Memory:
    """This process's copy: the snapshots it served last and the generation it last saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, Snapshot] = OrderedDict()
        self.generation: str | None = None
        self.generation_checked_at = 0.0
        self.refresh_failing_since: float | None = None
        self.failing_checked_at = float("-inf")
        self.probe_started_at = time.monotonic()  # the first probe comes a period after start
        self.base_url_remembered = False
        self.shared_checked_at: dict[str, float] = {}
        self.noticed: OrderedDict[tuple[str, str, float], Snapshot] = OrderedDict()
        # Outputs whose render raised, with the generation: not retried until it changes.
        self.render_failed: dict[str, str] = {}
        self.known: KnownOutputs | None = None

    def get(self, key: str) -> Snapshot | None:
        with self.lock:
            snapshot = self.entries.get(key)
            if snapshot is not None:
                self.entries.move_to_end(key)
            return snapshot

    def put(self, snapshot: Snapshot) -> None:
        with self.lock:
            self.entries[snapshot.key] = snapshot
            self.entries.move_to_end(snapshot.key)
            while len(self.entries) > MEMORY_ENTRIES:
                self.entries.popitem(last=False)


_memory = _Memory()


def reset_memory() -> None:
    """Forget this process's copies (tests, and after settings change)."""
    global _memory
    _memory = _Memory()


def current_generation(*, fresh: bool = False) -> str:
    """The public generation, looked up at most every BEACON_SNAPSHOT_GENERATION_CHECK s."""
    now = time.monotonic()
    interval = settings.BEACON_SNAPSHOT_GENERATION_CHECK
    if (
        not fresh
        and _memory.generation is not None
        and now - _memory.generation_checked_at < interval
    ):
        return _memory.generation
    token = public_cache.generation()
    _memory.generation, _memory.generation_checked_at = token, now
    return token


def load(key: str) -> Snapshot | None:
    """The newest snapshot of `key` this process can find, fresh or not."""
    snapshot = _memory.get(key)
    if snapshot is not None and snapshot.generation == current_generation():
        return snapshot
    # While a stale copy waits for its rebuild, look for a newer one only now and then.
    now = time.monotonic()
    if snapshot is not None:
        checked_at = _memory.shared_checked_at.get(key, 0.0)
        if now - checked_at < settings.BEACON_SNAPSHOT_GENERATION_CHECK:
            return snapshot
    _memory.shared_checked_at[key] = now
    if len(_memory.shared_checked_at) > 4 * MEMORY_ENTRIES:
        _memory.shared_checked_at.clear()
    shared = _load_shared(key)
    if shared is not None and (snapshot is None or shared.built_at > snapshot.built_at):
        _memory.put(shared)
        return shared
    return snapshot


def _load_shared(key: str) -> Snapshot | None:
    try:
        snapshot = cache.get(ENTRY_KEY.format(key))
    except Exception:
        snapshot = None
    if snapshot is None:
        try:
            snapshot = pickle.loads(_entry_file(key).read_bytes())  # noqa: S301 - our own files
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            return None
    return snapshot


def store(snapshot: Snapshot, *, write_file: bool = False) -> None:
    _memory.put(snapshot)
    try:
        cache.set(ENTRY_KEY.format(snapshot.key), snapshot, None)
    except Exception:
        logger.warning("could not store snapshot %s in the cache", snapshot.key)
    try:
        _atomic_write(_entry_file(snapshot.key), pickle.dumps(snapshot))
        if write_file:
            _write_files_tree(snapshot)
    except OSError:
        logger.warning("could not write snapshot %s to disk", snapshot.key, exc_info=True)


def _files_dir() -> Path:
    return _snapshot_dir() / "files"


def _write_files_tree(snapshot: Snapshot) -> None:
    """The copy nginx serves directly: the body and its .gz sibling, at the URL's path.

    Only the hot outputs are written, by the worker's rebuild, which also removes the files
    of outputs that left the hot set; everything else nginx asks Django for.
    """
    relative = key_to_file(snapshot.key) if snapshot.status == 200 else None
    if relative is None:
        return
    snapshot = with_refresh_notice(snapshot)
    target = _files_dir() / relative
    _atomic_write(target.with_name(target.name + ".gz"), snapshot.gzip)
    _atomic_write(target, snapshot.body)


def _prune_files_tree(keep: set[str]) -> None:
    root = _files_dir()
    wanted = {name for name in map(key_to_file, keep) if name is not None}
    wanted |= {name + ".gz" for name in wanted}
    for path in root.rglob("*") if root.exists() else []:
        if path.is_file() and str(path.relative_to(root)) not in wanted:
            path.unlink(missing_ok=True)


# Building


def render_key(key: str, *, base_url: str | None = None) -> Snapshot:
    """Render the output of `key` fresh from the database (not stored)."""
    path, _, query = key.partition("?")
    host = _request_host(base_url)
    # Where plain HTTP is redirected, the made-up request is an HTTPS one, or it would render
    # the redirect.
    https = settings.SECURE_SSL_REDIRECT
    request = WSGIRequest(
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
    request.beacon_render = True  # type: ignore[attr-defined]
    generation = current_generation()
    response = _handler().get_response(request)
    if response.status_code >= 500:
        error = getattr(request, "beacon_render_error", None)
        if error is None or database_unreachable(error):
            raise RefreshFailed(f"{key} answered {response.status_code}") from error
        raise RenderFailed(f"{key}: {type(error).__name__}: {error}") from error
    return make_snapshot(key, response, generation=generation)


def _remember_render_error(sender, request=None, **kwargs) -> None:
    """Keep what made a render answer 500, so that a bug is not taken for an outage."""
    if request is not None and getattr(request, "beacon_render", False):
        request.beacon_render_error = sys.exc_info()[1]


got_request_exception.connect(_remember_render_error, dispatch_uid="beacon-snapshot-render")


def make_snapshot(key: str, response, *, generation: str) -> Snapshot:
    body = response.content
    headers = tuple((name, response[name]) for name in KEPT_HEADERS if response.has_header(name))
    if response.status_code != 200:
        # Whatever the view said, a miss is never kept long nor served in place of an error.
        cache_control = NOT_FOUND_CACHE_CONTROL if response.status_code < 500 else "no-store"
        headers = tuple(h for h in headers if h[0] not in ("Cache-Control", "CDN-Cache-Control"))
        headers += (("Cache-Control", cache_control),)
    elif not response.has_header("Cache-Control"):
        headers += (("Cache-Control", DEFAULT_CACHE_CONTROL),)
    return Snapshot(
        key=key,
        status=response.status_code,
        content_type=response["Content-Type"],
        headers=headers,
        body=body,
        gzip=gzip.compress(body, compresslevel=6, mtime=0),
        brotli=brotli.compress(body, quality=6),
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
        return cache.get(BASE_URL_KEY)
    except Exception:
        return None


def remember_base_url(request) -> None:
    """Renderers outside a request (the worker) reuse the host visitors reach the page at."""
    if _memory.base_url_remembered:
        return
    try:
        cache.set(BASE_URL_KEY, f"{request.scheme}://{request.get_host()}", None)
        _memory.base_url_remembered = True
    except Exception:
        logger.debug("could not remember the base URL", exc_info=True)


def rebuild(
    key: str, *, base_url: str | None = None, wait: bool = False, write_file: bool = False
) -> Snapshot | None:
    """Rebuild one output under its lock; None when another process holds the lock.

    With `wait`, wait a little for the other process and return what it built.
    """
    lock = LOCK_KEY.format(key)
    deadline = time.monotonic() + (COLD_WAIT_SECONDS if wait else 0)
    while True:
        try:
            acquired = cache.add(lock, 1, LOCK_SECONDS)
        except Exception:
            acquired = True  # no shared cache: nobody to share the work with
        if acquired:
            # Whoever held the lock before may have just built it: then there is nothing to do.
            fresh = _load_shared(key)
            if fresh is not None and fresh.generation == current_generation(fresh=True):
                _release(lock)
                _memory.put(fresh)
                if write_file:
                    _write_files_tree(fresh)
                return fresh
            break
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
        fresh = _load_shared(key)
        if fresh is not None and fresh.generation == current_generation():
            _memory.put(fresh)
            if write_file:
                _write_files_tree(fresh)
            return fresh
    try:
        started = time.monotonic()
        snapshot = render_key(key, base_url=base_url)
        if snapshot.status == 200:  # a 404 is not kept: made-up URLs must not fill storage
            store(snapshot, write_file=write_file)
        logger.info(
            "snapshot rebuilt path=%s bytes=%d seconds=%.3f",
            key,
            len(snapshot.body),
            time.monotonic() - started,
        )
        _refresh_succeeded()
        return snapshot
    except RenderFailed:
        raise
    except Exception as error:
        if isinstance(error, RefreshFailed) or database_unreachable(error):
            _refresh_failed()
        raise
    finally:
        _release(lock)


def _release(lock: str) -> None:
    try:
        cache.delete(lock)
    except Exception:
        logger.debug("could not release %s", lock, exc_info=True)


def generation_is_settled(generation: str) -> bool:
    """Whether the generation has been still long enough to rebuild (coalescing bursts)."""
    age = time.time() - public_cache.changed_at(generation)
    return age >= settings.BEACON_SNAPSHOT_SETTLE_SECONDS


# Refresh health: since when pages could not be refreshed
#
# One shared state for every process (the cache, with a file on disk for when Redis is away):
# whoever notices that the database is unreachable (a failed rebuild in a web process or the
# worker, a request that needed the database, the background probe) marks it, and every page
# served from a snapshot, by any process and by nginx from the files tree, then says since
# when. Only the process that changes the state logs it: one line when the outage starts,
# one when it ends.


def _failing_file() -> Path:
    return _snapshot_dir() / REFRESH_FAILING_FILE


def _read_failing_file() -> float | None:
    try:
        return float(_failing_file().read_text().strip())
    except (OSError, ValueError):
        return None


def _create_failing_file(since: float) -> bool:
    """Write the disk copy of the state; True if this call created it."""
    path = _failing_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError:
        logger.debug("could not write %s", path, exc_info=True)
        return False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(repr(since))
    return True


def _read_failing_since() -> float | None:
    try:
        value = cache.get(REFRESH_FAILING_KEY)
    except Exception:
        return _read_failing_file()  # Redis away: the disk copy
    return float(value) if value is not None else None


def refresh_failing_since() -> float | None:
    """Since when snapshots cannot be refreshed (epoch seconds), or None.

    Looked up at most every BEACON_SNAPSHOT_GENERATION_CHECK s, as the generation is.
    """
    now = time.monotonic()
    if now - _memory.failing_checked_at >= settings.BEACON_SNAPSHOT_GENERATION_CHECK:
        _memory.refresh_failing_since = _read_failing_since()
        _memory.failing_checked_at = now
    return _memory.refresh_failing_since


def note_database_unreachable() -> None:
    """Something needed the database and could not reach it: pages say so from now on."""
    _refresh_failed()


def _refresh_failed() -> None:
    since = time.time()
    try:
        entered = bool(cache.add(REFRESH_FAILING_KEY, since, None))
        if not entered:
            since = float(cache.get(REFRESH_FAILING_KEY) or since)
    except Exception:
        entered = None
    created_file = _create_failing_file(since)
    if entered is None:
        entered = created_file
        since = _read_failing_file() or since
    _memory.refresh_failing_since, _memory.failing_checked_at = since, time.monotonic()
    if entered:
        logger.warning(
            "cannot refresh public snapshots since %s: the database is unreachable",
            _utc(since).isoformat(timespec="seconds"),
        )
    if entered or created_file:
        _rewrite_pages_in_files_tree()


def _refresh_succeeded() -> None:
    if refresh_failing_since() is None and not _failing_file().exists():
        return
    try:
        left = bool(cache.delete(REFRESH_FAILING_KEY))
    except Exception:
        left = None
    try:
        _failing_file().unlink()
        removed_file = True
    except OSError:
        removed_file = False
    _memory.refresh_failing_since, _memory.failing_checked_at = None, time.monotonic()
    if left or (left is None and removed_file):
        logger.warning("public snapshots refresh again: the database is back")
    if left or removed_file:
        _rewrite_pages_in_files_tree()
        # Back from an outage: make every output current again right away.
        publish_change()


def probe_database_soon() -> None:
    """Check the database in the background every few seconds, never on the request path."""
    now = time.monotonic()
    if now - _memory.probe_started_at < settings.BEACON_SNAPSHOT_PROBE_SECONDS:
        return
    _memory.probe_started_at = now
    threading.Thread(target=probe_database_now, name="beacon-db-probe", daemon=True).start()


def probe_database_now() -> None:
    """One `SELECT 1`: marks the outage, or clears it (and refreshes everything) if it is over."""
    try:
        close_old_connections()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        _refresh_failed()
    else:
        _refresh_succeeded()
    finally:
        connection.close()


def _rewrite_pages_in_files_tree() -> None:
    """Pages nginx serves from disk say what pages served by Django say: with the notice
    while the database is away, without it once it is back."""
    root = _files_dir()
    for page in root.rglob("index.html") if root.exists() else []:
        folder = page.parent.relative_to(root).as_posix()
        snapshot = _load_shared("/" if folder == "." else f"/{folder}/")
        if snapshot is not None:
            try:
                _write_files_tree(snapshot)
            except OSError:
                logger.debug("could not rewrite %s", page, exc_info=True)


def with_refresh_notice(snapshot: Snapshot) -> Snapshot:
    """The snapshot, with a notice that it could not be refreshed, for HTML pages."""
    since = refresh_failing_since()  # first: cheap, and None nearly always
    if since is None or not snapshot.is_html or REFRESH_NOTICE_MARKER not in snapshot.body:
        return snapshot
    memo_key = (snapshot.key, snapshot.etag, since)
    noticed = _memory.noticed.get(memo_key)
    if noticed is None:
        # UTC rather than the page's zone: reading page settings could need the database.
        stamp = format_page_time(_utc(since), "datetime", zone=UTC)
        notice = format_html(
            '<p class="refresh-notice" role="status">We cannot refresh this page right now. '
            "It shows the status as of {}; we are working on it.</p>",
            stamp,
        ).encode()
        body = snapshot.body.replace(REFRESH_NOTICE_MARKER, notice, 1)
        noticed = replace(
            snapshot,
            body=body,
            gzip=gzip.compress(body, compresslevel=6, mtime=0),
            brotli=brotli.compress(body, quality=5),
            etag=hashlib.sha256(body).hexdigest()[:32],
        )
        _memory.noticed[memo_key] = noticed
        while len(_memory.noticed) > NOTICED_ENTRIES:
            _memory.noticed.popitem(last=False)
    return noticed


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# Render on write: the outputs visitors hit during an outage, rebuilt right after a change

HOT_URL_NAMES = [
    "status-page",
    "history",
    "history-atom",
    "history-rss",
    "maintenance-ics",
    "badge-svg",
    "badge-json",
    "embed-js",
    "robots-txt",
    "api-v2-summary",
    "api-v2-status",
    "api-v2-components",
    "api-v2-incidents",
    "api-v2-incidents-unresolved",
    "api-v2-scheduled-maintenances",
    "api-v2-scheduled-maintenances-upcoming",
    "api-v2-scheduled-maintenances-active",
]
COMPONENT_URL_NAMES = [
    "component-badge-svg",
    "component-badge-json",
    "component-history-atom",
    "component-history-rss",
]


def public_keys(*, everything: bool = False) -> list[str]:
    """Snapshot keys: the hot set, or with `everything` every public output there is.

    The hot set is what the status page links to while something is happening: the page, the
    API, feeds, badges, and the pages of incidents that are open, upcoming or recent.
    """
    from django.urls import reverse
    from django.utils import timezone

    keys = [reverse(name) for name in HOT_URL_NAMES]
    incidents = Incident.objects.all()
    if not everything:
        recent = timezone.now() - timedelta(days=settings.BEACON_PAST_INCIDENT_DAYS)
        incidents = incidents.exclude(status__in=["resolved", "postmortem", "completed"]) | (
            incidents.filter(started_at__gte=recent)
        )
    codes = incidents.order_by("-started_at").values_list("public_id", flat=True)
    keys += [reverse("incident-detail", args=[code]) for code in codes]
    if everything:
        history = reverse("history")
        keys += [f"{history}?page={n}" for n in range(2, history_page_count() + 1)]
        for public_id in Component.objects.values_list("public_id", flat=True):
            keys += [reverse(name, args=[public_id]) for name in COMPONENT_URL_NAMES]
    return keys


def warm_memory() -> int:
    """Load the hot outputs' current snapshots into this process; returns how many.

    Called as a web worker starts, so that a worker restarted in the middle of a traffic
    spike answers its first requests from memory instead of all asking Redis at once.
    Reads the cache or the disk copy only: never the database, never a render.
    """
    from django.urls import reverse

    generation = current_generation(fresh=True)
    warmed = 0
    for name in HOT_URL_NAMES:
        snapshot = _load_shared(reverse(name))
        if snapshot is not None and snapshot.generation == generation:
            _memory.put(snapshot)
            warmed += 1
    return warmed


def rebuild_hot_snapshots(*, base_url: str | None = None) -> int:
    """Rebuild the hot outputs once the generation has settled; returns how many were built."""
    generation = current_generation(fresh=True)
    deadline = time.monotonic() + settings.BEACON_SNAPSHOT_SETTLE_SECONDS * 5
    while not generation_is_settled(generation) and time.monotonic() < deadline:
        time.sleep(0.05)
        generation = current_generation(fresh=True)
    try:
        keys = public_keys()
        refresh_known_outputs()
    except Exception as error:
        if database_unreachable(error):
            _refresh_failed()
        raise
    built = 0
    for key in keys:
        current = load(key)
        if current is not None and current.generation == generation:
            _write_files_tree(current)
            continue
        try:
            if rebuild(key, base_url=base_url, wait=True, write_file=True) is not None:
                built += 1
        except RenderFailed as error:
            # One broken output keeps its last good copy; the others are still rebuilt.
            logger.error("could not render %s: %s", key, error)
    _prune_files_tree(set(keys))
    return built


def publish_change() -> None:
    """Something public changed: make every output stale and have the worker rebuild."""
    public_cache.invalidate()
    schedule_rebuild()


def publish_change_on_commit() -> None:
    transaction.on_commit(publish_change)


def schedule_rebuild() -> None:
    """Ask the worker for one rebuild; changes while one is queued join it.

    The task is named, not imported: statuspage/tasks.py sits above and imports this module.
    """
    if not settings.BEACON_SNAPSHOT_RENDER_ON_WRITE:
        return
    try:
        if not cache.add(REBUILD_QUEUED_KEY, 1, LOCK_SECONDS):
            return
        current_app.signature(REBUILD_TASK).delay()
    except Exception:
        # Readers rebuild what they serve by themselves; the worker only gets there first.
        logger.warning("could not queue the snapshot rebuild", exc_info=True)


def rebuild_started() -> None:
    try:
        cache.delete(REBUILD_QUEUED_KEY)
    except Exception:
        logger.debug("could not clear the queued rebuild", exc_info=True)


# Serving


def serve(request, key: str, render_on_miss, not_found) -> HttpResponse:
    """Answer from the snapshot of `key`, rebuilding it first when it is missing or stale.

    `not_found()` answers a key that certainly does not exist (no database needed);
    `render_on_miss()` one that has no snapshot and none could be built.
    """
    probe_database_soon()
    # A made-up address is refused before Redis or the disk are asked for its snapshot: a
    # scan of them costs no more than the set of what exists, kept in this process.
    if _memory.get(key) is None and not may_exist(key):
        return not_found()
    snapshot = load(key)
    generation = current_generation()
    if snapshot is None or (
        snapshot.generation != generation
        and (
            generation_is_settled(generation)
            # A steady stream of changes must not starve readers of every update.
            or time.time() - snapshot.built_at >= settings.BEACON_SNAPSHOT_MAX_STALE_SECONDS
        )
    ):
        if snapshot is not None and (
            # The database is away (the probe notices its return), or this output's render
            # is broken until the next change: the last good copy, without trying per request.
            refresh_failing_since() is not None or _memory.render_failed.get(key) == generation
        ):
            return respond(request, with_refresh_notice(snapshot))
        remember_base_url(request)
        try:
            rebuilt = rebuild(key, wait=snapshot is None)
        except RenderFailed as error:
            if len(_memory.render_failed) > 4 * MEMORY_ENTRIES:
                _memory.render_failed.clear()
            _memory.render_failed[key] = generation
            logger.error("could not render %s: %s; serving its last good copy", key, error)
            rebuilt = None
        except Exception as error:
            if not (isinstance(error, RefreshFailed) or database_unreachable(error)):
                logger.exception("could not rebuild %s", key)
            rebuilt = None  # an outage: logged once, when it started
        if rebuilt is not None and rebuilt.status == 404:
            _learn_what_exists()
        snapshot = rebuilt or snapshot
        if snapshot is None:
            return render_on_miss()
    return respond(request, with_refresh_notice(snapshot))


def representation(snapshot: Snapshot, meta: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body answering a request with these WSGI/META headers.

    The same answer whether it is built by the middleware or by the WSGI fast path.
    """
    accepted = meta.get("HTTP_ACCEPT_ENCODING", "")
    if "br" in accepted:
        body, encoding = snapshot.brotli, "br"
    elif "gzip" in accepted:
        body, encoding = snapshot.gzip, "gzip"
    else:
        body, encoding = snapshot.body, ""
    headers = [
        ("ETag", f'"{snapshot.etag}-{encoding}"' if encoding else f'"{snapshot.etag}"'),
        ("Last-Modified", snapshot.http_last_modified),
        ("Vary", "Accept-Encoding"),
        *(h for h in snapshot.headers if h[0] not in _NOT_SERVED_FROM_SNAPSHOT),
        *security_headers.security_headers(secure=security_headers.is_secure(meta)),
    ]
    if _not_modified(meta, snapshot):
        return 304, headers, b""
    headers += [("Content-Type", snapshot.content_type), ("Content-Length", str(len(body)))]
    if encoding:
        headers.append(("Content-Encoding", encoding))
    return snapshot.status, headers, b"" if meta.get("REQUEST_METHOD") == "HEAD" else body


def respond(request, snapshot: Snapshot) -> HttpResponse:
    status, headers, body = representation(snapshot, request.META)
    response = HttpResponse(body, status=status)
    if status == 304:
        del response["Content-Type"]
    for name, value in headers:
        response[name] = value
    return response


def _not_modified(meta: dict, snapshot: Snapshot) -> bool:
    if snapshot.status != 200:
        return False
    if_none_match = meta.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = {
            tag.strip().removeprefix("W/").strip('"').removesuffix("-gzip").removesuffix("-br")
            for tag in if_none_match.split(",")
        }
        return snapshot.etag in tags or "*" in tags
    since = parse_http_date_safe(meta.get("HTTP_IF_MODIFIED_SINCE", ""))
    return since is not None and snapshot.last_modified <= since


def fresh_in_memory(path: str, query_string: str) -> Snapshot | None:
    """The current snapshot for a request if this process holds it, without any I/O but the
    generation check: what the WSGI fast path serves."""
    key = key_for(path, query_string)
    if key is None:
        return None
    snapshot = _memory.get(key)
    if snapshot is None or snapshot.generation != current_generation():
        return None
    return with_refresh_notice(snapshot)
