"""Where snapshots are kept: this process's memory, the shared cache and the disk.

Fastest first: this process's memory, the shared cache (Redis in production) and a copy on
local disk, which keeps pages up while Redis is away. A second copy on disk, the files tree,
holds the hot outputs' bodies at their URL paths for nginx to serve directly. Reading and
writing here never touches PostgreSQL.

Kept the same way: the set of outputs that exist (keys.KnownOutputs), and since when the
snapshots could not be refreshed, which every page served from a snapshot then says.

Each snapshot stored, and each new files tree, is announced on a Redis channel ("snapshot
changed": its key and generation, never its bytes), so that the follower of every other web
host (snapshots.follow) copies it from the cache to its own disk.
"""

import gzip
import hashlib
import json
import logging
import pickle
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import brotli
import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import translation
from django.utils.html import conditional_escape, format_html
from django.utils.http import http_date
from django.utils.safestring import mark_safe
from django.utils.translation import gettext

from statuspage.lib import languages
from statuspage.lib.files import TEMP_PREFIX, atomic_write
from statuspage.lib.redis_cache import redis_client
from statuspage.models import PageSettings
from statuspage.public.snapshots import keys
from statuspage.public.snapshots.keys import KnownOutputs, current_generation
from statuspage.public.static_export import key_to_file
from statuspage.templatetags.beacon import format_page_time

logger = logging.getLogger("beacon.snapshots")

MEMORY_ENTRIES = 512
# Pages with the notice, kept per process so an outage does not recompress them per request.
NOTICED_ENTRIES = 64
REFRESH_NOTICE_MARKER = b"<!--beacon:refresh-notice-->"
REFRESH_FAILING_FILE = "refresh-failing-since"


@dataclass(frozen=True)
class Snapshot:
    """The complete response for one public URL: body, compressed variants, strong ETag."""

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


class ProcessMemory:
    """This process's copy: the snapshots it served last and what it last saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, Snapshot] = OrderedDict()
        self.refresh_failing_since: float | None = None
        self.failing_checked_at = float("-inf")
        self.probe_started_at = time.monotonic()  # the first probe comes a period after start
        # The database was a standby (read-only replica) at the last probe.
        self.on_standby = False
        self.base_url_remembered = False
        self.shared_checked_at: dict[str, float] = {}
        self.noticed: OrderedDict[tuple[str, str, float], Snapshot] = OrderedDict()
        # Outputs whose render raised, with the generation: not retried until it changes.
        self.render_failed: dict[str, str] = {}
        self.known: KnownOutputs | None = None
        # The page's default and enabled languages, the generation they were read for, and
        # when (a guess made without them is retried after a while).
        self.languages: tuple[str, tuple[str, ...]] | None = None
        self.languages_generation: str | None = None
        self.languages_checked_at = float("-inf")

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


_memory = ProcessMemory()


def memory() -> ProcessMemory:
    """This process's copy (replaced by reset_memory, so never kept in a variable)."""
    return _memory


def reset_memory() -> None:
    """Forget this process's copies (tests, and after settings change)."""
    global _memory
    _memory = ProcessMemory()
    keys.forget_generation()


def compressed(body: bytes, *, brotli_quality: int) -> tuple[bytes, bytes]:
    """The body's gzip and brotli variants (gzip without a timestamp: the same bytes each time)."""
    gzipped = gzip.compress(body, compresslevel=6, mtime=0)
    # brotli ships no type hints (pyproject.toml's override follows it untyped).
    brotli_compressed: bytes = brotli.compress(body, quality=brotli_quality)  # type: ignore[no-untyped-call]
    return gzipped, brotli_compressed


# On disk


def _snapshot_dir() -> Path:
    return Path(settings.BEACON_SNAPSHOT_DIR)


def _entry_file(key: str) -> Path:
    return _snapshot_dir() / "entries" / f"{hashlib.sha1(key.encode()).hexdigest()}.pickle"


def _known_file() -> Path:
    return _snapshot_dir() / "known.pickle"


def _files_dir() -> Path:
    return _snapshot_dir() / "files"


def failing_file() -> Path:
    return _snapshot_dir() / REFRESH_FAILING_FILE


# A file left being written (TEMP_PREFIX) is pruned once it is this old: only one left
# behind by a crash gets to be.
TEMP_MAX_AGE_SECONDS = 300


# Copies written by earlier releases name these classes where they lived then. A release is
# often deployed while the database is down, when the copy on disk is all there is to serve.
_MOVED_CLASSES = {
    (module, name): (f"statuspage.public.snapshots.{home}", name)
    for module in ("statuspage.snapshots", "statuspage.public.snapshots")
    for name, home in (("Snapshot", "store"), ("KnownOutputs", "keys"))
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        module, name = _MOVED_CLASSES.get((module, name), (module, name))
        return super().find_class(module, name)


def _unpickle(path: Path) -> object | None:
    try:
        with path.open("rb") as file:
            value: object = _Unpickler(file).load()  # our own files
    # AttributeError and ImportError: a class no release of ours defines any more.
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return value


def _cache_get(key: str) -> object | None:
    try:
        value: object | None = cache.get(key)
    except Exception:
        return None
    return value


# Snapshots


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
    shared = load_shared(key)
    if shared is not None and (snapshot is None or shared.built_at > snapshot.built_at):
        _memory.put(shared)
        return shared
    return snapshot


def load_shared(key: str) -> Snapshot | None:
    """The snapshot of `key` in the shared cache, else on disk; None if neither has one."""
    snapshot = _cache_get(keys.ENTRY_KEY.format(key))
    if snapshot is None:
        snapshot = _unpickle(_entry_file(key))
    return snapshot if isinstance(snapshot, Snapshot) else None


def shared_entry(key: str) -> Snapshot | None:
    """The snapshot of `key` in the shared cache only (what a follower copies)."""
    snapshot = _cache_get(keys.ENTRY_KEY.format(key))
    return snapshot if isinstance(snapshot, Snapshot) else None


def disk_entry(key: str) -> Snapshot | None:
    """This host's disk copy of `key`'s snapshot."""
    snapshot = _unpickle(_entry_file(key))
    return snapshot if isinstance(snapshot, Snapshot) else None


def disk_entries() -> list[Snapshot]:
    """Every snapshot this host keeps on disk."""
    folder = _snapshot_dir() / "entries"
    found = (_unpickle(path) for path in folder.glob("*.pickle")) if folder.exists() else ()
    return [snapshot for snapshot in found if isinstance(snapshot, Snapshot)]


def store(snapshot: Snapshot, *, write_file: bool = False) -> None:
    _memory.put(snapshot)
    try:
        cache.set(keys.ENTRY_KEY.format(snapshot.key), snapshot, None)
    except Exception:
        logger.warning("could not store snapshot %s in the cache", snapshot.key)
    else:
        announce("stored", key=snapshot.key, generation=snapshot.generation, files=write_file)
    keep_on_disk(snapshot, write_file=write_file)


def keep_on_disk(snapshot: Snapshot, *, write_file: bool) -> None:
    """This host's disk copy of a snapshot, and with `write_file` its files for nginx."""
    try:
        atomic_write(_entry_file(snapshot.key), pickle.dumps(snapshot))
        if write_file:
            write_files_tree(snapshot)
    except OSError:
        logger.warning("could not write snapshot %s to disk", snapshot.key, exc_info=True)


# What exists


def known_outputs() -> KnownOutputs | None:
    """The current generation's KnownOutputs from memory, the cache or disk; None if none."""
    generation = current_generation()
    known = _memory.known
    if known is not None and known.is_current(generation):
        return known
    shared = _cache_get(keys.KNOWN_KEY)
    if not (isinstance(shared, KnownOutputs) and shared.is_current(generation)):
        shared = _unpickle(_known_file())
    if not (isinstance(shared, KnownOutputs) and shared.is_current(generation)):
        return None
    _memory.known = shared
    return shared


def refresh_known_outputs() -> KnownOutputs:
    """Read what exists from the database and share it (every rebuild of the hot set)."""
    known = keys.read_known_outputs()
    _memory.known = known
    try:
        cache.set(keys.KNOWN_KEY, known, None)
    except Exception:
        logger.debug("could not share the known outputs", exc_info=True)
    keep_known_on_disk(known)
    return known


def page_languages() -> tuple[str, tuple[str, ...]]:
    """The page's default language and its enabled ones, without PostgreSQL.

    From this process's memory for the current generation; else the page settings the cache
    keeps, else the last known outputs in the cache or on disk (whatever their age: the
    languages rarely change), else the database unless it is known to be away; else English.
    """
    generation = current_generation()
    memory = _memory
    now = time.monotonic()
    if memory.languages is not None and (
        memory.languages_generation == generation
        or now - memory.languages_checked_at < settings.BEACON_SNAPSHOT_GENERATION_CHECK
    ):
        return memory.languages
    found: tuple[str, tuple[str, ...]] | None = None
    page = _cache_get(PageSettings.CACHE_KEY)
    if isinstance(page, PageSettings):
        found = (page.default_language, page.languages)
    else:
        known = shared_known_outputs() or disk_known_outputs()
        if known is not None and known.generation == generation:
            found = (known.default_language, known.enabled_languages)
        elif refresh_failing_since() is None:
            try:
                page = PageSettings.load()
                found = (page.default_language, page.languages)
            except Exception:
                logger.debug("could not read the page's languages", exc_info=True)
        if found is None and known is not None:
            found = (known.default_language, known.enabled_languages)
    if found is None:
        default = languages.shipped()[0]
        found, generation = (default, (default,)), ""
    memory.languages, memory.languages_generation = found, generation
    memory.languages_checked_at = now
    return found


def shared_known_outputs() -> KnownOutputs | None:
    """The known outputs in the shared cache, whatever their generation (for followers)."""
    shared = _cache_get(keys.KNOWN_KEY)
    return shared if isinstance(shared, KnownOutputs) else None


def disk_known_outputs() -> KnownOutputs | None:
    known = _unpickle(_known_file())
    return known if isinstance(known, KnownOutputs) else None


def keep_known_on_disk(known: KnownOutputs) -> None:
    try:
        atomic_write(_known_file(), pickle.dumps(known))
    except OSError:
        logger.debug("could not write the known outputs", exc_info=True)


# The files tree nginx serves


def write_files_tree(snapshot: Snapshot) -> None:
    """The copy nginx serves directly: the body and its .gz sibling, at the URL's path.

    Only the hot outputs are written, by the worker's rebuild, which also removes the files
    of outputs that left the hot set; everything else nginx asks Django for.
    """
    relative = key_to_file(snapshot.key) if snapshot.status == 200 else None
    if relative is None:
        return
    snapshot = with_refresh_notice(snapshot)
    target = _files_dir() / relative
    atomic_write(target.with_name(target.name + ".gz"), snapshot.gzip)
    atomic_write(target, snapshot.body)


def files_tree_is_current(snapshot: Snapshot) -> bool:
    """Whether the files tree holds what write_files_tree would write for `snapshot`."""
    relative = key_to_file(snapshot.key) if snapshot.status == 200 else None
    if relative is None:
        return True
    target = _files_dir() / relative
    try:
        current = target.read_bytes() == with_refresh_notice(snapshot).body
    except OSError:
        return False
    return current and target.with_name(target.name + ".gz").exists()


def share_files_tree(hot: list[str], generation: str) -> None:
    """Say which outputs the files tree now holds, and tell the followers to match it."""
    try:
        cache.set(keys.FILES_KEY, (generation, tuple(hot)), None)
    except Exception:
        logger.debug("could not share the files tree's outputs", exc_info=True)
        return
    announce("files", generation=generation)


def shared_files_tree() -> tuple[str, tuple[str, ...]] | None:
    """The generation and the keys of the last files tree written by a worker."""
    shared = _cache_get(keys.FILES_KEY)
    if not (isinstance(shared, tuple) and len(shared) == 2):
        return None
    generation, hot = shared
    if not (isinstance(generation, str) and isinstance(hot, tuple)):
        return None
    return generation, tuple(key for key in hot if isinstance(key, str))


def prune_files_tree(keep: set[str]) -> int:
    """Remove the files of outputs not in `keep`; returns how many were removed."""
    root = _files_dir()
    wanted = {name for name in map(key_to_file, keep) if name is not None}
    wanted |= {name + ".gz" for name in wanted}
    removed = 0
    for path in root.rglob("*") if root.exists() else []:
        if path.is_file() and str(path.relative_to(root)) not in wanted:
            if path.name.startswith(TEMP_PREFIX) and not _left_behind(path):
                continue  # being written by another rebuild: its rename must find it
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _left_behind(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime > TEMP_MAX_AGE_SECONDS
    except OSError:
        return False  # renamed or removed meanwhile


def rewrite_pages_in_files_tree() -> None:
    """Pages nginx serves from disk say what pages served by Django say: with the notice
    while the database is away, without it once it is back."""
    root = _files_dir()
    for page in root.rglob("index.html") if root.exists() else []:
        folder = page.parent.relative_to(root).as_posix()
        snapshot = load_shared("/" if folder == "." else f"/{folder}/")
        if snapshot is not None:
            try:
                write_files_tree(snapshot)
            except OSError:
                logger.debug("could not rewrite %s", page, exc_info=True)


# Since when pages could not be refreshed (set and cleared by the outage module)


def write_failing_file(since: float | None) -> None:
    """Set or clear the disk copy of the state (a follower mirroring the shared one)."""
    try:
        if since is None:
            failing_file().unlink(missing_ok=True)
        else:
            atomic_write(failing_file(), repr(since).encode())
    except OSError:
        logger.debug("could not write %s", failing_file(), exc_info=True)


def shared_failing_since() -> float | None:
    """The shared state itself; raises when the cache cannot be reached."""
    value = cache.get(keys.REFRESH_FAILING_KEY)
    return float(value) if value is not None else None


def read_failing_file() -> float | None:
    try:
        return float(failing_file().read_text().strip())
    except (OSError, ValueError):
        return None


def _read_failing_since() -> float | None:
    try:
        return shared_failing_since()
    except Exception:
        return read_failing_file()  # Redis away: the disk copy


def refresh_failing_since() -> float | None:
    """Since when snapshots cannot be refreshed (epoch seconds), or None.

    Looked up at most every BEACON_SNAPSHOT_GENERATION_CHECK s, as the generation is.
    """
    now = time.monotonic()
    if now - _memory.failing_checked_at >= settings.BEACON_SNAPSHOT_GENERATION_CHECK:
        _memory.refresh_failing_since = _read_failing_since()
        _memory.failing_checked_at = now
    return _memory.refresh_failing_since


def remember_refresh_failing_since(since: float | None) -> None:
    """What this process just set or cleared, without reading it back."""
    _memory.refresh_failing_since, _memory.failing_checked_at = since, time.monotonic()


def with_refresh_notice(snapshot: Snapshot) -> Snapshot:
    """The snapshot, with a notice that it could not be refreshed, for HTML pages."""
    since = refresh_failing_since()  # first: cheap, and None nearly always
    if since is None or not snapshot.is_html or REFRESH_NOTICE_MARKER not in snapshot.body:
        return snapshot
    memo_key = (snapshot.key, snapshot.etag, since)
    noticed = _memory.noticed.get(memo_key)
    if noticed is None:
        # In the page's language: its prefix's, else the default (no database needed).
        language = languages.split_prefix(snapshot.key)[0] or page_languages()[0]
        with translation.override(language):
            # UTC rather than the page's zone: reading page settings could need the database.
            stamp = format_page_time(utc(since), "datetime", zone=UTC)
            words = gettext(
                "We cannot refresh this page right now. It shows the status as of "
                "%(time)s; we are working on it."
            )
            # The words escaped, then the <time> element (our own markup) put in.
            said = mark_safe(conditional_escape(words) % {"time": stamp})  # noqa: S308
            notice = format_html('<p class="refresh-notice" role="status">{}</p>', said).encode()
        body = snapshot.body.replace(REFRESH_NOTICE_MARKER, notice, 1)
        gzipped, brotli_compressed = compressed(body, brotli_quality=5)
        noticed = replace(
            snapshot,
            body=body,
            gzip=gzipped,
            brotli=brotli_compressed,
            etag=hashlib.sha256(body).hexdigest()[:32],
        )
        _memory.noticed[memo_key] = noticed
        while len(_memory.noticed) > NOTICED_ENTRIES:
            _memory.noticed.popitem(last=False)
    return noticed


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# "Snapshot changed": announced to the followers on other hosts (snapshots.follow)

# The message's number and the message go out together, so a follower that sees a gap in
# the numbers knows it missed one.
_ANNOUNCE_SCRIPT = """
local number = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], number .. ' ' .. ARGV[1])
return number
"""


def shared_name(name: str) -> str:
    """A Redis name outside the cache, under the cache's key prefix (one per installation)."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or ""
    return f"{prefix}:{name}" if prefix else name


def announce(op: str, **details: str | bool) -> None:
    """Tell the followers on other hosts that a snapshot, or the files tree, changed."""
    client = redis_client()
    if client is None:
        return
    message = json.dumps({"op": op, **details}, separators=(",", ":"))
    names = [shared_name(keys.CHANGED_SEQUENCE), shared_name(keys.CHANGED_CHANNEL)]
    try:
        client.eval(_ANNOUNCE_SCRIPT, 2, *names, message)
    except (redis.RedisError, OSError):
        # The followers catch up from the cache when they see the gap or reconnect.
        logger.debug("could not announce %s", message, exc_info=True)
