"""The admin's postmortem editor: the sections, the timeline and the action items as forms.

The sections are one form, the timeline and the action items a formset each; together they
make one `Postmortem` (incidents/postmortems.py) for the services to store. Every field is
capped, and the Markdown they compose is held to MAX_POSTMORTEM_BODY here, so staff see a
form error rather than the service's refusal.
"""

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin.widgets import AdminDateWidget, AdminSplitDateTime
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from incidents.models import MAX_POSTMORTEM_BODY, Incident
from incidents.postmortems import (
    MAX_ACTION_ITEMS,
    MAX_ACTION_TEXT,
    MAX_DUE_DAYS,
    MAX_OWNER_CHARS,
    MAX_SECTION_CHARS,
    MAX_TIMELINE_ENTRIES,
    MAX_TIMELINE_TEXT,
    ActionItem,
    Postmortem,
    TimelineEntry,
    postmortem_markdown,
    timeline_window,
)
from statuspage.lib.text import no_control_characters, no_control_characters_in_text

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrOrPromise

# Longer than any incident should last: a year of minutes.
MAX_IMPACT_MINUTES = 366 * 24 * 60


def _section(label: "StrOrPromise", help_text: "StrOrPromise") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=MAX_SECTION_CHARS,
        widget=forms.Textarea(attrs={"rows": 6, "class": "vLargeTextField"}),
        validators=[no_control_characters_in_text],
        help_text=help_text,
    )


class PostmortemForm(forms.Form):
    """The sections and the impact figures."""

    summary = _section(_("Summary"), _("Markdown: what happened, in a few sentences."))
    impact = _section(_("Impact"), _("Markdown: who noticed what."))
    impact_minutes = forms.IntegerField(
        label=_("Minutes of impact"),
        required=False,
        min_value=0,
        max_value=MAX_IMPACT_MINUTES,
        help_text=_("From the first update to the resolution unless you know better."),
    )
    users_affected_percent = forms.DecimalField(
        label=_("Share of users affected (%)"),
        required=False,
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("If known: 0 to 100."),
    )
    root_cause = _section(_("Root cause"), _("Markdown."))
    notify_subscribers = forms.BooleanField(
        label=_("Notify subscribers"),
        required=False,
        initial=True,
        help_text=_("On publishing: subscribers hear of a postmortem once, the first time."),
    )
    confirm_regenerate = forms.BooleanField(
        label=_("Replace the timeline's entries"),
        required=False,
        help_text=_("Tick to let “Regenerate timeline” overwrite your edits to the timeline."),
    )


class TimelineEntryForm(forms.Form):
    at = forms.SplitDateTimeField(label=_("Time"), widget=AdminSplitDateTime)
    text = forms.CharField(
        label=_("What happened"),
        max_length=MAX_TIMELINE_TEXT,
        validators=[no_control_characters],
        widget=forms.TextInput(attrs={"class": "vLargeTextField"}),
    )

    def __init__(self, *args: Any, incident: Incident, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.incident = incident

    def clean_at(self):
        at = self.cleaned_data["at"]
        start, end = timeline_window(self.incident)
        if not start <= at <= end:
            raise forms.ValidationError(
                _("Choose a time from a day before the incident to a day after it ended.")
            )
        return at


class ActionItemForm(forms.Form):
    description = forms.CharField(
        label=_("Action"),
        max_length=MAX_ACTION_TEXT,
        validators=[no_control_characters],
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )
    owner = forms.CharField(
        label=_("Owner"),
        required=False,
        max_length=MAX_OWNER_CHARS,
        validators=[no_control_characters],
    )
    due = forms.DateField(label=_("Due"), required=False, widget=AdminDateWidget)
    done = forms.BooleanField(label=_("Done"), required=False)

    def __init__(self, *args: Any, incident: Incident, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.incident = incident

    def clean_due(self):
        due = self.cleaned_data["due"]
        start = self.incident.started_at.date()
        if due is not None and not start <= due <= start + timedelta(days=MAX_DUE_DAYS):
            raise forms.ValidationError(
                _("Choose a date from the incident's start to ten years after it.")
            )
        return due


def _rows(form: type[forms.Form], most: int) -> type[forms.BaseFormSet]:
    """Rows staff add and delete, at most `most` of them (more is a form error, not a 500)."""
    return forms.formset_factory(
        form, extra=2, can_delete=True, max_num=most, absolute_max=most, validate_max=True
    )


TimelineFormSet = _rows(TimelineEntryForm, MAX_TIMELINE_ENTRIES)
ActionItemFormSet = _rows(ActionItemForm, MAX_ACTION_ITEMS)


class PostmortemEditor:
    """The form and the two formsets, bound together or filled from a postmortem."""

    def __init__(
        self,
        incident: Incident,
        data: Any = None,
        *,
        initial: Postmortem | None = None,
        timeline: list[TimelineEntry] | None = None,
    ) -> None:
        self.incident = incident
        kwargs: dict[str, Any] = {"form_kwargs": {"incident": incident}}
        if data is not None:
            self.form = PostmortemForm(data)
            self.actions = ActionItemFormSet(data, prefix="actions", **kwargs)
            if timeline is None:
                self.timeline = TimelineFormSet(data, prefix="timeline", **kwargs)
            else:  # regenerated: the rest as sent, the timeline drawn again
                self.timeline = TimelineFormSet(
                    prefix="timeline", initial=_timeline_initial(timeline), **kwargs
                )
        else:
            postmortem = initial or Postmortem()
            self.form = PostmortemForm(
                initial={
                    "summary": postmortem.summary,
                    "impact": postmortem.impact,
                    "impact_minutes": postmortem.impact_minutes,
                    "users_affected_percent": postmortem.users_affected_percent,
                    "root_cause": postmortem.root_cause,
                }
            )
            self.timeline = TimelineFormSet(
                prefix="timeline", initial=_timeline_initial(postmortem.timeline), **kwargs
            )
            self.actions = ActionItemFormSet(
                prefix="actions",
                initial=[
                    {
                        "description": item.description,
                        "owner": item.owner,
                        "due": item.due,
                        "done": item.done,
                    }
                    for item in postmortem.actions
                ],
                **kwargs,
            )

    def is_valid(self) -> bool:
        valid = all([self.form.is_valid(), self.timeline.is_valid(), self.actions.is_valid()])
        if not valid:
            return False
        length = len(postmortem_markdown(self.postmortem()))
        if length > MAX_POSTMORTEM_BODY:
            too_long = str(
                _(
                    "The postmortem is too long: at most %(limit)s characters of Markdown, "
                    "this one makes %(length)s. Shorten a section or the timeline."
                )
                % {"limit": f"{MAX_POSTMORTEM_BODY:,}", "length": f"{length:,}"}
            )
            self.form.add_error(None, too_long)
            return False
        return True

    def postmortem(self) -> Postmortem:
        """The postmortem the valid forms describe: timeline in time order."""
        data = self.form.cleaned_data
        percent = data["users_affected_percent"]
        entries = [
            TimelineEntry(at=entry["at"], text=entry["text"].strip())
            for entry in _kept(self.timeline)
        ]
        return Postmortem(
            summary=data["summary"].strip(),
            impact=data["impact"].strip(),
            impact_minutes=data["impact_minutes"],
            users_affected_percent=float(percent) if percent is not None else None,
            timeline=sorted(entries, key=lambda entry: entry.at),
            root_cause=data["root_cause"].strip(),
            actions=[
                ActionItem(
                    description=item["description"].strip(),
                    owner=item["owner"].strip(),
                    due=item["due"],
                    done=item["done"],
                )
                for item in _kept(self.actions)
            ],
        )

    @property
    def errors(self) -> list[str]:
        """Every error, as text, for the preview's list."""
        messages = [str(error) for error in self.form.non_field_errors()]
        for name, errors in self.form.errors.items():
            if name != "__all__":
                messages += [f"{self.form[name].label}: {error}" for error in errors]
        formsets: list[forms.BaseFormSet] = [self.timeline, self.actions]
        for formset in formsets:
            messages += [str(error) for error in formset.non_form_errors()]
            for number, form in enumerate(formset.forms, start=1):
                for name, errors in form.errors.items():
                    label = formset.form.base_fields[name].label if name != "__all__" else ""
                    messages += [f"#{number} {label}: {error}" for error in errors]
        return messages


def _timeline_initial(entries: list[TimelineEntry]) -> list[dict[str, Any]]:
    return [{"at": entry.at, "text": entry.text} for entry in entries]


def _kept(formset: forms.BaseFormSet) -> list[dict[str, Any]]:
    """The rows staff filled in and did not delete."""
    return [
        form.cleaned_data
        for form in formset.forms
        if form.cleaned_data and not form.cleaned_data.get("DELETE")
    ]
