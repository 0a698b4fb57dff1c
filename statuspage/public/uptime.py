"""The public uptime history: `/uptime/` (each showcased component's last twelve months) and
`/uptime/<id>/` (one component's months as calendars, with the incidents that affected it),
snapshot-served like `/`; and the day-by-day figures of one component as JSON and CSV
(`/api/v2/components/<id>/uptime.json` and `.csv`), which take a query string and so are
rendered by Django, cached per generation and range (docs/api.md).
"""

import csv
import hashlib
import io
import json

from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_safe

from components.models import Component, ComponentStatus
from components.uptime import DayUptime, UptimeRangeError
from incidents.selectors import uptime_report
from statuspage.lib.ids import could_be_public_id
from statuspage.lib.text import control_character_error, spreadsheet_cell
from statuspage.models import PageSettings
from statuspage.public import public_cache
from statuspage.public.public_http import public_output
from statuspage.public.selectors import (
    UptimeHistory,
    component_uptime_history,
    uptime_histories,
)
from statuspage.public.snapshots.build import NOT_FOUND_CACHE_CONTROL
from statuspage.public.views import _render

# How long a JSON or CSV answer is kept: the generation moves with every rollup (5 min).
REPORT_CACHE_SECONDS = 300
REPORT_CACHE_KEY = "beacon:uptime-report:{}:{}:{}"  # generation, id, range asked (JSON and CSV)
MAX_PARAM = 32


def _enabled() -> PageSettings:
    page = PageSettings.load()
    if not page.show_uptime_history:
        raise Http404("The uptime history is not shown.")
    return page


_histories_memo: dict[str, list[UptimeHistory]] = {}


def _histories_of_generation() -> list[UptimeHistory]:
    """The overview's figures once per generation: a rebuild renders /uptime/ once per
    enabled language (as api_v2 keeps its serialised components)."""
    generation = public_cache.generation()
    if generation not in _histories_memo:
        histories = uptime_histories()
        _histories_memo.clear()
        _histories_memo[generation] = histories
    return _histories_memo[generation]


@require_safe
def uptime(request: HttpRequest) -> HttpResponse:
    page = _enabled()
    return _render(
        request, "statuspage/uptime.html", {"page": page, "histories": _histories_of_generation()}
    )


@require_safe
def component_uptime(request: HttpRequest, public_id: str) -> HttpResponse:
    page = _enabled()
    if not could_be_public_id(public_id):
        raise Http404("No such component.")
    history = component_uptime_history(public_id)
    if history is None:
        raise Http404("No such component.")
    return _render(
        request,
        "statuspage/uptime_component.html",
        {"page": page, "history": history, "months": list(reversed(history.months))},
    )


# JSON and CSV: one component's days over a range (Statuspage's rules, as API v1's uptime).


class _BadRange(Exception):
    pass


def _report(request: HttpRequest, public_id: str) -> tuple[str, dict[str, object], list[list[str]]]:
    """The component's name and uptime report for the request's start and end, cached per
    generation. The cache is read first, so an answer given once is given again while
    PostgreSQL is away; a component made internal changes the generation, and so the key."""
    params = {name: request.GET.get(name) or None for name in ("start", "end")}
    for value in params.values():
        if value is not None and (
            len(value) > MAX_PARAM or control_character_error(value) is not None
        ):
            raise _BadRange("start and end are dates: YYYY, YYYY-MM or YYYY-MM-DD.")
    asked = hashlib.sha256(f"{params['start']}|{params['end']}".encode()).hexdigest()[:32]
    key = REPORT_CACHE_KEY.format(public_cache.generation(), public_id, asked)
    cached = cache.get(key)
    if cached is None:
        component = Component.objects.public().filter(public_id=public_id).first()
        if component is None:
            raise Http404("No such component.")
        try:
            report = uptime_report(
                public_id=component.public_id,
                name=component.name,
                components=[component],
                page=PageSettings.load(),
                include_internal=False,
                **params,
            )
        except UptimeRangeError as error:
            raise _BadRange(str(error)) from error
        cached = (component.name, report.body, [_day_row(day) for day in report.days])
        cache.set(key, cached, REPORT_CACHE_SECONDS)
    return cached


STATUSES = list(ComponentStatus)
CSV_HEADER = ["date", "uptime_percent", *(f"{s}_seconds" for s in STATUSES), "worst_status"]


def _day_row(day: DayUptime) -> list[str]:
    percent = day.uptime_percent
    return [
        day.day.isoformat(),
        "" if percent is None else f"{percent:.4f}",
        *(str(round(day.seconds.get(status, 0))) for status in STATUSES),
        day.worst_status or "",
    ]


def _error(message: str, status: int) -> JsonResponse:
    # The shape of every API error (statuspage/api_v1/base.py, views._error).
    response = JsonResponse({"error": message, "message": message}, status=status)
    response["Cache-Control"] = NOT_FOUND_CACHE_CONTROL if status == 404 else "no-store"
    return response


@require_safe
def uptime_report_output(request: HttpRequest, public_id: str, kind: str) -> HttpResponse:
    """`uptime.json` (the management API's uptime object) or `uptime.csv` (a row per day)."""
    if not could_be_public_id(public_id):
        return _error("Not found.", 404)  # before it names a cache key or a query
    try:
        name, body, rows = _report(request, public_id)
    except _BadRange as error:
        return _error(str(error), 400)
    except Http404:
        return _error("Not found.", 404)
    if kind == "json":
        encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return public_output(request, lambda base_url: encoded, "application/json")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["component", *CSV_HEADER])
    writer.writerows([spreadsheet_cell(name), *row] for row in rows)
    response = public_output(request, lambda base_url: out.getvalue(), "text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="uptime-{public_id}.csv"'
    return response


urlpatterns = [
    path("uptime/", uptime, name="uptime"),
    path("uptime/<str:public_id>/", component_uptime, name="component-uptime"),
    path(
        "api/v2/components/<str:public_id>/uptime.json",
        uptime_report_output,
        {"kind": "json"},
        name="api-v2-component-uptime",
    ),
    path(
        "api/v2/components/<str:public_id>/uptime.csv",
        uptime_report_output,
        {"kind": "csv"},
        name="api-v2-component-uptime-csv",
    ),
]
