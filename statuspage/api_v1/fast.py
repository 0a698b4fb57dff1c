"""Management API reads answered from kept answers, before Django runs (statuspage/wsgi.py).

Django's middleware, ninja and the views cost milliseconds per read even when nothing has
changed; Terraform, CI jobs and dashboards poll the same few lists every minute. A read whose
answer depends only on the database's state is kept, the first time Django answers it 200,
under the API's generation (statuspage/api_v1/generation.py), the path and the query string.
The next such read with a good key, in the same generation and within KEEP_SECONDS, gets the
same status, headers and body from this process's memory or from the shared cache, without
touching the database.

A request goes to Django whenever anything is not plainly fine: no key record in the cache (the
Django path keeps one for a second after checking the key on the primary, so a revoked key
stops within it), an expired key, one whose last use is due to be written, an owner without
the route's permission, no generation, a cache error, a key over its rate limit (Django answers
the 429). Any exception here is logged and Django answers: the fast path never makes a 500.
"""

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse

from statuspage.api_v1 import generation
from statuspage.api_v1.base import RATE_LIMITED_ENVIRON, RATE_WINDOW_SECONDS, raw_key
from statuspage.api_v1.keys import KeyRecord, auth_cache_key, record_from_cache
from statuspage.lib import ratelimit, security_headers
from statuspage.lib.replica import primary_only
from statuspage.public.snapshots import store

logger = logging.getLogger("beacon.api")

# An answer is given again for at most this long, even in the same generation: uptime's
# "today" and the maintenances upcoming or in progress change with the clock, not with a write.
KEEP_SECONDS = 60
# This process's memory holds at most this many answers, and this many bytes of them; one
# answer larger than a quarter of it is only kept in the shared cache.
MEMORY_ENTRIES = 1_000
MEMORY_BYTES = 32 * 1024 * 1024
SHARED_KEY = "beacon:api-v1:answer:{generation}:{digest}"
# Headers a kept answer may hold: anything else (Set-Cookie, Vary, a request's id) could be
# about one request only, and the answer is not kept.
KEPT_HEADERS = frozenset({"content-type", "content-length"})
SECURITY_HEADERS = frozenset(name.lower() for name in security_headers.NAMES)

# The query parameters of the kept reads (paging, search, filters, sorts, uptime's range).
KEPT_PARAMETERS = frozenset(
    {"page", "per_page", "limit", "q", "type", "state", "sort_field", "sort_direction"}
    | {"start", "end"}
)

_PAGE = r"/api/v1/pages/[^/]+"
# The reads that may be kept, each with the permission its view's require_perm names (a test
# holds this to the views: statuspage/api_v1/pages.py, components.py, incidents.py,
# subscribers.py). `[^/]+` after a list also covers its named lists (incidents/unresolved,
# subscribers/count…), which need the same permission. SLA reports are not here: their
# default month is the page zone's, not a minute's.
ROUTES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), perm)
    for pattern, perm in (
        (r"/api/v1/pages", "statuspage.view_pagesettings"),
        (_PAGE, "statuspage.view_pagesettings"),
        (_PAGE + r"/components(?:/[^/]+(?:/uptime)?)?", "components.view_component"),
        (_PAGE + r"/component-groups(?:/[^/]+(?:/uptime)?)?", "components.view_componentgroup"),
        (_PAGE + r"/incidents(?:/[^/]+(?:/postmortem)?)?", "incidents.view_incident"),
        (_PAGE + r"/subscribers(?:/[^/]+)?", "incidents.view_subscriber"),
    )
)

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


@dataclass(frozen=True)
class Answer:
    kept_at: float  # time.time() when Django made it
    status: str  # "200 OK"
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(n) + len(v) for n, v in self.headers)

    def fresh(self, now: float) -> bool:
        return 0 <= now - self.kept_at < KEEP_SECONDS


class _Memory:
    """A bounded least-recently-used store of this process's answers (threads share it)."""

    def __init__(self, entries: int, size: int):
        self.max_entries, self.max_bytes = entries, size
        self._answers: OrderedDict[tuple[str, str, str], Answer] = OrderedDict()
        self._bytes = 0
        self._generation: str | None = None
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str], now: float) -> Answer | None:
        with self._lock:
            if key[0] != self._generation:
                # Answers of another generation will never be asked for again.
                self._clear(key[0])
                return None
            answer = self._answers.get(key)
            if answer is None:
                return None
            if not answer.fresh(now):
                self._drop(key)
                return None
            self._answers.move_to_end(key)
            return answer

    def put(self, key: tuple[str, str, str], answer: Answer) -> None:
        size = answer.size + len(key[1]) + len(key[2])
        if size > self.max_bytes // 4:
            return
        with self._lock:
            if key[0] != self._generation:
                if self._answers:
                    # Made under a generation this process has left (a write committed
                    # while Django answered), or one it has not met yet: the shared cache
                    # has it, and a read of that generation brings it here.
                    return
                self._generation = key[0]
            if key in self._answers:
                self._drop(key)
            self._answers[key] = answer
            self._bytes += size
            while len(self._answers) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._answers)))

    def clear(self) -> None:
        with self._lock:
            self._clear(None)

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _clear(self, generation: str | None) -> None:
        self._answers.clear()
        self._bytes = 0
        self._generation = generation

    def _drop(self, key: tuple[str, str, str]) -> None:
        answer = self._answers.pop(key)
        self._bytes -= answer.size + len(key[1]) + len(key[2])


memory = _Memory(MEMORY_ENTRIES, MEMORY_BYTES)


def route_permission(path: str) -> str | None:
    """The permission a kept read of `path` needs, or None when the path is not one."""
    if "\x00" in path:
        return None
    path = path.removesuffix(".json")
    for pattern, perm in ROUTES:
        if pattern.fullmatch(path):
            return perm
    return None


def application(environ: dict, start_response: Callable, django: WsgiApp) -> Iterable[bytes]:
    """Answer an API v1 request (a GET from an allowed host, no HTTPS redirect due: the
    caller checked) from a kept answer, or through `django`, keeping its answer."""
    try:
        plan = _plan(environ)
    except Exception:
        logger.debug("API fast path failed: Django answers", exc_info=True)
        plan = None
    if plan is None:
        return django(environ, start_response)
    if isinstance(plan, _Hit):
        start_response(plan.answer.status, _with_security_headers(plan.answer, environ))
        return [plan.answer.body]
    return _fill(plan, environ, start_response, django)


@dataclass(frozen=True)
class _Hit:
    answer: Answer


@dataclass(frozen=True)
class _Fill:
    key: tuple[str, str, str]


def _plan(environ: dict) -> _Hit | _Fill | None:
    """A kept answer to give, the key to keep Django's answer under, or None (Django
    answers and nothing is kept)."""
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    if store.memory().on_standby:
        # A standby region sees the primary's writes only through its replica, and no
        # commit there moves this region's generation: Django answers from the replica.
        return None
    path = environ.get("PATH_INFO", "")
    perm = route_permission(path)
    if perm is None:
        return None
    query_string = environ.get("QUERY_STRING", "")
    names = {name for name, _ in parse_qsl(query_string, True)} if query_string else set()
    if not names <= KEPT_PARAMETERS:
        # The key in the address (Django's path, as documented), or parameters the views
        # ignore: each spelling would be kept apart, so a key holder could fill the cache.
        return None
    raw = raw_key(environ.get("HTTP_AUTHORIZATION"))
    if not raw:
        return None
    record_key = auth_cache_key(raw)
    found = cache.get_many([record_key, generation.GENERATION_KEY])
    token = found.get(generation.GENERATION_KEY) or generation.current()
    if token is None:
        return None
    key = (str(token), path.removesuffix(".json"), query_string)
    now = time.time()
    record = record_from_cache(found.get(record_key))
    if record is None or not _usable(record, perm, now):
        return _Fill(key)
    answer = memory.get(key, now) or _shared_answer(key, now)
    if answer is None:
        return _Fill(key)
    retry_after = _over_rate_limit(record)
    if retry_after is not None:
        # Django answers the 429, as counted here: not counted a second time.
        environ[RATE_LIMITED_ENVIRON] = retry_after
        return None
    return _Hit(answer)


def _usable(record: KeyRecord, perm: str, now: float) -> bool:
    return (
        not record.is_expired(now)
        and not record.needs_last_used_write(now)
        and record.has_perms(perm)
    )


def _over_rate_limit(record: KeyRecord) -> int | None:
    """The Retry-After when this request is one too many, else None."""
    limit = settings.BEACON_API_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return None
    # The name and window _KeyChecks counts under: a kept answer counts as any other read.
    verdict = ratelimit.hit_rolling(
        f"api:key:{record.key_pk}", limit=limit, window=RATE_WINDOW_SECONDS
    )
    return None if verdict.allowed else verdict.retry_after


def _shared_key(key: tuple[str, str, str]) -> str:
    generation_token, path, query_string = key
    digest = hashlib.sha256(f"{path}?{query_string}".encode()).hexdigest()
    return SHARED_KEY.format(generation=generation_token, digest=digest)


def _shared_answer(key: tuple[str, str, str], now: float) -> Answer | None:
    value = cache.get(_shared_key(key))
    if not isinstance(value, tuple) or len(value) != 4:
        return None
    answer = Answer(*value)
    if not answer.fresh(now):
        return None
    memory.put(key, answer)
    return answer


def _fill(plan: _Fill, environ: dict, start_response: Callable, django: WsgiApp):
    """Django answers from the primary (a replica's answer, seconds old, must not be given
    again as the generation's); a 200 that holds nothing about this request alone is kept."""
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def noting(status: str, headers: list[tuple[str, str]], exc_info=None):
        seen.append((status, headers))
        return start_response(status, headers, exc_info)

    kept_at = time.time()
    with primary_only():
        result = django(environ, noting)
    try:
        if seen and isinstance(result, HttpResponse):
            _keep(plan.key, kept_at, *seen[-1], result.content)
    except Exception:
        logger.debug("API answer not kept", exc_info=True)
    return result


def _keep(
    key: tuple[str, str, str],
    kept_at: float,
    status: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    if not status.startswith("200 "):
        return
    names = {name.lower() for name, _ in headers}
    if not names <= KEPT_HEADERS | SECURITY_HEADERS:
        return
    answer = Answer(kept_at, status, tuple(headers), body)
    memory.put(key, answer)
    cache.set(
        _shared_key(key),
        (answer.kept_at, answer.status, answer.headers, answer.body),
        KEEP_SECONDS,
    )


def _with_security_headers(answer: Answer, environ: dict) -> list[tuple[str, str]]:
    """The kept headers in their order, the security ones as this request gets them (HSTS
    only over HTTPS), as Django's middleware would have added them."""
    current = dict(security_headers.security_headers(secure=security_headers.is_secure(environ)))
    headers = []
    for name, value in answer.headers:
        if name in current:
            headers.append((name, current.pop(name)))
        elif name.lower() not in SECURITY_HEADERS:
            headers.append((name, value))
    headers.extend(current.items())
    return headers
