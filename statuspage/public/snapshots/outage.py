"""Noticing that the database is away, and that it is back.

One shared state for every process (the cache, with a file on disk for when Redis is away;
kept by the store): whoever notices that the database is unreachable (a failed rebuild in a
web process or the worker, a request that needed the database, the background probe) marks
it, and every page served from a snapshot, by any process and by nginx from the files tree,
then says since when. Only the process that changes the state logs it: one line when the
outage starts, one when it ends.
"""

import logging
import os
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection

from statuspage.public.snapshots import keys, standby, store

logger = logging.getLogger("beacon.snapshots")


def _create_failing_file(since: float) -> bool:
    """Write the disk copy of the state; True if this call created it."""
    path = store.failing_file()
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


def note_database_unreachable() -> None:
    """Something needed the database and could not reach it: pages say so from now on."""
    refresh_failed()


def refresh_failed(
    *, since: float | None = None, reason: str = "the database is unreachable"
) -> None:
    """Pages say from now on that they show the state as of `since` (default: now)."""
    since = time.time() if since is None else since
    entered: bool | None
    try:
        entered = bool(cache.add(keys.REFRESH_FAILING_KEY, since, None))
        if not entered:
            since = float(cache.get(keys.REFRESH_FAILING_KEY) or since)
    except Exception:
        entered = None
    created_file = _create_failing_file(since)
    if entered is None:
        entered = created_file
        since = store.read_failing_file() or since
    store.remember_refresh_failing_since(since)
    if entered:
        logger.warning(
            "cannot refresh public snapshots since %s: %s",
            store.utc(since).isoformat(timespec="seconds"),
            reason,
        )
    if entered or created_file:
        store.rewrite_pages_in_files_tree()
        store.announce("notice")


def refresh_succeeded(*, reason: str = "the database is back") -> None:
    if store.refresh_failing_since() is None and not store.failing_file().exists():
        return
    left: bool | None
    try:
        left = bool(cache.delete(keys.REFRESH_FAILING_KEY))
    except Exception:
        left = None
    try:
        store.failing_file().unlink()
        removed_file = True
    except OSError:
        removed_file = False
    store.remember_refresh_failing_since(None)
    if left or (left is None and removed_file):
        logger.warning("public snapshots refresh again: %s", reason)
    if left or removed_file:
        store.rewrite_pages_in_files_tree()
        store.announce("notice")
        # Back from an outage: make every output current again right away.
        keys.publish_change()


def probe_database_soon() -> None:
    """Check the database in the background every few seconds, never on the request path."""
    now = time.monotonic()
    memory = store.memory()
    period = settings.BEACON_SNAPSHOT_PROBE_SECONDS
    if memory.on_standby:
        # A standby follows its primary's changes through this probe: check more often.
        period = min(period, settings.BEACON_STANDBY_PROBE_SECONDS)
    if now - memory.probe_started_at < period:
        return
    memory.probe_started_at = now
    threading.Thread(target=probe_database_now, name="beacon-db-probe", daemon=True).start()


def probe_database_now() -> None:
    """One query: marks the outage, or clears it (and refreshes everything) if it is over;
    on a standby, follows the primary or says since when it lost it (standby.py)."""
    try:
        close_old_connections()
        role = standby.database_role()
        if role.standby:
            standby.follow_primary(role)
    except Exception:
        refresh_failed()
    else:
        memory = store.memory()
        was_standby, memory.on_standby = memory.on_standby, role.standby
        if role.lost_primary:
            since = standby.shown_as_of(role)
            refresh_failed(since=since, reason="the database is a standby that lost its primary")
        elif was_standby and not role.standby:
            logger.warning("the database was promoted: this region takes changes again")
            refresh_succeeded(reason="the database was promoted")
        else:
            refresh_succeeded()
    finally:
        connection.close()
