"""The staff side of components. Status changes go through component_set_status."""

from django.contrib import admin, messages
from django.db.models import Count

from components.forms import ComponentActionForm, LatestStatusChangesFormSet
from components.models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    StatusChangeCause,
)
from components.services import StatusChangeError, component_set_status


class StatusChangeInline(admin.TabularInline):
    model = ComponentStatusChange
    formset = LatestStatusChangesFormSet
    fields = ["at", "from_status", "to_status", "cause", "actor", "note"]
    readonly_fields = fields
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
class ComponentAdmin(admin.ModelAdmin):
    list_display = ["name", "group", "status", "position", "status_changed_at"]
    list_editable = ["status"]
    list_filter = ["status", "group"]
    list_select_related = ["group"]
    search_fields = ["name"]
    fields = [
        "name",
        "description",
        "group",
        "position",
        "status",
        "showcase",
        "only_show_if_degraded",
        "start_date",
        ("public_id", "status_changed_at"),
    ]
    readonly_fields = ["public_id", "status_changed_at"]
    inlines = [StatusChangeInline]
    action_form = ComponentActionForm
    actions = ["set_status"]

    def save_model(self, request, obj, form, change):
        """Save the other fields as they are, then move the status through the service.

        Serves the change page, the add page and the changelist's editable column alike.
        """
        status = obj.status
        if change:
            fields = [name for name in form.changed_data if name != "status"]
            if fields:
                obj.save(update_fields=[*fields, "updated_at"])
        else:
            # A new component starts operational; any other status is its first change.
            obj.status = ComponentStatus.OPERATIONAL
            obj.save()
        if not change or "status" in form.changed_data:
            component_set_status(
                component=obj, status=status, cause=StatusChangeCause.STAFF, actor=request.user
            )

    @admin.action(description="Set status of selected components", permissions=["change"])
    def set_status(self, request, queryset):
        status = request.POST.get("status", "")
        if status not in ComponentStatus.values:
            self.message_user(request, "Choose the status to set.", messages.WARNING)
            return
        changed = 0
        for component in queryset:
            try:
                change = component_set_status(
                    component=component,
                    status=status,
                    cause=StatusChangeCause.STAFF,
                    actor=request.user,
                )
            except StatusChangeError as error:
                self.message_user(request, str(error), messages.ERROR)
                continue
            if change is not None:
                self.log_change(request, component, [{"changed": {"fields": ["Status"]}}])
                changed += 1
        label = ComponentStatus(status).label
        self.message_user(request, f"{changed} of {len(queryset)} set to {label}.")


@admin.register(ComponentStatusChange)
class ComponentStatusChangeAdmin(admin.ModelAdmin):
    """The status history, read-only: it is what uptime is computed from."""

    list_display = ["component", "from_status", "to_status", "at", "cause", "actor", "note"]
    list_filter = ["cause", "component", "to_status"]
    list_select_related = ["component", "actor"]
    date_hierarchy = "at"
    search_fields = ["component__name", "note"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class GroupComponentInline(admin.TabularInline):
    model = Component
    fields = ["name", "position", "status"]
    readonly_fields = ["status"]
    extra = 0
    show_change_link = True


@admin.register(ComponentGroup)
class ComponentGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "component_count"]
    fields = ["name", "description", "position"]
    inlines = [GroupComponentInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(component_count=Count("components"))

    @admin.display(description="components", ordering="component_count")
    def component_count(self, group):
        return group.component_count
