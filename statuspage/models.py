import contextlib
import functools
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from statuspage.lib.ids import new_public_id
from statuspage.lib.internal_access import validate_domains, validate_networks
from statuspage.lib.text import no_control_characters, no_control_characters_in_text

# The footer is Markdown on every page and in every email: a few paragraphs at most.
MAX_FOOTER_TEXT = 5_000


# The promised update interval: 0 turns the reminders off; otherwise between these bounds
# (more often than every 5 minutes is noise, less than once a day is no promise).
UPDATE_INTERVAL_MIN = 5
UPDATE_INTERVAL_MAX = 24 * 60


def validate_update_interval(value: int) -> None:
    if value != 0 and not UPDATE_INTERVAL_MIN <= value <= UPDATE_INTERVAL_MAX:
        raise ValidationError(
            f"Use between {UPDATE_INTERVAL_MIN} and {UPDATE_INTERVAL_MAX} minutes "
            "(24 hours), or 0 for no reminders."
        )


def _shipped_languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def validate_languages(value: object) -> None:
    shipped = _shipped_languages()
    if not isinstance(value, list) or not value or not all(code in shipped for code in value):
        raise ValidationError(f"Choose one or more of: {', '.join(shipped)}.")


@functools.cache
def _time_zone_choices():
    # Read once: available_timezones() scans the tzdata files (milliseconds each time).
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


time_zone_choices = _time_zone_choices  # the migrations name the private one


class PageSettings(models.Model):
    """The one status page of this installation."""

    CACHE_KEY = "beacon:page-settings"

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=100, default="Status", validators=[no_control_characters])
    url = models.URLField(
        "public URL",
        blank=True,
        validators=[no_control_characters],
        help_text="Where this status page is published, e.g. https://status.example.com",
    )
    home_url = models.URLField(
        "home URL",
        blank=True,
        help_text="Your company's website.",
        validators=[no_control_characters],
    )
    support_url = models.URLField("support URL", blank=True, validators=[no_control_characters])
    time_zone = models.CharField(max_length=64, default="UTC", choices=_time_zone_choices)
    logo = models.ImageField(upload_to="branding/", blank=True)
    brand_color = models.CharField(
        max_length=7,
        default="#2563eb",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #2563eb.")],
    )
    footer_text = models.TextField(
        blank=True,
        max_length=MAX_FOOTER_TEXT,
        validators=[no_control_characters_in_text],
        help_text="Markdown, shown at the foot of every page.",
    )
    hidden_from_search_engines = models.BooleanField(default=False)
    allow_email_subscribers = models.BooleanField(
        "visitors may subscribe by email",
        default=True,
        help_text="Shows “Subscribe to updates” on the page. Turning it off keeps the "
        "current subscribers; it only closes the form.",
    )
    update_interval_minutes = models.PositiveSmallIntegerField(
        "promised update interval (minutes)",
        default=30,
        validators=[validate_update_interval],
        help_text="How often an open incident gets a public update. Past 80 % of it, the "
        "incident shows amber in the admin; past all of it, red, and its author and the "
        "Responders are reminded by email (and the staff webhook), once per interval of "
        "silence. 0: no reminders and no colours.",
    )
    report_surge_drafts = models.BooleanField(
        "prepare a draft incident on a report surge",
        default=True,
        help_text="When visitors' problem reports surge for a component, staff are alerted "
        "either way; with this on, a draft `investigating` incident for the affected "
        "components also waits in the console, published with one click.",
    )
    show_reports_chart = models.BooleanField(
        "show the 24-hour reports chart on the public page",
        default=False,
        help_text="The staff console always shows it.",
    )
    show_uptime_history = models.BooleanField(
        "show the uptime history (/uptime/)",
        default=True,
        help_text="Each showcased component's uptime month by month over the past 12 months, "
        "linked from the status page. Off: /uptime/ is a 404.",
    )
    internal_networks = models.TextField(
        "networks that may view /internal/",
        blank=True,
        validators=[validate_networks],
        help_text="CIDRs, one a line (10.0.0.0/8). The client address is the one the trusted "
        "proxy hops give (TRUSTED_PROXY_HOPS).",
    )
    internal_email_domains = models.TextField(
        "email domains that may sign in to /internal/",
        blank=True,
        validators=[validate_domains],
        help_text="One a line (example.com): an address there gets a sign-in link by email.",
    )
    default_language = models.CharField(
        max_length=8,
        default="en",
        choices=settings.LANGUAGES,
        help_text="Served at the unprefixed addresses (/, /history/ …) and to visitors whose "
        "browser prefers no other enabled language.",
    )
    enabled_languages = models.JSONField(
        default=_shipped_languages,
        validators=[validate_languages],
        help_text="Each has its own addresses (/de/, /fr/history/ …), a link in the language "
        "switcher, and a rendering of every page.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "page settings"

    def __str__(self):
        return self.name

    def clean(self) -> None:
        super().clean()
        if isinstance(self.enabled_languages, list) and (
            self.default_language not in self.enabled_languages
        ):
            raise ValidationError(
                {"enabled_languages": "The default language must be one of the enabled ones."}
            )

    @property
    def languages(self) -> tuple[str, ...]:
        """The enabled languages in settings.LANGUAGES's order, the default always among them."""
        enabled = set(self.enabled_languages or ()) | {self.default_language}
        return tuple(code for code in _shipped_languages() if code in enabled)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def update_interval(self) -> timedelta | None:
        """The promised update interval; None when reminders are off."""
        return timedelta(minutes=self.update_interval_minutes) or None

    @classmethod
    def load(cls) -> "PageSettings":
        """The page's settings, from the cache when possible; created on first use."""
        try:
            page = cache.get(cls.CACHE_KEY)
        except Exception:  # Redis away: staff must still be able to post
            return cls.objects.get_or_create(pk=1)[0]
        if page is None:
            page, _ = cls.objects.get_or_create(pk=1)
            with contextlib.suppress(Exception):
                cache.set(cls.CACHE_KEY, page, None)
        return page

    @classmethod
    def forget_cached(cls) -> None:
        with contextlib.suppress(Exception):
            cache.delete(cls.CACHE_KEY)


class PublicChange(models.Model):
    """The last change the public can see, kept in the database (one row).

    A standby region's web hosts read their database, a streaming replica of the primary,
    and nothing else of the primary region: this row, replicated with the change it follows,
    is how they learn that their pages are out of date (statuspage/public/snapshots/standby.py).
    """

    generation = models.CharField(max_length=64, blank=True)
    changed_at = models.DateTimeField(null=True)

    class Meta:
        verbose_name = "public change"

    def __str__(self):
        return self.generation or "none yet"


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read only"
    WRITE = "write", "Read and write"


class ApiKeyQuerySet(models.QuerySet):
    """Keys by state at `now`: revoked ones are only revoked, whatever their expiry."""

    def revoked(self):
        return self.filter(revoked_at__isnull=False)

    def expired(self, now=None):
        return self.filter(revoked_at__isnull=True, expires_at__lte=now or timezone.now())

    def expiring_within(self, period, now=None):
        now = now or timezone.now()
        return self.filter(
            revoked_at__isnull=True, expires_at__gt=now, expires_at__lte=now + period
        )

    def unexpired(self, now=None):
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now or timezone.now())
        )


class ApiKey(models.Model):
    """A management API key. Only its SHA-256 is kept: the key is shown once, when made.

    Keys are 32 random bytes, so a fast hash is as safe as a slow one and costs nothing per
    request. A key acts with its owner's permissions, narrowed to reading by the `read`
    scope, until it is revoked or `expires_at` comes.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100, help_text="What uses it, e.g. “Terraform” or “CI”.")
    prefix = models.CharField(max_length=12, editable=False, help_text="Its first characters.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Keys made before scopes existed were used to write: they keep doing so.
    scope = models.CharField(
        max_length=5,
        choices=ApiKeyScope.choices,
        default=ApiKeyScope.WRITE,
        help_text="A read-only key may only read (GET): every change is refused with 403.",
    )
    expires_at = models.DateTimeField(
        "expires",
        null=True,
        blank=True,
        help_text="From this moment the key is refused. Leave empty for a key that never expires.",
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.owner.is_active and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_read_only(self) -> bool:
        return self.scope != ApiKeyScope.WRITE


class AuditAction(models.TextChoices):
    """What an audit event records. The 2FA actions are recorded by the second sign-in step
    (statuspage.audit.audit_two_factor)."""

    SIGNED_IN = "signed_in", "signed in (password)"
    SIGN_IN_FAILED = "sign_in_failed", "sign-in failed"
    LOCKED_OUT = "locked_out", "locked out"
    SIGNED_OUT = "signed_out", "signed out"
    ADDED = "added", "added"
    CHANGED = "changed", "changed"
    DELETED = "deleted", "deleted"
    API_KEY_CREATED = "api_key_created", "API key created"
    API_KEY_REVOKED = "api_key_revoked", "API key revoked"
    TWO_FACTOR_VERIFIED = "two_factor_verified", "second factor verified"
    TWO_FACTOR_FAILED = "two_factor_failed", "second factor failed"
    TWO_FACTOR_ADDED = "two_factor_added", "second factor added"
    TWO_FACTOR_REMOVED = "two_factor_removed", "second factor removed"


class AuditSource(models.TextChoices):
    SIGN_IN = "sign_in", "sign-in"
    ADMIN = "admin", "admin"
    API = "api", "management API"
    COMMAND = "command", "command line"


class AuditEvent(models.Model):
    """One thing a person (or a key acting for them) did: kept when the person is deleted
    (the username stays), never edited, pruned after AUDIT_RETENTION_DAYS."""

    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The username as it was, or as tried at a failed sign-in (which may name nobody).
    actor_name = models.CharField("username", max_length=150, blank=True, db_index=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices, db_index=True)
    source = models.CharField(max_length=16, choices=AuditSource.choices, db_index=True)
    target_type = models.CharField(max_length=100, blank=True, db_index=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField("target", max_length=200, blank=True)
    ip_address = models.CharField("client address", max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit event"

    def __str__(self):
        return f"{self.actor_name or 'someone'} {self.get_action_display()} {self.target_repr}"


class ApiFragment(models.Model):
    """One object's management API JSON, rendered when it last changed (statuspage/api_v1/
    fragments.py). `version` moves on in the same transaction as every change of what the
    JSON shows; the text is current while `rendered_version` equals it and `stamp` (the page
    and release it was rendered for) is today's."""

    # Defaults in the database too: fragments.py marks and stores them in plain SQL.
    version = models.PositiveBigIntegerField(default=0, db_default=0)
    rendered_version = models.PositiveBigIntegerField(null=True)
    stamp = models.CharField(max_length=500, blank=True, default="", db_default="")
    body = models.TextField(blank=True, default="", db_default="")
    # Random per kept render: a process's memory of what it rendered is used only while the
    # row still names that render (versions repeat after a restore or a failover).
    rendered_id = models.CharField(max_length=16, blank=True, default="", db_default="")

    class Meta:
        abstract = True

    def __str__(self):
        return f"{type(self).__name__} {self.pk} (version {self.version})"


class IncidentFragment(ApiFragment):
    # No database constraint: a change marks the incident's fragment in the writing
    # transaction, also while the incident itself is being deleted (its updates go first).
    incident = models.OneToOneField(
        "incidents.Incident",
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="api_fragment",
    )


class SubscriberFragment(ApiFragment):
    subscriber = models.OneToOneField(
        "incidents.Subscriber",
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="api_fragment",
    )


class CatalogueFragment(models.Model):
    """The components and groups together, one row: a group's status and every position
    depend on the other entries, so they are rendered as one. It is current while
    `rendered_at` is today's sum of the CatalogueMark versions and `stamp` today's."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    rendered_at = models.PositiveBigIntegerField()
    stamp = models.CharField(max_length=500)
    body = models.TextField()
    # Random per render: a process keeps the parsed catalogue while the row still names it.
    rendered_id = models.CharField(max_length=32)

    def __str__(self):
        return f"Catalogue (rendered at {self.rendered_at})"


class CatalogueMark(models.Model):
    """One component's or group's count of changes ("component:<pk>", "group:<pk>"): moved
    on in each writing transaction, kept after a delete, so that their sum only grows. A
    writer locks only its own object's row: no two writers of different components wait on
    each other, as they would on one shared row."""

    key = models.CharField(max_length=40, primary_key=True)
    version = models.PositiveBigIntegerField(default=0, db_default=0)

    def __str__(self):
        return f"{self.key} (version {self.version})"
