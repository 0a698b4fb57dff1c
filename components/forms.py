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


class CreditTiersField(forms.JSONField):
    """SLA credit tiers as staff type them: an emptied box is no tiers (the column is a
    list, never null), not a database error."""

    def to_python(self, value):
        tiers = super().to_python(value)
        return [] if tiers is None else tiers


class SlaTermsAdmin:
    """For the admins of components and groups: their credit tiers through CreditTiersField."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "sla_credit_tiers":
            kwargs["form_class"] = CreditTiersField
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
