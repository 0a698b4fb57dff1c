"""Reads of the surfaces that allow it go to the PostgreSQL replica (DATABASE_REPLICA_URL).

Installed only when a replica is configured (settings.py). A read goes to the replica when
all of these hold, and to the primary otherwise:

- it runs inside `statuspage.lib.replica.reading_from_replica()` (API v2 and history renders
  on a snapshot miss in the web process, management API v1 reads), and that scope has not
  written yet (a read after a write must see it);
- no Celery task is running (renders after writes must see the write) and the primary
  connection is not inside a transaction;
- the replica answers, lags at most DATABASE_REPLICA_MAX_LAG_SECONDS, and has replayed
  everything up to the last public change (the public generation's start), so that a
  snapshot stamped with that generation never holds older rows than it says.

The replica's state is checked at most once per DATABASE_REPLICA_CHECK_SECONDS per process;
a replica that cannot be reached is left alone for DATABASE_REPLICA_RETRY_SECONDS, and
logged once when it goes away and once when it is back.
"""

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from celery import current_task
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, Error, connections

from statuspage.lib.replica import current_scope
from statuspage.public import public_cache
from statuspage.public.snapshots.keys import current_generation

REPLICA = "replica"
logger = logging.getLogger("beacon.replica")

# Seconds behind the primary: 0 when the replica has replayed all it received (an idle
# primary sends nothing, and the last replayed commit may be old), else the age of the last
# commit it replayed. NULL when it cannot tell (it replayed no commit since it started).
LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())
END
"""


@dataclass(frozen=True)
class ReplicaState:
    """What the last check found out, and until when it holds."""

    reachable: bool
    # Seconds behind the primary; None when unknown (unreachable, or it cannot tell).
    lag: float | None
    # Everything the primary committed before this time (epoch seconds) is on the replica.
    replayed_until: float
    # When to check again (time.monotonic()).
    valid_until: float


# A replica that has replayed all it received may not have received a commit made in the
# last moments yet: it is taken to hold what was committed until this long before the check.
DELIVERY_MARGIN_SECONDS = 0.5

_state: ReplicaState | None = None
_lock = threading.Lock()


def measure() -> ReplicaState:
    """Ask the replica how far behind it is (one query)."""
    started, now = time.time(), time.monotonic()
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(LAG_SQL)
            row = cursor.fetchone()
    except Error as error:
        return _unreachable(error)
    if _state is not None and not _state.reachable:
        logger.warning("the database replica is reachable again")
    lag = None if row is None or row[0] is None else max(0.0, float(row[0]))
    valid_until = now + settings.BEACON_REPLICA_CHECK_SECONDS
    replayed_until = 0.0 if lag is None else started - lag - DELIVERY_MARGIN_SECONDS
    return ReplicaState(
        reachable=True, lag=lag, replayed_until=replayed_until, valid_until=valid_until
    )


def _unreachable(error: Error) -> ReplicaState:
    """The state of a replica that failed: left alone until the retry; logged once."""
    with contextlib.suppress(Error):
        connections[REPLICA].close()
    if _state is None or _state.reachable:
        logger.warning(
            "the database replica cannot be reached (%s); reading from the primary, "
            "trying again every %s s",
            str(error).strip() or type(error).__name__,
            settings.BEACON_REPLICA_RETRY_SECONDS,
        )
    retry = time.monotonic() + settings.BEACON_REPLICA_RETRY_SECONDS
    return ReplicaState(reachable=False, lag=None, replayed_until=0.0, valid_until=retry)


def _connected() -> bool:
    """Whether this thread's replica connection is open, or opens (a no-op when it is):
    a replica that went away since the last check costs no request an error."""
    global _state
    connection = connections[REPLICA]
    try:
        # A kept connection is pinged once per request (CONN_HEALTH_CHECKS) before reuse.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    except Error as error:
        with _lock:
            _state = _unreachable(error)
        return False
    return True


def state() -> ReplicaState:
    """The replica's state as last measured, measured again when that is too old."""
    global _state
    current = _state
    if current is not None and time.monotonic() < current.valid_until:
        return current
    with _lock:
        if _state is None or time.monotonic() >= _state.valid_until:
            _state = measure()
        return _state


def forget_state() -> None:
    """Measure again at the next read (tests, and after the replica was replaced)."""
    global _state
    _state = None


def replica_is_current(fresh_since: float) -> bool:
    """Whether the replica may answer a read that must see every commit before `fresh_since`."""
    found = state()
    return (
        found.reachable
        and found.lag is not None
        and found.lag <= settings.BEACON_REPLICA_MAX_LAG_SECONDS
        and found.replayed_until >= fresh_since
    )


class ReplicaRouter:
    """DATABASE_ROUTERS' one entry when DATABASE_REPLICA_URL is set."""

    def db_for_read(self, model: type, **hints: object) -> str | None:
        scope = current_scope()
        if scope is None or scope.wrote or current_task:
            return None
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return None
        if scope.fresh_since is None:
            # The last public change this process knows of, looked up once per scope: a
            # snapshot rendered here is stamped with that generation or an older one.
            scope.fresh_since = public_cache.changed_at(current_generation(fresh=True))
        if replica_is_current(scope.fresh_since) and _connected():
            return REPLICA
        return None

    def db_for_write(self, model: type, **hints: object) -> str | None:
        scope = current_scope()
        if scope is not None:
            scope.wrote = True
        return None

    def allow_relation(self, obj1: object, obj2: object, **hints: object) -> bool:
        return True  # the replica holds the primary's rows

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        return False if db == REPLICA else None
