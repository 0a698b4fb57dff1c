"""`get_FOO_display()` without rebuilding the field's choices on every call."""

from typing import Any

from django.utils.encoding import force_str
from django.utils.hashable import make_hashable


class QuickChoiceDisplay:
    """Django's `Model._get_FIELD_display` makes a dict of all the field's choices each time it
    is called. A page lists each update's status and each component change's two statuses, so
    a rebuild of a busy page called it tens of thousands of times, an eighth of its time.

    The labels are kept per field, lazy as declared, so each call still translates into the
    active language. Put before `models.Model` in the bases.
    """

    def _get_FIELD_display(self, field: Any) -> Any:
        labels = field.__dict__.get("_beacon_choice_labels")
        if labels is None:
            labels = field._beacon_choice_labels = dict(make_hashable(field.flatchoices))
        value = getattr(self, field.attname)
        return force_str(labels.get(make_hashable(value), value), strings_only=True)
