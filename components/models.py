from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from statuspage.ids import new_public_id


class ComponentStatus(models.TextChoices):
    OPERATIONAL = "operational", "Operational"
    DEGRADED_PERFORMANCE = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"


# How bad a status is for the people using the service, least to most.
STATUS_SEVERITY: dict[str, int] = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


def worst_status(statuses) -> str:
    """The most severe of the given statuses; operational when there are none."""
    return max(statuses, key=STATUS_SEVERITY.__getitem__, default=ComponentStatus.OPERATIONAL)


class ComponentGroup(models.Model):
    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    def worst_status(self) -> str:
        return worst_status(component.status for component in self.components.all())


class ComponentQuerySet(models.QuerySet):
    def in_page_order(self):
        """Page order: ungrouped and grouped components interleaved by their group's position."""
        return self.select_related("group").order_by(
            Coalesce("group__position", "position"),
            Coalesce("group_id", models.Value(0)),
            "position",
            "name",
        )


class Component(models.Model):
    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    group = models.ForeignKey(
        ComponentGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="components"
    )
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=32, choices=ComponentStatus.choices, default=ComponentStatus.OPERATIONAL
    )
    showcase = models.BooleanField(
        default=True, help_text="Show the 90-day uptime bar for this component."
    )
    only_show_if_degraded = models.BooleanField(
        default=False, help_text="Hide this component from the page while it is operational."
    )
    start_date = models.DateField(
        null=True, blank=True, help_text="Uptime is shown from this day on."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(default=timezone.now, editable=False)
    # Time before this instant is already counted in DailyUptime; after it, the component has
    # been in `status` the whole time. Advancing it is how rollups stay incremental.
    uptime_accounted_until = models.DateTimeField(default=timezone.now, editable=False)

    objects = ComponentQuerySet.as_manager()

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    @property
    def is_visible(self) -> bool:
        return not (self.only_show_if_degraded and self.status == ComponentStatus.OPERATIONAL)


class StatusChangeCause(models.TextChoices):
    STAFF = "staff", "Staff"
    INCIDENT = "incident", "Incident update"
    MAINTENANCE = "maintenance", "Maintenance"
    HEALTH_CHECK = "health_check", "Health check"
    ALERT = "alert", "Alert"
    API = "api", "API"


class ComponentStatusChange(models.Model):
    """One change of a component's status: the history that uptime is computed from."""

    component = models.ForeignKey(
        Component, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.CharField(max_length=32, choices=ComponentStatus.choices)
    to_status = models.CharField(max_length=32, choices=ComponentStatus.choices)
    at = models.DateTimeField(db_index=True)
    cause = models.CharField(max_length=32, choices=StatusChangeCause.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["component", "-at"])]

    def __str__(self):
        return f"{self.component}: {self.from_status} → {self.to_status}"


class DailyUptime(models.Model):
    """Seconds a component spent in each status on one day of the page's time zone."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="daily_uptime")
    day = models.DateField()
    operational_seconds = models.PositiveIntegerField(default=0)
    degraded_performance_seconds = models.PositiveIntegerField(default=0)
    partial_outage_seconds = models.PositiveIntegerField(default=0)
    major_outage_seconds = models.PositiveIntegerField(default=0)
    under_maintenance_seconds = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["component", "day"], name="one_uptime_row_per_day")
        ]
        indexes = [models.Index(fields=["day"])]

    def __str__(self):
        return f"{self.component} on {self.day}"

    @staticmethod
    def seconds_field(status: str) -> str:
        return f"{status}_seconds"

    def seconds_by_status(self) -> dict[str, int]:
        return {status: getattr(self, self.seconds_field(status)) for status in ComponentStatus}
