"""The one way a service writes what the public sees.

Every service that creates, changes or deletes a row the public page shows (components,
groups, incidents, their updates, the page's settings) runs its writes in `public_write()`:
one transaction whose commit makes every public output stale. Bulk writes (`.update()`,
`bulk_create`) send no model signals, so a service never has to remember to publish them.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction

from statuspage import snapshots


@contextmanager
def public_write() -> Iterator[None]:
    """A transaction (or savepoint) whose commit makes every public output stale.

    Also a decorator: `@public_write()` runs the whole function in it.
    """
    with transaction.atomic():
        yield
        public_changed()


def public_changed() -> None:
    """Make every public output stale once the current transaction commits (now outside one).

    Services nest (an incident update moves components): the outermost transaction publishes
    once, however many services ran inside it.
    """
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        live = set(connection.savepoint_ids)
        for savepoints, callback, _robust in connection.run_on_commit:
            if callback is snapshots.publish_change and savepoints <= live:
                return  # an enclosing block already publishes, and cannot commit without it
    transaction.on_commit(snapshots.publish_change)
