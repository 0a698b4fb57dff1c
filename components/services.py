"""Writes to components: status changes (with their history), uptime rollups, and the
components and groups themselves (created, edited and deleted through the management API)."""

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from components import signals
from components.models import (
    AutoIncident,
    AutoIncidentRecovery,
    AutoIncidentValue,
    Automation,
    AutomationValue,
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    ComponentStatusValue,
    DailyUptime,
    StatusChangeCause,
)
from components.publishing import public_changed, public_write
from components.uptime import split_by_day
from statuspage.lib.signals import announce_rows_changed
from statuspage.models import PageSettings


class StatusChangeError(ValidationError):
    pass


def component_set_status(
    *,
    component: Component,
    status: ComponentStatusValue,
    cause: StatusChangeCause = StatusChangeCause.STAFF,
    actor: User | None = None,
    at: datetime | None = None,
    note: str = "",
    notify: bool = True,
    locked_row: Component | None = None,
) -> ComponentStatusChange | None:
    """Move a component to `status`, recording the change; None when it already had it.

    `notify` tells webhook subscribers (Statuspage's component_update), unless the incident
    update that made the change asked not to notify anyone.
    Changes are recorded in time order per component (`at` may be in the past, for imports,
    but never before the component's last change), which keeps uptime rollups incremental.
    `locked_row` is the component's row as the caller read it with its lock, in the caller's
    transaction: it is neither locked nor read again.
    """
    if status not in ComponentStatus.values:
        raise StatusChangeError(f"Unknown component status {status!r}.")
    if cause not in StatusChangeCause.values:
        raise StatusChangeError(f"Unknown cause {cause!r}.")
    at = at or timezone.now()
    locked = locked_row
    if locked is None:
        with transaction.atomic():
            locked = Component.objects.select_for_update().get(pk=component.pk)
            change = _record_status(locked, status, cause, actor, at, note, notify)
    else:
        if not transaction.get_connection().in_atomic_block:
            raise StatusChangeError("A locked row is only locked inside its transaction.")
        change = _record_status(locked, status, cause, actor, at, note, notify)
    if change is not None:
        component.status = locked.status
        component.status_changed_at = locked.status_changed_at
        component.uptime_accounted_until = locked.uptime_accounted_until
    return change


def _record_status(
    locked: Component,
    status: ComponentStatusValue,
    cause: StatusChangeCause,
    actor: User | None,
    at: datetime,
    note: str,
    notify: bool,
) -> ComponentStatusChange | None:
    if locked.status == status:
        return None
    public_changed()  # not for the no-op above: the public outputs stay as they are
    if at < locked.status_changed_at:
        raise StatusChangeError(
            f"{locked.name} last changed at {locked.status_changed_at.isoformat()}; "
            "a change cannot be recorded before it."
        )
    _account_uptime(locked, until=at)
    change = ComponentStatusChange.objects.create(
        component=locked,
        from_status=locked.status,
        to_status=status,
        at=at,
        cause=cause,
        actor=actor,
        note=note[:255],
    )
    locked.status = status
    locked.status_changed_at = at
    locked.save(
        update_fields=["status", "status_changed_at", "uptime_accounted_until", "updated_at"]
    )
    if notify:
        signals.status_changed.send(sender=Component, change=change)
    return change


def _account_uptime(component: Component, *, until: datetime) -> bool:
    """Add the time since the last accounting, spent in the current status, to daily rows.

    The caller holds the component's row lock and saves `uptime_accounted_until`.
    """
    start = component.uptime_accounted_until
    if until <= start:
        return False
    field = DailyUptime.seconds_field(component.status)
    zone = PageSettings.load().zone
    for day, seconds in split_by_day(start, until, zone):
        # The day's row mostly exists: one UPDATE. Only this function writes the rows, under
        # the component's lock, so nobody creates it between the UPDATE and the create.
        day_row = DailyUptime.objects.filter(component=component, day=day)
        if not day_row.update(**{field: F(field) + round(seconds)}):
            DailyUptime.objects.create(component=component, day=day, **{field: round(seconds)})
    component.uptime_accounted_until = until
    return True


def roll_up_uptime(*, until: datetime | None = None) -> int:
    """Bring every component's daily rollups up to `until` (now); returns how many moved."""
    until = until or timezone.now()
    moved = 0
    for component_id in Component.objects.values_list("pk", flat=True):
        with transaction.atomic():
            component = Component.objects.select_for_update().get(pk=component_id)
            if _account_uptime(component, until=until):
                Component.objects.filter(pk=component.pk).update(
                    uptime_accounted_until=component.uptime_accounted_until
                )
                moved += 1
    if moved:
        public_changed()
    return moved


# Components and groups: the fields staff edit in the admin, validated as the admin does
# (full_clean), each write in one transaction. A component's status only ever changes through
# the arbiter (components.status), which records it with component_set_status, so its
# history and uptime stay whole.

COMPONENT_FIELDS = frozenset(
    {"name", "description", "group", "position", "showcase", "only_show_if_degraded", "start_date"}
    | {"internal", "automation", "auto_incident", "auto_incident_recovery", "managed_by_config"}
    | {"sla_target", "sla_credit_tiers"}
)
GROUP_FIELDS = frozenset(
    {"name", "description", "position", "internal", "managed_by_config"}
    | {"sla_target", "sla_credit_tiers"}
)


def _next_position(group: ComponentGroup | None) -> int:
    """The position after the last entry of a level: a group's components, or the top level
    (ungrouped components and groups share one sequence)."""
    if group is not None:
        last = group.components.aggregate(last=Max("position"))["last"]
        return (last or 0) + 1
    last_component = Component.objects.filter(group=None).aggregate(last=Max("position"))["last"]
    last_group = ComponentGroup.objects.aggregate(last=Max("position"))["last"]
    return max(last_component or 0, last_group or 0) + 1


def component_create(
    *,
    name: str,
    description: str = "",
    group: ComponentGroup | None = None,
    position: int | None = None,
    showcase: bool = True,
    only_show_if_degraded: bool = False,
    start_date: date | None = None,
    internal: bool = False,
    automation: AutomationValue = Automation.AUTOMATIC,
    auto_incident: AutoIncidentValue = AutoIncident.OFF,
    auto_incident_recovery: AutoIncidentRecovery = "resolved",
    managed_by_config: bool = False,
    sla_target: Decimal | None = None,
    sla_credit_tiers: list[dict[str, float]] | None = None,
) -> Component:
    """A new component, last of its level unless `position` is given.

    It starts operational; another status is a person's word, stated to the arbiter
    (components.status.component_status_state) and recorded as its first change.
    """
    with public_write():
        component = Component(
            name=name,
            description=description,
            group=group,
            position=_next_position(group) if position is None else position,
            showcase=showcase,
            only_show_if_degraded=only_show_if_degraded,
            start_date=start_date,
            internal=internal,
            automation=automation,
            auto_incident=auto_incident,
            auto_incident_recovery=auto_incident_recovery,
            managed_by_config=managed_by_config,
            sla_target=sla_target,
            sla_credit_tiers=sla_credit_tiers or [],
            status=ComponentStatus.OPERATIONAL,
        )
        component.full_clean()
        component.save()
    return component


def component_update(
    *,
    component: Component,
    changes: Mapping[str, Any],
) -> Component:
    """Edit a component's fields (COMPONENT_FIELDS); its status is the arbiter's
    (components.status.component_status_state).

    A component moved to another group goes last in it unless `changes` gives a position.
    Nothing is written when any part is invalid. Returns the component as saved.
    """
    unknown = set(changes) - COMPONENT_FIELDS
    if unknown:
        raise ValidationError(f"Cannot change {', '.join(sorted(unknown))} of a component.")
    if not changes:
        return component  # a status-only PATCH: nothing to lock, write or publish here
    with public_write():
        locked: Component = Component.objects.select_for_update().get(pk=component.pk)
        values = dict(changes)
        if "group" in values and "position" not in values:
            new_group = values["group"]
            if (new_group.pk if new_group else None) != locked.group_id:
                values["position"] = _next_position(new_group)
        for field, value in values.items():
            setattr(locked, field, value)
        locked.full_clean()
        locked.save(update_fields=[*values, "updated_at"])
    return locked


def components_backdate(*, components: Sequence[Component], since: datetime) -> None:
    """Say that new components have existed, operational, since `since`: for history that is
    replayed into the page afterwards (the demo), so that their status history and daily
    uptime start there. Only components with no recorded change can be backdated."""
    pks = [component.pk for component in components]
    if ComponentStatusChange.objects.filter(component__in=pks).exists() or (
        Component.objects.filter(pk__in=pks).exclude(status=ComponentStatus.OPERATIONAL).exists()
    ):
        raise StatusChangeError("Only new, operational components can be backdated.")
    if since > timezone.now():
        raise StatusChangeError("Components cannot be backdated to the future.")
    with public_write():
        Component.objects.filter(pk__in=pks).update(
            created_at=since, status_changed_at=since, uptime_accounted_until=since
        )
        announce_rows_changed(Component, pks)
    for component in components:
        component.created_at = component.status_changed_at = since
        component.uptime_accounted_until = since


def component_delete(*, component: Component) -> None:
    """Delete a component with its history, uptime and checks."""
    with public_write():
        component.delete()


def component_group_create(
    *,
    name: str,
    description: str = "",
    components: Sequence[Component] = (),
    position: int | None = None,
    internal: bool = False,
    managed_by_config: bool = False,
    sla_target: Decimal | None = None,
    sla_credit_tiers: list[dict[str, float]] | None = None,
) -> ComponentGroup:
    """A new group, last on the page unless `position` is given, holding `components` in
    that order (they leave the groups they were in)."""
    with public_write():
        group = ComponentGroup(
            name=name,
            description=description,
            position=_next_position(None) if position is None else position,
            internal=internal,
            managed_by_config=managed_by_config,
            sla_target=sla_target,
            sla_credit_tiers=sla_credit_tiers or [],
        )
        group.full_clean()
        group.save()
        _set_members(group, components)
    return group


def component_group_update(
    *,
    group: ComponentGroup,
    name: str | None = None,
    description: str | None = None,
    components: Sequence[Component] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> ComponentGroup:
    """Rename or describe a group, or change other GROUP_FIELDS given in `changes`; with
    `components`, they become its members in that order, and the components it held before
    but not now go last on the page, ungrouped."""
    values = dict(changes or {})
    unknown = set(values) - GROUP_FIELDS
    if unknown:
        raise ValidationError(f"Cannot change {', '.join(sorted(unknown))} of a group.")
    if name is not None:
        values["name"] = name
    if description is not None:
        values["description"] = description
    with public_write():
        locked = ComponentGroup.objects.select_for_update().get(pk=group.pk)
        for field, value in values.items():
            setattr(locked, field, value)
        locked.full_clean()
        locked.save()  # also when only the members change: the group's updated_at moves
        if components is not None:
            _set_members(locked, components)
    return locked


def component_group_delete(*, group: ComponentGroup) -> None:
    """Delete a group; its components stay on the page, ungrouped."""
    with public_write():
        group.delete()


def _set_members(group: ComponentGroup, components: Sequence[Component]) -> None:
    wanted = list(dict.fromkeys(component.pk for component in components))
    now = timezone.now()
    leaving = list(group.components.exclude(pk__in=wanted).order_by("position", "name"))
    next_top = _next_position(None)
    for offset, component in enumerate(leaving):
        Component.objects.filter(pk=component.pk).update(
            group=None, position=next_top + offset, updated_at=now
        )
    for position, pk in enumerate(wanted, start=1):
        Component.objects.filter(pk=pk).update(group=group, position=position, updated_at=now)
    announce_rows_changed(Component, [*wanted, *(component.pk for component in leaving)])
