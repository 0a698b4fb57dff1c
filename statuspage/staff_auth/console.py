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
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from components.models import Component, StatusChangeCause
from components.reports.chart import reports_chart_html
from components.reports.selectors import reports_last_day
from components.selectors import component_status_sources, disagreements
from components.status import component_status_state
from components.status_choices import as_component_status
from incidents.admin import update_added
from incidents.models import Incident, IncidentKind
from incidents.selectors import (
    drafts_waiting,
    incidents_to_resolve,
    open_incidents_silence,
    report_surges_disagreeing,
)
from incidents.services import incident_resolve
from statuspage.models import PageSettings

REFRESH_SECONDS = 10
# Report counts reach PostgreSQL once a minute (the beat task persist-report-counts).
REPORTS_CHART_REFRESH_SECONDS = 60


def console_context(request: HttpRequest) -> dict[str, object]:
    drafts = drafts_waiting()
    return {
        "status_sources": component_status_sources(),
        "disagreements": disagreements(),
        "report_surges": report_surges_disagreeing(drafts=drafts),
        "resolve_suggestions": incidents_to_resolve(),
        "may_resolve": request.user.has_perm("incidents.change_incident"),
        "may_set_status": request.user.has_perm("components.change_component"),
        "silences": open_incidents_silence(interval=PageSettings.load().update_interval),
        "drafts": drafts,
        "may_publish": request.user.has_perm("incidents.add_incident"),
        "refresh_seconds": REFRESH_SECONDS,
    }


def reports_chart_context() -> dict[str, object]:
    """The 24-hour chart of visitors' reports, in the page's time zone."""
    chart = reports_last_day(now=timezone.now(), include_internal=True)
    return {
        "reports_chart": reports_chart_html(chart, zone=PageSettings.load().zone),
        "reports_chart_refresh_seconds": REPORTS_CHART_REFRESH_SECONDS,
    }


def reports_chart_partial(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """The reports chart alone, refreshed by htmx every minute (not with the live region:
    its numbers move once a minute)."""
    return TemplateResponse(
        request,
        "admin/console/reports_chart.html",
        {**site.each_context(request), **reports_chart_context()},
    )


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
        return HttpResponseBadRequest(gettext("Choose one of the five component statuses."))
    component_status_state(
        component=component, source=StatusChangeCause.STAFF, status=status, actor=staff
    )
    component.refresh_from_db()
    messages.success(
        request,
        gettext("%(name)s is now %(status)s.")
        % {"name": component.name, "status": component.get_status_display()},
    )
    return HttpResponseRedirect(reverse("admin:index"))


@require_POST
def resolve_incident(request: HttpRequest, incident_id: int, *, site: AdminSite) -> HttpResponse:
    """The one-click answer to "suggest resolving": a `resolved` update with the service's
    calm default body, notifying subscribers as any update does by default; recorded in the
    incident's history as the admin's own resolve button records it."""
    staff = request.user
    assert isinstance(staff, User)  # the admin lets in only signed-in staff
    if not staff.has_perm("incidents.change_incident"):
        raise PermissionDenied
    incident = get_object_or_404(Incident, pk=incident_id, kind=IncidentKind.INCIDENT)
    try:
        update = incident_resolve(incident=incident, author=staff)
    except ValidationError as error:  # closed meanwhile (another tab, another responder)
        messages.warning(request, " ".join(error.messages))
        return HttpResponseRedirect(reverse("admin:index"))
    site.get_model_admin(Incident).log_change(request, incident, [update_added(update)])
    messages.success(request, f"{incident.name}: {update}.")
    return HttpResponseRedirect(reverse("admin:index"))
