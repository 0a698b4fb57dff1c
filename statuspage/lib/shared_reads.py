"""Reads one output's languages share while the worker rebuilds the hot set.

The worker renders every hot output once per enabled language, and each render used to read
the same rows again: with six languages, the pages of a busy incident cost most of a rebuild
in queries and prefetches, and the rebuild competed for the CPU with the writes that caused
it. Inside `sharing()` (the worker's rebuild of the public snapshots), a selector
marked `@shared` is read once and handed to the other languages' renders; keys.public_keys
puts an output's languages next to each other, so a few kept reads are enough.

A snapshot must never hold data older than the generation it is stamped with. Each render
names its generation before it reads (`render_generation`, the one its snapshot will carry),
and a read is only handed to renders of the generation it was made in: a change meanwhile
starts the reads afresh. Outside `sharing()` (a visitor's request, a reader rebuilding on its
own) every call reads.
"""

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")

# Outputs are rendered language after language, so the reads of the one being rendered, and
# of the few outputs that share a selector (the two feeds), are all that is ever reused.
KEPT_READS = 8


class _Reads:
    def __init__(self) -> None:
        self.generation: str | None = None
        self.kept: OrderedDict[tuple[object, ...], Any] = OrderedDict()

    def begin(self, generation: str) -> None:
        if generation != self.generation:
            self.generation = generation
            self.kept.clear()


_active: ContextVar[_Reads | None] = ContextVar("beacon_shared_reads", default=None)


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    token = _active.set(_Reads())
    try:
        yield
    finally:
        _active.reset(token)


def render_generation(generation: str) -> None:
    """A render stamped with `generation` begins: reads of another generation are dropped."""
    reads = _active.get()
    if reads is not None:
        reads.begin(generation)


def shared(read: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(read)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        reads = _active.get()
        if reads is None or reads.generation is None:
            return read(*args, **kwargs)
        key = (read, args, tuple(sorted(kwargs.items())))
        if key in reads.kept:
            reads.kept.move_to_end(key)
            return cast(T, reads.kept[key])
        value = read(*args, **kwargs)
        reads.kept[key] = value
        if len(reads.kept) > KEPT_READS:
            reads.kept.popitem(last=False)
        return value

    return wrapper
