"""The management API's generation: one token that changes after every commit that changes
what any of its reads could answer (statuspage/api_v1/changes.py says when).

Answers kept for reuse (statuspage/api_v1/fast.py) and the component catalogue
(statuspage/api_v1/fragments.py) are tied to the generation they were made in. The token is
random, never a counter: after Redis restarts empty, a process still holding answers of an old
token must not meet it again.
"""

import logging
import secrets
import time

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS

from statuspage.lib.on_commit import on_commit_once

GENERATION_KEY = "beacon:api-v1:generation"
logger = logging.getLogger("beacon.api")


def _new_token() -> str:
    return f"{time.time_ns()}-{secrets.token_hex(6)}"


def current() -> str | None:
    """The token now, or None when the cache cannot say (then nothing may be reused)."""
    try:
        token = cache.get(GENERATION_KEY)
        if token is None:
            cache.add(GENERATION_KEY, _new_token(), None)
            token = cache.get(GENERATION_KEY)
    except Exception:
        logger.debug("cache unavailable: no API generation", exc_info=True)
        return None
    return token


def bump() -> None:
    """Everything kept for an earlier token is stale from now on."""
    try:
        cache.set(GENERATION_KEY, _new_token(), None)
    except Exception:
        # Nothing can be reused either while the cache is away: current() answers None.
        logger.warning("could not move the API generation on", exc_info=True)


def bump_on_commit(using: str = DEFAULT_DB_ALIAS) -> None:
    """After the current transaction commits (now, outside one); once per transaction."""
    on_commit_once(bump, using=using)
