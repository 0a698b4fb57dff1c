"""Inbound alert webhooks: integrations staff create, what each alert last said, and a log.

Models of the components app (imported at the end of components/models.py).
"""

import secrets
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from components.status_choices import ComponentStatus, ComponentStatusValue

if TYPE_CHECKING:
    from components.status_choices import StatusField


class AlertKind(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Prometheus Alertmanager"
    GRAFANA = "grafana", "Grafana alerting"
    DATADOG = "datadog", "Datadog"
    GENERIC = "generic", "Generic JSON"


# The statuses an alert may put a component in; operational means "change nothing".
ALERT_STATUSES = [c for c in ComponentStatus.choices if c[0] != ComponentStatus.UNDER_MAINTENANCE]


def default_severity_statuses() -> dict[str, str]:
    return {
        "critical": ComponentStatus.MAJOR_OUTAGE.value,
        "page": ComponentStatus.MAJOR_OUTAGE.value,
        "high": ComponentStatus.PARTIAL_OUTAGE.value,
        "error": ComponentStatus.PARTIAL_OUTAGE.value,
        "warning": ComponentStatus.DEGRADED_PERFORMANCE.value,
        "minor": ComponentStatus.DEGRADED_PERFORMANCE.value,
        "info": ComponentStatus.OPERATIONAL.value,
        "none": ComponentStatus.OPERATIONAL.value,
    }


def new_token() -> str:
    return secrets.token_urlsafe(24)


class AlertIntegration(models.Model):
    """A monitoring tool that tells Beacon about its alerts at a secret URL."""

    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    enabled = models.BooleanField(default=True)
    match_label = models.CharField(
        max_length=100,
        default="component",
        help_text="The label (Datadog: tag) whose value names the component, e.g. "
        'component="api". Matched against component names, ignoring case.',
    )
    components_by_value = models.JSONField(
        default=dict,
        blank=True,
        help_text='Values that are not component names: {"api-gw": "API", '
        '"db": ["Database", "Admin"]}.',
    )
    severity_label = models.CharField(
        max_length=100,
        default="severity",
        help_text="The label (Datadog: tag) whose value is the alert's severity.",
    )
    severity_statuses = models.JSONField(
        default=default_severity_statuses,
        blank=True,
        help_text="The status a firing alert of each severity sets; operational ignores it.",
    )
    default_status: "StatusField" = models.CharField(
        max_length=32,
        choices=ALERT_STATUSES,
        default=ComponentStatus.PARTIAL_OUTAGE,
        help_text="For a firing alert whose severity is missing or not in the mapping.",
    )
    # The checks' streak rule in time (components/checks/policy.py): a flapping alert moves
    # its component once, not at every flap. The tool's own wait (Alertmanager's `for:`,
    # Grafana's pending period) is its streak of failures; one resolution is not a recovery.
    firing_for = models.PositiveIntegerField(
        default=0,
        help_text="Seconds an alert must stay firing before it moves a component to a worse "
        "status (0: at once; the tool's own `for:` already waited).",
    )
    resolved_for = models.PositiveIntegerField(
        default=60,
        help_text="Seconds an alert must stay resolved (or milder) before its component "
        "recovers: a firing in the meantime keeps the component where it is.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_received_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        statuses = self.severity_statuses
        if not isinstance(statuses, dict):
            errors["severity_statuses"] = "Enter a JSON object of severity → status."
        else:
            allowed = {value for value, _ in ALERT_STATUSES}
            wrong = sorted(str(v) for v in statuses.values() if v not in allowed)
            if wrong:
                errors["severity_statuses"] = (
                    f"Unknown status {', '.join(wrong)}; use one of {', '.join(sorted(allowed))}."
                )
        mapping = self.components_by_value
        if not isinstance(mapping, dict) or not all(
            isinstance(names, str)
            or (isinstance(names, list) and all(isinstance(n, str) for n in names))
            for names in mapping.values()
        ):
            errors["components_by_value"] = (
                "Enter a JSON object of value → component name (or list of names)."
            )
        if errors:
            raise ValidationError(errors)

    @property
    def path(self) -> str:
        return f"/integrations/{self.kind}/{self.token}/"

    def status_for(self, severity: str) -> ComponentStatusValue:
        """The status a firing alert of this severity calls for (clean() holds the mapping
        to statuses)."""
        statuses = {str(k).lower(): v for k, v in (self.severity_statuses or {}).items()}
        return statuses.get(severity.strip().lower(), self.default_status)

    def component_names(self, value: str) -> list[str]:
        """The component names a label value stands for (before matching them)."""
        mapping = {str(k).lower(): v for k, v in (self.components_by_value or {}).items()}
        names = mapping.get(value.strip().lower(), value)
        return [names] if isinstance(names, str) else list(names)


class AlertState(models.Model):
    """What one alert (by fingerprint) last said about one component.

    Makes deliveries idempotent and order-safe: an event older than `event_at` is ignored.
    `reported_*` is what the tool said last; `firing` and `status` are what counts for the
    component, which follows the report once it has held long enough (the integration's
    `firing_for` / `resolved_for`).
    """

    integration = models.ForeignKey(
        AlertIntegration, on_delete=models.CASCADE, related_name="states"
    )
    fingerprint = models.CharField(max_length=255)
    component = models.ForeignKey(
        "components.Component", on_delete=models.CASCADE, related_name="alerts"
    )
    firing = models.BooleanField(default=True)
    status: "StatusField" = models.CharField(max_length=32, choices=ComponentStatus.choices)
    # The component's status before the first of its alerts fired: restored after the last.
    status_before: "StatusField" = models.CharField(max_length=32, choices=ComponentStatus.choices)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    event_at = models.DateTimeField(help_text="When what it last said happened.")
    reported_firing = models.BooleanField(default=True)
    reported_status: "StatusField" = models.CharField(
        max_length=32, choices=ComponentStatus.choices, default=ComponentStatus.OPERATIONAL
    )
    reported_at = models.DateTimeField(
        default=timezone.now, help_text="When Beacon received the report's last change."
    )
    summary = models.CharField(max_length=255, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-firing", "-event_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "fingerprint", "component"],
                name="one_alert_state_per_component",
            )
        ]
        indexes = [
            # The settling sweep reads only the states whose report has not taken effect.
            models.Index(
                fields=["reported_at"],
                name="alert_state_unsettled",
                condition=~models.Q(firing=models.F("reported_firing"))
                | ~models.Q(status=models.F("reported_status")),
            )
        ]

    def __str__(self):
        state = "firing" if self.firing else "resolved"
        return f"{self.summary or self.fingerprint} on {self.component}: {state}"


class AlertLog(models.Model):
    """A delivery staff should look at: a body Beacon could not read, or alerts it could
    not match. The last LOG_KEEP rows of each integration are kept."""

    LOG_KEEP = 200

    integration = models.ForeignKey(
        AlertIntegration, on_delete=models.CASCADE, related_name="log_entries"
    )
    received_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField(help_text="Whether the body was accepted.")
    reason = models.CharField(max_length=500)
    excerpt = models.TextField(blank=True, help_text="The first 2 KB of the body.")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["integration", "-id"])]

    def __str__(self):
        return f"{self.integration} at {self.received_at:%Y-%m-%d %H:%M:%S}: {self.reason}"
