"""Prometheus query: the check fails when `value <comparison> threshold` holds.

`url` is the server's base URL; the instant query `query` runs at /api/v1/query. Each series
of the answer (or the scalar) is compared with the threshold, and the check is down when
any series meets the condition: the component then takes the check's `down_status` (a
partial outage, say). Down, too, when Prometheus answers an error, or answers something
that is not an instant vector or scalar.

Two choices, both about data that says nothing:
- An empty result is up. A query like `error_rate > 0.05` selects only the bad series, and
  none selected means nothing is wrong; a query that matches no series at all (a metric
  renamed) is up for the same reason, so test a new query against your server once.
- A NaN value is skipped, never compared: `errors / requests` is NaN with no traffic, and
  no traffic is not an error rate above a threshold. ±Inf is compared like any number.
"""

import json
import math
import operator
from typing import Any

import httpx

from components.checks.base import CheckKindRunner
from components.checks.http import MAX_BODY_BYTES, fetch
from components.checks.outcome import Outcome
from components.models import HealthCheck
from statuspage.lib.network import NOT_HTTP, url_problem

COMPARISONS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
# The offending series named in a result; the rest are counted.
SHOWN = 3


class PrometheusCheck(CheckKindRunner):
    required = ("url", "query", "comparison", "threshold")

    def validate(self, check: HealthCheck) -> dict[str, str]:
        errors = super().validate(check)
        problem = check.url and url_problem(check.url)
        if problem:
            same = problem == NOT_HTTP
            errors["url"] = "The Prometheus server's http:// or https:// URL." if same else problem
        if check.comparison and check.comparison not in COMPARISONS:
            errors["comparison"] = f"One of {' '.join(COMPARISONS)}."
        return errors

    async def run(self, check: HealthCheck, client: httpx.AsyncClient) -> Outcome:
        url = check.url.rstrip("/") + "/api/v1/query"
        return judge(check, *await fetch(client, url, query=check.query))


def judge(check: HealthCheck, status_code: int, body: bytes) -> Outcome:
    if len(body) >= MAX_BODY_BYTES:
        return Outcome.down(
            f"The answer is over {MAX_BODY_BYTES // 1024 // 1024} MB: narrow the query",
            status_code=status_code,
        )
    try:
        document = json.loads(body)
    except ValueError:
        return Outcome.down(
            f"Status {status_code}, not a Prometheus answer", status_code=status_code
        )
    if not isinstance(document, dict):
        return Outcome.down("Not a Prometheus answer", status_code=status_code)
    if document.get("status") == "error":
        kind = document.get("errorType") or "error"
        return Outcome.down(
            f"Prometheus {kind}: {document.get('error', '')}", status_code=status_code
        )
    if status_code != 200 or document.get("status") != "success":
        return Outcome.down(
            f"Status {status_code}, not a Prometheus answer", status_code=status_code
        )
    try:
        samples = _samples(document["data"])
    except (KeyError, TypeError, ValueError, IndexError) as error:
        return Outcome.down(f"Unexpected answer: {error}", status_code=status_code)
    if check.threshold is None:  # validate() refuses this; a row written around it says why
        return Outcome.down("No threshold is set", status_code=status_code)
    compare = COMPARISONS[check.comparison]
    failing = [
        (labels, value)
        for labels, value in samples
        if not math.isnan(value) and compare(value, check.threshold)
    ]
    if not failing:
        return Outcome.up(status_code=status_code)
    shown = "; ".join(
        f"{labels} = {value:g} {check.comparison} {check.threshold:g}"
        for labels, value in failing[:SHOWN]
    )
    if len(failing) > SHOWN:
        shown += f"; and {len(failing) - SHOWN} more"
    return Outcome.down(shown, status_code=status_code)


def _samples(data: dict[str, Any]) -> list[tuple[str, float]]:
    """(series, value) of an instant vector or a scalar; ValueError for other results."""
    result_type, result = data["resultType"], data["result"]
    if result_type == "scalar":
        return [("scalar", float(result[1]))]
    if result_type == "vector":
        return [(_series(item["metric"]), float(item["value"][1])) for item in result]
    raise ValueError(f"a {result_type} result; use a query answering an instant vector or scalar")


def _series(metric: dict[str, Any]) -> str:
    """A series as PromQL writes it: name{label="value", …}."""
    name = metric.get("__name__", "")
    labels = ", ".join(
        f'{key}="{value}"' for key, value in sorted(metric.items()) if key != "__name__"
    )
    return f"{name}{{{labels}}}" if labels or not name else name
