"""Counting visitor reports in the cache, and persisting the counts (docs/reports.md).

The hot path (`report_record`) touches only the cache (Redis in production): PostgreSQL may
be down while visitors report. Counts are kept per component ("other" for "something
else"), symptom ("none" when not given) and minute, for REPORT_COUNT_TTL; the beat task
`report_counts_persist` copies them to ReportCount rows.

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

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from components.models import Component
from components.reports.models import NO_SYMPTOM, ReportCount, Symptom

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
) -> Recorded:
    """Count one visitor's report of these components ("other" for "something else").

    Touches only the cache. Components this visitor already reported today are folded.
    """
    day = now.astimezone(UTC).date()
    visitor = visitor_digest(address=address, user_agent=user_agent, day=day)
    minute = minute_of(now)
    end_of_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    seen_timeout = int((end_of_day - now).total_seconds()) + 60
    counted, folded = [], []
    for component in component_ids:
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
    components = dict(Component.objects.values_list("public_id", "pk"))
    names: list[tuple[str, int | None]] = [(OTHER, None), *components.items()]
    symptoms = [NONE, *Symptom.values]
    last = minute_of(now)
    minutes_back = [last - timedelta(minutes=back) for back in range(minutes)]
    rows = []
    for minute in minutes_back:
        wanted = {
            count_key(minute, public_id, symptom): (minute, pk, symptom)
            for public_id, pk in names
            for symptom in symptoms
        }
        found = cache.get_many(list(wanted))
        for key, value in found.items():
            at, pk, symptom = wanted[key]
            rows.append(
                ReportCount(
                    component_id=pk,
                    symptom=NO_SYMPTOM if symptom == NONE else symptom,
                    minute=at,
                    count=int(value),
                )
            )
    with transaction.atomic():
        ReportCount.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["component", "symptom", "minute"],
            update_fields=["count"],
        )
    return len(rows)
