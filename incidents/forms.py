"""Admin forms for incidents and maintenances: they collect input for the services."""

from itertools import groupby
from typing import TYPE_CHECKING

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils.translation import gettext_lazy

from components.models import Component, ComponentStatus
from incidents.models import (
    INCIDENT_STATUSES,
    MAX_UPDATE_BODY,
    Incident,
    IncidentKind,
    IncidentStatus,
    IncidentTemplate,
)
from incidents.notify.visitor_channels import MAX_URL_LENGTH, VisitorChannel
from statuspage.lib.text import no_control_characters_in_text

NO_CHANGE = ""
COMPONENT_FIELD_PREFIX = "component_"
COMPONENT_STATUS_CHOICES = [(NO_CHANGE, "No change"), *ComponentStatus.choices]
NEW_MAINTENANCE_STATUSES = [IncidentStatus.SCHEDULED, IncidentStatus.IN_PROGRESS]
# Whether subscribers hear of a maintenance before it starts and at its automatic steps.
MAINTENANCE_NOTIFY_FLAGS = [
    "scheduled_remind_prior",
    "auto_transition_deliver_notifications_at_start",
    "auto_transition_deliver_notifications_at_end",
]


def status_choices(statuses) -> list[tuple[str, str]]:
    return [(status.value, status.label) for status in statuses]


def component_field_name(component: Component) -> str:
    return f"{COMPONENT_FIELD_PREFIX}{component.pk}"


def component_fieldsets(components) -> list[tuple[str, dict]]:
    """Admin fieldsets for the per-component selects: one per group, in page order."""
    return [
        (
            group.name if group else "Components",
            {"fields": [component_field_name(c) for c in members]},
        )
        for group, members in groupby(components, key=lambda c: c.group)
    ]


def accepts_updates(incident: Incident) -> bool:
    return not incident.is_closed


def accepts_postmortem(incident: Incident) -> bool:
    return not incident.is_maintenance and incident.status in (
        IncidentStatus.RESOLVED,
        IncidentStatus.POSTMORTEM,
    )


def initial_from_template(template: IncidentTemplate) -> dict[str, str]:
    """Add-form values for an incident started from `template`."""
    return {
        "name": template.title,
        "status": template.status,
        "body": template.body,
        **{component_field_name(c): template.component_status for c in template.components.all()},
    }


class ServiceForm(forms.ModelForm):
    """A form whose writes are done by a service; the admin hands back what the service refused.

    The admin sets `service_error` when it renders the same POST again after the service
    raised ValidationError, so the error shows where it belongs.
    """

    service_error: ValidationError | None = None

    def clean(self):
        cleaned_data = super().clean()
        if self.service_error is not None:
            self.add_service_error(self.service_error)
        return cleaned_data

    def add_service_error(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for field, errors in error.error_dict.items():
            self.add_error(field if field in self.fields else None, errors)

    def cleaned_subset(self, *names: str) -> dict:
        return {name: self.cleaned_data[name] for name in names}


class UpdateMessageFields(forms.Form):
    """What every posted update says, and whether subscribers hear of it."""

    body = forms.CharField(
        label="Message",
        widget=forms.Textarea,
        required=False,
        max_length=MAX_UPDATE_BODY,
        validators=[no_control_characters_in_text],
        help_text="Markdown.",
    )
    deliver_notifications = forms.BooleanField(
        label="Notify subscribers", required=False, initial=True
    )


if TYPE_CHECKING:
    _FormMixinBase = forms.BaseForm  # what the mixin below is mixed into
else:
    _FormMixinBase = object


class ComponentStatusesMixin(_FormMixinBase):
    """One select per component ("No change" or a status), added in __init__ in page order."""

    def add_component_fields(self, current: dict[int, str] | None = None) -> None:
        """`current` prefills components (by pk) with the status they have now."""
        current = current or {}
        self.components = list(Component.objects.in_page_order())
        for component in self.components:
            self.fields[component_field_name(component)] = forms.ChoiceField(
                label=component.name,
                choices=COMPONENT_STATUS_CHOICES,
                required=False,
                initial=current.get(component.pk, NO_CHANGE),
            )

    def chosen_component_statuses(self, *, only_changed: bool) -> dict[Component, str]:
        """The components given a status.

        With `only_changed`, a component left at its prefilled status is not a change.
        """
        chosen = {}
        for component in getattr(self, "components", []):
            name = component_field_name(component)
            status = self.cleaned_data.get(name)
            if status and (not only_changed or name in self.changed_data):
                chosen[component] = status
        return chosen


class IncidentCreateForm(ComponentStatusesMixin, UpdateMessageFields, ServiceForm):
    status = forms.ChoiceField(
        choices=status_choices(INCIDENT_STATUSES), initial=IncidentStatus.INVESTIGATING
    )
    started_at = forms.SplitDateTimeField(
        label="Started at",
        required=False,
        widget=AdminSplitDateTime,
        help_text="Leave empty for now; set a past time to backfill an incident.",
    )

    class Meta:
        model = Incident
        fields = ["name", "impact_override", "backfilled", "internal"]
        help_texts = {"backfilled": "History only: a backfilled incident changes no components."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_component_fields()

    def create_kwargs(self) -> dict:
        """Arguments for incidents.services.incident_create."""
        return {
            **self.cleaned_subset(
                "name",
                "status",
                "body",
                "impact_override",
                "deliver_notifications",
                "started_at",
                "backfilled",
                "internal",
            ),
            "component_statuses": self.chosen_component_statuses(only_changed=False),
        }


class MaintenanceCreateForm(UpdateMessageFields, ServiceForm):
    status = forms.ChoiceField(
        choices=status_choices(NEW_MAINTENANCE_STATUSES), initial=IncidentStatus.SCHEDULED
    )
    affected_components = forms.ModelMultipleChoiceField(
        queryset=Component.objects.in_page_order(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Put under maintenance while it is in progress.",
    )

    class Meta:
        model = Incident
        fields = [
            "name",
            "scheduled_for",
            "scheduled_until",
            "scheduled_auto_in_progress",
            "scheduled_auto_completed",
            *MAINTENANCE_NOTIFY_FLAGS,
            "internal",
        ]

    def create_kwargs(self) -> dict:
        """Arguments for incidents.services.incident_create."""
        return {
            **self.cleaned_subset(
                "name",
                "status",
                "body",
                "deliver_notifications",
                "scheduled_for",
                "scheduled_until",
                "scheduled_auto_in_progress",
                "scheduled_auto_completed",
                *MAINTENANCE_NOTIFY_FLAGS,
                "affected_components",
                "internal",
            ),
            "kind": IncidentKind.MAINTENANCE,
        }


class IncidentChangeForm(ComponentStatusesMixin, UpdateMessageFields, ServiceForm):
    """The change page: edit the name, post an update while open, publish a postmortem after."""

    status = forms.ChoiceField()
    display_at = forms.SplitDateTimeField(
        label="Display time",
        required=False,
        widget=AdminSplitDateTime,
        help_text="Leave empty for now.",
    )
    publish_postmortem = forms.BooleanField(
        required=False, help_text="Publish the postmortem on the incident's public page."
    )
    postmortem_notify_subscribers = forms.BooleanField(
        label="Notify subscribers",
        required=False,
        initial=True,
        help_text="Subscribers hear of a postmortem once, the first time it is published.",
    )

    class Meta:
        model = Incident
        fields = ["name", "impact_override", "internal", "postmortem_body"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        incident = self.instance
        if not accepts_postmortem(incident):
            self.fields.pop("publish_postmortem")
            self.fields.pop("postmortem_notify_subscribers")
            self.fields.pop("postmortem_body", None)  # absent for view-only staff
        elif incident.postmortem:  # structured: written in the postmortem editor
            self.fields.pop("postmortem_body", None)
        if not accepts_updates(incident):
            for name in ["status", "body", "deliver_notifications", "display_at"]:
                del self.fields[name]
            return
        status_field = self.fields["status"]
        assert isinstance(status_field, forms.ChoiceField)  # declared above
        status_field.choices = status_choices(incident.allowed_statuses)
        self.initial["status"] = incident.status
        if not incident.backfilled:
            current = dict(incident.components.values_list("pk", "status"))
            self.add_component_fields(current)

    def update_requested(self) -> bool:
        """Whether to post an update: a message, a new status or a component change."""
        if "status" not in self.fields:
            return False
        data = self.cleaned_data
        return bool(
            data["body"].strip()
            or data["status"] != self.instance.status
            or self.chosen_component_statuses(only_changed=True)
        )

    def update_kwargs(self) -> dict:
        """Arguments for incidents.services.incident_post_update."""
        return {
            **self.cleaned_subset("status", "body", "deliver_notifications", "display_at"),
            "component_statuses": self.chosen_component_statuses(only_changed=True),
        }


# The public subscription pages


class ComponentChoiceForm(forms.Form):
    """The components a subscriber hears about: checkboxes grouped as on the page.

    None ticked means every component, including ones added later.
    """

    components = forms.TypedMultipleChoiceField(
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": gettext_lazy("Choose components from the list.")},
    )

    def __init__(self, *args, include_internal: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        components = Component.objects.in_page_order()
        # Internal components are offered only to internal subscribers; for anyone else their
        # ids are invalid choices.
        self.component_list = list(components if include_internal else components.public())
        components_field = self.fields["components"]
        assert isinstance(components_field, forms.ChoiceField)  # declared above
        components_field.choices = [(c.pk, c.name) for c in self.component_list]

    def component_sections(self) -> list[tuple[object, list[tuple[Component, bool]]]]:
        """(group or None, [(component, ticked)]) in page order."""
        ticked = {str(value) for value in self["components"].value() or ()}
        return [
            (group, [(component, str(component.pk) in ticked) for component in members])
            for group, members in groupby(self.component_list, key=lambda c: c.group)
        ]


class SubscribeForm(ComponentChoiceForm):
    """Email, or a visitor's own chat channel or webhook (`channel`). The URL is vetted by
    the service; the form only says which fields a channel needs."""

    channel = forms.TypedChoiceField(
        choices=VisitorChannel.choices, required=False, empty_value=VisitorChannel.EMAIL
    )
    email = forms.EmailField(
        label=gettext_lazy("Email address"),
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    endpoint = forms.CharField(
        label=gettext_lazy("Webhook URL"),
        max_length=MAX_URL_LENGTH,
        required=False,
        strip=True,
        widget=forms.URLInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    # Hidden from people; bots that fill every field are answered as if subscribed.
    website = forms.CharField(required=False)
    field_order = ["channel", "email", "endpoint", "components"]

    def clean(self):
        super().clean()
        cleaned_data = self.cleaned_data
        channel = cleaned_data.get("channel") or VisitorChannel.EMAIL
        email_missing = not cleaned_data.get("email") and "email" not in self.errors
        if channel == VisitorChannel.EMAIL and email_missing:
            self.add_error("email", gettext_lazy("Enter your email address."))
        if channel == VisitorChannel.WEBHOOK and email_missing:
            self.add_error("email", gettext_lazy("Enter an email address for failure notices."))
        if channel != VisitorChannel.EMAIL and not cleaned_data.get("endpoint"):
            self.add_error("endpoint", gettext_lazy("Enter the webhook URL."))
        return cleaned_data

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        first = "email" if self.chosen_channel == VisitorChannel.EMAIL else "endpoint"
        self.fields[first].widget.attrs["autofocus"] = True

    @property
    def chosen_channel(self) -> str:
        value = self["channel"].value() or VisitorChannel.EMAIL
        return value if value in VisitorChannel.values else VisitorChannel.EMAIL

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))


class PreferencesForm(ComponentChoiceForm):
    """A subscriber's own choices, on the page their emails link to: the components, and
    the language of their emails among the page's enabled ones."""

    language = forms.ChoiceField(
        label=gettext_lazy("Language of the emails"),
        required=False,
        error_messages={"invalid_choice": gettext_lazy("Choose a language from the list.")},
    )
    field_order = ["language", "components"]

    def __init__(self, *args, languages: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        language_field = self.fields["language"]
        assert isinstance(language_field, forms.ChoiceField)  # declared above
        language_field.choices = languages


class MaintenanceChangeForm(IncidentChangeForm):
    """A maintenance's change page: also whether subscribers hear of its next steps."""

    class Meta(IncidentChangeForm.Meta):
        fields = [*IncidentChangeForm.Meta.fields, *MAINTENANCE_NOTIFY_FLAGS]


# The reach of "Notify subscribers", counted live as staff choose components

MAX_REACH_VALUES = 2000
REACH_FLAGS = ["deliver_notifications", "backfilled", "internal"]


def reach_values(form: forms.BaseForm) -> QueryDict:
    """What the form would send of the fields its reach depends on, as it stands: prefilled
    (from a template, or the incident's components) or as sent back with errors."""
    values = QueryDict(mutable=True)
    for name in form.fields:
        value = form[name].value()
        if name in REACH_FLAGS:
            if value:
                values[name] = "on"
        elif name == "affected_components":
            values.setlist(name, [str(pk) for pk in value or ()])
        elif name.startswith(COMPONENT_FIELD_PREFIX) and value:
            values[name] = str(value)
    return values


def reach_component_ids(data: QueryDict) -> set[int]:
    """The components an incident or maintenance form names (its per-component selects set
    to a status, or its affected components ticked), from the form's own field names.

    Raises ValidationError for anything that is not such a field's value, unknown
    components included.
    """
    if len(data) > MAX_REACH_VALUES:
        raise ValidationError("Too many fields.")
    chosen: set[str] = set()
    for name, values in data.lists():
        if name.startswith(COMPONENT_FIELD_PREFIX):
            if any(value not in dict(COMPONENT_STATUS_CHOICES) for value in values):
                raise ValidationError(f"{name}: not a component status.")
            if any(values):
                chosen.add(name.removeprefix(COMPONENT_FIELD_PREFIX))
        elif name == "affected_components":
            chosen.update(values)
    if not all(pk.isdigit() and len(pk) < 10 for pk in chosen):
        raise ValidationError("Components are given by number.")
    ids = {int(pk) for pk in chosen}
    if ids and Component.objects.filter(pk__in=ids).count() != len(ids):
        raise ValidationError("Choose components from the list.")
    return ids
