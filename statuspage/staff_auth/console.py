"""The staff console: the admin's index, as the page a Responder keeps open in an outage.

It puts above the stock list of model names what the page says and why: every component
with its status, who set it (staff, an incident, a maintenance, a health check, an alert, the
API) and since when; what disagrees with the page (checks failing or alerts firing for a
component it shows operational with no open incident, or a surge of visitors' problem
reports for one), each set right in one click; the open incidents with the time since their
last public update, amber and then red past the page's promised interval; and the drafts
Beacon prepared (for checks, alerts and report surges), each publishable in one click.
The region refreshes itself every few seconds with htmx (its own URL answers the partial),
so an open console follows checks and alerts as they move components.
"""

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from components.models import Component, StatusChangeCause
from components.selectors import component_status_sources, disagreements
from components.status import component_status_state
from components.status_choices import as_component_status
from incidents.selectors import drafts_waiting, open_incidents_silence, report_surges_disagreeing
from statuspage.models import PageSettings

REFRESH_SECONDS = 10


def console_context(request: HttpRequest) -> dict[str, object]:
    drafts = drafts_waiting()
    return {
        "status_sources": component_status_sources(),
        "disagreements": disagreements(),
        "report_surges": report_surges_disagreeing(drafts=drafts),
        "may_set_status": request.user.has_perm("components.change_component"),
        "silences": open_incidents_silence(interval=PageSettings.load().update_interval),
        "drafts": drafts,
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


@require_POST
def set_status(request: HttpRequest, component_id: int) -> HttpResponse:
    """The one-click fix for a disagreement: staff set the status the checks or alerts call
    for (the arbiter records it as staff's word, with who)."""
    staff = request.user
    assert isinstance(staff, User)  # the admin lets in only signed-in staff
    if not staff.has_perm("components.change_component"):
        raise PermissionDenied
    component = get_object_or_404(Component, pk=component_id)
    try:
        status = as_component_status(request.POST.get("status", ""))
    except ValueError:
        return HttpResponseBadRequest("Choose one of the five component statuses.")
    component_status_state(
        component=component, source=StatusChangeCause.STAFF, status=status, actor=staff
    )
    component.refresh_from_db()
    messages.success(request, f"{component.name} is now {component.get_status_display()}.")
    return HttpResponseRedirect(reverse("admin:index"))
