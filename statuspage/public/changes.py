"""What makes the public outputs stale, connected by the statuspage app (statuspage/apps.py).

Cache invalidation is infrastructure, not domain flow: every write path to what the public
sees (services, admin, shell) must make the cached pages stale. A save or delete of such a row
says so by itself; domain code announces the writes no save tells (`QuerySet.update()`, bulk
writes) through the leaf's signal (statuspage/lib/signals.py); and every deploy migrates.

A saved row is announced through the same signal, on commit: a transaction that saves many
rows and announces besides publishes once when it commits (a publish writes the generation to
Redis, to disk and to the database, and asks the broker for a rebuild).
"""

from django.db import transaction

from statuspage.lib.signals import announce_public_change_on_commit
from statuspage.models import PageSettings
from statuspage.public.snapshots import keys


def on_public_row_changed(sender: type, **kwargs: object) -> None:
    if sender is PageSettings:
        # Now for this transaction, and again once other processes can see the change.
        PageSettings.forget_cached()
        transaction.on_commit(PageSettings.forget_cached)
    announce_public_change_on_commit()


def on_announced_change(sender: object, **kwargs: object) -> None:
    keys.publish_change()


def on_migrated(sender: object, **kwargs: object) -> None:
    # Pages cached by the previous release must not outlive it.
    keys.publish_change()
