"""Visitor problem reports ("Having problems?"), persisted per minute (docs/reports.md).

Models of the components app (imported at the end of components/models.py). A row holds a
count and nothing about who reported: no address, user agent or cookie.
"""

from django.db import models
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

# "Something else" in the unique keys below. A nullable column cannot be the key: SQLite (the
# embedded default) has no NULLS NOT DISTINCT, so the constraint would not exist there and
# the upsert that persists counts would fail; a generated, never-null column works on both.
SOMETHING_ELSE_KEY = 0


def component_key() -> models.GeneratedField:
    return models.GeneratedField(
        expression=Coalesce("component", SOMETHING_ELSE_KEY),
        output_field=models.BigIntegerField(),
        db_persist=True,
        editable=False,
    )


class Symptom(models.TextChoices):
    SIGN_IN = "sign_in", _("Can't sign in")
    ERRORS = "errors", _("Errors")
    SLOW = "slow", _("Slow")
    CRASHES = "crashes", _("App crashes")
    OTHER = "other", _("Other")


# The symptom of a report that named none.
NO_SYMPTOM = ""


class ReportCount(models.Model):
    """How many visitors reported a component (none: "something else") with a symptom in one
    minute. Minutes, not hours: surge detection must see a surge within two minutes, and
    an hour's or a week's baseline is a sum of minutes. Rows exist only for minutes with
    reports, so a quiet page stores nothing."""

    component = models.ForeignKey(
        "components.Component",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="report_counts",
        help_text="Empty: the visitor picked “something else”.",
    )
    component_key = component_key()
    symptom = models.CharField(max_length=16, blank=True, choices=Symptom.choices)
    minute = models.DateTimeField(help_text="The start of the minute (UTC).")
    count = models.PositiveIntegerField()

    class Meta:
        ordering = ["minute"]
        constraints = [
            models.UniqueConstraint(
                fields=["component_key", "symptom", "minute"],
                name="one_report_count_per_minute",
            )
        ]
        indexes = [models.Index(fields=["minute"], name="report_count_minute")]

    def __str__(self):
        what = self.component_id or "something else"
        return f"{what} {self.symptom or '-'} at {self.minute:%Y-%m-%d %H:%M}: {self.count}"


class ReportSurge(models.Model):
    """A surge of visitor reports for a component (none: "something else"), as surge
    detection found it (components/reports/surge.py). Counts only: nothing about who reported.
    A component has at most one open surge; one that comes back after it ended is a new row."""

    component = models.ForeignKey(
        "components.Component",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="report_surges",
        help_text="Empty: visitors picked “something else”.",
    )
    component_key = component_key()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="The last time it was over its threshold.")
    ended_at = models.DateTimeField(null=True, blank=True)
    window_minutes = models.PositiveSmallIntegerField()
    peak_count = models.PositiveIntegerField(help_text="The most reports seen in one window.")
    usual_count = models.FloatField(help_text="What the window usually holds, at the start.")
    symptoms = models.JSONField(
        default=dict, blank=True, help_text="Reports per symptom in the window, at the peak."
    )
    alerted_at = models.DateTimeField(
        null=True, blank=True, help_text="When staff were told (once per surge)."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["component_key"],
                condition=models.Q(ended_at__isnull=True),
                name="one_open_report_surge_per_component",
            )
        ]

    def __str__(self):
        return f"Report surge of {self.name} from {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def name(self) -> str:
        """What visitors reported: the component's name, or "something else"."""
        return self.component.name if self.component else "something else"

    @property
    def usual_text(self) -> str:
        """What the window usually holds, in words: "usually about 2", "usually none"."""
        usual = int(self.usual_count + 0.5)
        return f"usually about {usual}" if usual else "usually none"

    @property
    def summary(self) -> str:
        """ "API: 57 in 5 min (usually about 2)", for staff messages and the console."""
        return f"{self.name}: {self.peak_count} in {self.window_minutes} min ({self.usual_text})"
