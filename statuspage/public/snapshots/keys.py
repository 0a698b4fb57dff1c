"""Which outputs are snapshotted, under which key, and of which generation.

A key is the request path of a public output (plus `?page=N` for history pages). The
generation (statuspage.public.public_cache) says whether a snapshot is current; a change the
public can see starts a new one and asks the worker to rebuild (`publish_change`). The names
under which the snapshots and their bookkeeping are shared in the cache are here too.
"""

import logging
import math
import time
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone

from components.models import Component
from incidents.models import Incident
from statuspage.lib import languages
from statuspage.models import PageSettings, PublicChange
from statuspage.public import public_cache
from statuspage.public.selectors import history_page_count

logger = logging.getLogger("beacon.snapshots")

# Names in the shared cache (Redis in production).
ENTRY_KEY = "beacon:snap:entry:{}"
LOCK_KEY = "beacon:snap:lock:{}"
BASE_URL_KEY = "beacon:snap:base-url"
REFRESH_FAILING_KEY = "beacon:snap:refresh-failing-since"
KNOWN_KEY = "beacon:snap:known"
REBUILD_QUEUED_KEY = "beacon:snap:rebuild-queued"
# When the worker may rebuild next while changes keep coming (an epoch time; `pace_rebuilds`);
# kept a while past it, so that a stream still coming then is known as one under way.
REBUILD_NOT_BEFORE_KEY = "beacon:snap:rebuild-not-before"
PACING_KEPT_SECONDS = 30
# How often a deferred rebuild looks whether the changes have stopped (a task of a few ms).
REBUILD_RECHECK_SECONDS = 1.0
REBUILD_TASK = "statuspage.tasks.rebuild_snapshots"
# Which outputs the files tree holds (the hot set of the last rebuild), for the followers.
FILES_KEY = "beacon:snap:files"
# Redis names outside the cache (under its key prefix): the "snapshot changed" channel that
# followers on other hosts listen to, and the number of the last message sent on it.
CHANGED_CHANNEL = "beacon:snap:changed"
CHANGED_SEQUENCE = "beacon:snap:changed-sequence"
LOCK_SECONDS = 30
# Every public write bumps the generation, which retires the known outputs at once; the age
# limit only bounds how long a write that bypassed the signals (a manual SQL fix) goes unseen.
KNOWN_MAX_AGE_SECONDS = 60
# No public output's path is longer (ids are 12 characters): longer ones are left to Django.
MAX_KEY_PATH = 200

# Public URL names, and the query parameters that select a different output.
PUBLIC_URLS: dict[str, tuple[str, ...]] = {
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
    "uptime": (),
    "component-uptime": (),
    "api-v2-summary": (),
    "api-v2-status": (),
    "api-v2-components": (),
    "api-v2-incidents": (),
    "api-v2-incidents-unresolved": (),
    "api-v2-scheduled-maintenances": (),
    "api-v2-scheduled-maintenances-upcoming": (),
    "api-v2-scheduled-maintenances-active": (),
}
# The outputs visitors hit during an outage, rebuilt right after a change (render on write).
# In the order a rebuild renders them: the page (in every language), then the API widgets and
# clients poll, then the rest.
HOT_URL_NAMES = [
    "status-page",
    "api-v2-summary",
    "api-v2-status",
    "api-v2-components",
    "api-v2-incidents",
    "api-v2-incidents-unresolved",
    "api-v2-scheduled-maintenances",
    "api-v2-scheduled-maintenances-upcoming",
    "api-v2-scheduled-maintenances-active",
    "history",
    "history-atom",
    "history-rss",
    "maintenance-ics",
    "badge-svg",
    "badge-json",
    "embed-js",
    "robots-txt",
    "uptime",
]
# The outputs served in each enabled language under its prefix (`/de/history/`); the others
# (API v2, robots.txt) are language-neutral and only unprefixed.
LOCALIZED_URL_NAMES = frozenset(
    {
        "status-page",
        "incident-detail",
        "history",
        "history-atom",
        "history-rss",
        "component-history-atom",
        "component-history-rss",
        "maintenance-ics",
        "badge-svg",
        "badge-json",
        "component-badge-svg",
        "component-badge-json",
        "embed-js",
        "uptime",
        "component-uptime",
    }
)
# Pages that are not snapshots but are served under a prefix too, so that a visitor who
# reads the page in a language subscribes and reports in it.
PREFIXED_FORM_URL_NAMES = frozenset(
    {
        "reports",
        "reports-chart",
        "subscribe",
        "subscription-confirm",
        "subscription-manage",
        "subscription-unsubscribe",
    }
)
# Unprefixed HTML pages that send a visitor whose browser prefers another enabled language
# to its prefix.
NEGOTIATED_URL_NAMES = frozenset({"status-page", "incident-detail", "history"})
# Outputs of the uptime history, which the page settings may turn off (then they are 404s).
UPTIME_URL_NAMES = frozenset({"uptime", "component-uptime"})
COMPONENT_URL_NAMES = [
    "component-uptime",
    "component-badge-svg",
    "component-badge-json",
    "component-history-atom",
    "component-history-rss",
]


def key_for(path: str, query_string: str = "") -> str | None:
    """The snapshot key of a request path, or None when the path is not a public output.

    Only history pages read the query (`page`); anything else in it selects nothing.
    """
    if len(path) > MAX_KEY_PATH:
        return None  # not ours; it must not become a cache key or fill the URL memo
    name = url_match(path)[0]
    if name is None or name not in PUBLIC_URLS:
        return None
    if name == "history" and query_string:
        page = parse_qs(query_string).get("page", ["1"])[-1]
        if page.isdigit() and len(page) <= 6 and int(page) > 1:
            return f"{path}?page={int(page)}"
    return path


_url_matches: OrderedDict[str, tuple[str | None, dict[str, object]]] = OrderedDict()


def url_match(path: str) -> tuple[str | None, dict[str, object]]:
    """The URL name and arguments of a path (None when nothing matches), remembered.

    Under a language prefix only the localized outputs and forms match.
    """
    if path in _url_matches:
        return _url_matches[path]
    language, bare = languages.split_prefix(path)
    try:
        match = resolve(bare)
        found: tuple[str | None, dict[str, object]] = (match.url_name, match.kwargs)
    except Resolver404:
        found = (None, {})
    if language is not None and found[0] not in LOCALIZED_URL_NAMES | PREFIXED_FORM_URL_NAMES:
        found = (None, {})
    _url_matches[path] = found
    if len(_url_matches) > 4096:
        _url_matches.popitem(last=False)
    return found


def public_keys(*, everything: bool = False) -> list[str]:
    """Snapshot keys: the hot set, or with `everything` every public output there is.

    The hot set is what the status page links to while something is happening: the page, the
    API, feeds, badges, and the pages of incidents that are open, upcoming or recent.
    """
    languages = PageSettings.load().languages
    keys = []
    # Each output next to its languages: a rebuild renders the page in every language before
    # the incidents' pages, and the languages of one output share its reads (shared_reads).
    for key in _unprefixed_keys(everything=everything):
        keys.append(key)
        if url_match(key.partition("?")[0])[0] in LOCALIZED_URL_NAMES:
            keys += [f"/{language}{key}" for language in languages]
    return keys


def _unprefixed_keys(*, everything: bool) -> list[str]:
    uptime_shown = PageSettings.load().show_uptime_history
    keys = [reverse(name) for name in HOT_URL_NAMES if uptime_shown or name not in UPTIME_URL_NAMES]
    incidents = Incident.objects.public()
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
        components = Component.objects.public().values_list("public_id", "showcase")
        for public_id, showcase in components:
            keys += [
                reverse(name, args=[public_id])
                for name in COMPONENT_URL_NAMES
                if name != "component-uptime" or (showcase and uptime_shown)
            ]
    return keys


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
    # The page's languages (copies pickled before they were kept default to English only).
    default_language: str = "en"
    enabled_languages: tuple[str, ...] = ("en",)

    def is_current(self, generation: str) -> bool:
        return self.generation == generation and time.time() - self.built_at < KNOWN_MAX_AGE_SECONDS

    def may_exist(self, key: str) -> bool:
        path, _, query = key.partition("?")
        language = languages.split_prefix(path)[0]
        if language is not None and language not in self.enabled_languages:
            return False
        name, kwargs = url_match(path)
        if name == "incident-detail":
            return kwargs.get("code") in self.incident_codes
        if name in COMPONENT_URL_NAMES:
            return kwargs.get("public_id") in self.component_ids
        if name == "history" and query:
            return int(query.removeprefix("page=")) <= self.history_pages
        return True


def read_known_outputs() -> KnownOutputs:
    """What exists now, from the database."""
    # The generation first: a change committed meanwhile is then in the sets, or bumps it.
    generation = current_generation(fresh=True)
    page = PageSettings.load()
    return KnownOutputs(
        default_language=page.default_language,
        enabled_languages=page.languages,
        generation=generation,
        incident_codes=frozenset(Incident.objects.public().values_list("public_id", flat=True)),
        component_ids=frozenset(Component.objects.public().values_list("public_id", flat=True)),
        history_pages=history_page_count(),
        built_at=time.time(),
    )


# Generations


class _SeenGeneration:
    """The generation this process looked up last, and when."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.checked_at = 0.0


_seen = _SeenGeneration()


def forget_generation() -> None:
    """Look the generation up afresh next time (a new process; see store.reset_memory)."""
    global _seen
    _seen = _SeenGeneration()


def current_generation(*, fresh: bool = False) -> str:
    """The public generation, looked up at most every BEACON_SNAPSHOT_GENERATION_CHECK s."""
    now = time.monotonic()
    interval = settings.BEACON_SNAPSHOT_GENERATION_CHECK
    seen = _seen
    if not fresh and seen.token is not None and now - seen.checked_at < interval:
        return seen.token
    token = public_cache.generation()
    seen.token, seen.checked_at = token, now
    return token


def generation_is_settled(generation: str) -> bool:
    """Whether the generation has been still long enough to rebuild (coalescing bursts)."""
    settle_seconds: float = settings.BEACON_SNAPSHOT_SETTLE_SECONDS
    return time.time() - public_cache.changed_at(generation) >= settle_seconds


def publish_change() -> None:
    """Something public changed: make every output stale and have the worker rebuild."""
    token = public_cache.invalidate()
    note_change_in_database(token)
    schedule_rebuild()


def note_change_in_database(token: str) -> None:
    """Keep the new generation in the database too, where a standby region's hosts, which
    see nothing of this region but their replica of its database, read it
    (statuspage/public/snapshots/standby.py). Best effort: the database may be the thing
    that is away, or a standby that cannot be written."""
    noted = {"generation": token, "changed_at": timezone.now()}
    try:
        # A savepoint inside a transaction: a failure must not spoil the caller's.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            if not PublicChange.objects.filter(pk=1).update(**noted):
                PublicChange.objects.update_or_create(pk=1, defaults=noted)  # the row was lost
    except DatabaseError:
        logger.debug("could not note the public change in the database", exc_info=True)


def schedule_rebuild() -> None:
    """Ask the worker for one rebuild; changes while one is queued join it.

    The task is named, not imported: statuspage/tasks.py sits above and imports this package.
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


# Pacing: under a stream of changes the worker would rebuild back to back, taking the CPU the
# writes need; readers refresh what they read by themselves, so the worker may fall behind.


def pace_rebuilds(*, render_seconds: float) -> None:
    """After a rebuild that began while changes kept coming, have the next one wait.

    The wait keeps the worker's share of its time spent rebuilding at BEACON_SNAPSHOT_REBUILD_DUTY
    while the stream lasts. A rebuild after a calm sets no wait, so the first change after one
    is rebuilt at once.
    """
    _pace_for(rebuild_gap(render_seconds))


def _pace_for(gap: float) -> None:
    if gap <= 0:
        return
    try:
        cache.set(REBUILD_NOT_BEFORE_KEY, time.time() + gap, math.ceil(gap) + PACING_KEPT_SECONDS)
    except Exception:
        logger.debug("could not pace the snapshot rebuilds", exc_info=True)


def begin_pacing() -> bool:
    """Changes kept coming all through the wait to settle, and no pacing is under way: this
    is a stream's first rebuild, and it waits the longest gap, queued again. Returns whether
    it was; False (rebuild now) when pacing is under way already (its wait is over, or the
    task would not have run) or without the cache.

    So a burst of writes, from a script or a storm of alerts, is not met with a full rebuild
    at its start and another at its end: the end's rebuild follows within a second of the
    last change (defer_rebuild), and a stream that lasts is rebuilt once per gap.
    """
    if settings.BEACON_SNAPSHOT_REBUILD_DUTY >= 1:  # pacing off
        return False
    try:
        if cache.get(REBUILD_NOT_BEFORE_KEY) is not None:
            return False
    except Exception:
        return False
    longest: float = settings.BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS
    _pace_for(longest)
    if defer_rebuild():
        return True
    end_pacing()  # settled meanwhile: this rebuild runs, and the next calm one at once
    return False


# When the worker last finished rebuilding every hot output (an epoch time).
REBUILD_COMPLETED_KEY = "beacon:snap:rebuild-completed"


def note_rebuild_completed() -> None:
    longest: float = settings.BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS
    try:
        cache.set(REBUILD_COMPLETED_KEY, time.time(), max(1, math.ceil(longest)))
    except Exception:
        logger.debug("could not note the finished rebuild", exc_info=True)


def hand_over_to_stream() -> bool:
    """Whether the calm rebuild running may stop for a stream that began, having queued the
    stream's own rebuild: only while the worker finished one in the last
    SNAPSHOT_REBUILD_MAX_GAP_SECONDS (so pairs of quick writes now and then cannot keep it
    from ever finishing one), with the cache, and once the stream's rebuild is queued."""
    try:
        if cache.get(REBUILD_COMPLETED_KEY) is None:
            return False
        schedule_rebuild()
        return bool(cache.get(REBUILD_QUEUED_KEY))
    except Exception:
        return False


def end_pacing() -> None:
    """The changes have stopped: the next stream's first rebuild waits again."""
    try:
        cache.delete(REBUILD_NOT_BEFORE_KEY)
    except Exception:
        logger.debug("could not end the pacing of the snapshot rebuilds", exc_info=True)


def rebuild_gap(render_seconds: float) -> float:
    """How long the worker waits after a rebuild of `render_seconds` while changes keep coming."""
    duty: float = settings.BEACON_SNAPSHOT_REBUILD_DUTY
    longest: float = settings.BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS
    if duty >= 1:
        return 0.0
    if duty <= 0:
        return longest
    return max(0.0, min(longest, render_seconds * (1 / duty - 1)))


def seconds_until_rebuild() -> float:
    """How long the worker should still wait before its next rebuild (0: rebuild now)."""
    try:
        not_before = cache.get(REBUILD_NOT_BEFORE_KEY)
    except Exception:
        return 0.0  # pacing is an economy: without the cache, rebuild as before
    if not isinstance(not_before, float | int):
        return 0.0
    # Bounded: a clock that jumped back on the host that set it must not stall the rebuilds.
    longest: float = settings.BEACON_SNAPSHOT_REBUILD_MAX_GAP_SECONDS
    return max(0.0, min(longest, not_before - time.time()))


# Set while a rebuild queued again by the pacing waits to run: one such chain at a time.
REBUILD_DEFERRED_KEY = "beacon:snap:rebuild-deferred"


def deferred_rebuild_runs() -> None:
    """The rebuild the pacing queued again runs now: the next deferral may be queued."""
    try:
        cache.delete(REBUILD_DEFERRED_KEY)
    except Exception:
        logger.debug("could not clear the deferred rebuild", exc_info=True)


def defer_rebuild() -> bool:
    """Queue the rebuild again for when the pacing allows it; False when it should run now.

    The worker must not sleep (it also sends notifications and runs checks). The queued mark
    stays held over the wait, so that changes meanwhile join this rebuild instead of queuing
    another. The rebuild looks again every REBUILD_RECHECK_SECONDS, and runs as soon as the
    changes have stopped: the wait bounds the worker's share during a stream, not how late
    the state it ends in is rebuilt. A task that finds another deferral waiting leaves the
    rebuild to it (True too): one chain of them, not one per task that came meanwhile.
    """
    wait = seconds_until_rebuild()
    if wait <= 0 or generation_is_settled(current_generation(fresh=True)):
        return False
    countdown = min(wait, REBUILD_RECHECK_SECONDS)
    try:
        cache.set(REBUILD_QUEUED_KEY, 1, LOCK_SECONDS + math.ceil(countdown))
        if not cache.add(REBUILD_DEFERRED_KEY, 1, LOCK_SECONDS + math.ceil(countdown)):
            return True  # another deferral is waiting: it rebuilds
        # Marked as deferred: however late the queue runs it, it does not begin pacing anew.
        current_app.signature(REBUILD_TASK).apply_async(
            kwargs={"deferred": True}, countdown=countdown
        )
    except Exception:
        logger.warning("could not defer the snapshot rebuild; rebuilding now", exc_info=True)
        deferred_rebuild_runs()  # none is waiting: the next task may defer again
        return False
    logger.debug("snapshot rebuild deferred by %.3f s (%.3f s to go)", countdown, wait)
    return True
