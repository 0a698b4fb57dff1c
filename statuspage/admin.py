"""The page's settings: one row, edited in place."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path

from statuspage.api_keys import api_key_create, api_key_revoke
from statuspage.audit import audit_csv_rows, audit_record
from statuspage.models import ApiKey, AuditAction, AuditEvent, PageSettings


@admin.register(PageSettings)
class PageSettingsAdmin(admin.ModelAdmin):
    fieldsets = [
        (None, {"fields": ["name", "url", "time_zone"]}),
        ("Links", {"fields": ["home_url", "support_url"]}),
        ("Look", {"fields": ["logo", "brand_color", "footer_text"]}),
        ("Search engines", {"fields": ["hidden_from_search_engines"]}),
        ("Subscribers", {"fields": ["allow_email_subscribers"]}),
    ]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        page = PageSettings.load()
        return redirect("admin:statuspage_pagesettings_change", page.pk)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not PageSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are shown once, when made; afterwards only their first characters."""

    list_display = ["name", "prefix", "owner", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "owner__username"]
    fields = ["name", "owner", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        return self.fields if obj else ["name", "owner"]  # the rest exists once it is made

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "name", "owner"] if obj else []

    def get_changeform_initial_data(self, request):
        return {"owner": request.user.pk}

    # A key acts as its owner: only a superuser may make or see keys that act as someone else.
    def get_queryset(self, request):
        keys = super().get_queryset(request).select_related("owner")
        return keys if request.user.is_superuser else keys.filter(owner=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            return
        key, raw = api_key_create(owner=obj.owner, name=obj.name)
        obj.pk = key.pk
        obj.prefix, obj.digest = key.prefix, key.digest
        self.message_user(
            request,
            f"The key for “{key.name}” is {raw} — copy it now: it is not shown again. "
            "Send it as “Authorization: OAuth <key>”.",
            messages.WARNING,
        )

    def has_change_permission(self, request, obj=None):
        return (
            False
            if obj is not None and obj.revoked_at
            else super().has_change_permission(request, obj)
        )

    @admin.action(description="Revoke the selected keys", permissions=["delete"])
    def revoke_selected(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key)
            audit_record(actor=request.user, action=AuditAction.API_KEY_REVOKED, target=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: nobody edits or deletes the trail here (only the retention prune does).
    Who may read it: superusers and the Admins group (the view permission)."""

    list_display = ["at", "actor_name", "action", "source", "target_type", "target_repr", "ip"]
    list_filter = ["action", "source", ("at", admin.DateFieldListFilter), "target_type"]
    search_fields = ["actor_name", "target_repr", "target_id", "target_type", "ip_address"]
    date_hierarchy = "at"
    list_select_related = False
    show_full_result_count = False
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    @admin.display(description="client address", ordering="ip_address")
    def ip(self, event):
        return event.ip_address

    def get_list_filter(self, request):
        return [*self.list_filter, ActorFilter]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        return [
            path("export.csv", export, name="statuspage_auditevent_export"),
            *super().get_urls(),
        ]

    def export_csv(self, request):
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
