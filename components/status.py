"""The one arbiter of a component's status: who may move it, and to what.

Six sources claim a component's status. People's sources (staff, an incident, a maintenance,
the API) state it: a person's word is applied as given. The automatic sources (health checks,
inbound alerts) report what they see, and the arbiter moves the component only when no
person holds it: not on manual status, not named by an open incident or maintenance, and not
left in a status a person set. Between the automatic sources the worst claim wins, so a
recovered check never ends a firing alert, and an alert never makes a component look better
than its checks say. docs/architecture.md ("Component status: who decides") has the table.

All six sources go through here at run time, and checks and alerts never read each other:
people's sources state their word with `component_status_state`, checks and alerts report
with `component_status_follow`. Both read every source's current claim (`component_claims`),
decide with the pure `decide` (a person's word is applied as given), and record the change
with `component_set_status`, with the source as its cause; nothing else calls it
(tests/components/test_status_arbiter.py holds that). The recorded cause is what holds the
component against checks and alerts. Incidents hear of automatic moves through the
`moved_automatically` signal: components never import incidents, and read an incident's hold
through the component's `incidents` relation.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.dispatch import Signal

from components.alerts.models import AlertState
from components.checks import policy
from components.models import (
    Automation,
    AutomationValue,
    Component,
    ComponentStatusChange,
    StatusChangeCause,
    worst_status,
)
from components.services import component_set_status
from components.status_choices import ComponentStatus, ComponentStatusValue

# The sources, as a status change records them (ComponentStatusChange.cause).
PEOPLE = (
    StatusChangeCause.STAFF,
    StatusChangeCause.INCIDENT,
    StatusChangeCause.MAINTENANCE,
    StatusChangeCause.API,
)
AUTOMATIC = (StatusChangeCause.HEALTH_CHECK, StatusChangeCause.ALERT)

# An incident or maintenance in one of these statuses holds nothing: it is over, or not
# started (incidents.models.CLOSED_STATUSES and "scheduled"; a test keeps the two the same).
NOT_HOLDING_INCIDENT_STATUSES = ("resolved", "postmortem", "completed", "scheduled")

# How staff messages and automatic incidents name the automatic sources.
_SOURCE_WORDS: dict[str, str] = {
    StatusChangeCause.HEALTH_CHECK: "health check",
    StatusChangeCause.ALERT: "alert",
}

# Sent (sender=Component, inside the transaction) when health checks or alerts moved a
# component, with component, old_status, new_status, reason and source ("health check" or
# "alert"). Incidents, which sit above components, listen: they open, draft or resolve the
# automatic incident and tell staff (incidents.automatic, connected in IncidentsConfig.ready).
moved_automatically = Signal()


class SourceError(ValueError):
    """A source the arbiter does not know, or a claim its kind of source cannot make."""


@dataclass(frozen=True)
class Claims:
    """What every source says of one component right now."""

    status: ComponentStatusValue  # the component's status now
    automation: AutomationValue = Automation.AUTOMATIC
    last_cause: str | None = None  # the source of its last recorded change; None: no history
    incident_open: bool = False  # an open incident or maintenance names it (not the checks' own)
    # What its enabled checks call for (the worst); None: none says.
    checks: ComponentStatusValue | None = None
    alerts: tuple[ComponentStatusValue, ...] = ()  # the statuses its firing alerts call for


def held_by_people(claims: Claims) -> bool:
    """Whether people hold the component, so that checks and alerts leave it alone: staff
    chose manual status, an open incident or maintenance names it, or a person set the
    status it has (a person who set it operational holds nothing)."""
    if claims.automation == Automation.MANUAL or claims.incident_open:
        return True
    return (
        claims.status != ComponentStatus.OPERATIONAL
        and claims.last_cause is not None
        and claims.last_cause not in AUTOMATIC
    )


def decide(
    *,
    source: StatusChangeCause,
    claims: Claims,
    status: ComponentStatusValue | None = None,
    alerts_baseline: ComponentStatusValue | None = None,
) -> ComponentStatusValue | None:
    """The status the component moves to when `source` reports; None: it stays as it is.

    People's sources give their `status`, which is applied as given. Health checks and
    alerts give none: the arbiter takes their claims from `claims`. `alerts_baseline` is
    the status the component had before the reporting alert took it over, which it returns
    to when its alerts resolve and no check says otherwise.
    """
    if source in PEOPLE:
        if status is None:
            raise SourceError(f"{source} must state the status it wants.")
        return None if status == claims.status else status
    if source not in AUTOMATIC:
        raise SourceError(f"Unknown source {source!r}.")
    if status is not None:
        raise SourceError(f"{source} reports what it sees; the arbiter decides the status.")
    if held_by_people(claims):
        return None
    if source == StatusChangeCause.HEALTH_CHECK:
        wanted = claims.checks
        if (
            wanted is None
            and claims.status != ComponentStatus.OPERATIONAL
            and claims.last_cause == StatusChangeCause.HEALTH_CHECK
        ):
            wanted = ComponentStatus.OPERATIONAL  # its checks were disabled or removed
        if wanted is not None and claims.alerts:  # a recovered check ends no firing alert
            wanted = worst_status([wanted, *claims.alerts])
    else:
        baseline = claims.checks or alerts_baseline or claims.status
        # With no alert calling for trouble, alerts only undo a change they made last.
        if not any(s != ComponentStatus.OPERATIONAL for s in claims.alerts) and (
            claims.last_cause != StatusChangeCause.ALERT
        ):
            return None
        wanted = worst_status([*claims.alerts, baseline])
    return None if wanted is None or wanted == claims.status else wanted


def component_claims(component: Component) -> Claims:
    """Read every source's current claim on a component (the caller holds its row lock)."""
    last = component.status_changes.order_by("-at", "-id").first()
    incident_open = (
        component.incidents.exclude(status__in=NOT_HOLDING_INCIDENT_STATUSES)
        .exclude(auto_component=component)  # the checks' own incident holds nothing
        .exists()
    )
    firing = AlertState.objects.filter(component=component, firing=True)
    return Claims(
        status=component.status,
        automation=component.automation,
        last_cause=last.cause if last is not None else None,
        incident_open=incident_open,
        checks=policy.component_status(component.checks.all()),
        alerts=tuple(firing.values_list("status", flat=True)),
    )


def component_status_follow(
    *,
    component: Component,
    source: StatusChangeCause,
    note: str = "",
    alerts_baseline: ComponentStatusValue | None = None,
) -> ComponentStatusValue | None:
    """An automatic source (health checks, alerts) reports that what it sees changed: move
    the component as the arbiter decides, and let its automatic incident follow. Returns the
    new status, None when it stays. The caller holds the component's row lock."""
    if source not in AUTOMATIC:
        raise SourceError(
            f"{source!r} is not an automatic source; people's word is stated "
            "with component_status_state."
        )
    wanted = decide(
        source=source, claims=component_claims(component), alerts_baseline=alerts_baseline
    )
    if wanted is None:
        return None
    old_status = component.status
    component_set_status(component=component, status=wanted, cause=source, note=note)
    moved_automatically.send(
        sender=Component,
        component=component,
        old_status=old_status,
        new_status=wanted,
        reason=note,
        source=_SOURCE_WORDS[source],
    )
    return wanted


def component_status_state(
    *,
    component: Component,
    source: StatusChangeCause,
    status: ComponentStatusValue,
    actor: User | None = None,
    at: datetime | None = None,
    note: str = "",
    notify: bool = True,
    locked: bool = False,
) -> ComponentStatusChange | None:
    """A person's source (staff, the API, an incident, a maintenance) states the status it
    wants: the arbiter reads the claims, decides (a person's word is applied as given), and
    records the change with its cause. Returns the change; None when the component already
    had that status, which records nothing and leaves the public outputs as they are.

    `at`, `note` and `notify` are component_set_status's: when the change happened (for an
    incident update displayed in the past), the history's note, and whether subscribers hear.
    `locked`: `component` is its row as the caller read it with its lock, in the caller's
    transaction, so it is neither locked nor read again.
    """
    if source not in PEOPLE:
        raise SourceError(
            f"{source!r} is not a person's source; health checks and alerts report "
            "with component_status_follow."
        )
    stated = {"actor": actor, "at": at, "note": note, "notify": notify}
    if locked:
        return _state(component, component, source, status, stated)
    with transaction.atomic():
        row = Component.objects.select_for_update().get(pk=component.pk)
        return _state(component, row, source, status, stated)


def _state(
    component: Component,
    row: Component,
    source: StatusChangeCause,
    status: ComponentStatusValue,
    stated: dict[str, Any],
) -> ComponentStatusChange | None:
    # A person's word is applied as given: decide reads no claim of theirs but the status
    # the component has, so the automatic sources' claims (four queries) are not read.
    wanted = decide(source=source, claims=Claims(status=row.status), status=status)
    if wanted is None:
        return None
    return component_set_status(
        component=component, status=wanted, cause=source, locked_row=row, **stated
    )
