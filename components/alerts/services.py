"""Writes of inbound alerts: a delivery's alerts move the components they name.

Each alert (by fingerprint) keeps an AlertState per component it names. A delivery changes
a state only when it says something new and is not older than what the state last heard,
so a notification delivered twice, a group's repeat, or a late firing after its resolution
changes nothing. When a state changes, alerts report to the arbiter (components.status),
which moves the component by the rules health checks follow too: never a component on
manual status, one an open incident names, or one a person set last.
"""

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import DataError, transaction
from django.db.models import F, Q
from django.utils import timezone

from components.alerts.kinds import KINDS, ParsedAlert, PayloadError, load_body
from components.alerts.models import AlertIntegration, AlertLog, AlertState, new_token
from components.models import (
    Component,
    ComponentStatus,
    ComponentStatusValue,
    StatusChangeCause,
    held_long_enough,
)
from components.status import component_status_follow

logger = logging.getLogger("beacon.alerts")

EXCERPT_BYTES = 2048

# Times a sender cannot mean. A time later than the receipt by more than clock skew
# (a stored year 9999 once made every later alert of its component stale), or before
# TIME_FLOOR (Unix 0, a misread unit), counts as the time Beacon received the delivery.
FUTURE_TOLERANCE = timedelta(minutes=5)
TIME_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
# One alert's label may name several components ("api,web"); more than this is a mistake
# (or an attack on the component query), and the delivery is refused.
MAX_COMPONENTS_PER_ALERT = 50

CHANGED, UNCHANGED, STALE = "changed", "unchanged", "stale"


@dataclass
class ReceiveResult:
    """What a delivery did, as the sender is told (and staff, when something is off)."""

    alerts: int = 0
    changed: int = 0  # alert states that fired, resolved or changed severity
    unchanged: int = 0  # repeats: nothing new
    stale: int = 0  # older than what Beacon already knew of that alert
    unmatched: list[str] = field(default_factory=list)  # alerts naming no known component
    moved: list[str] = field(default_factory=list)  # components whose status changed

    def as_dict(self) -> dict[str, int | list[str]]:
        return {
            "alerts": self.alerts,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "stale": self.stale,
            "unmatched": self.unmatched,
            "components_changed": self.moved,
        }


def alerts_receive(
    *, integration: AlertIntegration, body: bytes, now: datetime | None = None
) -> ReceiveResult:
    """Read the whole delivery, then apply all its alerts in one transaction.

    Raises PayloadError, after logging it for staff, when the body is not what the
    integration's kind sends; nothing is applied then, not even in part.
    """
    now = now or timezone.now()
    AlertIntegration.objects.filter(pk=integration.pk).update(last_received_at=now)
    try:
        alerts = [
            _plausible(alert, now) for alert in KINDS[integration.kind].parse(load_body(body))
        ]
        plan = [(alert, _components_named(integration, alert)) for alert in alerts]
        return _apply(integration, plan, body=body, now=now)
    except PayloadError as error:
        alert_log_write(integration=integration, ok=False, reason=str(error), body=body, at=now)
        logger.info("alert delivery refused integration=%s: %s", integration.pk, error)
        raise


def _apply(
    integration: AlertIntegration,
    plan: list[tuple[ParsedAlert, list[Component]]],
    *,
    body: bytes,
    now: datetime,
) -> ReceiveResult:
    result = ReceiveResult(alerts=len(plan))
    try:
        with transaction.atomic():
            # Locked in one order, so that two deliveries naming the same components wait
            # for each other instead of deadlocking.
            ids = sorted({component.pk for _, components in plan for component in components})
            locked = {
                component.pk: component
                for component in Component.objects.select_for_update().filter(pk__in=ids)
            }
            for alert, components in plan:
                if not components:
                    result.unmatched.append(_title(alert))
                    continue
                for component in components:
                    if component.pk not in locked:
                        continue  # deleted since it was matched
                    outcome, moved = _alert_apply(integration, alert, locked[component.pk], now)
                    setattr(result, outcome, getattr(result, outcome) + 1)
                    if moved and component.name not in result.moved:
                        result.moved.append(component.name)
    except DataError as error:
        # The last line: a value the checks above let through and PostgreSQL refused.
        raise PayloadError(f"Beacon could not store this delivery: {error}".strip()) from error
    if result.unmatched:
        label = integration.match_label
        reason = (
            f"No component matched {len(result.unmatched)} alert(s) by their “{label}” "
            f"label: {'; '.join(result.unmatched)}"
        )
        alert_log_write(integration=integration, ok=True, reason=reason, body=body, at=now)
    return result


def _plausible(alert: ParsedAlert, now: datetime) -> ParsedAlert:
    """The alert with its times as Beacon will believe them (see FUTURE_TOLERANCE)."""
    return dataclasses.replace(
        alert,
        starts_at=_plausible_time(alert.starts_at, now),
        ends_at=_plausible_time(alert.ends_at, now),
    )


def _plausible_time(moment: datetime | None, now: datetime) -> datetime | None:
    if moment is None:
        return None
    if moment > now + FUTURE_TOLERANCE or moment < TIME_FLOOR:
        return now
    return moment


def _title(alert: ParsedAlert) -> str:
    return (alert.summary or alert.fingerprint)[:120]


def _components_named(integration: AlertIntegration, alert: ParsedAlert) -> list[Component]:
    """The components an alert's match label names: by name, ignoring case, after the
    integration's own mapping; a value that names none is tried as a comma-separated list."""
    value = alert.labels.get(integration.match_label, "").strip()
    if not value:
        return []
    found = _by_names(integration.component_names(value)[:MAX_COMPONENTS_PER_ALERT])
    if not found and "," in value:
        parts = [p.strip() for p in value.split(",", MAX_COMPONENTS_PER_ALERT) if p.strip()]
        if len(parts) > MAX_COMPONENTS_PER_ALERT:
            raise PayloadError(
                f"{_title(alert)}: its “{integration.match_label}” label names more than "
                f"{MAX_COMPONENTS_PER_ALERT} components."
            )
        found = _by_names([name for part in parts for name in integration.component_names(part)])
    return found


def _by_names(names: list[str]) -> list[Component]:
    query = Q()
    for name in names:
        query |= Q(name__iexact=name.strip())
    return list(Component.objects.filter(query)) if names else []


def _alert_apply(
    integration: AlertIntegration, alert: ParsedAlert, component: Component, now: datetime
) -> tuple[str, bool]:
    """Record what one alert says about one component; returns the outcome and whether
    the component's status moved."""
    event_at = alert.event_at or now
    status: ComponentStatusValue = ComponentStatus.OPERATIONAL
    if alert.firing:
        severity = alert.labels.get(integration.severity_label) or alert.severity
        status = integration.status_for(severity)
    # The caller holds the component's row lock: it orders all alerts of one component,
    # from any integration.
    state = (
        AlertState.objects.select_for_update()
        .filter(integration=integration, fingerprint=alert.fingerprint, component=component)
        .first()
    )
    if state is None:
        state = AlertState(
            integration=integration,
            fingerprint=alert.fingerprint,
            component=component,
            firing=False,
            status=ComponentStatus.OPERATIONAL,
            status_before=component.status,
            event_at=event_at,
            reported_firing=False,
            reported_status=ComponentStatus.OPERATIONAL,
        )
    elif _is_stale(state, alert, event_at, now):
        return STALE, False
    state.integration = integration  # the caller's, with its settling times
    changed = state.reported_firing != alert.firing or (
        alert.firing and state.reported_status != status
    )
    state.reported_firing, state.reported_status = alert.firing, status
    if changed:
        state.reported_at = now
    state.event_at, state.starts_at, state.ends_at = event_at, alert.starts_at, alert.ends_at
    state.summary, state.labels = alert.summary[:255], alert.labels
    moved = _settle(state, component, now)
    return (CHANGED if changed else UNCHANGED), moved


def _settle(state: AlertState, component: Component, now: datetime) -> bool:
    """Let what the alert reported count for the component once it has held long enough
    (the integration's firing_for toward worse, resolved_for toward better), so that an
    alert flapping between firing and resolved moves its component once, not every time.
    Saves the state; returns whether the component moved. The caller holds its row lock."""
    counted = state.status if state.firing else ComponentStatus.OPERATIONAL
    wanted = state.reported_status if state.reported_firing else ComponentStatus.OPERATIONAL
    if state.reported_firing == state.firing and wanted == counted:
        state.save()
        return False
    integration = state.integration
    if not held_long_enough(
        current=counted,
        wanted=wanted,
        since=state.reported_at,
        now=now,
        worse_after=timedelta(seconds=integration.firing_for),
        better_after=timedelta(seconds=integration.resolved_for),
    ):
        state.save()
        return False
    if state.reported_firing and not state.firing:
        state.status_before = _status_before(component, exclude=state.pk)
    state.firing, state.status = state.reported_firing, state.reported_status
    state.save()
    moved = component_status_follow(
        component=component,
        source=StatusChangeCause.ALERT,
        note=_note(integration, state),
        alerts_baseline=state.status_before,
    )
    return moved is not None


def alerts_settle(*, now: datetime | None = None) -> list[str]:
    """Apply the reports that have now held long enough (beat, every few seconds); returns
    the names of the components that moved."""
    now = now or timezone.now()
    unsettled = AlertState.objects.filter(
        ~Q(firing=F("reported_firing")) | ~Q(status=F("reported_status"))
    )
    moved = []
    for component_id in sorted(set(unsettled.order_by().values_list("component_id", flat=True))):
        with transaction.atomic():
            component = Component.objects.select_for_update().filter(pk=component_id).first()
            if component is None:
                continue
            states = unsettled.filter(component=component).select_related("integration")
            for state in states.select_for_update(of=("self",)).order_by("pk"):
                if _settle(state, component, now) and component.name not in moved:
                    moved.append(component.name)
    return moved


def _is_stale(state: AlertState, alert: ParsedAlert, event_at: datetime, now: datetime) -> bool:
    """Older than what the state heard last; at the same instant, resolved comes after
    firing, so a firing that arrives after its own resolution is stale too. A time stored
    before times were checked, and later than now, is not believed."""
    if state.event_at > now + FUTURE_TOLERANCE:
        return False
    if event_at < state.event_at:
        return True
    return event_at == state.event_at and alert.firing and not state.reported_firing


def _status_before(component: Component, *, exclude: int | None) -> ComponentStatusValue:
    """The status before the component's alerts took it over: the firing alerts' record
    of it, or its status now when none of them fires."""
    others = AlertState.objects.filter(component=component, firing=True)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    other = others.order_by("created_at", "pk").first()
    return other.status_before if other is not None else component.status


def _note(integration: AlertIntegration, state: AlertState) -> str:
    title = (state.summary or state.fingerprint)[:120]
    return f"{title} ({'firing' if state.firing else 'resolved'}, {integration.name})"[:255]


def alert_log_write(
    *, integration: AlertIntegration, ok: bool, reason: str, body: bytes, at: datetime
) -> AlertLog:
    """Log a delivery for staff, keeping the last AlertLog.LOG_KEEP of the integration."""
    entry = AlertLog.objects.create(
        integration=integration,
        received_at=at,
        ok=ok,
        reason=_storable(reason)[:500],
        # A refused body may hold what PostgreSQL refuses: NUL, or bytes that are not UTF-8.
        excerpt=_storable(body[:EXCERPT_BYTES].decode("utf-8", "replace")),
    )
    oldest_kept = (
        AlertLog.objects.filter(integration=integration)
        .order_by("-id")
        .values_list("id", flat=True)[AlertLog.LOG_KEEP - 1 : AlertLog.LOG_KEEP]
    )
    if oldest_kept:
        AlertLog.objects.filter(integration=integration, id__lt=oldest_kept[0]).delete()
    return entry


def _storable(text: str) -> str:
    text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def alert_integration_regenerate_token(*, integration: AlertIntegration) -> str:
    """A new secret URL for the integration; the old one stops working at once."""
    integration.token = new_token()
    integration.save(update_fields=["token"])
    return integration.token
