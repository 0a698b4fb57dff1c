"""The public generation: one token that changes whenever anything the public sees changes.

Snapshots (statuspage.public.snapshots) and cached values are tied to the generation they were
built for; bumping it after a commit makes every public output stale at once. The token is
kept in the cache (Redis in production) and on local disk, so processes still agree on it
while Redis is away and after it restarts empty.
"""

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

from statuspage.lib.files import atomic_write

GENERATION_KEY = "beacon:public:generation"
T = TypeVar("T")
logger = logging.getLogger("beacon.snapshots")


def _new_generation() -> str:
    # The time of the change travels in the token: it is every public output's Last-Modified.
    return f"{time.time_ns()}-{secrets.token_hex(4)}"


def _disk_file() -> Path:
    return Path(settings.BEACON_SNAPSHOT_DIR) / "generation"


def _read_disk() -> str | None:
    try:
        return _disk_file().read_text().strip() or None
    except OSError:
        return None


def _write_disk(token: str) -> None:
    path = _disk_file()
    try:
        atomic_write(path, token.encode())
    except OSError:
        logger.warning("could not write the public generation to disk", exc_info=True)


def disk_generation() -> str | None:
    """This host's disk copy of the generation (a follower compares it with the shared one)."""
    return _read_disk()


def keep_generation_on_disk(token: str) -> None:
    """Write a generation read from the cache to this host's disk (the follower)."""
    _write_disk(token)


def generation() -> str:
    try:
        token = cache.get(GENERATION_KEY)
        if token is None:
            cache.add(GENERATION_KEY, _read_disk() or _new_generation(), None)
            token = cache.get(GENERATION_KEY)
    except Exception:
        logger.debug("cache unavailable; reading the generation from disk", exc_info=True)
        token = None
    if token is None:
        token = _read_disk()
        if token is None:
            token = _new_generation()
            _write_disk(token)
    return token


def changed_at(token: str) -> float:
    """When the generation `token` began, in seconds since the epoch."""
    return int(token.split("-", 1)[0]) / 1e9


def invalidate() -> str:
    """Start a new generation; returns its token."""
    token = _new_generation()
    adopt(token)
    return token


def adopt(token: str) -> None:
    """Make `token` the generation (a new one, or the primary region's on a standby)."""
    try:
        cache.set(GENERATION_KEY, token, None)
    except Exception:
        logger.warning("cache unavailable; the new generation is on disk only")
    _write_disk(token)


def cached(key: str, build: Callable[[], T]) -> T:
    """A value computed once per generation (e.g. the set of known component ids)."""
    full_key = f"beacon:public:{generation()}:{key}"
    try:
        value = cache.get(full_key)
    except Exception:
        return build()  # Redis away: compute it every time rather than fail
    if value is None:
        value = build()
        with contextlib.suppress(Exception):
            cache.set(full_key, value, settings.BEACON_PUBLIC_CACHE_SECONDS)
    return value
