"""The "public output changed" signal: how domain code says the public page is out of date.

Components and incidents sit below the public surface and never import its renderer. After a
write the public sees that no model save announces (bulk updates, `QuerySet.update()`), they
call `announce_public_change_on_commit()`; the statuspage app connects the receiver that
makes every cached output stale and asks the worker for a rebuild (statuspage/apps.py).
"""

from collections.abc import Iterable

from django.dispatch import Signal

from statuspage.lib.on_commit import on_commit_once

public_output_changed = Signal()


def announce_public_change() -> None:
    """Something the public sees changed: now (the caller's transaction has committed)."""
    public_output_changed.send(sender=None)


def announce_public_change_on_commit() -> None:
    """Something the public sees changes when the current transaction commits: announced
    once for that commit, however many of its writes say so (each announcement makes every
    output stale and asks for a rebuild, which one commit needs only once)."""
    on_commit_once(announce_public_change)


# Rows written without a model signal (`QuerySet.update()`, bulk writes), sent inside the
# writing transaction with the model and the rows' primary keys: what is kept of those rows
# elsewhere (the management API's rendered JSON) goes stale in the same commit.
rows_changed = Signal()


def announce_rows_changed(model: type, pks: Iterable[object]) -> None:
    """These rows of `model` were just changed by a write no `post_save` tells of."""
    rows_changed.send(sender=model, pks=frozenset(pks))
