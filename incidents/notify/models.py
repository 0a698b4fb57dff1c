"""Subscribers, the events they hear about, and the ledger of what reached whom.

Imported by incidents/models.py, so these models belong to the incidents app.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from components.models import Component, ComponentStatusChange
from statuspage.lib.ids import new_public_id


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"
    PUSH = "push", "Browser push"


class WebhookFormat(models.TextChoices):
    STATUSPAGE = "statuspage", "Statuspage JSON"
    SLACK = "slack", "Slack"
    DISCORD = "discord", "Discord"
    TEAMS = "teams", "Microsoft Teams"


class SubscriberState(models.TextChoices):
    UNCONFIRMED = "unconfirmed", "Unconfirmed"
    ACTIVE = "active", "Active"
    # Statuspage's word for a subscriber we stopped sending to: a bouncing address or a
    # webhook that kept failing. Staff can re-enable them.
    QUARANTINED = "quarantined", "Disabled (failing)"


class Audience(models.TextChoices):
    PUBLIC = "public", _("Public")
    # Subscribed from /internal/ or added by staff: also told of internal incidents and
    # internal components.
    INTERNAL = "internal", _("Internal")


class Subscriber(models.Model):
    public_id = models.CharField(
        "code", max_length=12, unique=True, default=new_public_id, editable=False
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    email = models.EmailField(
        blank=True, help_text="For webhooks: whom to tell when the endpoint keeps failing."
    )
    endpoint = models.URLField("webhook URL", max_length=2000, blank=True)
    # Browser push: the subscription's public key (P-256, uncompressed, base64url) and auth
    # secret, which the payload is encrypted to (RFC 8291); `endpoint` is its push service URL.
    push_p256dh = models.CharField("push key", max_length=100, blank=True, editable=False)
    push_auth = models.CharField("push auth secret", max_length=50, blank=True, editable=False)
    webhook_format = models.CharField(
        max_length=16, choices=WebhookFormat.choices, default=WebhookFormat.STATUSPAGE
    )
    secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="Signs each delivery: the X-Beacon-Signature-256 header holds sha256= "
        "and the hex HMAC-SHA256 of the body with this secret.",
    )
    all_components = models.BooleanField(
        default=True, help_text="Hear about every component, including ones added later."
    )
    components = models.ManyToManyField(Component, blank=True, related_name="subscribers")
    state = models.CharField(
        max_length=16, choices=SubscriberState.choices, default=SubscriberState.UNCONFIRMED
    )
    audience = models.CharField(
        _("audience"), max_length=16, choices=Audience.choices, default=Audience.PUBLIC
    )
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    # In the signed confirmation link; bumped when a new link is sent and when one is used,
    # so a link works once and only the newest one does.
    confirm_nonce = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    quarantined_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A hard bounce reported by the mail provider or a DSN (incidents/notify/bounces.py):
    # nothing more is sent to the address, not even a confirmation, until staff reactivate.
    bounced_at = models.DateTimeField(null=True, blank=True, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    language = models.CharField(
        max_length=8,
        blank=True,
        choices=settings.LANGUAGES,
        help_text="The language of their emails: the page's they subscribed on. Empty: the "
        "page's default language.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["email"],
                condition=models.Q(channel="email"),
                name="one_email_subscriber_per_address",
            ),
            models.CheckConstraint(
                condition=~models.Q(channel="email", email=""),
                name="email_subscriber_has_address",
            ),
            models.CheckConstraint(
                condition=~models.Q(channel="webhook", endpoint=""),
                name="webhook_subscriber_has_url",
            ),
            models.CheckConstraint(
                condition=~models.Q(channel="push")
                | ~(models.Q(endpoint="") | models.Q(push_p256dh="") | models.Q(push_auth="")),
                name="push_subscriber_has_subscription",
            ),
            # A browser that subscribes again updates its row: one per push endpoint.
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=models.Q(channel="push"),
                name="one_push_subscriber_per_endpoint",
            ),
        ]
        indexes = [models.Index(fields=["channel", "state"])]

    def __str__(self) -> str:
        return self.email if self.channel == Channel.EMAIL else self.endpoint

    @property
    def is_active(self) -> bool:
        return self.state == SubscriberState.ACTIVE

    @property
    def shown_address(self) -> str:
        """Where updates go, as a page shows it: a webhook's path often is its secret (Slack's
        and Discord's are), so only its scheme and host are shown."""
        if self.channel == Channel.EMAIL:
            return self.email
        try:
            parts = urlsplit(self.endpoint)
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # saved before URLs were checked as they are now
            return "…"
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return f"{parts.scheme}://{host}{port}/…"


class EventKind(models.TextChoices):
    INCIDENT_CREATED = "incident_created", _("Incident created")
    INCIDENT_UPDATED = "incident_updated", _("Incident updated")
    INCIDENT_RESOLVED = "incident_resolved", _("Incident resolved")
    POSTMORTEM_PUBLISHED = "postmortem_published", _("Postmortem published")
    MAINTENANCE_SCHEDULED = "maintenance_scheduled", _("Maintenance scheduled")
    MAINTENANCE_REMINDER = "maintenance_reminder", _("Maintenance reminder")
    MAINTENANCE_STARTED = "maintenance_started", _("Maintenance started")
    MAINTENANCE_UPDATED = "maintenance_updated", _("Maintenance updated")
    MAINTENANCE_COMPLETED = "maintenance_completed", _("Maintenance completed")
    COMPONENT_UPDATE = "component_update", _("Component status changed")


# Sent at most once per incident, whatever staff click twice.
ONCE_PER_INCIDENT = [EventKind.POSTMORTEM_PUBLISHED, EventKind.MAINTENANCE_REMINDER]


class NotificationEvent(models.Model):
    """Something subscribers are told about, written in the transaction that caused it.

    The row is the outbox: the broker only rings the bell, and the sweeper expands any event
    whose bell was lost. The message is rendered once, at expansion, and kept here, so every
    batch and every retry sends the same words.
    """

    kind = models.CharField(max_length=32, choices=EventKind.choices)
    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_events",
    )
    update = models.ForeignKey(
        "incidents.IncidentUpdate",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_events",
    )
    status_change = models.ForeignKey(
        ComponentStatusChange,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    # Subscribers of these components (or of all) hear about it.
    component_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expanded_at = models.DateTimeField(null=True, blank=True)
    # Expansion is claimed like a batch (delivery.py): one worker at a time, for a lease, and
    # counted, so that an event whose expansion kills its worker is given up after a few.
    expand_attempts = models.PositiveSmallIntegerField(default=0, db_default=0, editable=False)
    expand_claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    subject = models.CharField(max_length=400, blank=True)
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    payload = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = "notification"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["update"],
                condition=models.Q(update__isnull=False),
                name="one_event_per_update",
            ),
            models.UniqueConstraint(
                fields=["status_change"],
                condition=models.Q(status_change__isnull=False),
                name="one_event_per_status_change",
            ),
            models.UniqueConstraint(
                fields=["incident", "kind"],
                condition=models.Q(kind__in=ONCE_PER_INCIDENT),
                name="one_postmortem_and_reminder_event_per_incident",
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(expanded_at__isnull=True),
                name="event_not_expanded",
            )
        ]

    def __str__(self) -> str:
        return self.subject or self.get_kind_display()

    @property
    def channels(self) -> list[str]:
        # Statuspage tells email subscribers about incidents, not every component change.
        if self.kind == EventKind.COMPONENT_UPDATE:
            return [Channel.WEBHOOK]
        # Browser push tells what email tells.
        return [Channel.EMAIL, Channel.WEBHOOK, Channel.PUSH]


class DeliveryState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One event for one subscriber: sent once, because this row exists once."""

    event = models.ForeignKey(
        NotificationEvent, on_delete=models.CASCADE, related_name="deliveries"
    )
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.QUEUED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # Claims that ended with no outcome written: the worker died (or the task raised) while
    # this row was in its hands. Counted when the row is claimed again; see delivery.py.
    crashes = models.PositiveSmallIntegerField(default=0, db_default=0, editable=False)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Handed to a batch task at; a batch owns its rows until claimed_until.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscriber"], name="one_delivery_per_event_and_subscriber"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="queued"),
                name="delivery_queued_due",
            ),
            # A batch claims its id range among an event's queued rows; staff count by state.
            models.Index(fields=["event", "state", "id"], name="delivery_event_state"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscriber}"
