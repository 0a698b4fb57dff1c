"""The staff side of recurring maintenance: the series admin (the rule builder and a preview
of the next occurrences, asked again by htmx as the form changes), and one occurrence
cancelled from its own change page. Forms collect input; incidents.series.services writes."""

from datetime import datetime

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST

from incidents.forms_series import MaintenanceSeriesForm
from incidents.models import Incident, IncidentStatus, MaintenanceSeries
from incidents.series import services as series_services
from incidents.series.recurrence import Recurrence
from statuspage.lib.service_admin import ServiceFormAdmin, call_service

PREVIEW_COUNT = 5
# The fields a preview depends on (htmx sends them with each ask).
PREVIEW_FIELDS = (
    "[name^='first_'], [name='time_zone'], [name='duration_minutes'], [name='frequency'], "
    "[name='weekdays'], [name='interval'], [name='nth'], [name='month_weekday'], "
    "[name='custom_rule'], [name='skipped'], [name='csrfmiddlewaretoken']"
)
PREVIEW_ERROR_FIELDS = [
    "first_date",
    "first_time",
    "time_zone",
    "duration_minutes",
    "frequency",
    "weekdays",
    "interval",
    "nth",
    "month_weekday",
    "custom_rule",
    "skipped",
]


class IncidentPermissions(admin.ModelAdmin):
    """Maintenances and their series are incidents of another kind: whoever may run
    incidents may run them."""

    def _incident_permission(self, request, action):
        return request.user.has_perm(f"incidents.{action}_incident")

    def has_add_permission(self, request):
        return self._incident_permission(request, "add")

    def has_change_permission(self, request, obj=None):
        return self._incident_permission(request, "change")

    def has_delete_permission(self, request, obj=None):
        return self._incident_permission(request, "delete")

    def has_view_permission(self, request, obj=None):
        return self._incident_permission(request, "view") or self.has_change_permission(
            request, obj
        )


@admin.register(MaintenanceSeries)
class MaintenanceSeriesAdmin(IncidentPermissions, ServiceFormAdmin[MaintenanceSeries]):
    form = MaintenanceSeriesForm
    change_form_template = "admin/incidents/maintenanceseries/change_form.html"
    list_display = ["name", "rule", "time_zone", "next_start", "internal"]
    list_filter = ["internal"]
    search_fields = ["name"]
    readonly_fields = ["public_id", "created_by"]
    fieldsets = [
        (None, {"fields": [("name", "internal"), "body", "components"]}),
        (
            gettext_lazy("Window"),
            {"fields": [("first_date", "first_time"), "time_zone", "duration_minutes"]},
        ),
        (
            gettext_lazy("Recurrence"),
            {
                "fields": [
                    "frequency",
                    ("weekdays", "interval"),
                    ("nth", "month_weekday"),
                    "custom_rule",
                    "skipped",
                ]
            },
        ),
        (
            gettext_lazy("Steps and subscribers"),
            {
                "fields": [
                    ("scheduled_auto_in_progress", "scheduled_auto_completed"),
                    "deliver_notifications",
                    "scheduled_remind_prior",
                    "auto_transition_deliver_notifications_at_start",
                    "auto_transition_deliver_notifications_at_end",
                ]
            },
        ),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["fields"] = MaintenanceSeriesForm._meta.fields  # type: ignore[misc]
        return self.form_with_service_error(
            request, super().get_form(request, obj, change, **kwargs)
        )

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_preview"
        return [
            path("preview/", self.admin_site.admin_view(self.preview_view), name=name),
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name=name,
            ),
            *super().get_urls(),
        ]

    @admin.display(description=gettext_lazy("next start"))
    def next_start(self, series: MaintenanceSeries) -> datetime | None:
        starts = series_services.series_preview(series, count=1)
        return starts[0] if starts else None

    # The preview of the next occurrences

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_preview"
        context["preview_url"] = reverse(name, args=[obj.pk]) if obj else reverse(name)
        context["preview_fields"] = PREVIEW_FIELDS
        # Without JavaScript the preview is the saved series'.
        context["preview"] = self._preview_html(
            request,
            series_services.series_preview(obj, count=PREVIEW_COUNT) if obj else None,
            [],
            zone_name=obj.time_zone if obj else None,
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def preview_view(self, request: HttpRequest, object_id: str | None = None) -> HttpResponse:
        return require_POST(self._preview)(request, object_id)

    def _preview(self, request: HttpRequest, object_id: str | None) -> HttpResponse:
        series = None
        if object_id is not None:
            series = self.get_object(request, unquote(object_id))
            if series is None:
                raise Http404
            if not self.has_change_permission(request, series):
                raise PermissionDenied
        elif not self.has_add_permission(request):
            raise PermissionDenied
        data = request.POST.copy()
        data["name"] = data.get("name") or "-"  # the preview is of the rule, not the name
        form = MaintenanceSeriesForm(data=data, instance=series or MaintenanceSeries())
        starts = None
        errors: list[str] = []
        if form.is_valid():
            recurrence = Recurrence(
                text=form.cleaned_data["rule"], dtstart=form.cleaned_data["dtstart"]
            )
            starts = recurrence.next_starts(
                timezone.now(), PREVIEW_COUNT, skipped=form.cleaned_data["exdates"]
            )
        else:
            errors = [
                str(message)
                for field in PREVIEW_ERROR_FIELDS
                for message in form.errors.get(field, [])
            ] or [gettext("Fill in the window and the recurrence to see the next occurrences.")]
        zone_name = form.cleaned_data.get("time_zone")
        return HttpResponse(self._preview_html(request, starts, errors, zone_name=zone_name))

    def _preview_html(
        self,
        request: HttpRequest,
        starts: list[datetime] | None,
        errors: list[str],
        *,
        zone_name: str | None,
    ) -> str:
        return render_to_string(
            "admin/incidents/maintenanceseries/preview.html",
            {"starts": starts, "errors": errors, "zone_name": zone_name},
            request,
        )

    # Saving: every write goes through incidents.series

    def save_model(self, request, obj, form, change):
        if change:
            call_service(series_services.series_update, series=obj, **form.series_kwargs())
        else:
            created = call_service(
                series_services.series_create, **form.series_kwargs(), author=request.user
            )
            obj.pk = created.pk
            obj._state.adding = False
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        pass  # the components are set by the service

    def delete_model(self, request, obj):
        series_services.series_delete(series=obj)

    def delete_queryset(self, request, queryset):
        for series in queryset:
            series_services.series_delete(series=series)


def occurrence_context(incident: Incident) -> dict[str, object]:
    """What an occurrence's change page says of its series: the note, the link, and where
    "Cancel this occurrence" posts."""
    if incident.series is None:
        return {}
    return {
        "series": incident.series,
        "series_url": reverse(
            "admin:incidents_maintenanceseries_change", args=[incident.series.pk]
        ),
        "series_detached": incident.series_detached,
        "cancel_occurrence_url": reverse(
            "admin:incidents_scheduledmaintenance_cancel_occurrence", args=[incident.pk]
        )
        if incident.status == IncidentStatus.SCHEDULED
        else "",
    }


def cancel_occurrence(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str):
    """POST: skip this occurrence of its series (an EXDATE) and remove it."""
    incident = model_admin.get_object(request, unquote(object_id))
    if incident is None:
        raise Http404
    if not model_admin.has_change_permission(request, incident):
        raise PermissionDenied
    series = incident.series
    try:
        series_services.series_occurrence_cancel(incident=incident)
    except ValidationError as error:
        model_admin.message_user(request, " ".join(error.messages), messages.ERROR)
        return redirect("admin:incidents_scheduledmaintenance_change", incident.pk)
    model_admin.message_user(
        request,
        gettext("The occurrence of “%(name)s” is cancelled; the series skips it.")
        % {"name": incident.name},
        messages.SUCCESS,
    )
    if series is not None:
        return redirect("admin:incidents_maintenanceseries_change", series.pk)
    return redirect("admin:incidents_scheduledmaintenance_changelist")
