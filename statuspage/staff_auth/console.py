"""The staff console: the admin's index, as the page a Responder keeps open in an outage.

It puts above the stock list of model names what the page says and why: every component
with its status, who set it (staff, an incident, a maintenance, a health check, an alert, the
API) and since when, and the drafts health checks prepared, each publishable in one click.
The region refreshes itself every few seconds with htmx (its own URL answers the partial),
so an open console follows checks and alerts as they move components.
"""

from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from components.selectors import component_status_sources
from incidents.selectors import drafts_waiting

REFRESH_SECONDS = 10


def console_context(request: HttpRequest) -> dict[str, object]:
    return {
        "status_sources": component_status_sources(),
        "drafts": drafts_waiting(),
        "may_publish": request.user.has_perm("incidents.add_incident"),
        "refresh_seconds": REFRESH_SECONDS,
    }


def live_partial(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """The console's live region alone: what its htmx refresh swaps in."""
    return TemplateResponse(
        request,
        "admin/console/live.html",
        {**site.each_context(request), **console_context(request)},
    )
