"""Admin forms for components."""

from django import forms
from django.contrib.admin.helpers import ActionForm
from django.forms.models import BaseInlineFormSet

from components.models import ComponentStatus

LATEST_STATUS_CHANGES = 20


class ComponentActionForm(ActionForm):
    """The changelist's action bar, with the status that "Set status" applies."""

    status = forms.ChoiceField(
        choices=[("", "---------"), *ComponentStatus.choices], required=False
    )


class LatestStatusChangesFormSet(BaseInlineFormSet):
    """Only the most recent changes: the full history has its own list."""

    def get_queryset(self):
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[:LATEST_STATUS_CHANGES]
        return self._latest
