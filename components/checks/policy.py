"""From results to verdicts to a component status: pure functions, no database.

A location's verdict moves to a worse level after `failures_before_down` consecutive results
worse than it, and to a better one after `successes_before_up` consecutive results better
than it: one bad answer is noise, three are an outage; one good answer after an outage is
not a recovery. A check's verdict is the worst level at least `quorum` locations agree on.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from components.models import (
    VERDICT_SEVERITY,
    ComponentStatus,
    ComponentStatusValue,
    HealthCheck,
    Verdict,
    worst_status,
)

# The streak rule in time, for alerts, lives beside the statuses (so that alerts need not
# read the checks' package); named here too, beside the rule it mirrors.
from components.models import held_long_enough as held_long_enough


@dataclass
class Streak:
    verdict: str = Verdict.UNKNOWN  # the location's current verdict
    toward: str = Verdict.UNKNOWN  # where the current streak of results points
    length: int = 0


def after_result(
    state: Streak, result: str, *, failures_before_down: int, successes_before_up: int
) -> Streak:
    current, result_level = VERDICT_SEVERITY[state.verdict], VERDICT_SEVERITY[result]
    if state.verdict == Verdict.UNKNOWN and result == Verdict.UP:
        return Streak(Verdict.UP)  # a new check that answers is up at once
    if result_level == current:
        return Streak(state.verdict)
    worse = result_level > current
    toward_level = VERDICT_SEVERITY[state.toward]
    continuing = state.length > 0 and (toward_level > current) == worse
    if continuing:
        # A streak of mixed results moves only as far as all of them agree.
        toward = min if worse else max
        level = toward(toward_level, result_level)
        length = state.length + 1
    else:
        level, length = result_level, 1
    toward_verdict = _verdict_of(level)
    needed = failures_before_down if worse else successes_before_up
    if length >= needed:
        return Streak(toward_verdict)
    return Streak(state.verdict, toward_verdict, length)


def check_verdict(location_verdicts: list[str], *, quorum: int, previous: str) -> str:
    """The worst level at least `quorum` locations agree on; unchanged without a quorum."""
    known = [VERDICT_SEVERITY[v] for v in location_verdicts if v != Verdict.UNKNOWN]
    if len(known) < quorum:
        return previous
    for verdict in (Verdict.DOWN, Verdict.DEGRADED, Verdict.UP):
        if sum(level >= VERDICT_SEVERITY[verdict] for level in known) >= quorum:
            return verdict
    return previous


def component_status(checks: Iterable[HealthCheck]) -> ComponentStatusValue | None:
    """The status a component's enabled checks call for (the worst wins); None if none says."""
    statuses = [
        _status_of(check.verdict, check.down_status)
        for check in checks
        if check.enabled and check.verdict != Verdict.UNKNOWN
    ]
    return worst_status(statuses) if statuses else None


def _status_of(verdict: str, down_status: ComponentStatusValue) -> ComponentStatusValue:
    if verdict == Verdict.DOWN:
        return down_status
    if verdict == Verdict.DEGRADED:
        return ComponentStatus.DEGRADED_PERFORMANCE
    return ComponentStatus.OPERATIONAL


def _verdict_of(level: int) -> str:
    return next(v for v, severity in VERDICT_SEVERITY.items() if severity == level)
