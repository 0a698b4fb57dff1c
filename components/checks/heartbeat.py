"""Heartbeat (push): the service pings Beacon; silence past interval + grace is down."""

from datetime import datetime, timedelta

import httpx
from django.utils import timezone

from components.checks.base import CheckKindRunner
from components.checks.outcome import Outcome
from components.models import HealthCheck


class HeartbeatCheck(CheckKindRunner):
    polled = False

    async def run(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        return judge(check, now=timezone.now())


def judge(check: HealthCheck, *, now: datetime) -> Outcome:
    if check.last_ping_at is None:
        waited = now - check.created_at
        if waited <= timedelta(seconds=check.interval + check.grace):
            return Outcome.up(latency_ms=0)
        return Outcome.down("No ping received yet", latency_ms=0)
    if check.last_ping_failed:
        return Outcome.down("The last ping reported a failure", latency_ms=0)
    silence = now - check.last_ping_at
    if silence > timedelta(seconds=check.interval + check.grace):
        return Outcome.down(
            f"No ping for {_duration(silence)} (expected every {check.interval} s "
            f"+ {check.grace} s grace)",
            latency_ms=0,
        )
    return Outcome.up(latency_ms=0)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
