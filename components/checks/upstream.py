"""Upstream status page: a vendor's component, read from its Statuspage-compatible API.

`url` is the page's base URL (https://www.githubstatus.com); its /api/v2/components.json
names the component by `id` (exact) or `name` (any case). Its status maps to a verdict:

- operational: up;
- degraded_performance: degraded;
- partial_outage, major_outage: down, so the component takes the check's `down_status`;
- under_maintenance: degraded. The vendor's service may work or not during planned work;
  degraded tells the page's readers something is going on without claiming an outage
  that the vendor itself does not report.

A status Beacon does not know, a component not on the page, a name that several
components share (use the id then) or an answer that is not the API's are down: the check
cannot say the vendor is well.
"""

import json
from typing import Any

import httpx

from components.checks.base import CheckKindRunner
from components.checks.http import MAX_BODY_BYTES, fetch
from components.checks.outcome import Outcome
from components.models import ComponentStatus, HealthCheck, Verdict
from statuspage.lib.network import NOT_HTTP, url_problem

VERDICTS: dict[str, str] = {
    ComponentStatus.OPERATIONAL: Verdict.UP,
    ComponentStatus.DEGRADED_PERFORMANCE: Verdict.DEGRADED,
    ComponentStatus.UNDER_MAINTENANCE: Verdict.DEGRADED,
    ComponentStatus.PARTIAL_OUTAGE: Verdict.DOWN,
    ComponentStatus.MAJOR_OUTAGE: Verdict.DOWN,
}


class UpstreamCheck(CheckKindRunner):
    required = ("url", "upstream_component")

    def validate(self, check: HealthCheck) -> dict[str, str]:
        errors = super().validate(check)
        problem = check.url and url_problem(check.url)
        if problem:
            same = problem == NOT_HTTP
            errors["url"] = "The status page's http:// or https:// URL." if same else problem
        return errors

    async def run(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        url = check.url.rstrip("/") + "/api/v2/components.json"
        return judge(check, *await fetch(client, url))


def judge(check: HealthCheck, status_code: int, body: bytes) -> Outcome:
    page = check.url.rstrip("/")
    if status_code != 200:
        return Outcome.down(f"Status {status_code} from {page}", status_code=status_code)
    try:
        components = json.loads(body)["components"]
        matches = _find(components, check.upstream_component.strip())
    except (ValueError, KeyError, TypeError, AttributeError):
        too_big = len(body) >= MAX_BODY_BYTES
        return Outcome.down(
            f"Not a Statuspage components.json{' (over 1 MB)' if too_big else ''}: {page}",
            status_code=status_code,
        )
    if not matches:
        return Outcome.down(
            f"No component named {check.upstream_component!r} on {page}", status_code=status_code
        )
    if len(matches) > 1:
        return Outcome.down(
            f"{len(matches)} components named {check.upstream_component!r} on {page}: "
            f"use the id of one ({', '.join(str(c.get('id')) for c in matches)})",
            status_code=status_code,
        )
    [component] = matches
    status = component.get("status")
    verdict = VERDICTS.get(str(status))
    if verdict == Verdict.UP:
        return Outcome.up(status_code=status_code)
    error = f"Upstream says {status} for {component.get('name')}"
    if verdict == Verdict.DEGRADED:
        return Outcome.degraded(error, status_code=status_code)
    if verdict is None:
        error = (
            f"Upstream says {status!r} for {component.get('name')}, a status Beacon does not know"
        )
    return Outcome.down(error, status_code=status_code)


def _find(components: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    """The component with this id; else those with this name, in any case."""
    by_id = [component for component in components if component["id"] == wanted]
    if by_id:
        return by_id
    return [c for c in components if str(c["name"]).strip().casefold() == wanted.casefold()]
