"""Statuspage's public API v2 (`/api/v2/*.json`), for clients written against Statuspage.

Each endpoint is built once per change and served from the public cache with ETag,
Last-Modified, a short max-age and CORS (statuspage.public_http). The cache key is the
endpoint's name, so query strings such as `?cachebust=1` never reach the database.

`page.updated_at` is the time of the last change to anything public: the start of the
current public-cache generation, the same instant as the Last-Modified header.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_safe

from incidents.models import ACTIVE_MAINTENANCE_STATUSES, IncidentStatus
from statuspage import public_cache, selectors
from statuspage.public_http import public_output
from statuspage.statuspage_json import (
    Json,
    PageJson,
    incident_json,
    page_json,
    page_json_context,
    status_json,
)

UPCOMING = [IncidentStatus.SCHEDULED]
ACTIVE = list(ACTIVE_MAINTENANCE_STATUSES)

Build = Callable[[PageJson, selectors.ComponentTree], Json]


def _serve(request: HttpRequest, name: str, build: Build) -> HttpResponse:
    def render(base_url: str) -> bytes:
        ctx, tree = _page_context(base_url, public_cache.generation())
        data = build(ctx, tree)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    return public_output(request, render, "application/json")


_context_memo: dict[tuple[str, str], tuple[PageJson, selectors.ComponentTree]] = {}


def _page_context(base_url: str, generation: str) -> tuple[PageJson, selectors.ComponentTree]:
    """The serialised components, once per generation: a rebuild renders eight endpoints."""
    key = (base_url, generation)
    if key not in _context_memo:
        tree = selectors.component_tree()
        ctx = page_json_context(
            page=tree.page,
            base_url=base_url,
            updated_at=datetime.fromtimestamp(public_cache.changed_at(generation), UTC),
            components=tree.components,
            groups=tree.groups,
        )
        _context_memo.clear()
        _context_memo[key] = (ctx, tree)
    return _context_memo[key]


def _incidents(ctx: PageJson, incidents) -> list[Json]:
    return [incident_json(incident, ctx) for incident in incidents]


@require_safe
def summary(request: HttpRequest) -> HttpResponse:
    return _serve(
        request,
        "summary",
        lambda ctx, tree: {
            "page": page_json(ctx),
            "components": ctx.components,
            "incidents": _incidents(ctx, selectors.recent_incidents(unresolved=True, limit=None)),
            "scheduled_maintenances": _incidents(
                ctx, selectors.recent_maintenances(statuses=UPCOMING + ACTIVE, limit=None)
            ),
            "status": status_json(tree.status),
        },
    )


@require_safe
def status(request: HttpRequest) -> HttpResponse:
    return _serve(
        request,
        "status",
        lambda ctx, tree: {"page": page_json(ctx), "status": status_json(tree.status)},
    )


@require_safe
def components(request: HttpRequest) -> HttpResponse:
    return _serve(
        request,
        "components",
        lambda ctx, tree: {"page": page_json(ctx), "components": ctx.components},
    )


@require_safe
def incidents(request: HttpRequest) -> HttpResponse:
    return _serve(
        request,
        "incidents",
        lambda ctx, tree: {
            "page": page_json(ctx),
            "incidents": _incidents(ctx, selectors.recent_incidents()),
        },
    )


@require_safe
def incidents_unresolved(request: HttpRequest) -> HttpResponse:
    return _serve(
        request,
        "incidents/unresolved",
        lambda ctx, tree: {
            "page": page_json(ctx),
            "incidents": _incidents(ctx, selectors.recent_incidents(unresolved=True, limit=None)),
        },
    )


@require_safe
def scheduled_maintenances(request: HttpRequest) -> HttpResponse:
    return _serve(
        request,
        "scheduled-maintenances",
        lambda ctx, tree: {
            "page": page_json(ctx),
            "scheduled_maintenances": _incidents(ctx, selectors.recent_maintenances()),
        },
    )


@require_safe
def scheduled_maintenances_upcoming(request: HttpRequest) -> HttpResponse:
    return _serve(
        request,
        "scheduled-maintenances/upcoming",
        lambda ctx, tree: {
            "page": page_json(ctx),
            "scheduled_maintenances": _incidents(
                ctx, selectors.recent_maintenances(statuses=UPCOMING, limit=None)
            ),
        },
    )


@require_safe
def scheduled_maintenances_active(request: HttpRequest) -> HttpResponse:
    return _serve(
        request,
        "scheduled-maintenances/active",
        lambda ctx, tree: {
            "page": page_json(ctx),
            "scheduled_maintenances": _incidents(
                ctx, selectors.recent_maintenances(statuses=ACTIVE, limit=None)
            ),
        },
    )


urlpatterns = [
    path("api/v2/summary.json", summary, name="api-v2-summary"),
    path("api/v2/status.json", status, name="api-v2-status"),
    path("api/v2/components.json", components, name="api-v2-components"),
    path("api/v2/incidents.json", incidents, name="api-v2-incidents"),
    path(
        "api/v2/incidents/unresolved.json",
        incidents_unresolved,
        name="api-v2-incidents-unresolved",
    ),
    path(
        "api/v2/scheduled-maintenances.json",
        scheduled_maintenances,
        name="api-v2-scheduled-maintenances",
    ),
    path(
        "api/v2/scheduled-maintenances/upcoming.json",
        scheduled_maintenances_upcoming,
        name="api-v2-scheduled-maintenances-upcoming",
    ),
    path(
        "api/v2/scheduled-maintenances/active.json",
        scheduled_maintenances_active,
        name="api-v2-scheduled-maintenances-active",
    ),
]
