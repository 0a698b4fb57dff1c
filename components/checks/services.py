"""Writes of health checks: claiming due runs, recording results, moving components."""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from components.checks import KINDS, policy
from components.checks.heartbeat import judge
from components.checks.latency import latency_observe
from components.checks.outcome import Outcome
from components.checks.runner import run_batch
from components.models import (
    DEFAULT_LOCATION,
    CheckKind,
    CheckLocationState,
    CheckResult,
    Component,
    HealthCheck,
    StatusChangeCause,
    Verdict,
)
from components.status import component_status_follow


@dataclass(frozen=True)
class Batch:
    """Checks one location runs together: (check id, slot) pairs."""

    location: str
    runs: list[tuple[int, datetime]]


def check_locations(check: HealthCheck) -> list[str]:
    kind = KINDS.get(check.kind)
    if kind is not None and not kind.polled:
        return [DEFAULT_LOCATION]  # pushed to Beacon: judged in one place
    return list(dict.fromkeys(check.locations or [DEFAULT_LOCATION]))


# A heartbeat's interval is how often the job pings; its silence is looked for more often,
# so a missed ping is noticed within this long of its deadline, not an interval later.
HEARTBEAT_LOOK_SECONDS = 30


def run_every(check: HealthCheck) -> int:
    """Seconds between a check's scheduled runs."""
    if check.kind == CheckKind.HEARTBEAT:
        return min(check.interval, HEARTBEAT_LOOK_SECONDS)
    return check.interval


# Checks created together (apply_config, a bulk import) would otherwise keep one start
# time for good and all fire in the same second, every interval: each check runs at a
# phase of its own within its interval instead, spread by its id. Golden-ratio steps put
# consecutive ids as far apart as they can be, whatever their number.
_PHASE_STEP = (5**0.5 - 1) / 2
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def next_slot(check: HealthCheck, *, after: datetime) -> datetime:
    """The check's first slot after `after`: one every run_every() seconds, at its phase."""
    step = run_every(check) * 1_000_000
    phase = int((check.pk * _PHASE_STEP) % 1 * step)
    elapsed = (after - _EPOCH) // _MICROSECOND
    slots = (elapsed - phase) // step + 1
    return _EPOCH + (slots * step + phase) * _MICROSECOND


def queue_for(location: str) -> str:
    return "checks" if location == DEFAULT_LOCATION else f"checks.{location}"


def checks_claim_due(
    *, now: datetime | None = None, ahead: float = 0.0, limit: int = 5000
) -> list[Batch]:
    """Claim the checks due by `ahead` seconds from now and move their next run on; returns
    them in batches. Workers wait for each check's slot, so a check handed out early still
    starts on time.

    Rows are locked with SKIP LOCKED and moved to their next slot in the same transaction,
    so two schedulers running at once never hand out one slot twice.
    """
    now = (now or timezone.now()) + timedelta(seconds=ahead)
    by_location: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
    with transaction.atomic():
        due = list(
            HealthCheck.objects.select_for_update(skip_locked=True)
            .filter(enabled=True, next_run_at__lte=now)
            .order_by("next_run_at")[:limit]
        )
        for check in due:
            slot = check.next_run_at
            check.next_run_at = next_slot(check, after=now)
            for location in check_locations(check):
                by_location[location].append((check.pk, slot))
        HealthCheck.objects.bulk_update(due, ["next_run_at"])
    size = settings.BEACON_CHECKS_BATCH_SIZE
    return [
        Batch(location, runs[i : i + size])
        for location, runs in by_location.items()
        for i in range(0, len(runs), size)
    ]


def check_runs_claim(*, location: str, runs: list[tuple[int, datetime]]) -> list[HealthCheck]:
    """The checks of `runs` this location has not run in their slot yet, now claimed.

    The claim is a conditional UPDATE of the location's last slot: a batch delivered twice
    (a worker lost mid-task, a broker redelivery) runs each check once.
    """
    claimed = []
    for check_id, slot in runs:
        state = _location_state(check_id, location)
        if state is None:
            continue
        moved = (
            CheckLocationState.objects.filter(pk=state.pk)
            .filter(Q(last_slot__isnull=True) | Q(last_slot__lt=slot))
            .update(last_slot=slot)
        )
        if moved:
            claimed.append(check_id)
    checks = HealthCheck.objects.select_related("component").in_bulk(claimed)
    return [checks[pk] for pk in claimed if pk in checks and checks[pk].enabled]


def _location_state(check_id: int, location: str) -> CheckLocationState | None:
    try:
        return CheckLocationState.objects.get_or_create(
            health_check_id=check_id, location=location
        )[0]
    except IntegrityError:  # created at the same moment by another worker, or check deleted
        return CheckLocationState.objects.filter(
            health_check_id=check_id, location=location
        ).first()


def check_results_record(
    *, location: str, results: list[tuple[HealthCheck, Outcome]], at: datetime | None = None
) -> None:
    """Store each run's result, advance its location's streak and the check's verdict, and
    move components whose checks now say something else.

    A result is dated when its run started (Outcome.started_at), not when its batch is
    recorded: a batch ends with its slowest check, and its results would be late and tied.
    `at` dates outcomes that carry no start (a heartbeat judged at a ping).
    """
    at = at or timezone.now()
    CheckResult.objects.bulk_create(
        CheckResult(
            health_check=check,
            location=location,
            at=outcome.started_at or at,
            verdict=outcome.verdict,
            latency_ms=outcome.latency_ms,
            status_code=outcome.status_code,
            error=outcome.error,
        )
        for check, outcome in results
    )
    latency_observe(
        location=location, latencies=[(check.pk, outcome.latency_ms) for check, outcome in results]
    )
    changed: dict[int, tuple[HealthCheck, Outcome]] = {}
    for check, outcome in results:
        if _advance_verdict(check, location, outcome, outcome.started_at or at):
            changed[check.component_id] = (check, outcome)
    for check, outcome in changed.values():
        component_follow_checks(component_id=check.component_id, reason=(check, outcome))


def _advance_verdict(check: HealthCheck, location: str, outcome: Outcome, at: datetime) -> bool:
    """Returns whether the check's verdict changed."""
    with transaction.atomic():
        locked = HealthCheck.objects.select_for_update().filter(pk=check.pk).first()
        if locked is None:
            return False
        state, _ = CheckLocationState.objects.select_for_update().get_or_create(
            health_check=locked, location=location
        )
        streak = policy.after_result(
            policy.Streak(state.verdict, state.streak_verdict, state.streak),
            outcome.verdict,
            failures_before_down=locked.failures_before_down,
            successes_before_up=locked.successes_before_up,
        )
        state.verdict, state.streak_verdict, state.streak = (
            streak.verdict,
            streak.toward,
            streak.length,
        )
        state.last_result_at = at
        state.save(update_fields=["verdict", "streak_verdict", "streak", "last_result_at"])
        locations = check_locations(locked)
        verdicts = list(
            CheckLocationState.objects.filter(
                health_check=locked, location__in=locations
            ).values_list("verdict", flat=True)
        )
        previous = locked.verdict
        locked.verdict = policy.check_verdict(
            verdicts, quorum=min(locked.quorum, len(locations)), previous=previous
        )
        locked.last_run_at = at
        locked.last_ok = outcome.verdict != Verdict.DOWN
        locked.last_latency_ms = outcome.latency_ms
        locked.last_status_code = outcome.status_code
        locked.last_error = outcome.error
        locked.save(
            update_fields=[
                "verdict",
                "last_run_at",
                "last_ok",
                "last_latency_ms",
                "last_status_code",
                "last_error",
                "updated_at",
            ]
        )
    check.verdict = locked.verdict
    return locked.verdict != previous


def component_follow_checks(
    *, component_id: int, reason: tuple[HealthCheck, Outcome] | None = None
) -> str | None:
    """Report to the arbiter (components.status) that a component's checks say something
    new; returns the status it moved to, None when it stays (people hold it, or nothing
    changed). `reason`, the check and result that changed, is the change's note."""
    note = ""
    if reason is not None:
        check, outcome = reason
        note = f"{check.name}: {outcome.describe()}"
    with transaction.atomic():
        component = Component.objects.select_for_update().get(pk=component_id)
        return component_status_follow(
            component=component, source=StatusChangeCause.HEALTH_CHECK, note=note
        )


def heartbeat_ping(*, token: uuid.UUID, failed: bool = False, at: datetime | None = None) -> bool:
    """Record a ping; a failure ping is judged at once. Returns False for an unknown token."""
    at = at or timezone.now()
    updated = HealthCheck.objects.filter(ping_token=token, kind="heartbeat").update(
        last_ping_at=at, last_ping_failed=failed
    )
    if not updated:
        return False
    check = HealthCheck.objects.select_related("component").get(ping_token=token)
    if check.enabled:
        check_results_record(
            location=DEFAULT_LOCATION, results=[(check, judge(check, now=at))], at=at
        )
    return True


def check_run_now(*, check: HealthCheck) -> Outcome:
    """Run one check here and now (staff's "Run now"), recording its result like any other."""
    [outcome] = checks_run_now(checks=[check])
    return outcome


def checks_run_now(*, checks: list[HealthCheck]) -> list[Outcome]:
    """Run checks here and now, together (a slow one delays none of the others)."""
    outcomes = run_batch(checks)
    check_results_record(
        location=DEFAULT_LOCATION, results=list(zip(checks, outcomes, strict=True))
    )
    return outcomes


def check_results_prune(*, older_than: timedelta | None = None, batch: int = 5000) -> int:
    """Delete raw results past the retention period, a batch per transaction."""
    older_than = older_than or timedelta(days=settings.BEACON_CHECK_RESULT_RETENTION_DAYS)
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        ids = list(CheckResult.objects.filter(at__lt=cutoff).values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += CheckResult.objects.filter(pk__in=ids).delete()[0]


# What a check is judged on: changing any of these makes its past verdict meaningless.
JUDGED_FIELDS = (
    "kind", "url", "method", "headers", "body", "expect_status", "keyword", "keyword_absent",
    "json_assertion", "follow_redirects", "verify_tls", "host", "port", "record_type",
    "expected_values", "resolver", "expiry_warning_days", "query", "comparison", "threshold",
    "upstream_component", "locations", "down_status", "degraded_latency_ms",
)  # fmt: skip


def check_save(*, check: HealthCheck, changed: list[str] | None = None) -> HealthCheck:
    """Save a check staff (or a config file) edited, and keep its component consistent.

    A check judged on something new starts over (no verdict, no streaks, due at once);
    disabling or re-enabling a check, or changing what its verdict means, lets the component
    follow its checks again, so that a disabled failing check does not hold it down.
    """
    created = check.pk is None
    with transaction.atomic():
        if not created and (changed is None or set(changed) & set(JUDGED_FIELDS)):
            check.verdict = Verdict.UNKNOWN
            check.next_run_at = timezone.now()
            CheckLocationState.objects.filter(health_check=check).delete()
        if created:
            check.next_run_at = timezone.now()
        check.save()
    if not created:
        component_follow_checks(component_id=check.component_id)
    return check


def check_delete(*, check: HealthCheck) -> None:
    """Delete a check; its component then follows the checks it has left."""
    component_id = check.component_id
    with transaction.atomic():
        check.delete()
    component_follow_checks(component_id=component_id)
