"""Response-time histograms per check and location, for Prometheus.

A histogram's buckets are counters. Raw results are pruned and rollups keep percentiles, so
the counts cannot be recomputed from the database at scrape time without ever falling.
Instead the worker that records a batch of results adds them to counters in the shared
cache (Redis in production), and /metrics reads them. If the cache loses them (a Redis
restart, an eviction) they start again from zero, which Prometheus reads as a counter
reset, as it does when any exporter restarts.
"""

import logging
import math
from collections import Counter
from collections.abc import Iterable

from django.core.cache import cache

logger = logging.getLogger(__name__)

# Prometheus's default buckets, in seconds: 5 ms to 10 s.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOTS = [*range(len(BUCKETS)), "inf", "sum_us"]


def _key(check_id: int, location: str, slot: int | str) -> str:
    return f"check-latency:{check_id}:{location}:{slot}"


def _bucket(seconds: float) -> int | str:
    for index, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return index
    return "inf"


def latency_observe(*, location: str, latencies: Iterable[tuple[int, float | None]]) -> None:
    """Count (check id, latency in ms) pairs; runs without a response time are not counted.

    Never raises: a cache that is away costs a gap in the histogram, not the results.
    """
    increments: Counter[str] = Counter()
    for check_id, latency_ms in latencies:
        if latency_ms is None or math.isnan(latency_ms):
            continue
        increments[_key(check_id, location, _bucket(latency_ms / 1000))] += 1
        increments[_key(check_id, location, "sum_us")] += round(latency_ms * 1000)
    try:
        for key, delta in increments.items():
            _add(key, delta)
    except Exception:  # the cache is down or refused: the results are stored regardless
        logger.warning("Could not count check latencies in the cache", exc_info=True)


def _add(key: str, delta: int) -> None:
    try:
        cache.incr(key, delta)
    except ValueError:  # not there yet
        if not cache.add(key, delta, timeout=None):
            cache.incr(key, delta)  # another worker created it in between


def latency_histograms(
    pairs: Iterable[tuple[int, str]],
) -> dict[tuple[int, str], tuple[list[tuple[str, int]], float]]:
    """(cumulative buckets as Prometheus wants them, sum of seconds) per (check id, location)
    that has counted anything."""
    pairs = list(pairs)
    keys = [_key(check_id, location, slot) for check_id, location in pairs for slot in _SLOTS]
    try:
        counts = cache.get_many(keys)
    except Exception:
        logger.warning("Could not read check latencies from the cache", exc_info=True)
        return {}
    histograms = {}
    for check_id, location in pairs:
        per_slot = [int(counts.get(_key(check_id, location, slot), 0)) for slot in _SLOTS]
        *in_buckets, over, sum_us = per_slot
        if not any(in_buckets) and not over:
            continue
        running = 0
        buckets = []
        for bound, count in zip(BUCKETS, in_buckets, strict=True):
            running += count
            buckets.append((repr(bound), running))
        buckets.append(("+Inf", running + over))
        histograms[(check_id, location)] = (buckets, sum_us / 1_000_000)
    return histograms
