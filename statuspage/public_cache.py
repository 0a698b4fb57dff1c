"""One cache for everything the public sees, invalidated as a whole on any change.

Entries are keyed by a generation token; bumping the token after a commit makes every
public page stale at once, so a read costs one or two cache hits and no database query.
"""

import secrets
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

GENERATION_KEY = "beacon:public:generation"
T = TypeVar("T")


def _new_generation() -> str:
    # The time of the change travels in the token: it is every public output's Last-Modified.
    return f"{time.time_ns()}-{secrets.token_hex(4)}"


def generation() -> str:
    token = cache.get(GENERATION_KEY)
    if token is None:
        cache.add(GENERATION_KEY, _new_generation(), None)
        token = cache.get(GENERATION_KEY)
    return token


def changed_at(token: str) -> float:
    """When the generation `token` began, in seconds since the epoch."""
    return int(token.split("-", 1)[0]) / 1e9


def invalidate() -> None:
    cache.set(GENERATION_KEY, _new_generation(), None)


def invalidate_on_commit() -> None:
    transaction.on_commit(invalidate)


def cached(key: str, build: Callable[[], T]) -> T:
    return cached_with_generation(key, lambda token: build())


def cached_with_generation(key: str, build: Callable[[str], T]) -> T:
    """Like `cached`, with the generation token handed to `build`."""
    token = generation()
    full_key = f"beacon:public:{token}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = build(token)
        cache.set(full_key, value, settings.BEACON_PUBLIC_CACHE_SECONDS)
    return value
