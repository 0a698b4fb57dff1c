"""Statuspage's public API v2 (`/api/v2/*.json`), for clients written against Statuspage.

Each endpoint is built once per change and served from the public cache with ETag,
Last-Modified, a short max-age and CORS (statuspage.public.public_http). The cache key is the
endpoint's name, so query strings such as `?cachebust=1` never reach the database.

`page.updated_at` is the time of the last change to anything public: the start of the
current public-cache generation, the same instant as the Last-Modified header.
"""

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_safe

from components.selectors import ComponentTree, component_tree
from incidents.models import ACTIVE_MAINTENANCE_STATUSES, Incident, IncidentStatus
from incidents.statuspage_json import (
    Json,
    PageJson,
    incident_json,
    page_json,
    page_json_context,
    status_json,
)
from statuspage.public import public_cache, selectors
from statuspage.public.public_http import public_output

UPCOMING = [IncidentStatus.SCHEDULED]
ACTIVE = list(ACTIVE_MAINTENANCE_STATUSES)

Build = Callable[[PageJson, ComponentTree], Json]


_context_memo: dict[tuple[str, str], tuple[PageJson, ComponentTree]] = {}


def _page_context(base_url: str, generation: str) -> tuple[PageJson, ComponentTree]:
    """The serialised components, once per generation: a rebuild renders eight endpoints."""
    key = (base_url, generation)
    if key not in _context_memo:
        tree = component_tree()
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


def _incidents(ctx: PageJson, incidents: Iterable[Incident]) -> list[Json]:
    return [incident_json(incident, ctx) for incident in incidents]


def _summary(ctx: PageJson, tree: ComponentTree) -> Json:
    return {
        "page": page_json(ctx),
        "components": ctx.components,
        "incidents": _incidents(ctx, selectors.recent_incidents(unresolved=True, limit=None)),
        "scheduled_maintenances": _incidents(
            ctx, selectors.recent_maintenances(statuses=UPCOMING + ACTIVE, limit=None)
        ),
        "status": status_json(tree.status),
    }


def _listing(key: str, incidents: Callable[[], list[Incident]]) -> Build:
    return lambda ctx, tree: {"page": page_json(ctx), key: _incidents(ctx, incidents())}


# Path under /api/v2/, URL name suffix, and what the document holds.
ENDPOINTS: list[tuple[str, str, Build]] = [
    ("summary.json", "summary", _summary),
    (
        "status.json",
        "status",
        lambda ctx, tree: {"page": page_json(ctx), "status": status_json(tree.status)},
    ),
    (
        "components.json",
        "components",
        lambda ctx, tree: {"page": page_json(ctx), "components": ctx.components},
    ),
    ("incidents.json", "incidents", _listing("incidents", selectors.recent_incidents)),
    (
        "incidents/unresolved.json",
        "incidents-unresolved",
        _listing("incidents", lambda: selectors.recent_incidents(unresolved=True, limit=None)),
    ),
    (
        "scheduled-maintenances.json",
        "scheduled-maintenances",
        _listing("scheduled_maintenances", selectors.recent_maintenances),
    ),
    (
        "scheduled-maintenances/upcoming.json",
        "scheduled-maintenances-upcoming",
        _listing(
            "scheduled_maintenances",
            lambda: selectors.recent_maintenances(statuses=UPCOMING, limit=None),
        ),
    ),
    (
        "scheduled-maintenances/active.json",
        "scheduled-maintenances-active",
        _listing(
            "scheduled_maintenances",
            lambda: selectors.recent_maintenances(statuses=ACTIVE, limit=None),
        ),
    ),
]


@require_safe
def endpoint(request: HttpRequest, build: Build) -> HttpResponse:
    def render(base_url: str) -> bytes:
        ctx, tree = _page_context(base_url, public_cache.generation())
        return json.dumps(build(ctx, tree), ensure_ascii=False, separators=(",", ":")).encode()

    return public_output(request, render, "application/json")


urlpatterns = [
    path(f"api/v2/{suffix}", endpoint, {"build": build}, name=f"api-v2-{name}")
    for suffix, name, build in ENDPOINTS
]
