import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Self, TypeAlias

from django.conf import settings
from django.core.validators import MaxLengthValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from components.sla_terms import validate_credit_tiers, validate_sla_target
from components.status_choices import ComponentStatus, ComponentStatusValue
from statuspage.lib.choices import QuickChoiceDisplay
from statuspage.lib.ids import new_public_id
from statuspage.lib.text import no_control_characters, no_control_characters_in_text

if TYPE_CHECKING:
    from components.status_choices import StatusField

# A line or two under a name on the page; the validator (not max_length, which a TextField
# only gives its form) holds the admin, apply_config and the API alike.
MAX_DESCRIPTION = 2_000


# How bad a status is for the people using the service, least to most.
STATUS_SEVERITY: dict[ComponentStatusValue, int] = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


def worst_status(statuses: Iterable[ComponentStatusValue]) -> ComponentStatusValue:
    """The most severe of the given statuses; operational when there are none."""
    return max(statuses, key=STATUS_SEVERITY.__getitem__, default=ComponentStatus.OPERATIONAL)


def held_long_enough(
    *,
    current: ComponentStatusValue,
    wanted: ComponentStatusValue,
    since: datetime,
    now: datetime,
    worse_after: timedelta,
    better_after: timedelta,
) -> bool:
    """Health checks' streak rule in time, for sources that report changes rather than
    results (inbound alerts): a move from status `current` to `wanted`, called for since
    `since`, is made once it has held `worse_after` toward a worse status, `better_after`
    toward a better one."""
    worse = STATUS_SEVERITY[wanted] > STATUS_SEVERITY[current]
    return now - since >= (worse_after if worse else better_after)


class Automation(models.TextChoices):
    AUTOMATIC = "automatic", "Automatic: health checks and alerts may change the status"
    MANUAL = "manual", "Manual only: staff set the status"


# A member, or its value as a form or a config file gives it (a test keeps the two the same).
AutomationValue: TypeAlias = Automation | Literal["automatic", "manual"]


class AutoIncident(models.TextChoices):
    OFF = "off", "Off"
    DRAFT = "draft", "Prepare a draft for staff to publish"
    PUBLISH = "publish", "Publish at once"


AutoIncidentValue: TypeAlias = AutoIncident | Literal["off", "draft", "publish"]
# The update an automatic incident gets when the checks recover (Component's choices).
AutoIncidentRecovery: TypeAlias = Literal["resolved", "monitoring"]

if TYPE_CHECKING:
    # Choice columns typed with their values, as StatusField (components/status_choices.py).
    AutomationField: TypeAlias = models.CharField[AutomationValue, AutomationValue]
    AutoIncidentField: TypeAlias = models.CharField[AutoIncidentValue, AutoIncidentValue]
    AutoIncidentRecoveryField: TypeAlias = models.CharField[
        AutoIncidentRecovery, AutoIncidentRecovery
    ]


def sla_target_field() -> models.DecimalField:
    return models.DecimalField(
        _("SLA target (%)"),
        max_digits=7,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[validate_sla_target],
        help_text=_("Monthly uptime promised, e.g. 99.9. Empty: none."),
    )


def sla_credit_tiers_field() -> models.JSONField:
    return models.JSONField(
        _("SLA credit tiers"),
        default=list,
        blank=True,
        validators=[validate_credit_tiers],
        help_text=_(
            'From the highest threshold down, e.g. [{"below": 99.9, "credit": 10}, '
            '{"below": 99, "credit": 25}, {"below": 95, "credit": 100}]: '
            "below 99.9 percent uptime, 10 percent of the month's fee back."
        ),
    )


class ComponentGroup(models.Model):
    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=255, validators=[no_control_characters])
    description = models.TextField(
        blank=True,
        validators=[no_control_characters_in_text, MaxLengthValidator(MAX_DESCRIPTION)],
    )
    position = models.PositiveIntegerField(default=0)
    internal = models.BooleanField(
        _("internal"),
        default=False,
        help_text=_("Shown only on /internal/; its components are internal too."),
    )
    managed_by_config = models.BooleanField(
        default=False, editable=False, help_text="Declared in a file applied with apply_config."
    )
    # Its components' target and tiers, unless they have their own (components/sla.py).
    sla_target = sla_target_field()
    sla_credit_tiers = sla_credit_tiers_field()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    def worst_status(self) -> ComponentStatusValue:
        return worst_status(component.status for component in self.components.all())


# A component is internal when it or its group is: the one test every public read applies.
PUBLIC_COMPONENT = models.Q(internal=False) & (
    models.Q(group__isnull=True) | models.Q(group__internal=False)
)


# Not QuerySet["Component"]: with its model fixed, the rows of an annotate() on it lose
# their annotations for the checker (django-stubs), and callers read them.
class ComponentQuerySet(models.QuerySet):
    def public(self) -> Self:
        """Components the public may see: neither internal nor in an internal group."""
        return self.filter(PUBLIC_COMPONENT)

    def in_page_order(self) -> Self:
        """Page order: ungrouped and grouped components interleaved by their group's position."""
        return self.select_related("group").order_by(
            Coalesce("group__position", "position"),
            Coalesce("group_id", models.Value(0)),
            "position",
            "name",
            "pk",  # ties broken alike every time: the management API keeps orders it read
        )


class Component(QuickChoiceDisplay, models.Model):
    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=255, validators=[no_control_characters])
    description = models.TextField(
        blank=True,
        validators=[no_control_characters_in_text, MaxLengthValidator(MAX_DESCRIPTION)],
    )
    group = models.ForeignKey(
        ComponentGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="components"
    )
    position = models.PositiveIntegerField(default=0)
    status: "StatusField" = models.CharField(
        max_length=32, choices=ComponentStatus.choices, default=ComponentStatus.OPERATIONAL
    )
    showcase = models.BooleanField(
        default=True, help_text="Show the 90-day uptime bar for this component."
    )
    internal = models.BooleanField(
        _("internal"),
        default=False,
        help_text=_("Shown only on /internal/, never on the public page, feeds, API or badges."),
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
    automation: "AutomationField" = models.CharField(
        max_length=16, choices=Automation.choices, default=Automation.AUTOMATIC
    )
    auto_incident: "AutoIncidentField" = models.CharField(
        max_length=16,
        choices=AutoIncident.choices,
        default=AutoIncident.OFF,
        help_text="When a health check takes this component down, open an incident naming it.",
    )
    auto_incident_recovery: "AutoIncidentRecoveryField" = models.CharField(
        max_length=16,
        choices=[("resolved", "Resolved"), ("monitoring", "Monitoring")],
        default="resolved",
        help_text="The update an automatic incident gets when the checks recover.",
    )
    # Without a target of its own, the component keeps its group's target and tiers.
    sla_target = sla_target_field()
    sla_credit_tiers = sla_credit_tiers_field()
    managed_by_config = models.BooleanField(
        default=False, editable=False, help_text="Declared in a file applied with apply_config."
    )

    objects = ComponentQuerySet.as_manager()

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    @property
    def is_internal(self) -> bool:
        return self.internal or (self.group is not None and self.group.internal)

    @property
    def is_visible(self) -> bool:
        return not (self.only_show_if_degraded and self.status == ComponentStatus.OPERATIONAL)


class StatusChangeCause(models.TextChoices):
    STAFF = "staff", _("Staff")
    INCIDENT = "incident", _("Incident update")
    MAINTENANCE = "maintenance", _("Maintenance")
    HEALTH_CHECK = "health_check", _("Health check")
    ALERT = "alert", _("Alert")
    API = "api", _("API")


class ComponentStatusChange(QuickChoiceDisplay, models.Model):
    """One change of a component's status: the history that uptime is computed from."""

    component = models.ForeignKey(
        Component, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status: "StatusField" = models.CharField(max_length=32, choices=ComponentStatus.choices)
    to_status: "StatusField" = models.CharField(max_length=32, choices=ComponentStatus.choices)
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
    def seconds_field(status: ComponentStatusValue) -> str:
        return f"{status}_seconds"

    def seconds_by_status(self) -> dict[ComponentStatusValue, int]:
        return {status: getattr(self, self.seconds_field(status)) for status in ComponentStatus}


# Health checks: staff attach them to components; workers run them and move the component.


class CheckKind(models.TextChoices):
    HTTP = "http", "HTTP(S)"
    TCP = "tcp", "TCP port"
    DNS = "dns", "DNS record"
    TLS = "tls", "TLS certificate"
    HEARTBEAT = "heartbeat", "Heartbeat (push)"
    PROMETHEUS = "prometheus", "Prometheus query"
    UPSTREAM = "upstream", "Upstream status page"


class Verdict(models.TextChoices):
    """What a check says about its component, least to most severe (UNKNOWN says nothing)."""

    UNKNOWN = "unknown", _("No verdict yet")
    UP = "up", _("Up")
    DEGRADED = "degraded", _("Degraded")
    DOWN = "down", _("Down")


VERDICT_SEVERITY: dict[str, int] = {
    Verdict.UNKNOWN: -1,
    Verdict.UP: 0,
    Verdict.DEGRADED: 1,
    Verdict.DOWN: 2,
}

DEFAULT_LOCATION = "default"


def default_locations() -> list[str]:
    return [DEFAULT_LOCATION]


class HealthCheck(models.Model):
    """A health source polled (or, for heartbeats, pinged) on a schedule.

    One wide table for every kind, as each kind uses a few of the fields; the kind's class in
    components/checks/ says which it needs and validates them.
    """

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=CheckKind.choices)
    enabled = models.BooleanField(default=True)
    interval = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(10)], help_text="Seconds between runs (≥ 10)."
    )
    timeout = models.FloatField(
        default=10.0,
        validators=[MinValueValidator(0.1)],
        help_text="Seconds before a run counts as failed.",
    )
    locations = models.JSONField(
        default=default_locations,
        blank=True,
        help_text='Where it runs from: worker locations, e.g. ["eu", "us"]. '
        "A worker serves a location with --queues=checks.<location>.",
    )
    quorum = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="How many locations must agree before the component changes.",
    )
    failures_before_down = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1)]
    )
    down_status: "StatusField" = models.CharField(
        max_length=32,
        choices=[c for c in ComponentStatus.choices if c[0] != ComponentStatus.OPERATIONAL],
        default=ComponentStatus.MAJOR_OUTAGE,
        help_text="The component's status when this check is down.",
    )
    successes_before_up = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)]
    )
    degraded_latency_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Answers slower than this count as degraded performance.",
    )
    show_on_page = models.BooleanField(
        default=False, help_text="Show this check's response times on the public page."
    )

    # HTTP(S); also the base URL of a Prometheus server or an upstream status page.
    url = models.URLField(max_length=2000, blank=True)
    method = models.CharField(max_length=8, default="GET")
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True)
    expect_status = models.JSONField(
        default=list, blank=True, help_text="Accepted status codes; empty accepts 200–399."
    )
    keyword = models.CharField(max_length=255, blank=True)
    keyword_absent = models.BooleanField(
        default=False, help_text="The keyword must not appear (an error page's wording)."
    )
    json_assertion = models.CharField(
        max_length=255, blank=True, help_text='On a JSON body, e.g. $.status == "ok".'
    )
    follow_redirects = models.BooleanField(default=True)
    verify_tls = models.BooleanField(default=True)

    # TCP, TLS (host and port) and DNS (host is the name asked for).
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    record_type = models.CharField(max_length=8, default="A", blank=True)
    expected_values = models.JSONField(default=list, blank=True)
    resolver = models.CharField(max_length=64, blank=True, help_text="A resolver's IP address.")

    # TLS certificate.
    expiry_warning_days = models.PositiveIntegerField(default=14)

    # Heartbeat: the service calls /ping/<ping_token>/ within every interval + grace.
    ping_token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    grace = models.PositiveIntegerField(default=60, help_text="Seconds of lateness forgiven.")
    last_ping_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_ping_failed = models.BooleanField(default=False, editable=False)

    # Prometheus: the check fails when `value <comparison> threshold` holds.
    query = models.TextField(blank=True)
    comparison = models.CharField(
        max_length=2,
        blank=True,
        choices=[(op, op) for op in (">", ">=", "<", "<=", "==", "!=")],
    )
    threshold = models.FloatField(null=True, blank=True)

    # Upstream status page: the vendor's component, by id or name.
    upstream_component = models.CharField(max_length=255, blank=True)

    # Schedule and the latest word.
    next_run_at = models.DateTimeField(default=timezone.now, db_index=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.UNKNOWN)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_ok = models.BooleanField(null=True, editable=False)
    last_latency_ms = models.FloatField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    managed_by_config = models.BooleanField(
        default=False, editable=False, help_text="Declared in a file applied with apply_config."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["component__position", "component__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["component", "name"], name="check_name_per_component")
        ]

    def __str__(self):
        return f"{self.component.name}: {self.name}"

    @property
    def ping_path(self) -> str:
        return f"/ping/{self.ping_token}/"


class CheckLocationState(models.Model):
    """What one location has seen of a check lately: its own streaks and verdict."""

    health_check = models.ForeignKey(
        HealthCheck, on_delete=models.CASCADE, related_name="location_states"
    )
    location = models.CharField(max_length=64)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.UNKNOWN)
    streak_verdict = models.CharField(
        max_length=16, choices=Verdict.choices, default=Verdict.UNKNOWN
    )
    streak = models.PositiveIntegerField(default=0)
    # The last slot this location ran: a run is claimed by moving it forward, so a task
    # delivered twice runs its checks once.
    last_slot = models.DateTimeField(null=True, blank=True)
    last_result_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["health_check", "location"], name="one_state_per_check_location"
            )
        ]

    def __str__(self):
        return f"{self.health_check} from {self.location}"


class CheckResult(models.Model):
    """One run of a check from one location: raw, kept for CHECK_RESULT_RETENTION_DAYS."""

    health_check = models.ForeignKey(HealthCheck, on_delete=models.CASCADE, related_name="results")
    location = models.CharField(max_length=64, default=DEFAULT_LOCATION)
    at = models.DateTimeField()
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    latency_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["health_check", "-at"]), models.Index(fields=["at"])]

    def __str__(self):
        return f"{self.health_check} at {self.at:%Y-%m-%d %H:%M:%S}: {self.verdict}"

    @property
    def ok(self) -> bool:
        return self.verdict != Verdict.DOWN


class RollupPeriod(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class CheckRollup(models.Model):
    """Counts and latency percentiles of a check's results over one hour or one day (UTC)."""

    health_check = models.ForeignKey(HealthCheck, on_delete=models.CASCADE, related_name="rollups")
    period = models.CharField(max_length=8, choices=RollupPeriod.choices)
    start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    latency_min = models.FloatField(null=True, blank=True)
    latency_p50 = models.FloatField(null=True, blank=True)
    latency_p95 = models.FloatField(null=True, blank=True)
    latency_p99 = models.FloatField(null=True, blank=True)
    latency_max = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.UniqueConstraint(
                fields=["health_check", "period", "start"], name="one_rollup_per_check_period"
            )
        ]

    def __str__(self):
        return f"{self.health_check}: {self.period} from {self.start:%Y-%m-%d %H:%M}"


from components.alerts.models import AlertIntegration, AlertLog, AlertState  # noqa: E402, F401
from components.reports.models import ReportCount, ReportSurge  # noqa: E402, F401
