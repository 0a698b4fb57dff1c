"""The one way a service writes what the public sees.

Every service that creates, changes or deletes a row the public page shows (components,
groups, incidents, their updates, the page's settings) runs its writes in `public_write()`:
one transaction whose commit makes every public output stale. Bulk writes (`.update()`,
`bulk_create`) send no model signals, so a service never has to remember to publish them.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction

from statuspage.lib.signals import announce_public_change_on_commit


@contextmanager
def public_write() -> Iterator[None]:
    """A transaction (or savepoint) whose commit makes every public output stale.

    Also a decorator: `@public_write()` runs the whole function in it.
    """
    with transaction.atomic():
        yield
        public_changed()


def public_changed() -> None:
    """Make every public output stale once the current transaction commits (now outside one)."""
    announce_public_change_on_commit()
