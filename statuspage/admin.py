"""The page's settings: one row, edited in place."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, StreamingHttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import path
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timesince import timeuntil
from django.utils.translation import gettext, gettext_lazy

from statuspage.api_v1.keys import (
    EXPIRY_WARNING,
    api_key_create,
    api_key_expiry_error,
    api_key_revoke,
)
from statuspage.audit import audit_csv_rows, audit_record
from statuspage.lib.service_admin import ReadOnlyAdmin
from statuspage.models import ApiKey, ApiKeyScope, AuditAction, AuditEvent, PageSettings
from statuspage.services import page_settings_update


@admin.register(PageSettings)
class PageSettingsAdmin(admin.ModelAdmin):
    fieldsets = [
        (None, {"fields": ["name", "url", "time_zone"]}),
        ("Links", {"fields": ["home_url", "support_url"]}),
        ("Look", {"fields": ["logo", "brand_color", "footer_text"]}),
        ("Search engines", {"fields": ["hidden_from_search_engines"]}),
        ("Uptime history", {"fields": ["show_uptime_history"]}),
        ("Subscribers", {"fields": ["allow_email_subscribers"]}),
        ("Incidents", {"fields": ["update_interval_minutes"]}),
        ("Visitor reports", {"fields": ["report_surge_drafts", "show_reports_chart"]}),
        ("Internal page", {"fields": ["internal_networks", "internal_email_domains"]}),
        ("Languages", {"fields": ["default_language", "enabled_languages"]}),
    ]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "enabled_languages":
            return forms.TypedMultipleChoiceField(
                choices=settings.LANGUAGES,
                widget=forms.CheckboxSelectMultiple,
                label="Enabled languages",
                help_text=db_field.help_text,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        page = PageSettings.load()
        return redirect("admin:statuspage_pagesettings_change", page.pk)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not PageSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        changes = {name: getattr(obj, name) for name in form.changed_data}
        page_settings_update(page=obj, changes=changes)


class ApiKeyState(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("unexpired", "Active"),
            ("expiring", "Expiring within 7 days"),
            ("expired", "Expired"),
            ("revoked", "Revoked"),
        ]

    def queryset(self, request, queryset):
        match self.value():
            case "unexpired":
                return queryset.unexpired().filter(owner__is_active=True)
            case "expiring":
                return queryset.expiring_within(EXPIRY_WARNING)
            case "expired":
                return queryset.expired()
            case "revoked":
                return queryset.revoked()
        return queryset


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "owner", "scope", "expires_at"]

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if refused := api_key_expiry_error(expires_at):
            raise forms.ValidationError(refused)
        return expires_at


def _moment(value) -> str:
    """As the admin shows the other times beside it, in a <time>."""
    shown = date_format(timezone.localtime(value), "DATETIME_FORMAT")
    return format_html('<time datetime="{}">{}</time>', value.isoformat(), shown)


def _icon(name: str, alt: str) -> str:
    return format_html('<img src="{}" alt="{}"> ', static(f"admin/img/icon-{name}.svg"), alt)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are shown once, when made; afterwards only their first characters. Scope and
    expiry are chosen then too: to change them, make a new key and revoke the old one."""

    form = ApiKeyForm
    list_display = [
        "name",
        "prefix",
        "owner",
        "scope",
        "state",
        "expires",
        "created_at",
        "last_used_at",
    ]
    list_filter = [ApiKeyState, "scope"]
    search_fields = ["name", "prefix", "owner__username"]
    fields = [
        "name",
        "owner",
        "prefix",
        "scope",
        "state",
        "expires",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["prefix", "state", "expires", "created_at", "last_used_at", "revoked_at"]
    radio_fields = {"scope": admin.VERTICAL}
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        # The rest exists once it is made.
        return self.fields if obj else ["name", "owner", "scope", "expires_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "name", "owner", "scope"] if obj else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "expires_at" in form.base_fields:
            zone = timezone.get_current_timezone_name()
            form.base_fields["expires_at"].help_text = (
                f"Time in {zone}. From this moment the key is refused. "
                "Leave both empty for a key that never expires."
            )
        return form

    def get_changeform_initial_data(self, request):
        # Least privilege: a person making a key in the admin picks writing on purpose.
        return {"owner": request.user.pk, "scope": ApiKeyScope.READ}

    # A key acts as its owner: only a superuser may make or see keys that act as someone else.
    def get_queryset(self, request):
        keys = super().get_queryset(request).select_related("owner")
        return keys if request.user.is_superuser else keys.filter(owner=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            expiring = ApiKey.objects.filter(owner=request.user).expiring_within(EXPIRY_WARNING)
            for key in expiring.order_by("expires_at"):
                self.message_user(
                    request,
                    gettext(
                        "Your API key “%(name)s” (%(prefix)s…) expires in %(left)s: make a new "
                        "one, put it where this one is used, then revoke this one."
                    )
                    % {"name": key.name, "prefix": key.prefix, "left": timeuntil(key.expires_at)},
                    messages.WARNING,
                )
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            return
        key, raw = api_key_create(
            owner=obj.owner, name=obj.name, scope=obj.scope, expires_at=obj.expires_at
        )
        obj.pk = key.pk
        obj.prefix, obj.digest = key.prefix, key.digest
        self.message_user(
            request,
            gettext(
                "The key for “%(name)s” is %(key)s — copy it now: it is not shown again. "
                "Send it as “Authorization: OAuth <key>”."
            )
            % {"name": key.name, "key": raw},
            messages.WARNING,
        )

    def has_change_permission(self, request, obj=None):
        return (
            False
            if obj is not None and obj.revoked_at
            else super().has_change_permission(request, obj)
        )

    @admin.display(description=gettext_lazy("state"))
    def state(self, key):
        if key.revoked_at:
            return "Revoked"
        if not key.owner.is_active:
            return "Stopped: its owner is deactivated"
        if key.is_expired:
            return format_html("{}<strong>Expired</strong>", _icon("no", "Expired:"))
        if key.expires_at and key.expires_at - timezone.now() <= EXPIRY_WARNING:
            return format_html(
                "{}<strong>Expires in {}</strong>",
                _icon("alert", "Warning:"),
                timeuntil(key.expires_at),
            )
        return "Active"

    @admin.display(description=gettext_lazy("expires"), ordering="expires_at")
    def expires(self, key):
        return _moment(key.expires_at) if key.expires_at else "Never"

    @admin.action(description=gettext_lazy("Revoke the selected keys"), permissions=["delete"])
    def revoke_selected(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key)
            audit_record(actor=request.user, action=AuditAction.API_KEY_REVOKED, target=key)
        self.message_user(
            request,
            gettext("Revoked %(count)s key(s).") % {"count": queryset.count()},
            messages.SUCCESS,
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin[AuditEvent]):
    """Read-only: nobody edits or deletes the trail here (only the retention prune does).
    Who may read it: superusers and the Admins group (the view permission)."""

    list_display = ["at", "actor_name", "action", "source", "target_type", "target_repr", "ip"]
    list_filter = ["action", "source", ("at", admin.DateFieldListFilter), "target_type"]
    search_fields = ["actor_name", "target_repr", "target_id", "target_type", "ip_address"]
    date_hierarchy = "at"
    list_select_related = False
    show_full_result_count = False
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    @admin.display(description=gettext_lazy("client address"), ordering="ip_address")
    def ip(self, event):
        return event.ip_address

    def get_list_filter(self, request):
        return [*self.list_filter, ActorFilter]

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        return [
            path("export.csv", export, name="statuspage_auditevent_export"),
            *super().get_urls(),
        ]

    def export_csv(self, request: HttpRequest) -> StreamingHttpResponse:
        """The list as filtered and searched on screen, streamed as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        events = changelist.get_queryset(request).order_by("-at", "-id")
        return StreamingHttpResponse(
            audit_csv_rows(events.iterator(chunk_size=2000)),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit-trail.csv"'},
        )


class ActorFilter(admin.SimpleListFilter):
    """The people who appear in the trail (a deleted user's events keep their name)."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        names = (
            AuditEvent.objects.exclude(actor_name="")
            .order_by("actor_name")
            .values_list("actor_name", flat=True)
            .distinct()[:200]
        )
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(actor_name=value) if value else queryset
