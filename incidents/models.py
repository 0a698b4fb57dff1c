from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, Self, TypeAlias, TypeGuard, get_args

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from components.models import Component, ComponentStatus, worst_status
from components.status_choices import ComponentStatusValue
from incidents.series.recurrence import parts_of, repeats_text
from statuspage.lib.choices import QuickChoiceDisplay
from statuspage.lib.ids import new_public_id
from statuspage.lib.text import no_control_characters, no_control_characters_in_text

# The longest Markdown staff may write: an update (API v1's cap, as Statuspage's), and a
# postmortem. statuspage/lib/markdown.py renders nothing longer.
MAX_UPDATE_BODY = 25_000
MAX_POSTMORTEM_BODY = 100_000


class IncidentKind(models.TextChoices):
    INCIDENT = "incident", _("Incident")
    MAINTENANCE = "maintenance", _("Scheduled maintenance")


# The two as strings, and a kind wherever one is passed: a member or its value (a test keeps
# the names and the choices the same, as for the statuses and impacts below).
IncidentKindName: TypeAlias = Literal["incident", "maintenance"]
IncidentKindValue: TypeAlias = IncidentKind | IncidentKindName


class IncidentStatus(models.TextChoices):
    INVESTIGATING = "investigating", _("Investigating")
    IDENTIFIED = "identified", _("Identified")
    MONITORING = "monitoring", _("Monitoring")
    RESOLVED = "resolved", _("Resolved")
    POSTMORTEM = "postmortem", _("Postmortem")
    SCHEDULED = "scheduled", _("Scheduled")
    IN_PROGRESS = "in_progress", _("In progress")
    VERIFYING = "verifying", _("Verifying")
    COMPLETED = "completed", _("Completed")


# The nine as the strings the database, forms and JSON give (a test keeps them equal).
IncidentStatusName: TypeAlias = Literal[
    "investigating",
    "identified",
    "monitoring",
    "resolved",
    "postmortem",
    "scheduled",
    "in_progress",
    "verifying",
    "completed",
]
# A status wherever one is passed: a member (`IncidentStatus.RESOLVED`), or its value.
IncidentStatusValue: TypeAlias = IncidentStatus | IncidentStatusName

INCIDENT_STATUS_NAMES: frozenset[str] = frozenset(get_args(IncidentStatusName))


def is_incident_status(value: object) -> TypeGuard[IncidentStatusValue]:
    """Whether `value` is one of the nine statuses (narrows a string a form or JSON gave)."""
    return value in INCIDENT_STATUS_NAMES


INCIDENT_STATUSES = [
    IncidentStatus.INVESTIGATING,
    IncidentStatus.IDENTIFIED,
    IncidentStatus.MONITORING,
    IncidentStatus.RESOLVED,
]
MAINTENANCE_STATUSES = [
    IncidentStatus.SCHEDULED,
    IncidentStatus.IN_PROGRESS,
    IncidentStatus.VERIFYING,
    IncidentStatus.COMPLETED,
]
UNRESOLVED_STATUSES = [
    IncidentStatus.INVESTIGATING,
    IncidentStatus.IDENTIFIED,
    IncidentStatus.MONITORING,
]
CLOSED_STATUSES = [IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM, IncidentStatus.COMPLETED]
ACTIVE_MAINTENANCE_STATUSES = [IncidentStatus.IN_PROGRESS, IncidentStatus.VERIFYING]


class Impact(models.TextChoices):
    NONE = "none", _("None")
    MINOR = "minor", _("Minor")
    MAJOR = "major", _("Major")
    CRITICAL = "critical", _("Critical")
    MAINTENANCE = "maintenance", _("Maintenance")


ImpactName: TypeAlias = Literal["none", "minor", "major", "critical", "maintenance"]
# An impact wherever one is passed: a member or its value (a test keeps the two the same).
ImpactValue: TypeAlias = Impact | ImpactName
# An impact override: one of the impacts, or "" for none (the impact is derived).
ImpactOverride: TypeAlias = ImpactValue | Literal[""]

IMPACT_NAMES: frozenset[str] = frozenset(get_args(ImpactName))


def is_impact_override(value: object) -> TypeGuard[ImpactOverride]:
    """Whether `value` is an impact or "" (narrows a string a form or JSON gave)."""
    return value == "" or value in IMPACT_NAMES


if TYPE_CHECKING:
    # Columns that hold, and are given, one of their choices (django-stubs would type a
    # CharField as any str). Subscripted only for the checker: a Field is not generic at
    # run time.
    IncidentKindField: TypeAlias = models.CharField[IncidentKindValue, IncidentKindValue]
    IncidentStatusField: TypeAlias = models.CharField[IncidentStatusValue, IncidentStatusValue]
    ImpactField: TypeAlias = models.CharField[ImpactValue, ImpactValue]
    from components.status_choices import StatusField

    ImpactOverrideField: TypeAlias = models.CharField[ImpactOverride, ImpactOverride]


# Statuspage's rule: an incident's impact follows the worst status it gave a component.
IMPACT_OF_COMPONENT_STATUS: dict[str, ImpactValue] = {
    ComponentStatus.OPERATIONAL: Impact.NONE,
    ComponentStatus.UNDER_MAINTENANCE: Impact.NONE,
    ComponentStatus.DEGRADED_PERFORMANCE: Impact.MINOR,
    ComponentStatus.PARTIAL_OUTAGE: Impact.MAJOR,
    ComponentStatus.MAJOR_OUTAGE: Impact.CRITICAL,
}


class IncidentQuerySet(models.QuerySet):
    def incidents(self) -> Self:
        return self.filter(kind=IncidentKind.INCIDENT)

    def maintenances(self) -> Self:
        return self.filter(kind=IncidentKind.MAINTENANCE)

    def unresolved(self) -> Self:
        return self.incidents().filter(status__in=UNRESOLVED_STATUSES)

    def upcoming_maintenances(self) -> Self:
        return self.maintenances().filter(status=IncidentStatus.SCHEDULED)

    def active_maintenances(self) -> Self:
        return self.maintenances().filter(status__in=ACTIVE_MAINTENANCE_STATUSES)

    def closed(self) -> Self:
        return self.filter(status__in=CLOSED_STATUSES)

    def public(self) -> Self:
        """What the public may see: incidents and maintenances not marked internal."""
        return self.filter(internal=False)


IncidentManager = models.Manager.from_queryset(IncidentQuerySet)


class Incident(QuickChoiceDisplay, models.Model):
    """An incident, or (kind=maintenance) a scheduled maintenance, as Statuspage models both."""

    public_id = models.CharField(
        "code", max_length=12, unique=True, default=new_public_id, editable=False
    )
    kind: "IncidentKindField" = models.CharField(
        max_length=16, choices=IncidentKind.choices, default=IncidentKind.INCIDENT
    )
    name = models.CharField(max_length=255, validators=[no_control_characters])
    status: "IncidentStatusField" = models.CharField(max_length=16, choices=IncidentStatus.choices)
    impact: "ImpactField" = models.CharField(
        max_length=16, choices=Impact.choices, default=Impact.NONE
    )
    impact_override: "ImpactOverrideField" = models.CharField(
        max_length=16,
        choices=Impact.choices,
        blank=True,
        help_text="Leave empty to derive the impact from the affected components.",
    )
    components = models.ManyToManyField(Component, blank=True, related_name="incidents")
    # Not derived from the components: staff choose. Public outputs hide an internal incident
    # whole, and a public incident's internal components.
    internal = models.BooleanField(
        _("internal"),
        default=False,
        help_text=_("Shown only on /internal/ and told only to internal subscribers."),
    )
    # Statuspage's `metadata`: tools keep their own data on an incident, one object per tool
    # (`{"jira": {"issue": "OPS-1"}}`). Beacon stores it for them and never reads it.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(default=timezone.now)
    monitoring_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    backfilled = models.BooleanField(default=False)
    postmortem_body = models.TextField(
        blank=True,
        max_length=MAX_POSTMORTEM_BODY,
        validators=[no_control_characters_in_text],
        help_text="Markdown.",
    )
    postmortem_published_at = models.DateTimeField(null=True, blank=True)
    # The structured postmortem (incidents/postmortems.py): its sections, impact figures,
    # timeline and action items; `postmortem_body` is their Markdown. Empty for a postmortem
    # written free-form.
    postmortem = models.JSONField(default=dict, blank=True, editable=False)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    scheduled_until = models.DateTimeField(null=True, blank=True)
    scheduled_auto_in_progress = models.BooleanField(
        "start automatically", default=True, help_text="Move to In progress at the start time."
    )
    scheduled_auto_completed = models.BooleanField(
        "complete automatically", default=True, help_text="Move to Completed at the end time."
    )
    scheduled_remind_prior = models.BooleanField(
        "remind subscribers",
        default=True,
        help_text="Email subscribers a reminder before the start (MAINTENANCE_REMINDER_MINUTES).",
    )
    scheduled_reminded_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When staff were last reminded that the incident has had no public update for the page's
    # promised interval (incidents/reminders.py): one reminder per interval of silence.
    silence_reminded_at = models.DateTimeField(null=True, blank=True, editable=False)
    auto_transition_deliver_notifications_at_start = models.BooleanField(
        "notify subscribers at the automatic start", default=True
    )
    auto_transition_deliver_notifications_at_end = models.BooleanField(
        "notify subscribers at the automatic completion", default=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Opened by health checks for this component; they post its recovery too.
    auto_component = models.ForeignKey(
        Component,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        verbose_name="opened automatically for",
    )
    # An occurrence of a recurring maintenance: its series, the start the rule gave it (its
    # RECURRENCE-ID), and whether staff edited it alone (the series then leaves it be).
    series = models.ForeignKey(
        "MaintenanceSeries",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="occurrences",
        editable=False,
    )
    series_occurrence = models.DateTimeField(null=True, blank=True, editable=False)
    series_detached = models.BooleanField(
        "edited apart from its series", default=False, editable=False
    )

    objects = IncidentManager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["auto_component"],
                condition=~models.Q(status__in=CLOSED_STATUSES),
                name="one_open_auto_incident_per_component",
            ),
            models.UniqueConstraint(
                fields=["series", "series_occurrence"],
                condition=models.Q(series__isnull=False),
                name="one_incident_per_series_occurrence",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "status"]),
            models.Index(fields=["-started_at"]),
            # The history feeds list the latest announced: no sort of every incident.
            models.Index(fields=["-created_at", "-id"], name="incident_latest_created"),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("incident-detail", kwargs={"code": self.public_id})

    @property
    def is_maintenance(self) -> bool:
        return self.kind == IncidentKind.MAINTENANCE

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    @property
    def allowed_statuses(self) -> Sequence[str]:
        return MAINTENANCE_STATUSES if self.is_maintenance else INCIDENT_STATUSES

    @property
    def ended_at(self):
        return self.resolved_at

    @property
    def duration(self):
        end = self.resolved_at or timezone.now()
        return end - self.started_at if end >= self.started_at else None

    @property
    def has_published_postmortem(self) -> bool:
        return bool(self.postmortem_published_at and self.postmortem_body)

    def derived_impact(self, statuses_set: Iterable[ComponentStatusValue]) -> ImpactValue:
        if self.impact_override:
            return self.impact_override
        if self.is_maintenance:
            return Impact.MAINTENANCE
        return IMPACT_OF_COMPONENT_STATUS[worst_status(statuses_set)]


class ScheduledMaintenance(Incident):
    """Maintenances on their own, for the admin's "Scheduled maintenances" entry."""

    class Meta:
        proxy = True
        verbose_name = "scheduled maintenance"
        verbose_name_plural = "scheduled maintenances"


class MaintenanceSeries(models.Model):
    """A maintenance that comes back by an RFC 5545 rule (weekly, the second Tuesday, …).

    Its occurrences are ordinary maintenances (`Incident.series`), made ahead for a horizon
    by `incidents.series.services.series_materialise`, so each does what a maintenance does.
    The rule is read in `time_zone`'s wall-clock: a 02:00 window stays at 02:00 across DST.
    """

    public_id = models.CharField(
        "code", max_length=12, unique=True, default=new_public_id, editable=False
    )
    name = models.CharField(max_length=255, validators=[no_control_characters])
    body = models.TextField(
        "message",
        blank=True,
        max_length=MAX_UPDATE_BODY,
        validators=[no_control_characters_in_text],
        help_text="Markdown: the first update of each occurrence.",
    )
    components = models.ManyToManyField(
        Component,
        blank=True,
        related_name="+",
        help_text="Put under maintenance while each occurrence is in progress.",
    )
    time_zone = models.CharField(max_length=64, default="UTC")
    dtstart = models.DateTimeField("first start")
    duration = models.DurationField()
    rule = models.CharField("recurrence rule", max_length=500)
    # The skipped occurrences' starts, as ISO 8601 in UTC (EXDATE).
    exdates = models.JSONField("skipped occurrences", default=list, blank=True)
    internal = models.BooleanField(
        _("internal"),
        default=False,
        help_text=_("Shown only on /internal/ and told only to internal subscribers."),
    )
    deliver_notifications = models.BooleanField(
        "notify subscribers of each occurrence when it is scheduled", default=False
    )
    scheduled_auto_in_progress = models.BooleanField("start automatically", default=True)
    scheduled_auto_completed = models.BooleanField("complete automatically", default=True)
    scheduled_remind_prior = models.BooleanField("remind subscribers", default=True)
    auto_transition_deliver_notifications_at_start = models.BooleanField(
        "notify subscribers at the automatic start", default=True
    )
    auto_transition_deliver_notifications_at_end = models.BooleanField(
        "notify subscribers at the automatic completion", default=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "maintenance series"
        verbose_name_plural = "maintenance series"

    def __str__(self) -> str:
        return self.name

    @property
    def repeats_text(self) -> str:
        """ "Repeats weekly", in the active language, from the rule's frequency."""
        parts = parts_of(self.rule)
        interval = parts.get("INTERVAL", "1")
        return repeats_text(parts.get("FREQ", ""), int(interval) if interval.isdigit() else 1)


class IncidentUpdate(QuickChoiceDisplay, models.Model):
    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    status: "IncidentStatusField" = models.CharField(max_length=16, choices=IncidentStatus.choices)
    body = models.TextField(
        blank=True,
        max_length=MAX_UPDATE_BODY,
        validators=[no_control_characters_in_text],
        help_text="Markdown.",
    )
    display_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    deliver_notifications = models.BooleanField("notify subscribers", default=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-display_at", "-id"]

    def __str__(self):
        return f"{self.get_status_display()}: {self.incident}"

    def body_in(self, language: str | None) -> str:
        """The body as staff translated it for `language`, else as they wrote it.

        Reads `translations`, so a page that shows many updates prefetches them.
        """
        for translation in self.translations.all():
            if translation.language == language and translation.body:
                return translation.body
        return self.body


class IncidentUpdateTranslation(models.Model):
    """Staff's own translation of an update's body, shown to readers of that language (its
    prefix's pages and subscribers who read it); JSON and feeds keep the original."""

    update = models.ForeignKey(
        IncidentUpdate, on_delete=models.CASCADE, related_name="translations"
    )
    language = models.CharField(max_length=8, choices=settings.LANGUAGES)
    body = models.TextField(
        max_length=MAX_UPDATE_BODY,
        validators=[no_control_characters_in_text],
        help_text="Markdown, as the update's body.",
    )

    class Meta:
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(
                fields=["update", "language"], name="one_translation_per_update_and_language"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_language_display()}: {self.update}"


class AffectedComponent(QuickChoiceDisplay, models.Model):
    """A component an update named, with the status it found and the one it set."""

    update = models.ForeignKey(
        IncidentUpdate, on_delete=models.CASCADE, related_name="affected_components"
    )
    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="+")
    old_status: "StatusField" = models.CharField(max_length=32, choices=ComponentStatus.choices)
    new_status: "StatusField" = models.CharField(max_length=32, choices=ComponentStatus.choices)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["update", "component"], name="component_once_per_update"
            )
        ]

    def __str__(self):
        return f"{self.component}: {self.old_status} → {self.new_status}"


class IncidentTemplate(models.Model):
    """A ready-made incident staff start from when the same kind of trouble comes back."""

    name = models.CharField(
        max_length=255, validators=[no_control_characters], help_text="What staff pick it by."
    )
    title = models.CharField("incident name", max_length=255, validators=[no_control_characters])
    status: "IncidentStatusField" = models.CharField(
        max_length=16,
        choices=[(s.value, s.label) for s in INCIDENT_STATUSES],
        default=IncidentStatus.INVESTIGATING,
    )
    body = models.TextField(
        blank=True,
        max_length=MAX_UPDATE_BODY,
        validators=[no_control_characters_in_text],
        help_text="Markdown.",
    )
    components = models.ManyToManyField(Component, blank=True, related_name="+")
    component_status: "StatusField" = models.CharField(
        max_length=32, choices=ComponentStatus.choices, default=ComponentStatus.MAJOR_OUTAGE
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class DraftSource(models.TextChoices):
    CHECK = "check", _("health check")
    ALERT = "alert", _("alert")
    REPORT_SURGE = "report_surge", _("report surge")


class IncidentDraft(models.Model):
    """An incident Beacon prepared for staff to publish: for a component whose checks or
    alerts moved it (components set to "draft"), or for the components of a surge of visitor
    reports (PageSettings.report_surge_drafts)."""

    source = models.CharField(max_length=16, choices=DraftSource.choices, default=DraftSource.CHECK)
    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="+")
    other_components = models.ManyToManyField(
        Component,
        blank=True,
        related_name="+",
        help_text="A report surge's draft names every component visitors reported together.",
    )
    report_surges = models.ManyToManyField(
        "components.ReportSurge",
        blank=True,
        related_name="+",
        help_text="The surges it was prepared for: it is discarded once they have all ended.",
    )
    name = models.CharField(max_length=255, validators=[no_control_characters])
    body = models.TextField(
        blank=True,
        max_length=MAX_UPDATE_BODY,
        validators=[no_control_characters_in_text],
        help_text="Markdown.",
    )
    component_status: "StatusField" = models.CharField(
        max_length=32, choices=ComponentStatus.choices
    )
    reason = models.CharField(max_length=500, blank=True, help_text="What the checks found.")
    created_at = models.DateTimeField(default=timezone.now)
    published_incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    discarded_at = models.DateTimeField(null=True, blank=True)
    discard_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["component"],
                condition=models.Q(published_at__isnull=True, discarded_at__isnull=True),
                name="one_pending_draft_per_component",
            )
        ]

    def __str__(self):
        return self.name

    @property
    def is_pending(self) -> bool:
        return self.published_at is None and self.discarded_at is None

    @property
    def all_components(self) -> list[Component]:
        """Every component it names, its own first (other_components may be prefetched)."""
        return [self.component, *self.other_components.all()]

    @property
    def component_names(self) -> str:
        return ", ".join(component.name for component in self.all_components)


class StaffNotice(models.Model):
    """When staff were last told of a component's automatic changes, and the changes held
    back since: a component that flaps gets one message a window, summarising them, rather
    than one per change (incidents/automatic.py)."""

    component = models.OneToOneField(Component, on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField()
    held = models.JSONField(default=list, blank=True, help_text="Changes not told yet.")
    held_count = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"Staff notices about {self.component}"


# Subscribers and notifications live in their own module but belong to this app.
from incidents.notify.models import (  # noqa: E402, F401
    Delivery,
    NotificationEvent,
    Subscriber,
)
