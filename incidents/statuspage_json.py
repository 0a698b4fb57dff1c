"""Statuspage's JSON objects, field for field: pure functions from our models to dicts.

The public API v2 (statuspage/public/api_v2.py) serves them; webhook payloads reuse them. Key order
follows real Statuspage payloads (see tests/fixtures/statuspage/), because some
clients diff or hash the raw text.

Timestamps are ISO 8601 with milliseconds in the page's time zone: `…T15:50:05.892Z` on a
UTC page, `…T08:31:24.239-06:00` on an America/Chicago page, as Rails renders them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from components.models import Component, ComponentGroup, worst_status
from components.selectors import OverallStatus
from incidents.models import Incident, IncidentUpdate
from statuspage.models import PageSettings

Json = dict[str, Any]

# Zone abbreviations that Rails writes as "Z"; every other zone gets its numeric offset.
_UTC_NAMES = {"UTC", "UCT"}


def timestamp(value: datetime | None, zone: ZoneInfo) -> str | None:
    if value is None:
        return None
    local = value.astimezone(zone)
    text = local.isoformat(timespec="milliseconds")  # isoformat pads years before 1000
    if local.tzname() in _UTC_NAMES:
        return text.removesuffix("+00:00") + "Z"
    return text


def day(value: date | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class PageJson:
    """What every object needs from the page: its id, zone, public URL and components.

    `components` holds the serialised component entries (groups included) in page order;
    `by_component` maps a Component pk to its entry, so incidents embed the same objects.
    """

    page: PageSettings
    base_url: str
    updated_at: datetime
    components: list[Json]
    by_component: dict[int, Json]
    affected_names: dict[int, str]

    @property
    def zone(self) -> ZoneInfo:
        return self.page.zone

    def time(self, value: datetime | None) -> str | None:
        return timestamp(value, self.zone)


def page_json_context(
    *,
    page: PageSettings,
    base_url: str,
    updated_at: datetime,
    components: list[Component],
    groups: Iterable[ComponentGroup] = (),
) -> PageJson:
    """Serialise the components once; `components` must be in page order, groups joined."""
    entries, by_component = _component_entries(page, components, groups)
    return PageJson(
        page=page,
        base_url=base_url.rstrip("/"),
        updated_at=updated_at,
        components=entries,
        by_component=by_component,
        # Statuspage names a grouped component "Group - Component" in affected_components.
        affected_names={
            c.pk: f"{c.group.name} - {c.name}" if c.group else c.name for c in components
        },
    )


def page_json(ctx: PageJson) -> Json:
    return {
        "id": ctx.page.public_id,
        "name": ctx.page.name,
        "url": ctx.base_url,
        "time_zone": ctx.page.time_zone,
        "updated_at": ctx.time(ctx.updated_at),
    }


def status_json(status: OverallStatus) -> Json:
    return {"indicator": status.indicator, "description": status.description}


def component_json(component: Component, *, page: PageSettings, position: int) -> Json:
    return {
        "id": component.public_id,
        "name": component.name,
        "status": component.status,
        "created_at": timestamp(component.created_at, page.zone),
        "updated_at": timestamp(component.updated_at, page.zone),
        "position": position,
        "description": component.description or None,
        "showcase": component.showcase,
        "start_date": day(component.start_date),
        "group_id": component.group.public_id if component.group else None,
        "page_id": page.public_id,
        "group": False,
        "only_show_if_degraded": component.only_show_if_degraded,
    }


def group_json(
    group: ComponentGroup, *, page: PageSettings, position: int, children: list[Component]
) -> Json:
    """A group is a component entry with `group: true` and its children's ids, in order."""
    return {
        "id": group.public_id,
        "name": group.name,
        "status": worst_status(child.status for child in children),
        "created_at": timestamp(group.created_at, page.zone),
        "updated_at": timestamp(group.updated_at, page.zone),
        "position": position,
        "description": group.description or None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": page.public_id,
        "group": True,
        "only_show_if_degraded": False,
        "components": [child.public_id for child in children],
    }


def page_tree(
    components: list[Component], groups: Iterable[ComponentGroup]
) -> tuple[list[ComponentGroup | Component], dict[int, list[Component]]]:
    """The page's top level (groups and ungrouped components) and each group's children,
    in the order positions are counted in; `components` in page order, groups joined."""
    top: list[ComponentGroup | Component] = []
    children: dict[int, list[Component]] = {}
    for component in components:
        group = component.group
        if group is None:
            top.append(component)
        elif group.pk in children:
            children[group.pk].append(component)
        else:
            children[group.pk] = [component]
            top.append(group)
    # Groups without components still exist on Statuspage; slot them in by position.
    for group in groups:
        if group.pk not in children:
            children[group.pk] = []
            at = next(
                (i for i, item in enumerate(top) if _top_key(item) > _top_key(group)), len(top)
            )
            top.insert(at, group)
    return top, children


def component_position(
    component_pk: int, components: list[Component], groups: Iterable[ComponentGroup]
) -> int | None:
    """The position one component's entry shows, counted as _component_entries counts it."""
    top, children = page_tree(components, groups)
    for position, item in enumerate(top, start=1):
        if isinstance(item, Component):
            if item.pk == component_pk:
                return position
            continue
        for child_position, child in enumerate(children[item.pk], start=1):
            if child.pk == component_pk:
                return child_position
    return None


def _component_entries(
    page: PageSettings, components: list[Component], groups: Iterable[ComponentGroup]
) -> tuple[list[Json], dict[int, Json]]:
    """Entries in page order, each group followed by its children.

    Positions come from the order, not the stored numbers: groups and ungrouped components
    share one sequence from 1, and each group's children have their own from 1.
    """
    top, children = page_tree(components, groups)
    entries: list[Json] = []
    by_component: dict[int, Json] = {}
    for position, item in enumerate(top, start=1):
        if isinstance(item, Component):
            entry = component_json(item, page=page, position=position)
            by_component[item.pk] = entry
            entries.append(entry)
            continue
        members = children[item.pk]
        entries.append(group_json(item, page=page, position=position, children=members))
        for child_position, child in enumerate(members, start=1):
            entry = component_json(child, page=page, position=child_position)
            by_component[child.pk] = entry
            entries.append(entry)
    return entries, by_component


def _top_key(item: ComponentGroup | Component) -> tuple[int, int]:
    # Component.objects.in_page_order(): by position, ungrouped before groups, then group id.
    return (item.position, 0) if isinstance(item, Component) else (item.position, item.pk)


def incident_json(incident: Incident, ctx: PageJson) -> Json:
    """An incident or maintenance; needs with_timeline()'s prefetches to stay query-free."""
    data = {
        "id": incident.public_id,
        "name": incident.name,
        "status": incident.status,
        "created_at": ctx.time(incident.created_at),
        "updated_at": ctx.time(incident.updated_at),
        "monitoring_at": ctx.time(incident.monitoring_at),
        "resolved_at": ctx.time(incident.resolved_at),
        "impact": incident.impact,
        "shortlink": ctx.base_url + incident.get_absolute_url(),
        "started_at": ctx.time(incident.started_at),
        "page_id": ctx.page.public_id,
        "incident_updates": [
            incident_update_json(update, ctx, incident_id=incident.public_id)
            for update in incident.updates.all()
        ],
        "components": [
            ctx.by_component.get(c.pk) or component_json(c, page=ctx.page, position=c.position)
            for c in incident.components.all()
        ],
    }
    if incident.is_maintenance:
        data["scheduled_for"] = ctx.time(incident.scheduled_for)
        data["scheduled_until"] = ctx.time(incident.scheduled_until)
    return data


def incident_update_json(update: IncidentUpdate, ctx: PageJson, *, incident_id: str) -> Json:
    affected = [
        {
            "code": entry.component.public_id,
            "name": ctx.affected_names.get(entry.component_id, entry.component.name),
            "old_status": entry.old_status,
            "new_status": entry.new_status,
        }
        for entry in update.affected_components.all()
    ]
    return {
        "id": update.public_id,
        "status": update.status,
        "body": update.body,
        "incident_id": incident_id,
        "created_at": ctx.time(update.created_at),
        "updated_at": ctx.time(update.updated_at),
        "display_at": ctx.time(update.display_at),
        "affected_components": affected or None,
        "deliver_notifications": update.deliver_notifications,
        "custom_tweet": None,
        "tweet_id": None,
    }
