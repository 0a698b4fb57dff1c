"""One cache for everything the public sees, invalidated as a whole on any change.

Entries are keyed by a generation token; bumping the token after a commit makes every
public page stale at once, so a read costs one or two cache hits and no database query.
"""

import secrets
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

GENERATION_KEY = "beacon:public:generation"
T = TypeVar("T")


def generation() -> str:
    token = cache.get(GENERATION_KEY)
    if token is None:
        cache.add(GENERATION_KEY, secrets.token_hex(8), None)
        token = cache.get(GENERATION_KEY)
    return token


def invalidate() -> None:
    cache.set(GENERATION_KEY, secrets.token_hex(8), None)


def invalidate_on_commit() -> None:
    transaction.on_commit(invalidate)


def cached(key: str, build: Callable[[], T]) -> T:
    full_key = f"beacon:public:{generation()}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = build()
        cache.set(full_key, value, settings.BEACON_PUBLIC_CACHE_SECONDS)
    return value
