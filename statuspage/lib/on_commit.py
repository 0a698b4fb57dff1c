"""Work that one commit needs done once, however many writes in its transaction ask for it."""

from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections, transaction


class _Once:
    """One queued ask; the asks queued for the same commit share `done`, so the first that
    runs does the work and the others return."""

    def __init__(self, func: Callable[[], object], done: list[bool]):
        self.func = func
        self.done = done

    def __call__(self) -> None:
        if self.done[0]:
            return
        self.done[0] = True
        self.func()


def on_commit_once(func: Callable[[], object], using: str = DEFAULT_DB_ALIAS) -> None:
    """Run `func` after the current transaction commits (now, outside one), once for that
    commit however often it is asked.

    Every ask is queued, sharing one flag with the asks still waiting: an ask made inside a
    savepoint that is rolled back leaves the queue with it, and the others still run the work;
    and a caller that runs only the callbacks queued since a point (Django's test helper
    captureOnCommitCallbacks) finds its own.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        func()
        return
    done = [False]
    for queued in reversed(connection.run_on_commit):
        callback = queued[1]
        if isinstance(callback, _Once) and callback.func is func and not callback.done[0]:
            done = callback.done
            break
    transaction.on_commit(_Once(func, done), using=using)
