"""Redis behind Sentinel: the cache (and so the rate limits, which count in it) and the Celery
broker ask the sentinels which server is the master, and ask again when it changes.

Settings (statuspage/settings.py) build both from REDIS_SENTINELS, a comma-separated list of
host:port, and REDIS_SENTINEL_MASTER, the name the sentinels monitor the master under:

- the cache backend is `SentinelRedisCache`: Django's RedisCache whose client takes its
  connections from redis-py's `SentinelConnectionPool`. A connection is made to whichever
  server the sentinels name as master; one that finds its server demoted to a replica (a
  write answered READONLY) is dropped and the master looked up again;
- the broker URL is `sentinel://host:port;sentinel://…/db` (`broker_url`), with the master
  name in the broker's transport options, as kombu's Sentinel transport expects.
"""

from typing import Any
from urllib.parse import quote, unquote, urlsplit

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis import Redis
from redis.sentinel import Sentinel, SentinelConnectionPool

Address = tuple[str, int]


def parse_sentinels(value: str) -> list[Address]:
    """`"10.0.0.1:26379, sentinel-b:26379"` -> [("10.0.0.1", 26379), ("sentinel-b", 26379)].

    A sentinel written without a port listens on Redis Sentinel's own, 26379. "" names none.
    """
    sentinels = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, "26379"
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS: {item!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    return sentinels


def broker_url(sentinels: list[Address], *, db: int = 0, password: str = "") -> str:
    """kombu's Sentinel transport URL: every sentinel, each its own `sentinel://` URL joined by
    ";" (kombu reads them as alternatives and asks each in turn); the first carries the master's
    password and the database number."""
    auth = f":{quote(password, safe='')}@" if password else ""
    first, *others = sentinels
    urls = [f"sentinel://{auth}{_netloc(first)}/{db}"]
    urls += [f"sentinel://{_netloc(address)}" for address in others]
    return ";".join(urls)


def broker_master(url: str, options: dict[str, Any], *, timeout: float) -> Redis:
    """A client of the master that a `broker_url` and its transport options name (for reading
    the queues, as /metrics does)."""
    parts = [urlsplit(part) for part in url.split(";") if part]
    sentinels = [(part.hostname or "localhost", part.port or 26379) for part in parts]
    first = parts[0]
    sentinel = Sentinel(
        sentinels,
        sentinel_kwargs=options.get("sentinel_kwargs"),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )
    master: Redis = sentinel.master_for(
        options["master_name"],
        db=int(first.path.strip("/") or 0),
        password=unquote(first.password) if first.password else None,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )
    return master


def _netloc(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class SentinelCacheClient(RedisCacheClient):
    """Django's Redis cache client, its one pool managed by the sentinels.

    OPTIONS: `sentinels` (a list of (host, port)), `master_name`, `sentinel_kwargs` (for the
    connections to the sentinels themselves: a password, timeouts) and, as for RedisCache,
    what each connection to the master takes (`db`, `password`, socket timeouts).
    """

    def __init__(
        self,
        servers: list[str],
        serializer: Any = None,
        *,
        sentinels: list[Address],
        master_name: str,
        sentinel_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(servers, serializer, **options)
        self._master_name = master_name
        self._connection_options = options
        # The sentinels are asked with the master's timeouts unless told otherwise: a sentinel
        # that is down must not hold a request longer than Redis itself would.
        timeouts = {
            key: options[key]
            for key in ("socket_connect_timeout", "socket_timeout")
            if key in options
        }
        self._sentinel = Sentinel(
            list(sentinels),
            sentinel_kwargs={**timeouts, **(sentinel_kwargs or {})},
        )
        self._pool: SentinelConnectionPool | None = None

    def get_client(self, key: Any = None, *, write: bool = False) -> Redis:
        # Reads go to the master too: a replica may lag behind a rate limit's count.
        if self._pool is None:
            # redis-py's sentinel module carries no annotations.
            self._pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
                self._master_name, self._sentinel, **self._connection_options
            )
        return Redis(connection_pool=self._pool)


class SentinelRedisCache(RedisCache):
    """CACHES backend: RedisCache on a master found through the sentinels. LOCATION is not
    used to connect (the sentinels say where the master is); give it the master name."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SentinelCacheClient
