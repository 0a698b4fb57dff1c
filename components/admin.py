"""The staff side of components and their health checks.

Status changes are staff's word to the arbiter (component_status_state); runs of checks go
through check_run_now.
"""

import copy
from collections import Counter
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count
from django.forms.models import construct_instance
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from components.charts import check_chart_svg
from components.checks import KINDS
from components.checks.outcome import Outcome
from components.checks.services import (
    check_delete,
    check_run_now,
    check_save,
    checks_run_now,
)
from components.forms import ComponentActionForm, LatestStatusChangesFormSet, SlaTermsAdmin
from components.models import (
    CheckKind,
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    HealthCheck,
    StatusChangeCause,
    Verdict,
)
from components.reports.models import ReportSurge
from components.services import (
    StatusChangeError,
    component_create,
    component_delete,
    component_group_create,
    component_group_delete,
    component_group_update,
    component_update,
)
from components.status import component_status_state
from statuspage.lib.service_admin import ReadOnlyAdmin
from statuspage.models import PageSettings


class StatusChangeInline(admin.TabularInline):
    model = ComponentStatusChange
    formset = LatestStatusChangesFormSet
    fields = readonly_fields = ("at", "from_status", "to_status", "cause", "actor", "note")
    extra = 0
    can_delete = False
    verbose_name_plural = "status history (latest 20)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Component)
class ComponentAdmin(SlaTermsAdmin, admin.ModelAdmin):
    list_display = ["name", "group", "status", "internal", "position", "status_changed_at"]
    list_editable = ["status"]
    list_filter = ["status", "internal", "group__internal", "group"]
    list_select_related = ["group"]
    search_fields = ["name"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "description",
                    "group",
                    "position",
                    "status",
                    "internal",
                    "showcase",
                    "only_show_if_degraded",
                    "start_date",
                    ("public_id", "status_changed_at"),
                ]
            },
        ),
        (
            "Automation",
            {
                "fields": ["automation", "auto_incident", "auto_incident_recovery"],
                "description": "What this component's health checks may do. Checks never "
                "override a status staff or an open incident set.",
            },
        ),
        (
            gettext_lazy("SLA"),
            {
                "fields": ["sla_target", "sla_credit_tiers"],
                "description": gettext_lazy(
                    "Without a target of its own, a component takes its group's target and tiers."
                ),
            },
        ),
    ]
    readonly_fields = ["public_id", "status_changed_at"]
    inlines = [StatusChangeInline]
    action_form = ComponentActionForm
    actions = ["set_status"]
    change_form_template = "admin/components/component/change_form.html"

    def save_model(self, request, obj, form, change):
        """Create or edit through the services; the status is staff's word to the arbiter,
        which records it as a change (the admin's view is one transaction).

        Serves the change page, the add page and the changelist's editable column alike.
        """
        if change:
            fields = [name for name in form.changed_data if name != "status"]
            status = obj.status if "status" in form.changed_data else None
            if not fields and status is None:
                return  # saved unchanged: nothing the public sees moves
            component_update(component=obj, changes=_staff_changes(obj, fields))
            if status is not None:
                component_status_state(
                    component=obj, source=StatusChangeCause.STAFF, status=status, actor=request.user
                )
        else:
            fields = [name for name in form.fields if name != "status"]
            created = component_create(**{name: getattr(obj, name) for name in fields})
            component_status_state(
                component=created,
                source=StatusChangeCause.STAFF,
                status=obj.status,
                actor=request.user,
            )
            _saved_as(obj, created)

    def delete_model(self, request, obj):
        component_delete(component=obj)

    def delete_queryset(self, request, queryset):
        for component in queryset:
            component_delete(component=component)

    @admin.action(
        description=gettext_lazy("Set status of selected components"), permissions=["change"]
    )
    def set_status(self, request, queryset):
        status = request.POST.get("status", "")
        if status not in ComponentStatus.values:
            self.message_user(request, gettext("Choose the status to set."), messages.WARNING)
            return
        changed = 0
        for component in queryset:
            try:
                change = component_status_state(
                    component=component,
                    source=StatusChangeCause.STAFF,
                    status=status,
                    actor=request.user,
                )
            except StatusChangeError as error:
                self.message_user(request, str(error), messages.ERROR)
                continue
            if change is not None:
                self.log_change(request, component, [{"changed": {"fields": ["Status"]}}])
                changed += 1
        label = ComponentStatus(status).label
        self.message_user(
            request,
            gettext("%(changed)s of %(total)s set to %(status)s.")
            % {"changed": changed, "total": len(queryset), "status": label},
        )


def _staff_changes(component: Component, fields: list[str]) -> dict:
    """The edited fields' new values; a component moved to another group keeps the position
    staff gave it (the services would put it last)."""
    if "group" in fields and "position" not in fields:
        fields = [*fields, "position"]
    return {name: getattr(component, name) for name in fields}


def _saved_as(obj, saved) -> None:
    """Make the admin's unsaved instance the row a service created, for the rest of the view."""
    obj.pk = saved.pk
    obj.refresh_from_db()
    obj._state.adding = False


@admin.register(ComponentStatusChange)
class ComponentStatusChangeAdmin(ReadOnlyAdmin):
    """The status history, read-only: it is what uptime is computed from."""

    list_display = ["component", "from_status", "to_status", "at", "cause", "actor", "note"]
    list_filter = ["cause", "component", "to_status"]
    list_select_related = ["component", "actor"]
    date_hierarchy = "at"
    search_fields = ["component__name", "note"]


@admin.register(ReportSurge)
class ReportSurgeAdmin(ReadOnlyAdmin):
    """Surges of visitors' problem reports, read-only: surge detection keeps them (counts only)."""

    list_display = ["__str__", "component", "started_at", "ended_at", "peak_count", "usual_text"]
    list_filter = [("ended_at", admin.EmptyFieldListFilter), "component"]
    list_select_related = ["component"]
    date_hierarchy = "started_at"

    @admin.display(description=gettext_lazy("Usually"))
    def usual_text(self, surge: ReportSurge) -> str:
        return surge.usual_text


class GroupComponentInline(admin.TabularInline):
    model = Component
    fields = ["name", "position", "status"]
    readonly_fields = ["status"]
    extra = 0
    show_change_link = True


@admin.register(ComponentGroup)
class ComponentGroupAdmin(SlaTermsAdmin, admin.ModelAdmin):
    list_display = ["name", "position", "internal", "component_count"]
    list_filter = ["internal"]
    fields = ["name", "description", "position", "internal", "sla_target", "sla_credit_tiers"]
    inlines = [GroupComponentInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(component_count=Count("components"))

    @admin.display(description=gettext_lazy("components"), ordering="component_count")
    def component_count(self, group):
        return group.component_count

    def save_model(self, request, obj, form, change):
        if change:
            component_group_update(
                group=obj, changes={name: getattr(obj, name) for name in form.changed_data}
            )
        else:
            created = component_group_create(
                name=obj.name,
                description=obj.description,
                position=obj.position,
                internal=obj.internal,
                sla_target=obj.sla_target,
                sla_credit_tiers=obj.sla_credit_tiers,
            )
            _saved_as(obj, created)

    def save_formset(self, request, form, formset, change):
        """The group's components, added, edited or deleted inline, through the services."""
        formset.save(commit=False)
        for component in formset.deleted_objects:
            component_delete(component=component)
        for component, fields in formset.changed_objects:
            component_update(component=component, changes=_staff_changes(component, fields))
        for component in formset.new_objects:
            created = component_create(
                name=component.name, group=form.instance, position=component.position
            )
            _saved_as(component, created)

    def delete_model(self, request, obj):
        component_group_delete(group=obj)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            component_group_delete(group=group)


# Health checks

RECENT_RESULTS = 20

# The change form, one section per kind of check; fields several kinds share sit in the
# first section that uses them, and the others' help says where.
CHECK_FIELDSETS: list[tuple[str | None, dict[str, Any]]] = [
    (
        None,
        {"fields": ["component", "name", "kind", "enabled", ("interval", "timeout")]},
    ),
    (
        "HTTP(S)",
        {
            "fields": [
                "url",
                ("method", "follow_redirects", "verify_tls"),
                "headers",
                "body",
                "expect_status",
                ("keyword", "keyword_absent"),
                "json_assertion",
            ],
            "description": "A request to URL, judged by its status code, a keyword in its "
            "body and an assertion on its JSON. Prometheus and upstream status page checks "
            "take their server's base URL here too.",
        },
    ),
    (
        "TCP / TLS",
        {
            "fields": [("host", "port"), "expiry_warning_days"],
            "description": "TCP checks connect to Host and Port. TLS checks also read the "
            "certificate there (port 443 when empty) and warn this many days before it "
            "expires. DNS checks ask for Host's records.",
        },
    ),
    (
        "DNS",
        {
            "fields": ["record_type", "expected_values", "resolver"],
            "description": "The records of Host (above) of this type; when expected values "
            'are given, e.g. ["192.0.2.10"], the answer must contain them.',
        },
    ),
    (
        "Heartbeat",
        {
            "fields": ["grace"],
            "description": "Your job calls its ping URL (shown at the top once saved) at "
            "least every interval. The check is down after interval + grace of silence, or "
            "at once when the job calls the URL ending in /fail/.",
        },
    ),
    (
        "Prometheus",
        {
            "fields": ["query", ("comparison", "threshold")],
            "description": "URL (under HTTP(S)) is the Prometheus server. The check fails "
            "when the query's value, compared with the threshold, holds.",
        },
    ),
    (
        "Upstream status page",
        {
            "fields": ["upstream_component"],
            "description": "URL (under HTTP(S)) is the vendor's status page; this names "
            "their component, by id or name.",
        },
    ),
    (
        "Policy",
        {
            "fields": [
                ("failures_before_down", "down_status"),
                "successes_before_up",
                "degraded_latency_ms",
                "show_on_page",
            ],
            "description": "How many runs in a row it takes to change the verdict, and "
            "what the component's status becomes.",
        },
    ),
    (
        "Locations",
        {
            "fields": ["locations", "quorum"],
            "description": "Heartbeats are judged in one place; other kinds run from each "
            "location, and the verdict changes when a quorum of them agrees.",
        },
    ),
]

# The sections each kind uses; on a saved check, the others start folded away.
KIND_SECTIONS = {
    CheckKind.HTTP: {"HTTP(S)"},
    CheckKind.TCP: {"TCP / TLS"},
    CheckKind.TLS: {"TCP / TLS"},
    CheckKind.DNS: {"TCP / TLS", "DNS"},
    CheckKind.HEARTBEAT: {"Heartbeat"},
    CheckKind.PROMETHEUS: {"HTTP(S)", "Prometheus"},
    CheckKind.UPSTREAM: {"HTTP(S)", "Upstream status page"},
}
KIND_SPECIFIC = {title for sections in KIND_SECTIONS.values() for title in sections}


class HealthCheckForm(forms.ModelForm):
    """The kind's own rules, from its class in components/checks/, on the fields they name.

    HealthCheckAdmin gives it its model and the fields of its fieldsets.
    """

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned_data = self.cleaned_data  # what ModelForm.clean() returns
        self._clean_json_shapes(cleaned_data)
        kind = KINDS.get(cleaned_data.get("kind", ""))
        if kind is None:
            if cleaned_data.get("kind"):
                self.add_error("kind", "Beacon cannot run this kind of check yet.")
            return cleaned_data
        candidate = construct_instance(self, copy.copy(self.instance))
        for field, message in kind.validate(candidate).items():
            if field in self.errors:
                continue  # the field's own error says more
            if field in self.fields:
                self.add_error(field, message)
            else:
                model_field = HealthCheck._meta.get_field(field)
                assert isinstance(model_field, models.Field)  # kinds name HealthCheck's own
                label = model_field.verbose_name
                self.add_error(None, f"{label.capitalize()}: {message}")
        return cleaned_data

    def _clean_json_shapes(self, cleaned_data):
        """JSON fields hold a list or an object, as their defaults do; empty means the default."""
        for name, value in list(cleaned_data.items()):
            field = HealthCheck._meta.get_field(name)
            if not isinstance(field, models.JSONField):
                continue
            default = field.get_default()
            if value is None:
                cleaned_data[name] = default
            elif not isinstance(value, type(default)):
                shape = "list" if isinstance(default, list) else "object"
                self.add_error(name, f"Enter a JSON {shape}.")


def ago(moment: datetime, now: datetime | None = None) -> str:
    """How long ago, in the fewest words: "just now", "40 s ago", "3 min ago", "2 h ago"."""
    seconds = int(((now or timezone.now()) - moment).total_seconds())
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def outcome_text(outcome: Outcome) -> str:
    parts = [str(Verdict(outcome.verdict).label)]
    if outcome.latency_ms is not None:
        parts.append(f"{outcome.latency_ms:.0f} ms")
    if outcome.status_code is not None:
        parts.append(f"HTTP {outcome.status_code}")
    if outcome.error:
        parts.append(outcome.error)
    return " · ".join(parts)


def ping_url(request, check: HealthCheck) -> str:
    """The heartbeat URL a job calls: under the page's public URL when it is set."""
    base = PageSettings.load().url or request.build_absolute_uri("/")
    return base.rstrip("/") + check.ping_path


@admin.register(HealthCheck)
class HealthCheckAdmin(admin.ModelAdmin):
    form = HealthCheckForm
    change_form_template = "admin/components/healthcheck/change_form.html"
    list_display = [
        "component",
        "name",
        "kind",
        "enabled",
        "verdict",
        "last_run",
        "last_latency",
        "short_last_error",
    ]
    list_display_links = ["name"]
    list_filter = ["kind", "verdict", "enabled", "component"]
    list_select_related = ["component"]
    search_fields = ["name", "component__name", "url", "host"]
    readonly_fields = ["response_time"]
    actions = ["run_selected"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request, obj, form, change):
        check_save(check=obj, changed=form.changed_data if change else None)

    def delete_model(self, request, obj):
        check_delete(check=obj)

    def delete_queryset(self, request, queryset):
        for check in queryset:
            check_delete(check=check)

    def get_fieldsets(self, request, obj=None):
        wanted = KIND_SECTIONS.get(obj.kind, set()) if obj else KIND_SPECIFIC
        fieldsets = [
            (title, {**options, "classes": ["collapse"]})
            if title in KIND_SPECIFIC and title not in wanted
            else (title, options)
            for title, options in CHECK_FIELDSETS
        ]
        if obj is not None:
            fieldsets.append(("Response time", {"fields": ["response_time"]}))
        return fieldsets

    def get_urls(self):
        return [
            path(
                "<path:object_id>/run/",
                self.admin_site.admin_view(require_POST(self.run_now_view)),
                name="components_healthcheck_run",
            ),
            *super().get_urls(),
        ]

    # The change page: the latest word above the form, and "Run now"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        check = self.get_object(request, unquote(object_id))
        if check is not None:
            extra_context = {**self._panel_context(request, check), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def _panel_context(self, request, check: HealthCheck) -> dict:
        return {
            "check": check,
            "can_run": self.has_change_permission(request, check),
            "run_url": reverse("admin:components_healthcheck_run", args=[check.pk]),
            "location_states": check.location_states.order_by("location"),
            "recent_results": check.results.all()[:RECENT_RESULTS],
            "last_run_ago": ago(check.last_run_at) if check.last_run_at else "",
            "ping_url": ping_url(request, check) if check.kind == CheckKind.HEARTBEAT else "",
        }

    def run_now_view(self, request, object_id):
        check = self.get_object(request, unquote(object_id))
        if check is None:
            raise Http404("No such health check.")
        if not self.has_change_permission(request, check):
            raise PermissionDenied
        outcome = check_run_now(check=check)
        if request.htmx:
            check.refresh_from_db()
            context = {
                **self._panel_context(request, check),
                "outcome": outcome,
                "outcome_verdict": Verdict(outcome.verdict).label,
            }
            return render(
                request, "admin/components/healthcheck/change_form.html#run-result", context
            )
        level = messages.SUCCESS if outcome.verdict == Verdict.UP else messages.WARNING
        self.message_user(
            request,
            gettext("Ran “%(name)s”: %(outcome)s")
            % {"name": check.name, "outcome": outcome_text(outcome)},
            level,
        )
        return redirect("admin:components_healthcheck_change", check.pk)

    @admin.action(description=gettext_lazy("Run selected checks now"), permissions=["change"])
    def run_selected(self, request, queryset):
        verdicts: Counter[str] = Counter()
        checks = list(queryset.select_related("component"))
        for check, outcome in zip(checks, checks_run_now(checks=checks), strict=True):
            verdicts[Verdict(outcome.verdict).label.lower()] += 1
            if outcome.verdict != Verdict.UP:
                self.message_user(request, f"{check}: {outcome_text(outcome)}", messages.WARNING)
        summary = ", ".join(f"{count} {label}" for label, count in verdicts.items())
        total = sum(verdicts.values())
        self.message_user(
            request,
            ngettext(
                "Ran %(total)s check: %(summary)s.", "Ran %(total)s checks: %(summary)s.", total
            )
            % {"total": total, "summary": summary},
        )

    # Columns and read-only fields

    @admin.display(description=gettext_lazy("last run"), ordering="last_run_at")
    def last_run(self, check):
        if check.last_run_at is None:
            return "Never"
        return format_html(
            '<time datetime="{}" title="{}">{}</time>',
            check.last_run_at.isoformat(),
            timezone.localtime(check.last_run_at).strftime("%Y-%m-%d %H:%M:%S %Z"),
            ago(check.last_run_at),
        )

    @admin.display(description=gettext_lazy("latency"), ordering="last_latency_ms")
    def last_latency(self, check):
        if check.last_latency_ms is None:
            return "–"
        return f"{check.last_latency_ms:.0f} ms"

    @admin.display(description=gettext_lazy("last error"))
    def short_last_error(self, check):
        return Truncator(check.last_error).chars(80)

    @admin.display(description=gettext_lazy("Response time"))
    def response_time(self, check):
        if check.pk is None:
            return "No data yet."
        return check_chart_svg(check) or "No data yet."


from components.alerts import admin as alerts_admin  # noqa: E402, F401
