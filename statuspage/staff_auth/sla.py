"""The staff's SLA report: one month of a component or group against its SLA, as a
printable page and as CSV (incidents/sla.py computes it; docs/sla.md says how).

At /admin/sla/?subject=component:<id>&month=YYYY-MM (&format=csv); staff who may view
components may read it.
"""

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from components.models import Component, ComponentGroup, ComponentStatus
from components.sla import DOWN_STATUSES
from components.sla_terms import parse_month
from incidents.sla import SlaReport, component_sla_report, group_sla_report, report_csv
from statuspage.models import PageSettings

PERMISSION = "components.view_component"


class SlaReportForm(forms.Form):
    subject = forms.ChoiceField(label=gettext_lazy("Component or group"))
    month = forms.CharField(
        label=gettext_lazy("Month"),
        max_length=7,
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
    )

    def __init__(self, *args, components, groups, **kwargs):
        super().__init__(*args, **kwargs)
        subject = self.fields["subject"]
        assert isinstance(subject, forms.ChoiceField)
        subject.choices = [
            (
                gettext("Components"),
                [(f"component:{c.public_id}", c.name) for c in components],
            ),
            (gettext("Groups"), [(f"group:{g.public_id}", g.name) for g in groups]),
        ]

    def clean_month(self) -> str:
        month = self.cleaned_data["month"]
        try:
            parse_month(month)
        except ValueError:
            raise forms.ValidationError(
                gettext("Give the month as YYYY-MM, for example 2026-03.")
            ) from None
        return month


def _report(subject: str, month: str, *, user) -> SlaReport:
    kind, _, public_id = subject.partition(":")
    if kind == "group":
        if not user.has_perm("components.view_componentgroup"):
            raise PermissionDenied  # as API v1's group report
        group = get_object_or_404(ComponentGroup, public_id=public_id)
        return group_sla_report(group=group, month=month)
    component = get_object_or_404(Component.objects.select_related("group"), public_id=public_id)
    return component_sla_report(component=component, month=month)


def sla_report_view(request: HttpRequest, *, site) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    components = list(Component.objects.in_page_order())
    groups = list(ComponentGroup.objects.order_by("position", "name"))
    page = PageSettings.load()
    initial = {
        "month": timezone.now().astimezone(page.zone).strftime("%Y-%m"),
        "subject": (
            f"component:{components[0].public_id}"
            if components
            else f"group:{groups[0].public_id}"
            if groups
            else ""
        ),
    }
    data = {**initial, **request.GET.dict()} if initial["subject"] or request.GET else None
    form = SlaReportForm(data, components=components, groups=groups)
    report, downtime, csv_url = None, [], ""
    if form.is_valid():
        subject, month = form.cleaned_data["subject"], form.cleaned_data["month"]
        report = _report(subject, month, user=request.user)
        if request.GET.get("format") == "csv":
            response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
            filename = f"sla-{report.public_id}-{report.uptime.month}.csv"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        downtime = [
            (ComponentStatus(status).label, report.uptime.figures.minutes(status))
            for status in DOWN_STATUSES
        ]
        query = QueryDict(mutable=True)
        query.update({**form.cleaned_data, "format": "csv"})
        csv_url = f"?{query.urlencode()}"
    context = {
        **site.each_context(request),
        "title": gettext("SLA report"),
        "form": form,
        "report": report,
        "downtime": downtime,
        "mttr_minutes": None
        if report is None or report.mttr_seconds is None
        else report.mttr_seconds / 60,
        "page_zone": page.zone,
        "csv_url": csv_url,
    }
    return TemplateResponse(request, "admin/sla_report.html", context)
