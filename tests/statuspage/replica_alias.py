"""Pointing the "replica" database alias somewhere else for a while, and back.

Without DATABASE_REPLICA_URL there is no such alias, and it is removed again afterwards; with
it, the alias is the test mirror settings.py made, and that is what it points at afterwards.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections

from statuspage.db_router import REPLICA


def _drop_connection() -> None:
    """Close this thread's replica connection, so the next use opens one from the settings."""
    if hasattr(connections._connections, REPLICA):
        connections[REPLICA].close()
        del connections[REPLICA]


@contextmanager
def replica_alias_as(settings_dict: dict) -> Iterator[None]:
    previous = connections.settings.get(REPLICA)
    _drop_connection()
    connections.settings[REPLICA] = settings.DATABASES[REPLICA] = settings_dict
    try:
        yield
    finally:
        _drop_connection()
        if previous is None:
            connections.settings.pop(REPLICA, None)
            settings.DATABASES.pop(REPLICA, None)
        else:
            connections.settings[REPLICA] = settings.DATABASES[REPLICA] = previous
