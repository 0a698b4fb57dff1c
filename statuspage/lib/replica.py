"""Which reads may go to the PostgreSQL replica: those of the surfaces that say so.

A view (or the code around it) that only reads, and may read a copy a few seconds old, runs
inside `reading_from_replica()`. Nothing else ever reads from the replica: not the admin, not
a write, not a Celery task. Whether a read in such a scope really goes to the replica is the
database router's decision (statuspage/db_router.py): only while the replica is reachable,
not lagging past DATABASE_REPLICA_MAX_LAG_SECONDS and has replayed the last public change;
and never once the scope has written, nor inside a transaction.

Without DATABASE_REPLICA_URL there is no router, and the scope changes nothing.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class ReplicaScope:
    """A surface's permission to read from the replica, for one call of it."""

    # Set by the router on the scope's first write: what it reads next must see that write.
    wrote: bool = False
    # Set by the router on the first read: the replica must hold every commit before this
    # time (epoch seconds) to answer the scope's reads.
    fresh_since: float | None = None


_scope: ContextVar[ReplicaScope | None] = ContextVar("beacon_replica_scope", default=None)
_primary_only: ContextVar[bool] = ContextVar("beacon_primary_only", default=False)


@contextmanager
def reading_from_replica() -> Iterator[ReplicaScope]:
    """Reads inside may go to the replica (a context manager, or a view's decorator), unless
    the caller said `primary_only()`."""
    scope = ReplicaScope()
    token = _scope.set(None if _primary_only.get() else scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


@contextmanager
def reading_from_primary() -> Iterator[None]:
    """Reads inside go to the primary, whatever scope encloses them."""
    token = _scope.set(None)
    try:
        yield
    finally:
        _scope.reset(token)


@contextmanager
def primary_only() -> Iterator[None]:
    """Everything inside reads the primary, even code that asks for the replica: for an
    answer that will be kept and given again as the database's state of a moment (API v1's
    kept answers), which a replica seconds behind must not supply."""
    token = _primary_only.set(True)
    try:
        yield
    finally:
        _primary_only.reset(token)


def current_scope() -> ReplicaScope | None:
    """The replica scope the current code runs in, if any."""
    return _scope.get()
