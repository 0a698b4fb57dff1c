"""The "public output changed" signal: how domain code says the public page is out of date.

Components and incidents sit below the public surface and never import its renderer. After a
write the public sees that no model save announces (bulk updates, `QuerySet.update()`), they
call `announce_public_change_on_commit()`; the statuspage app connects the receiver that
makes every cached output stale and asks the worker for a rebuild (statuspage/apps.py).
"""

from django.db import transaction
from django.dispatch import Signal

public_output_changed = Signal()


def announce_public_change() -> None:
    """Something the public sees changed: now (the caller's transaction has committed)."""
    public_output_changed.send(sender=None)


def announce_public_change_on_commit() -> None:
    """Something the public sees changes when the current transaction commits."""
    transaction.on_commit(announce_public_change)
