"""A component's statuses, Statuspage's five, and the types that carry one in code. Apart
from the models so that the alert models (components/alerts/models.py, registered by
components/models.py) need not import them."""

from typing import TYPE_CHECKING, Literal, TypeAlias, TypeGuard, get_args

from django.db import models
from django.utils.translation import gettext_lazy as _


class ComponentStatus(models.TextChoices):
    OPERATIONAL = "operational", _("Operational")
    DEGRADED_PERFORMANCE = "degraded_performance", _("Degraded performance")
    PARTIAL_OUTAGE = "partial_outage", _("Partial outage")
    MAJOR_OUTAGE = "major_outage", _("Major outage")
    UNDER_MAINTENANCE = "under_maintenance", _("Under maintenance")


# The same five as the strings the database, forms and JSON give (a test keeps them equal).
ComponentStatusName: TypeAlias = Literal[
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
]

# A component status wherever one is passed: a member (`ComponentStatus.MAJOR_OUTAGE`), or its
# value as a model field, a form or a JSON body gives it ("major_outage").
ComponentStatusValue: TypeAlias = ComponentStatus | ComponentStatusName

if TYPE_CHECKING:
    # A status column: it holds, and is given, one of the five (django-stubs would type a
    # CharField as any str). Model fields declare it as `status: "StatusField" = …`; it is
    # subscripted only for the checker, as a Field is not generic at run time.
    StatusField: TypeAlias = models.CharField[ComponentStatusValue, ComponentStatusValue]

_NAMES: frozenset[str] = frozenset(get_args(ComponentStatusName))


def is_component_status(value: object) -> TypeGuard[ComponentStatusValue]:
    """Whether `value` is one of the five statuses (narrows a string a form or JSON gave)."""
    return isinstance(value, str) and value in _NAMES


def as_component_status(value: str) -> ComponentStatusValue:
    """A status that a form, a JSON body or a caller gave, once checked: the same string,
    typed as a status. ValueError if it is none of the five."""
    if is_component_status(value):
        return value
    raise ValueError(f"Unknown component status {value!r}.")
