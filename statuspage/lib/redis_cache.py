"""The Redis client behind Django's cache: for the snapshots' announcements, and for the few
hot paths that need one round trip where the cache API would take several (Django's
RedisCache `incr` alone asks EXISTS first).

Keys go through the cache's own `make_key`, and integers are stored as Django's RedisCache
stores them (their decimal text), so what these paths write the cache API reads back.
"""

import redis
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


def redis_client() -> redis.Redis | None:
    """A client of the Redis the cache lives in, from the cache's own connection pool (so it
    follows the master behind Sentinel too); None when the cache is not Redis (the embedded
    default's file cache)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    # RedisCache keeps its client (RedisCacheClient, or SentinelCacheClient) as `_cache`; the
    # stubs do not declare it.
    client: redis.Redis = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
    return client


def cache_key(key: str) -> str:
    """The key as the cache stores it (prefix and version)."""
    return caches["default"].make_key(key)
