"""Hourly and daily rollups of health-check results: what response-time charts read.

Raw results (CheckResult) are pruned after BEACON_CHECK_RESULT_RETENTION_DAYS by
components.checks.services.check_results_prune; rollups (CheckRollup) are kept forever.
A bucket is only ever computed from raw results that are all still there, so rollups must be
computed before the results they summarise are pruned: update_check_rollups runs every
minute, pruning hourly, and retention is counted in days.
"""

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from components.models import CheckResult, CheckRollup, HealthCheck, RollupPeriod, Verdict
from statuspage.lib.signals import announce_public_change_on_commit

LENGTHS: dict[str, timedelta] = {
    RollupPeriod.HOUR: timedelta(hours=1),
    RollupPeriod.DAY: timedelta(days=1),
}
ROLLUP_FIELDS = [
    "count",
    "failures",
    "latency_min",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "latency_max",
]


def bucket_start(at: datetime, period: str) -> datetime:
    """The start of the UTC hour or day that `at` falls in."""
    at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if period == RollupPeriod.DAY else at


def first_complete_bucket(since: datetime, period: str) -> datetime:
    """The first bucket starting at or after `since`: none of its results can be pruned yet."""
    start = bucket_start(since, period)
    return start if start == since else start + LENGTHS[period]


def nearest_rank(ordered: list[float], percent: float) -> float:
    """The nearest-rank percentile of values sorted in ascending order (not empty)."""
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


@dataclass(frozen=True)
class Stats:
    count: int
    failures: int
    latency_min: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    latency_max: float | None


def summarise(results: list[tuple[str, float | None]]) -> Stats:
    """Counts and latency percentiles of (verdict, latency_ms) pairs.

    Latencies are those of every result that has one, failed or not: a run that timed out
    is part of what the service's users waited for.
    """
    latencies = sorted(latency for _, latency in results if latency is not None)
    failures = sum(verdict == Verdict.DOWN for verdict, _ in results)
    if not latencies:
        return Stats(len(results), failures, None, None, None, None, None)
    return Stats(
        len(results),
        failures,
        latencies[0],
        nearest_rank(latencies, 50),
        nearest_rank(latencies, 95),
        nearest_rank(latencies, 99),
        latencies[-1],
    )


Key = tuple[int, str, datetime]  # (check id, period, bucket start)


def check_rollups_update(*, now: datetime | None = None) -> int:
    """Roll raw results up into hourly and daily buckets (UTC); returns how many rows changed.

    Incremental: each run recomputes the previous and the current hour, and the days those
    hours fall in (so yesterday while today's first hour lasts), for checks with results in
    them. A check whose rollups stop before that window while it has later raw results (rollups
    never computed since the feature arrived, or the task did not run for a while) is caught up
    from its last rollup, or backfilled from the oldest bucket whose raw results are all still
    retained. Older buckets are never touched, so pruned results cannot shrink them.

    Must run well within the retention period (every minute) and before pruning removes what a
    bucket summarises. Rows whose values did not change are not written; when a shown check's
    rollups change, the public page is republished after commit.
    """
    now = now or timezone.now()
    retained_since = now - timedelta(days=settings.BEACON_CHECK_RESULT_RETENTION_DAYS)
    complete_from: dict[str, datetime] = {
        p: first_complete_bucket(retained_since, p) for p in LENGTHS
    }
    previous_hour = bucket_start(now, RollupPeriod.HOUR) - LENGTHS[RollupPeriod.HOUR]
    recent: dict[str, datetime] = {
        RollupPeriod.HOUR: max(previous_hour, complete_from[RollupPeriod.HOUR]),
        RollupPeriod.DAY: max(
            bucket_start(previous_hour, RollupPeriod.DAY), complete_from[RollupPeriod.DAY]
        ),
    }
    catch_up, shown = _catch_up_starts(recent, complete_from)

    buckets: dict[Key, list[tuple[str, float | None]]] = defaultdict(list)
    for check_id, at, verdict, latency in _results_since(recent, catch_up):
        for period in LENGTHS:
            start = bucket_start(at, period)
            since = catch_up.get((check_id, period), recent[period])
            if start >= min(since, recent[period]):
                buckets[(check_id, period, start)].append((verdict, latency))
    if not buckets:
        return 0

    stats = {key: summarise(results) for key, results in buckets.items()}
    existing = {
        (r.health_check_id, r.period, r.start): tuple(getattr(r, f) for f in ROLLUP_FIELDS)
        for r in CheckRollup.objects.filter(
            health_check_id__in={check_id for check_id, _, _ in stats},
            start__gte=min(start for _, _, start in stats),
        )
    }
    changed = [
        CheckRollup(health_check_id=check_id, period=period, start=start, **vars(values))
        for (check_id, period, start), values in stats.items()
        if existing.get((check_id, period, start)) != astuple(values)
    ]
    if not changed:
        return 0
    with transaction.atomic():
        CheckRollup.objects.bulk_create(
            changed,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["health_check", "period", "start"],
            update_fields=ROLLUP_FIELDS,
        )
        if any(rollup.health_check_id in shown for rollup in changed):
            announce_public_change_on_commit()
    return len(changed)


def _catch_up_starts(
    recent: dict[str, datetime], complete_from: dict[str, datetime]
) -> tuple[dict[tuple[int, str], datetime], set[int]]:
    """Where each check's rollups must be rebuilt from, when earlier than the recent window,
    and the ids of the checks shown on the public page. One query, index lookups per check."""
    annotations = {}
    for period in LENGTHS:
        annotations[f"last_{period}"] = Subquery(
            CheckRollup.objects.filter(health_check=OuterRef("pk"), period=period)
            .order_by("-start")
            .values("start")[:1]
        )
        annotations[f"raw_before_{period}"] = Subquery(
            CheckResult.objects.filter(health_check=OuterRef("pk"), at__lt=recent[period])
            .order_by("-at")
            .values("at")[:1]
        )
    starts: dict[tuple[int, str], datetime] = {}
    shown: set[int] = set()
    for check in HealthCheck.objects.annotate(**annotations).only("pk", "enabled", "show_on_page"):
        if check.enabled and check.show_on_page:
            shown.add(check.pk)
        for period, length in LENGTHS.items():
            last_raw = getattr(check, f"raw_before_{period}")
            last_rollup = getattr(check, f"last_{period}")
            if last_raw is None or last_raw < complete_from[period]:
                continue  # nothing before the window that could still be rolled up
            if last_rollup is None or last_raw >= last_rollup + length:
                start = complete_from[period]
                if last_rollup is not None:
                    start = max(start, last_rollup)  # its last bucket may have been partial
                starts[(check.pk, period)] = start
    return starts, shown


def _results_since(
    recent: dict[str, datetime], catch_up: dict[tuple[int, str], datetime]
) -> Iterator[tuple[int, datetime, str, float | None]]:
    """(check id, at, verdict, latency) of the recent window and of the catch-up ranges."""
    since_by_check: dict[int, datetime] = {}
    for (check_id, _), start in catch_up.items():
        since_by_check[check_id] = min(start, since_by_check.get(check_id, start))
    checks_by_since: dict[datetime, list[int]] = defaultdict(list)
    for check_id, start in since_by_check.items():
        checks_by_since[start].append(check_id)
    where = Q(at__gte=min(recent.values()))
    for start, check_ids in checks_by_since.items():
        where |= Q(health_check_id__in=check_ids, at__gte=start)
    return (
        CheckResult.objects.filter(where)
        .order_by()
        .values_list("health_check_id", "at", "verdict", "latency_ms")
        .iterator(chunk_size=5000)
    )
