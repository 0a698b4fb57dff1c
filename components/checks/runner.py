"""Run a batch of checks at once: each with a hard timeout, none waiting for another.

A target that never answers, or answers a byte a second, costs its own check its timeout
and nothing else: every run is a coroutine on one event loop, cancelled at its deadline.
"""

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

from components.checks import KINDS, outbound
from components.checks.outcome import Outcome
from components.checks.tls import ssl_context
from components.models import HealthCheck, Verdict
from statuspage.lib.network import TargetRefused

USER_AGENT = "Beacon health check (+https://github.com/beacon-status)"


def run_batch(
    checks: list[HealthCheck], *, start_at: list[datetime] | None = None
) -> list[Outcome]:
    """Outcomes of `checks`, in the same order; each starts at its `start_at` (its slot).

    The scheduler hands out checks a little before they are due, so that each one starts on
    time rather than up to a dispatch period late.
    """
    work = _run_all(checks, start_at or [None] * len(checks))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    # Called from code that already runs an event loop: give the batch a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, work).result()


async def _run_all(checks: list[HealthCheck], start_at: Sequence[datetime | None]) -> list[Outcome]:
    # The system's CAs and CHECKS_CA_BUNDLE, as TLS checks trust.
    async with outbound.client(verify=ssl_context(), headers={"User-Agent": USER_AGENT}) as client:
        return list(
            await asyncio.gather(
                *(
                    _at(when, run_one(check, client))
                    for check, when in zip(checks, start_at, strict=True)
                )
            )
        )


async def _at(when: datetime | None, run: Awaitable[Outcome]) -> Outcome:
    if when is not None:
        delay = (when - datetime.now(UTC)).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
    return await run


async def run_one(check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
    """What `check` finds now, stamped with the moment it started."""
    started_at = datetime.now(UTC)
    outcome = await _run(check, client)
    return dataclasses.replace(outcome, started_at=started_at)


async def _run(check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
    kind = KINDS.get(check.kind)
    if kind is None:
        return Outcome.down(f"Unknown check kind {check.kind!r}")
    started = time.perf_counter()
    try:
        outcome = await asyncio.wait_for(kind.run(check, client), timeout=check.timeout)
    except TimeoutError:
        return Outcome.down(
            f"No complete answer within {check.timeout:g} s", latency_ms=check.timeout * 1000
        )
    except TargetRefused as refused:
        return Outcome.down(f"Refused: {refused}")
    except Exception as error:  # noqa: BLE001 - a failing target is a result, not a crash
        return Outcome.down(describe_error(error), latency_ms=_elapsed_ms(started))
    if outcome.latency_ms is None:
        outcome = dataclasses.replace(outcome, latency_ms=_elapsed_ms(started))
    return apply_latency_threshold(check, outcome)


def apply_latency_threshold(check: HealthCheck, outcome: Outcome) -> Outcome:
    threshold = check.degraded_latency_ms
    if (
        outcome.verdict == Verdict.UP
        and threshold
        and outcome.latency_ms is not None
        and outcome.latency_ms > threshold
    ):
        return Outcome.degraded(
            f"Slow: {outcome.latency_ms:.0f} ms, above {threshold} ms",
            latency_ms=outcome.latency_ms,
            status_code=outcome.status_code,
        )
    return outcome


def describe_error(error: BaseException) -> str:
    text = str(error) or error.__class__.__name__
    if isinstance(error, httpx.ConnectError):
        return f"Cannot connect: {text}"
    if isinstance(error, ConnectionRefusedError):
        return "Connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return text


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
