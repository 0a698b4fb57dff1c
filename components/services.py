"""Writes to components: status changes (with their history) and uptime rollups."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from components.models import (
    Component,
    ComponentStatus,
    ComponentStatusChange,
    DailyUptime,
    StatusChangeCause,
)
from components.uptime import split_by_day
from statuspage import snapshots
from statuspage.models import PageSettings


class StatusChangeError(ValidationError):
    pass


def component_set_status(
    *,
    component: Component,
    status: str,
    cause: str = StatusChangeCause.STAFF,
    actor=None,
    at: datetime | None = None,
    note: str = "",
    notify: bool = True,
) -> ComponentStatusChange | None:
    """Move a component to `status`, recording the change; None when it already had it.

    `notify` tells webhook subscribers (Statuspage's component_update), unless the incident
    update that made the change asked not to notify anyone.
    Changes are recorded in time order per component (`at` may be in the past, for imports,
    but never before the component's last change), which keeps uptime rollups incremental.
    """
    if status not in ComponentStatus.values:
        raise StatusChangeError(f"Unknown component status {status!r}.")
    if cause not in StatusChangeCause.values:
        raise StatusChangeError(f"Unknown cause {cause!r}.")
    at = at or timezone.now()
    with transaction.atomic():
        locked = Component.objects.select_for_update().get(pk=component.pk)
        if locked.status == status:
            return None
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
            from incidents.notify.events import event_for_status_change

            event_for_status_change(change)
    component.status = locked.status
    component.status_changed_at = locked.status_changed_at
    component.uptime_accounted_until = locked.uptime_accounted_until
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
        row, _ = DailyUptime.objects.get_or_create(component=component, day=day)
        DailyUptime.objects.filter(pk=row.pk).update(**{field: F(field) + round(seconds)})
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
        snapshots.publish_change_on_commit()
    return moved
