"""The page's settings: one row, edited in place."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.shortcuts import redirect

from statuspage.models import PageSettings


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
