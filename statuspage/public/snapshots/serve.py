"""Answering a request from its snapshot: SnapshotMiddleware's and the WSGI fast path's.

Serving one touches neither PostgreSQL nor the ORM. A stale snapshot is rebuilt first (by one
process; the others serve the stale copy meanwhile); when the database cannot be reached, the
last snapshot keeps being served and pages say since when they could not be refreshed. A
made-up URL is a 404 from the set of what exists, without a query.
"""

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from wsgiref.types import WSGIEnvironment

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.http import parse_http_date_safe

from statuspage.lib import languages, security_headers
from statuspage.lib.outage import database_unreachable
from statuspage.public.snapshots import keys, outage, store
from statuspage.public.snapshots.build import (
    RefreshFailed,
    RenderFailed,
    rebuild,
    remember_base_url,
)
from statuspage.public.snapshots.keys import current_generation, generation_is_settled
from statuspage.public.snapshots.store import MEMORY_ENTRIES, Snapshot, with_refresh_notice

logger = logging.getLogger("beacon.snapshots")

# The security headers are not kept in snapshots: representation() adds them to every answer
# as it is served, so that a snapshot never carries an outdated policy, nor HSTS to a
# plain-HTTP request. Snapshots stored by older versions kept them: those copies are left out.
_NOT_SERVED_FROM_SNAPSHOT = security_headers.NAMES


def serve(
    request: HttpRequest,
    key: str,
    render_on_miss: Callable[[], HttpResponseBase],
    not_found: Callable[[], HttpResponseBase],
) -> HttpResponseBase:
    """Answer from the snapshot of `key`, rebuilding it first when it is missing or stale.

    `not_found()` answers a key that certainly does not exist (no database needed);
    `render_on_miss()` one that has no snapshot and none could be built.
    """
    outage.probe_database_soon()
    memory = store.memory()
    # A made-up address is refused before Redis or the disk are asked for its snapshot: a
    # scan of them costs no more than the set of what exists, kept in this process.
    if memory.get(key) is None and not may_exist(key):
        return not_found()
    snapshot = store.load(key)
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
            store.refresh_failing_since() is not None or memory.render_failed.get(key) == generation
        ):
            return respond(request, with_refresh_notice(snapshot))
        remember_base_url(request)
        rebuilt: Snapshot | None
        try:
            rebuilt = rebuild(key, wait=snapshot is None)
        except RenderFailed as error:
            if len(memory.render_failed) > 4 * MEMORY_ENTRIES:
                memory.render_failed.clear()
            memory.render_failed[key] = generation
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


def representation(
    snapshot: Snapshot, meta: WSGIEnvironment
) -> tuple[int, list[tuple[str, str]], bytes]:
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
    vary = "Accept-Encoding, Accept-Language" if negotiates(snapshot.key) else "Accept-Encoding"
    headers = [
        ("ETag", f'"{snapshot.etag}-{encoding}"' if encoding else f'"{snapshot.etag}"'),
        ("Last-Modified", snapshot.http_last_modified),
        ("Vary", vary),
        *(h for h in snapshot.headers if h[0] not in _NOT_SERVED_FROM_SNAPSHOT),
        *security_headers.security_headers(secure=security_headers.is_secure(meta)),
    ]
    if _not_modified(meta, snapshot):
        return 304, headers, b""
    headers += [("Content-Type", snapshot.content_type), ("Content-Length", str(len(body)))]
    if encoding:
        headers.append(("Content-Encoding", encoding))
    return snapshot.status, headers, b"" if meta.get("REQUEST_METHOD") == "HEAD" else body


def respond(request: HttpRequest, snapshot: Snapshot) -> HttpResponse:
    status, headers, body = representation(snapshot, request.META)
    response = HttpResponse(body, status=status)
    if status == 304:
        del response["Content-Type"]
    for name, value in headers:
        response[name] = value
    return response


def _not_modified(meta: WSGIEnvironment, snapshot: Snapshot) -> bool:
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


# Made-up URLs


def may_exist(key: str) -> bool:
    """False only when `key` is certainly not an output: a 404 that needs no database."""
    language = languages.split_prefix(key)[0]
    if language is not None and language not in store.page_languages()[1]:
        return False
    name = keys.url_match(key.partition("?")[0])[0]
    if name != "incident-detail" and name not in keys.COMPONENT_URL_NAMES and "?" not in key:
        return True
    known = store.known_outputs()
    return known is None or known.may_exist(key)


def _learn_what_exists() -> None:
    """After a made-up URL cost a render: read what exists, so the next ones cost nothing.

    (The worker's rebuild also reads it; this covers installs and moments without one.)
    """
    if store.known_outputs() is not None:
        return
    try:
        store.refresh_known_outputs()
    except Exception as error:
        if not database_unreachable(error):
            raise
        outage.refresh_failed()


# Accept-Language at the unprefixed pages


def negotiates(key: str) -> bool:
    """Whether the output of `key` is an unprefixed page that negotiates its language."""
    path = key.partition("?")[0]
    return (
        languages.split_prefix(path)[0] is None
        and keys.url_match(path)[0] in keys.NEGOTIATED_URL_NAMES
    )


def language_redirect(key: str, meta: WSGIEnvironment) -> str | None:
    """Where to send a visitor of an unprefixed page whose browser prefers another enabled
    language than the default (its prefix), or None to serve the default. No database."""
    header = meta.get("HTTP_ACCEPT_LANGUAGE", "")
    if not header or not negotiates(key):
        return None
    default, enabled = store.page_languages()
    if len(enabled) < 2:
        return None
    language = _negotiated(header, enabled, default)
    return None if language == default else f"/{language}{key}"


@lru_cache(maxsize=1024)
def _negotiated(header: str, enabled: tuple[str, ...], default: str) -> str:
    # Browsers send a handful of distinct headers; each is parsed once per process.
    return languages.negotiate(header, enabled=enabled, default=default)


def fast_language_redirect(path: str, query_string: str, meta: WSGIEnvironment) -> str | None:
    """language_redirect() for the WSGI fast path, which has no key yet."""
    if not meta.get("HTTP_ACCEPT_LANGUAGE"):
        return None
    key = keys.key_for(path, query_string)
    return None if key is None else language_redirect(key, meta)


def redirect_headers(location: str, meta: WSGIEnvironment) -> list[tuple[str, str]]:
    """A language redirect's headers: private to its Accept-Language, kept briefly."""
    return [
        ("Location", location),
        ("Vary", "Accept-Language"),
        ("Cache-Control", "public, max-age=300"),
        ("Content-Length", "0"),
        *security_headers.security_headers(secure=security_headers.is_secure(meta)),
    ]


def redirect_response(location: str, meta: WSGIEnvironment) -> HttpResponse:
    response = HttpResponse(status=302)
    for name, value in redirect_headers(location, meta):
        response[name] = value
    return response


# The WSGI fast path (statuspage/wsgi.py)


def fresh_in_memory(path: str, query_string: str) -> Snapshot | None:
    """The current snapshot for a request if this process holds it, without any I/O but the
    generation check: what the WSGI fast path serves."""
    key = keys.key_for(path, query_string)
    if key is None:
        return None
    snapshot = store.memory().get(key)
    if snapshot is None or snapshot.generation != current_generation():
        return None
    return with_refresh_notice(snapshot)


def warm_memory() -> int:
    """Load the hot outputs' current snapshots into this process; returns how many.

    Called as a web worker starts, so that a worker restarted in the middle of a traffic
    spike answers its first requests from memory instead of all asking Redis at once.
    Reads the cache or the disk copy only: never the database, never a render.
    """
    generation = current_generation(fresh=True)
    memory = store.memory()
    hot = [reverse(name) for name in keys.HOT_URL_NAMES]
    # Each enabled language's own copies of the localized ones too.
    localized = [reverse(name) for name in keys.HOT_URL_NAMES if name in keys.LOCALIZED_URL_NAMES]
    hot += [f"/{language}{key}" for language in store.page_languages()[1] for key in localized]
    warmed = 0
    for key in hot:
        snapshot = store.load_shared(key)
        if snapshot is not None and snapshot.generation == generation:
            memory.put(snapshot)
            warmed += 1
    return warmed
