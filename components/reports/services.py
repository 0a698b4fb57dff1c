"""Counting visitor reports in the cache, and persisting the counts (docs/reports.md).

The hot path (`report_record`) touches only the cache (Redis in production): PostgreSQL may
be down while visitors report. Counts are kept per component ("other" for "something
else"), symptom ("none" when not given) and minute, for REPORT_COUNT_TTL; the beat task
`report_counts_persist` copies them to ReportCount rows, and `report_surges_detect` finds
surges (components/reports/surge.py) from the cache's recent minutes and the rows' past.

One visitor counts once per component per day. A visitor is known only by a keyed hash of
(client address, user agent, day) whose key is derived from SECRET_KEY and the date and is
never stored: the folding key of one day says nothing about another day's, and neither the
address nor the user agent is kept anywhere.
"""

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from redis.commands.core import Script

from components.models import Component
from components.reports.models import (
    NO_SYMPTOM,
    SOMETHING_ELSE_KEY,
    ReportCount,
    ReportSurge,
    Symptom,
)
from components.reports.surge import (
    Span,
    SurgeParameters,
    SurgeVerdict,
    surge_ended,
    surge_spans,
    surge_started,
    surge_verdict,
)
from statuspage.lib.ratelimit import FixedWindow, count_attempt
from statuspage.lib.redis_cache import cache_key, redis_client

logger = logging.getLogger(__name__)

OTHER = "other"
NONE = "none"
COUNT_KEY = "beacon:reports:count:{minute}:{component}:{symptom}"
SEEN_KEY = "beacon:reports:seen:{day}:{component}:{visitor}"
# Counts wait this long in the cache for the beat task (which runs every minute).
REPORT_COUNT_TTL = 2 * 3600
# The minutes the beat task reads back each run: a beat down for a few minutes loses nothing.
# Each run reads minutes x (components + 1) x 6 keys, in batches of one MGET.
PERSIST_MINUTES = 15


@dataclass(frozen=True)
class Recorded:
    counted: list[str]  # component public ids (or "other") this report added to
    folded: list[str]  # those this visitor had already reported today
    limited: bool = False  # over the rate limit: nothing counted


def day_key(day: date) -> bytes:
    """The day's folding key: derived from SECRET_KEY and the date, never stored."""
    return hmac.new(
        settings.SECRET_KEY.encode(), f"beacon.reports.day:{day.isoformat()}".encode(), "sha256"
    ).digest()


def visitor_digest(*, address: str, user_agent: str, day: date) -> str:
    """Who reported, as far as folding needs: the same for one visitor on one day only."""
    message = f"{address}\n{user_agent}\n{day.isoformat()}".encode()
    return hmac.new(day_key(day), message, hashlib.sha256).hexdigest()[:32]


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def report_record(
    *,
    component_ids: Iterable[str],
    symptom: str,
    address: str,
    user_agent: str,
    now: datetime,
    limit: FixedWindow | None = None,
) -> Recorded:
    """Count one visitor's report of these components ("other" for "something else").

    Touches only the cache. Components this visitor already reported today are folded. With
    a `limit`, the attempt is counted against it first, and a report over it counts nothing;
    on Redis all of it is one round trip.
    """
    day = now.astimezone(UTC).date()
    visitor = visitor_digest(address=address, user_agent=user_agent, day=day)
    minute = minute_of(now)
    end_of_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    seen_timeout = int((end_of_day - now).total_seconds()) + 60
    components = list(component_ids)
    client = redis_client()
    if client is not None:
        return _record_in_redis(
            client, components, symptom, visitor, day, minute, seen_timeout, limit
        )
    if limit is not None and count_attempt(limit.key, timeout=limit.timeout) > limit.limit:
        return Recorded(counted=[], folded=[], limited=True)
    counted, folded = [], []
    for component in components:
        seen = SEEN_KEY.format(day=day.isoformat(), component=component, visitor=visitor)
        if not cache.add(seen, 1, timeout=seen_timeout):
            folded.append(component)
            continue
        key = count_key(minute, component, symptom)
        if not cache.add(key, 1, timeout=REPORT_COUNT_TTL):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=REPORT_COUNT_TTL)
        counted.append(component)
    return Recorded(counted=counted, folded=folded)


# One round trip for the whole report. First the rate limit: KEYS[1] counts this address's
# attempts (ARGV[3] allowed, 0: no limit; expiring after ARGV[4] seconds), and over it the
# script stops and returns {-1}. Then per component: count it unless this visitor's mark for
# it is already there. KEYS[2..]: the mark and the count key of each component in turn;
# ARGV[1], ARGV[2]: the marks' and the counts' expiry. Returns 1 (counted) or 0 (folded) each.
RECORD_SCRIPT = """
if tonumber(ARGV[3]) > 0 then
  local attempts = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  if attempts > tonumber(ARGV[3]) then
    return {-1}
  end
end
local counted = {}
for i = 2, #KEYS, 2 do
  if redis.call('SET', KEYS[i], 1, 'NX', 'EX', ARGV[1]) then
    if redis.call('INCR', KEYS[i + 1]) == 1 then
      redis.call('EXPIRE', KEYS[i + 1], ARGV[2])
    end
    counted[#counted + 1] = 1
  else
    counted[#counted + 1] = 0
  end
end
return counted
"""


# Its SHA computed once; called with the client of the moment, which loads it again when the
# server does not know it (a restart, a failover). No client is registered: the script is
# bytes, so none is asked for an encoding.
_record_script = Script(None, RECORD_SCRIPT.encode())  # type: ignore[arg-type]


def _record_in_redis(
    client: redis.Redis,
    components: list[str],
    symptom: str,
    visitor: str,
    day: date,
    minute: datetime,
    seen_timeout: int,
    limit: FixedWindow | None,
) -> Recorded:
    """report_record on Redis: the same keys and values as the cache API would write (the
    persisting task and surge detection read them through it), in one script call rather
    than four round trips a component."""
    # Without a limit, KEYS[1] is still passed (any key: the script does not touch it).
    keys = [cache_key(limit.key if limit else "beacon:reports:no-limit")]
    for component in components:
        seen = SEEN_KEY.format(day=day.isoformat(), component=component, visitor=visitor)
        keys.append(cache_key(seen))
        keys.append(cache_key(count_key(minute, component, symptom)))
    args = [
        seen_timeout,
        REPORT_COUNT_TTL,
        limit.limit if limit else 0,
        limit.timeout if limit else 1,
    ]
    flags = _record_script(keys=keys, args=args, client=client)
    if flags == [-1]:
        return Recorded(counted=[], folded=[], limited=True)
    counted = [c for c, flag in zip(components, flags, strict=True) if flag]
    folded = [c for c, flag in zip(components, flags, strict=True) if not flag]
    return Recorded(counted=counted, folded=folded)


def count_key(minute: datetime, component: str, symptom: str) -> str:
    return COUNT_KEY.format(
        minute=minute.strftime("%Y%m%dT%H%M"), component=component, symptom=symptom or NONE
    )


def report_counts_persist(*, now: datetime, minutes: int = PERSIST_MINUTES) -> int:
    """Copy the cached counts of the last `minutes` minutes to ReportCount rows.

    A row takes the cache's count (it does not add to it), so running twice, or over minutes
    already copied, writes the same numbers: idempotent. The current minute is copied too and
    corrected by the next run. Returns the number of rows written.
    """
    pks: dict[str, int | None] = {OTHER: None}
    pks.update(Component.objects.values_list("public_id", "pk"))
    public_ids = [public_id for public_id in pks if public_id != OTHER]
    last = minute_of(now)
    rows: list[ReportCount] = []
    for back in range(minutes):  # one MGET a minute
        found = cached_counts([last - timedelta(minutes=back)], public_ids)
        rows.extend(
            ReportCount(
                component_id=pks[public_id],
                symptom=NO_SYMPTOM if symptom == NONE else symptom,
                minute=minute,
                count=count,
            )
            for (minute, public_id, symptom), count in found.items()
        )
    with transaction.atomic():
        ReportCount.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["component_key", "symptom", "minute"],
            update_fields=["count"],
        )
    return len(rows)


@dataclass(frozen=True)
class SurgesFound:
    started: list[ReportSurge]  # staff are told of these (this run claimed their alert)
    ended: list[ReportSurge]


def report_surges_detect(
    *, now: datetime, parameters: SurgeParameters | None = None
) -> SurgesFound:
    """Beat, twice a minute: open, extend and end report surges, and tell the layers above
    (surge_started, surge_ended) in the transaction that records them.

    The window is read from the cache, so a surge is seen without waiting for persistence;
    the baselines from ReportCount rows (three queries, however many components). Two runs at
    once record one surge and claim its alert once (a unique constraint on open surges, and
    a conditional UPDATE of `alerted_at`).
    """
    parameters = parameters or SurgeParameters.from_settings()
    components = list(Component.objects.values_list("pk", "public_id", "created_at"))
    minute = minute_of(now)
    spans = surge_spans(minute=minute, since=None, parameters=parameters)
    windows = _window_counts(spans.window, [public_id for _, public_id, _ in components])
    past = _baseline_sums(spans.recent, spans.weeks)
    verdicts: dict[int | None, tuple[SurgeVerdict, dict[str, int]]] = {}
    for pk, public_id, since in [(None, OTHER, None), *components]:
        symptoms = windows.get(public_id, {})
        sums = past.get(pk, {})
        own = surge_spans(minute=minute, since=since, parameters=parameters)
        verdict = surge_verdict(
            current=sum(symptoms.values()),
            weeks=[sums.get(span, 0) for span in own.weeks],
            recent=sums.get(spans.recent, 0),
            parameters=parameters,
        )
        verdicts[pk] = (verdict, symptoms)
    with transaction.atomic():
        found = _surges_record(verdicts, now=now, parameters=parameters)
        if found.started:
            surge_started.send(sender=ReportSurge, surges=found.started)
        if found.ended:
            surge_ended.send(sender=ReportSurge, surges=found.ended)
    return found


def cached_counts(
    minutes: Iterable[datetime], public_ids: list[str]
) -> dict[tuple[datetime, str, str], int]:
    """The cache's counts of these minutes, per (minute, component public id or "other",
    symptom or "none"); minutes, components and symptoms without reports are left out. One
    MGET of minutes x (components + 1) x 6 keys."""
    wanted = {
        count_key(minute, public_id, symptom): (minute, public_id, symptom)
        for minute in minutes
        for public_id in [OTHER, *public_ids]
        for symptom in [NONE, *Symptom.values]
    }
    return {wanted[key]: int(value) for key, value in cache.get_many(list(wanted)).items()}


def _window_counts(window: Span, public_ids: list[str]) -> dict[str, dict[str, int]]:
    """Reports per component public id (or "other") and symptom in the window: one MGET."""
    length = int((window.end - window.start).total_seconds() // 60)
    minutes = [window.start + timedelta(minutes=n) for n in range(length)]
    counts: dict[str, dict[str, int]] = {}
    for (_, public_id, symptom), count in cached_counts(minutes, public_ids).items():
        per_symptom = counts.setdefault(public_id, {})
        per_symptom[symptom] = per_symptom.get(symptom, 0) + count
    return counts


def _baseline_sums(recent: Span, weeks: tuple[Span, ...]) -> dict[int | None, dict[Span, int]]:
    """Reports per component in each baseline span: one query, summed by PostgreSQL."""
    spans = [recent, *weeks]
    within = {span: Q(minute__gte=span.start, minute__lt=span.end) for span in spans}
    any_span = Q()
    for condition in within.values():
        any_span |= condition
    aggregates = {f"span{n}": Sum("count", filter=within[span]) for n, span in enumerate(spans)}
    rows = ReportCount.objects.filter(any_span).values("component_id").annotate(**aggregates)
    return {
        row["component_id"]: {span: row[f"span{n}"] or 0 for n, span in enumerate(spans)}
        for row in rows
    }


def _surges_record(
    verdicts: dict[int | None, tuple[SurgeVerdict, dict[str, int]]],
    *,
    now: datetime,
    parameters: SurgeParameters,
) -> SurgesFound:
    open_surges = {s.component_id: s for s in ReportSurge.objects.filter(ended_at=None)}
    for pk, (verdict, symptoms) in verdicts.items():
        if not verdict.surging:
            continue
        surge = open_surges.get(pk)
        if surge is None:
            surge, opened = _surge_open(pk, verdict, symptoms, now, parameters)
            open_surges[pk] = surge
            if opened:
                continue  # with these very numbers
        surge.last_seen_at = max(surge.last_seen_at, now)
        if verdict.current > surge.peak_count:
            surge.peak_count, surge.symptoms = verdict.current, symptoms
        ReportSurge.objects.filter(pk=surge.pk).update(
            last_seen_at=surge.last_seen_at, peak_count=surge.peak_count, symptoms=surge.symptoms
        )
    quiet_since = now - timedelta(minutes=parameters.end_minutes)
    ended = []
    for surge in open_surges.values():
        if surge.last_seen_at <= quiet_since and (
            ReportSurge.objects.filter(pk=surge.pk, ended_at=None).update(ended_at=now) == 1
        ):
            surge.ended_at = now
            ended.append(surge)
    started = []
    for surge in open_surges.values():
        if (
            surge.alerted_at is None
            and surge.ended_at is None
            and ReportSurge.objects.filter(pk=surge.pk, alerted_at=None).update(alerted_at=now) == 1
        ):
            surge.alerted_at = now
            started.append(surge)
    return SurgesFound(started=started, ended=ended)


def _surge_open(
    component_id: int | None,
    verdict: SurgeVerdict,
    symptoms: dict[str, int],
    now: datetime,
    parameters: SurgeParameters,
) -> tuple[ReportSurge, bool]:
    """The component's open surge, and whether this call opened it."""
    try:
        with transaction.atomic():
            surge = ReportSurge.objects.create(
                component_id=component_id,
                started_at=now,
                last_seen_at=now,
                window_minutes=parameters.window_minutes,
                peak_count=verdict.current,
                usual_count=round(verdict.usual, 2),
                symptoms=symptoms,
            )
            return surge, True
    except IntegrityError:  # another run opened it a moment ago
        surge = ReportSurge.objects.get(
            component_key=component_id or SOMETHING_ELSE_KEY, ended_at=None
        )
        return surge, False
