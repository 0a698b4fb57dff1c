"""The admin's form for a recurring maintenance: the rule builder (weekly on days, monthly
on the nth weekday, or an RFC 5545 RRULE written out) and the window in the series' own
time zone. It collects input; incidents.series.services checks and writes it."""

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.contrib.admin.widgets import AdminDateWidget, AdminTimeWidget
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from components.models import Component
from incidents.forms import ServiceForm
from incidents.models import MAX_UPDATE_BODY, MaintenanceSeries
from incidents.series.recurrence import RuleError, monthly_rule, parts_of, weekly_rule
from incidents.series.services import SERIES_FLAGS, series_check, skipped_starts
from statuspage.lib.text import no_control_characters, no_control_characters_in_text
from statuspage.models import PageSettings, time_zone_choices

WEEKLY, MONTHLY, CUSTOM = "weekly", "monthly", "custom"
FREQUENCY_CHOICES = [
    (WEEKLY, _("Weekly on the chosen days")),
    (MONTHLY, _("Monthly on a weekday (e.g. the second Tuesday)")),
    (CUSTOM, _("Custom RRULE (RFC 5545)")),
]
WEEKDAY_CHOICES = [
    ("MO", _("Monday")),
    ("TU", _("Tuesday")),
    ("WE", _("Wednesday")),
    ("TH", _("Thursday")),
    ("FR", _("Friday")),
    ("SA", _("Saturday")),
    ("SU", _("Sunday")),
]
NTH_CHOICES = [
    ("1", _("first")),
    ("2", _("second")),
    ("3", _("third")),
    ("4", _("fourth")),
    ("-1", _("last")),
]
WEEKLY_RULE = re.compile(r"^FREQ=WEEKLY(;INTERVAL=(\d+))?;BYDAY=((MO|TU|WE|TH|FR|SA|SU),?)+$")
MONTHLY_RULE = re.compile(r"^FREQ=MONTHLY;BYDAY=(-1|[1-4])(MO|TU|WE|TH|FR|SA|SU)$")
MAX_SKIPPED = 200
SKIPPED_FORMAT = "%Y-%m-%d %H:%M"


class MaintenanceSeriesForm(ServiceForm):
    """Every field a series has, and the rule as the builder's choices."""

    body = forms.CharField(
        label=_("Message"),
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        max_length=MAX_UPDATE_BODY,
        validators=[no_control_characters_in_text],
        help_text=_("Markdown: the first update of each occurrence."),
    )
    components = forms.ModelMultipleChoiceField(
        label=_("Components"),
        queryset=Component.objects.in_page_order(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Put under maintenance while each occurrence is in progress."),
    )
    first_date = forms.DateField(label=_("First day"), widget=AdminDateWidget)
    first_time = forms.TimeField(
        label=_("Start time"),
        widget=AdminTimeWidget,
        help_text=_("Wall-clock time in the time zone below, kept across daylight saving."),
    )
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=time_zone_choices)
    duration_minutes = forms.IntegerField(
        label=_("Duration (minutes)"), min_value=1, max_value=7 * 24 * 60
    )
    frequency = forms.ChoiceField(
        label=_("Repeats"), choices=FREQUENCY_CHOICES, widget=forms.RadioSelect, initial=WEEKLY
    )
    weekdays = forms.MultipleChoiceField(
        label=_("Weekly on"),
        choices=WEEKDAY_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    interval = forms.IntegerField(
        label=_("Every how many weeks"), min_value=1, max_value=52, initial=1, required=False
    )
    nth = forms.ChoiceField(label=_("Monthly on the"), choices=NTH_CHOICES, required=False)
    month_weekday = forms.ChoiceField(label=_("Weekday"), choices=WEEKDAY_CHOICES, required=False)
    custom_rule = forms.CharField(
        label=_("RRULE"),
        max_length=500,
        required=False,
        validators=[no_control_characters],
        help_text=_("For example FREQ=MONTHLY;BYMONTHDAY=1 or FREQ=WEEKLY;INTERVAL=2;BYDAY=SA."),
    )
    skipped = forms.CharField(
        label=_("Skipped occurrences"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        validators=[no_control_characters_in_text],
        help_text=_("One start a line, as 2027-03-22 02:00, in the series' time zone."),
    )

    class Meta:
        model = MaintenanceSeries
        fields = ["name", *SERIES_FLAGS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        series = self.instance if self.instance.pk else None
        if series is None:
            self.fields["time_zone"].initial = PageSettings.load().time_zone
            return
        zone = ZoneInfo(series.time_zone)
        local = series.dtstart.astimezone(zone)
        self.initial.update(
            body=series.body,
            components=list(series.components.all()),
            first_date=local.date(),
            first_time=local.time(),
            time_zone=series.time_zone,
            duration_minutes=int(series.duration.total_seconds() // 60),
            skipped="\n".join(
                moment.astimezone(zone).strftime(SKIPPED_FORMAT)
                for moment in skipped_starts(series)
            ),
            **rule_initial(series.rule),
        )

    def clean(self):
        cleaned = super().clean()
        rule = self._rule()
        starts = self._first_start()
        skipped = self._skipped()
        minutes = cleaned.get("duration_minutes")
        if rule is None or starts is None or skipped is None or minutes is None:
            return cleaned
        try:
            recurrence = series_check(
                name=cleaned.get("name", ""),
                rule=rule,
                dtstart=starts,
                time_zone=cleaned["time_zone"],
                duration=timedelta(minutes=minutes),
                body=cleaned.get("body", ""),
            )
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(self._rule_field() if field == "rule" else field, messages)
            return cleaned
        cleaned["rule"] = recurrence.text
        cleaned["dtstart"] = recurrence.dtstart
        cleaned["exdates"] = skipped
        return cleaned

    def _rule_field(self) -> str:
        return {WEEKLY: "weekdays", MONTHLY: "nth"}.get(
            self.cleaned_data.get("frequency", ""), "custom_rule"
        )

    def _rule(self) -> str | None:
        frequency = self.cleaned_data.get("frequency")
        try:
            if frequency == WEEKLY:
                return weekly_rule(
                    self.cleaned_data.get("weekdays") or [],
                    interval=self.cleaned_data.get("interval") or 1,
                )
            if frequency == MONTHLY:
                nth = self.cleaned_data.get("nth") or ""
                return monthly_rule(
                    nth=int(nth) if nth.lstrip("-").isdigit() else 0,
                    weekday=self.cleaned_data.get("month_weekday") or "",
                )
        except RuleError as error:
            self.add_error(self._rule_field(), str(error))
            return None
        if frequency == CUSTOM:
            if not self.cleaned_data.get("custom_rule"):
                self.add_error("custom_rule", _("Write the rule."))
                return None
            return str(self.cleaned_data["custom_rule"])
        return None

    def _first_start(self) -> datetime | None:
        day: date | None = self.cleaned_data.get("first_date")
        at: time | None = self.cleaned_data.get("first_time")
        if day is None or at is None or "time_zone" not in self.cleaned_data:
            return None
        return datetime.combine(day, at.replace(second=0, microsecond=0)).replace(
            tzinfo=ZoneInfo(self.cleaned_data["time_zone"])
        )

    def _skipped(self) -> list[datetime] | None:
        text = self.cleaned_data.get("skipped") or ""
        if "time_zone" not in self.cleaned_data:
            return None
        zone = ZoneInfo(self.cleaned_data["time_zone"])
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if len(lines) > MAX_SKIPPED:
            self.add_error("skipped", _("At most 200 skipped occurrences."))
            return None
        skipped = []
        for line in lines:
            try:
                skipped.append(datetime.strptime(line, SKIPPED_FORMAT).replace(tzinfo=zone))
            except ValueError:
                self.add_error(
                    "skipped",
                    _("“%(line)s” is not a start like 2027-03-22 02:00.") % {"line": line[:40]},
                )
                return None
        return skipped

    def series_kwargs(self) -> dict:
        """Arguments for incidents.series.services.series_create and series_update."""
        data = self.cleaned_data
        return {
            **{name: data[name] for name in self._meta.fields or ()},
            "body": data["body"],
            "components": list(data["components"]),
            "rule": data["rule"],
            "dtstart": data["dtstart"],
            "time_zone": data["time_zone"],
            "duration": timedelta(minutes=data["duration_minutes"]),
            "exdates": data["exdates"],
        }


def rule_initial(rule: str) -> dict[str, object]:
    """The builder's choices that write `rule` again."""
    if WEEKLY_RULE.match(rule):
        parts = parts_of(rule)
        return {
            "frequency": WEEKLY,
            "weekdays": parts["BYDAY"].split(","),
            "interval": int(parts.get("INTERVAL", "1")),
        }
    if match := MONTHLY_RULE.match(rule):
        return {"frequency": MONTHLY, "nth": match.group(1), "month_weekday": match.group(2)}
    return {"frequency": CUSTOM, "custom_rule": rule}
