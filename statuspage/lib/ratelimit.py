"""Rate limits kept in the shared cache (Redis in production): fixed windows, a weighted
rolling window for the management API, and an exact sliding window for the subscribe form.

A limit counts attempts per key in windows aligned to the clock (an hour from :00 to :00),
so the time to wait is known without asking the cache for a key's expiry. When the cache
cannot be reached the attempt is allowed and the failure logged: Redis being away must not
stop people from subscribing.
"""

import logging
import math
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from statuspage.lib.redis_cache import cache_key, redis_client

logger = logging.getLogger(__name__)

KEY = "beacon:ratelimit:{name}:{window}:{start}"
SLOT_KEY = "beacon:ratelimit:{name}:{window}:slot:{slot}"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    # Seconds until the window ends and attempts are counted afresh; 0 when allowed.
    retry_after: int = 0


@dataclass(frozen=True)
class FixedWindow:
    """The current window of a fixed-window limit: the cache key counting its attempts, how
    many it allows, and the seconds until it ends. For a caller that counts the attempt
    itself, in the same round trip as its own work (the visitor reports' script)."""

    key: str
    limit: int
    remaining: int

    @property
    def timeout(self) -> int:
        # One second past the window, so the key outlives the window it counts.
        return self.remaining + 1


def fixed_window(name: str, *, limit: int, window: int) -> FixedWindow:
    now = int(time.time())
    start = now - now % window
    return FixedWindow(
        key=KEY.format(name=name, window=window, start=start),
        limit=limit,
        remaining=start + window - now,
    )


def hit(name: str, *, limit: int, window: int) -> Verdict:
    """Count one attempt under `name`: allowed while this window has seen at most `limit`.

    A limit of 0 or less means no limit.
    """
    if limit <= 0:
        return Verdict(allowed=True)
    current = fixed_window(name, limit=limit, window=window)
    key, remaining = current.key, current.remaining
    try:
        count = count_attempt(key, timeout=current.timeout)
    except Exception:
        logger.warning("Rate limit %s not checked: the cache is unreachable", name, exc_info=True)
        return Verdict(allowed=True)
    if count > limit:
        return Verdict(allowed=False, retry_after=remaining)
    return Verdict(allowed=True)


def hit_rolling(name: str, *, limit: int, window: int) -> Verdict:
    """Count one attempt under `name` against a rolling window, as Statuspage's API limit is.

    A fixed window lets a client spend two windows' worth across a boundary; this weighs the
    previous window's count by how much of it still lies within the last `window` seconds
    (the approximation Cloudflare and nginx-style limiters use), at one more cache read.
    """
    if limit <= 0:
        return Verdict(allowed=True)
    now = time.time()
    start = int(now) - int(now) % window
    elapsed = now - start
    key = KEY.format(name=name, window=window, start=start)
    previous_key = KEY.format(name=name, window=window, start=start - window)
    try:
        # Kept past its window, to be read again as the previous one.
        count, previous = _count_and_read(key, previous_key, timeout=2 * window + 1)
    except Exception:
        logger.warning("Rate limit %s not checked: the cache is unreachable", name, exc_info=True)
        return Verdict(allowed=True)
    weight = 1 - elapsed / window
    if count + previous * weight <= limit:
        return Verdict(allowed=True)
    if previous and count <= limit:
        # Allowed again once enough of the previous window has slid out of view.
        wait = (count + previous * weight - limit) * window / previous
    else:
        # This window's own count is over: it must end, then slide partly out of view.
        wait = window - elapsed + (count - limit) * window / count
    return Verdict(allowed=False, retry_after=max(1, math.ceil(wait)))


def _count_and_read(key: str, previous_key: str, *, timeout: int) -> tuple[int, int]:
    """Count one attempt under `key` and read the count under `previous_key`: one round trip
    on Redis, where every management API request pays it."""
    client = redis_client()
    if client is None:
        return count_attempt(key, timeout=timeout), int(cache.get(previous_key) or 0)
    pipe = client.pipeline(transaction=False)
    pipe.incr(cache_key(key))
    pipe.expire(cache_key(key), timeout)
    pipe.get(cache_key(previous_key))  # an integer the cache stores as its digits
    count, _, previous = pipe.execute()
    return int(count), int(previous or 0)


def hit_sliding(name: str, *, limit: int, window: int) -> Verdict:
    """Count one attempt under `name`: allowed while the last `window` seconds (a true
    sliding window, whatever the clock says) have allowed fewer than `limit`.

    The limit is `limit` slots, each holding when it was last taken. An attempt takes a slot
    that has stood free for `window` seconds; refused attempts take nothing, so hammering
    does not prolong the wait. Each slot is claimed with an atomic `add` of a key naming the
    value it replaces, so two processes never take the same slot. Costs one read of every
    slot and a write or two; meant for small limits (a form's few attempts an hour).
    """
    if limit <= 0:
        return Verdict(allowed=True)
    now = time.time()
    keys = [SLOT_KEY.format(name=name, window=window, slot=slot) for slot in range(limit)]
    try:
        taken = cache.get_many(keys)
        waits = []
        for key in keys:
            value = taken.get(key)
            taken_at = _slot_time(value)
            if taken_at is not None and now - taken_at < window:
                waits.append(taken_at + window - now)
                continue
            # Free (never taken, or taken a window ago): claim it against the value it holds.
            claim = f"{key}:after:{value or 'none'}"
            if cache.add(claim, 1, timeout=window + 1):
                mark = f"{now:.6f}:{secrets.token_hex(4)}"
                # The slot outlives its window, so an old value is replaced by a claim, not
                # by expiry racing a claim (and a travelled clock in tests still counts).
                cache.set(key, mark, timeout=2 * window + 1)
                return Verdict(allowed=True)
            waits.append(1)  # another attempt claimed it just now
    except Exception:
        logger.warning("Rate limit %s not checked: the cache is unreachable", name, exc_info=True)
        return Verdict(allowed=True)
    return Verdict(allowed=False, retry_after=max(1, math.ceil(min(waits))))


def _slot_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return float(value.partition(":")[0])
    except ValueError:
        return None


def digest(value: str) -> str:
    """A key part for personal data (an email address): the cache never holds the value."""
    return salted_hmac("beacon.ratelimit", value, algorithm="sha256").hexdigest()[:32]


def count_attempt(key: str, *, timeout: int) -> int:
    """Add one to the count under `key` (created with `timeout`); returns the new count."""
    client = redis_client()
    if client is not None:
        # One round trip. The windows are aligned to the clock, so setting the expiry again
        # on every attempt sets the same end.
        pipe = client.pipeline(transaction=False)
        pipe.incr(cache_key(key))
        pipe.expire(cache_key(key), timeout)
        count, _ = pipe.execute()
        return int(count)
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this attempt opens the count again
        cache.set(key, 1, timeout=timeout)
        return 1


def client_ip(request: HttpRequest) -> str:
    """The visitor's address: REMOTE_ADDR, or what the trusted proxies say it was.

    Each trusted proxy appends the address it saw to X-Forwarded-For (nginx's
    $proxy_add_x_forwarded_for), so the visitor is TRUSTED_PROXY_HOPS entries from the end;
    entries before that are whatever the client sent, and are ignored.
    """
    trusted: int = settings.BEACON_TRUSTED_PROXY_HOPS
    if trusted > 0:
        forwarded: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= trusted:
            return hops[-trusted][:64]
    remote_addr: str = request.META.get("REMOTE_ADDR", "")
    return remote_addr[:64]
