"""The page's settings: one row, edited in place."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.shortcuts import redirect

from statuspage.api_keys import api_key_create, api_key_revoke
from statuspage.models import ApiKey, PageSettings


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
        for key in queryset:
            api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
