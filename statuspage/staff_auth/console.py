"""The staff console: the admin's index, as the page a Responder keeps open in an outage.

It replaces the stock list of model names with what the page says and why: every component
with its status, who set it (staff, an incident, a maintenance, a health check, an alert, the
API) and since when. The table refreshes itself every few seconds with htmx (its own URL
answers the partial), so an open console follows checks and alerts as they move components.
"""

from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from components.selectors import component_status_sources

REFRESH_SECONDS = 10


def console_context() -> dict[str, object]:
    return {"status_sources": component_status_sources(), "refresh_seconds": REFRESH_SECONDS}


def components_partial(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """The components table alone: what the console's htmx refresh swaps in."""
    return TemplateResponse(
        request,
        "admin/console/components.html",
        {**site.each_context(request), **console_context()},
    )
