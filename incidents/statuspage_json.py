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


# Where a component sits: its pk and position, and its group's pk and position (or None).
Place = tuple[int, int, int | None, int | None]
# An item of the page's top level: (True, group pk) or (False, component pk).
TopItem = tuple[bool, int]


def page_tree(
    places: Iterable[Place], groups: Iterable[tuple[int, int]]
) -> tuple[list[TopItem], dict[int, list[int]]]:
    """The page's top level and each group's children (component pks), in the order
    positions are counted in; `places` in page order, `groups` (pk, position) all of them."""
    top: list[TopItem] = []
    top_keys: list[tuple[int, int]] = []
    children: dict[int, list[int]] = {}
    for pk, position, group_pk, group_position in places:
        if group_pk is None:
            top.append((False, pk))
            top_keys.append(_top_key(position))
        elif group_pk in children:
            children[group_pk].append(pk)
        else:
            children[group_pk] = [pk]
            top.append((True, group_pk))
            top_keys.append(_top_key(group_position or 0, group_pk))
    # Groups without components still exist on Statuspage; slot them in by position.
    for group_pk, group_position in groups:
        if group_pk not in children:
            children[group_pk] = []
            key = _top_key(group_position, group_pk)
            at = next((i for i, item in enumerate(top_keys) if item > key), len(top))
            top.insert(at, (True, group_pk))
            top_keys.insert(at, key)
    return top, children


def component_position(
    component_pk: int, places: Iterable[Place], groups: Iterable[tuple[int, int]]
) -> int | None:
    """The position one component's entry shows, counted as _component_entries counts it."""
    top, children = page_tree(places, groups)
    for position, (is_group, pk) in enumerate(top, start=1):
        if not is_group and pk == component_pk:
            return position
        if is_group and component_pk in children[pk]:
            return children[pk].index(component_pk) + 1
    return None


def _component_entries(
    page: PageSettings, components: list[Component], groups: Iterable[ComponentGroup]
) -> tuple[list[Json], dict[int, Json]]:
    """Entries in page order, each group followed by its children.

    Positions come from the order, not the stored numbers: groups and ungrouped components
    share one sequence from 1, and each group's children have their own from 1.
    """
    by_pk = {component.pk: component for component in components}
    groups_by_pk = {group.pk: group for group in groups}
    places = []
    for component in components:
        group = component.group
        if group is not None:
            groups_by_pk.setdefault(group.pk, group)
        places.append(
            (
                component.pk,
                component.position,
                group.pk if group else None,
                group.position if group else None,
            )
        )
    top, children = page_tree(places, [(g.pk, g.position) for g in groups_by_pk.values()])
    entries: list[Json] = []
    by_component: dict[int, Json] = {}
    for position, (is_group, pk) in enumerate(top, start=1):
        if not is_group:
            entry = component_json(by_pk[pk], page=page, position=position)
            by_component[pk] = entry
            entries.append(entry)
            continue
        members = [by_pk[child] for child in children[pk]]
        entries.append(group_json(groups_by_pk[pk], page=page, position=position, children=members))
        for child_position, child in enumerate(members, start=1):
            entry = component_json(child, page=page, position=child_position)
            by_component[child.pk] = entry
            entries.append(entry)
    return entries, by_component


def _top_key(position: int, group_pk: int = 0) -> tuple[int, int]:
    # Component.objects.in_page_order(): by position, ungrouped before groups, then group id.
    return (position, group_pk)


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
