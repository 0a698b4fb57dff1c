"""What makes the management API's kept answers stale, connected by the statuspage app.

Like statuspage/public/changes.py for the public outputs: a save or delete of a row the API
reads says so by itself (model signals); writes no save tells (`QuerySet.update()`, bulk
writes) are announced by the domain through the leaf's signals (statuspage/lib/signals.py).
"""

from statuspage.api_v1 import generation


def on_api_row_changed(sender: type, **kwargs: object) -> None:
    generation.bump_on_commit(using=str(kwargs.get("using") or "default"))


def on_announced_change(sender: object, **kwargs: object) -> None:
    generation.bump()
