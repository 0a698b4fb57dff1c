"""The management API's JSON, rendered once when what it shows changes, and kept.

Every incident (with its updates) and every subscriber has its JSON text in a fragment row
(statuspage.models.IncidentFragment, SubscriberFragment); the components and groups have
theirs together in one row (CatalogueFragment), since a group's status and every position
depend on the other entries. A list answer is its rows' fragments joined in the list's order:
the query that picks and orders the rows (filters, search, pages: the same as before) reads
their fragments in the same statement, and nothing is built or validated per object.

Staying true to the database:
- `version` moves on in the transaction of every write that changes what a fragment shows
  (`mark_*`, from statuspage/api_v1/changes.py), so the commit that changes a row makes its
  fragment stale at the same moment;
- a fragment is used only while its `rendered_version` is that version and its `stamp` is
  today's (the page's id, zone and address, and RENDER_VERSION); otherwise the reader renders
  it again and stores it, but only if the version is still the one it read, so a render from
  data older than a write can never be kept as current.
What an incident or a subscriber shows of the components (their objects, "Group - Name"
in affected components, all their ids) is left as a slot in its text, filled from the
catalogue when the answer is assembled: a component's change never re-renders incidents.
"""

import json
import logging
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, transaction
from django.db.models import F, Model, QuerySet, Window
from django.db.models.functions import RowNumber
from django.http import HttpResponse
from django.utils import timezone
from pydantic import TypeAdapter

from components.models import Component, ComponentGroup
from incidents.models import AffectedComponent, Incident, IncidentUpdate
from incidents.notify import links, webhook_bodies
from incidents.notify.models import Subscriber
from incidents.statuspage_json import (
    Json,
    PageJson,
    component_json,
    component_position,
    page_json_context,
    timestamp,
)
from statuspage.api_v1 import schemas
from statuspage.lib.kept import Kept
from statuspage.lib.outage import database_read_only
from statuspage.lib.replica import current_scope
from statuspage.models import (
    ApiFragment,
    CatalogueFragment,
    CatalogueMark,
    IncidentFragment,
    PageSettings,
    SubscriberFragment,
)

# Part of every stamp: a release that renders any of these objects differently changes it,
# and every kept fragment is rendered again as it is next read.
RENDER_VERSION = "1"
# json.dumps never writes a raw control character (it escapes them in strings), so this
# one in a stored text can only be a slot's edge.
SLOT = "\x1e"
CATALOGUE_ROW = 1
logger = logging.getLogger("beacon.api")

_ENTRIES = TypeAdapter(list[schemas.ComponentEntry])
_GROUPS = TypeAdapter(list[schemas.GroupComponent])
_EMBEDDED = TypeAdapter(list[schemas.IncidentComponent])


def _json(value: Any) -> str:
    # As ninja's renderer writes answers (json.dumps with its defaults).
    return json.dumps(value)


def json_list(texts: Iterable[str]) -> str:
    """The JSON list of these JSON texts, byte for byte what json.dumps writes for a list."""
    return "[" + ", ".join(texts) + "]"


def page_stamp(page: PageSettings) -> str:
    """What every fragment also depends on besides its rows: the page's id, zone, address."""
    return "\n".join((RENDER_VERSION, page.public_id, page.time_zone, links.page_base_url(page)))


@contextmanager
def _keeping() -> Iterator[bool]:
    """Whether to keep a render, and a scope in which failing to is harmless.

    Keeping is only a saving: a reader never waits for it or fails for it. Not inside a
    replica scope (its rows may be older than the version read on the primary); a store
    refused (a standby's read-only database, a lock, a deadlock) is dropped, in a savepoint
    when a transaction is open so that it stays usable, and the answer is given all the same.
    """
    if current_scope() is not None:
        yield False
        return
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            yield True
    except DatabaseError as error:
        if not database_read_only(error):
            logger.info("a management API fragment was not kept: %s", error)


# Marks: in the writing transaction


class _Marked:
    """Stands for marks this transaction made, queued to run (doing nothing) on its commit:
    while it is still queued, they stand. A savepoint rolled back takes with it the hooks
    queued inside it, as it takes the marks; the transaction's end takes all of them."""

    def __init__(self, table: str, pks: frozenset[int | str], left: tuple | None = None) -> None:
        self.table = table
        self.pks = pks
        # A lone fragment row as the mark left it: (version, rendered_version, rendered_id).
        self.left = left

    def __call__(self) -> None:
        pass


# Past this many hooks queued, a transaction (an import of thousands of rows) marks again
# rather than look through them all for each row: an extra mark is only an extra statement.
MARKS_LOOKED_THROUGH = 1000


def _not_marked_yet(table: str, wanted: list[int | str]) -> list[int | str]:
    """Of `wanted`, those this transaction has not marked already (an incident update marks
    its incident's fragment as the update, the incident and the event are written)."""
    if len(connection.run_on_commit) > MARKS_LOOKED_THROUGH:
        return wanted
    marked: set[int | str] = set()
    for queued in connection.run_on_commit:
        callback = queued[1]
        if isinstance(callback, _Marked) and callback.table == table:
            marked |= callback.pks
    return [pk for pk in wanted if pk not in marked] if marked else wanted


def _forget_marks(model: type[Model], pks: Iterable[int | str] | None = None) -> None:
    """A render was kept in this transaction, current as of the marks made so far: the next
    write to these rows (None: all of them) must mark them again, marked before or not."""
    if not connection.in_atomic_block:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    forgotten = None if pks is None else frozenset(pks)
    for queued in connection.run_on_commit:
        callback = queued[1]
        if isinstance(callback, _Marked) and callback.table == table:
            callback.pks = frozenset() if forgotten is None else callback.pks - forgotten


def _mark(model: type[Model], column: str, pks: Iterable[int | str]) -> None:
    # One order for every writer: no deadlock between two of them.
    wanted: list[int | str] = sorted(set(pks), key=str)
    table = connection.ops.quote_name(model._meta.db_table)
    if connection.in_atomic_block:
        wanted = _not_marked_yet(table, wanted)
    if not wanted:
        return
    key = connection.ops.quote_name(column)
    upsert = (
        f"INSERT INTO {table} ({key}, version) VALUES (%s, 1) "
        f"ON CONFLICT ({key}) DO UPDATE SET version = {table}.version + 1"
    )
    left = None
    with connection.cursor() as cursor:
        lone = len(wanted) == 1 and connection.features.can_return_columns_from_insert
        if lone and issubclass(model, ApiFragment):
            cursor.execute(upsert + " RETURNING version, rendered_version, rendered_id", wanted)
            left = tuple(cursor.fetchone())
        else:
            cursor.executemany(upsert, [(pk,) for pk in wanted])
    if connection.in_atomic_block:
        transaction.on_commit(_Marked(table, frozenset(wanted), left))


def _marked_row(table: str, pk: int | str) -> tuple[int, int | None, str] | None:
    """A fragment row as this transaction's mark left it: its version, and the version and
    id of the render it held (None: not marked, marked again since a render was kept here,
    or not known)."""
    found = None
    for queued in connection.run_on_commit:
        callback = queued[1]
        if isinstance(callback, _Marked) and callback.table == table and pk in callback.pks:
            found = callback.left  # a mark of several rows (left None) knows none of them
    return found


def mark_incidents(pks: Iterable[int]) -> None:
    _mark(IncidentFragment, "incident_id", pks)


def mark_subscribers(pks: Iterable[int]) -> None:
    _mark(SubscriberFragment, "subscriber_id", pks)


def mark_components(pks: Iterable[int], *, groups: bool = False) -> None:
    """Components (or groups) changed: their marks move on, and so the catalogue's sum."""
    kind = "group" if groups else "component"
    _mark(CatalogueMark, "key", [f"{kind}:{pk}" for pk in pks])


def forget_incident(pk: int) -> None:
    IncidentFragment.objects.filter(incident_id=pk).delete()


def forget_subscriber(pk: int) -> None:
    SubscriberFragment.objects.filter(subscriber_id=pk).delete()


def _store(
    model: type[Model],
    column: str,
    read: dict[int, int | None],
    rendered: dict[int, str],
    stamp: str,
) -> dict[int, str]:
    """Keep renders, unless a write has moved the version on since the one their data was
    read at (`read`: None when no row was there): then the next reader renders again. Two
    statements whatever the number (executemany is one pipeline). Returns the id each render
    was given (a row that was not kept does not name it)."""
    table = connection.ops.quote_name(model._meta.db_table)
    key = connection.ops.quote_name(column)
    ids = {pk: secrets.token_hex(8) for pk in rendered}
    new = [(pk, stamp, text, ids[pk]) for pk, text in rendered.items() if read[pk] is None]
    known = [
        (stamp, text, ids[pk], pk, read[pk])
        for pk, text in rendered.items()
        if read[pk] is not None
    ]
    with _keeping() as keep, connection.cursor() as cursor:
        if keep and new:
            cursor.executemany(
                f"INSERT INTO {table} ({key}, version, rendered_version, stamp, body, rendered_id) "
                f"VALUES (%s, 0, 0, %s, %s, %s) ON CONFLICT ({key}) DO NOTHING",
                new,
            )
        if keep and known:
            # A row a writer holds is about to move on: skip it rather than wait.
            skip_locked = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
            cursor.executemany(
                f"UPDATE {table} SET rendered_version = version, stamp = %s, body = %s, "
                f"rendered_id = %s WHERE {key} = "
                f"(SELECT {key} FROM {table} WHERE {key} = %s AND version = %s{skip_locked})",
                known,
            )
        if keep:
            _forget_marks(model, rendered)
    return ids


# The catalogue: components and groups


@dataclass(frozen=True)
class Catalogue:
    entries: tuple[str, ...]  # the component list (groups included), page order
    entry_ids: tuple[str, ...]
    entry_is_group: tuple[bool, ...]
    groups: tuple[str, ...]  # the component-group list, page order
    group_ids: tuple[str, ...]
    embedded: dict[int, str]  # a component as an incident names it, by pk
    names: dict[int, str]  # "Group - Name" as affected components show it, JSON, by pk
    public_ids: dict[int, str]
    page_order: dict[int, int]
    default_order: dict[int, int]  # Component's own ordering (position, name)
    all_ids: str  # every component's id in page order, a JSON list

    def entry(self, public_id: str, *, group: bool | None = None) -> str | None:
        for index, entry_id in enumerate(self.entry_ids):
            if entry_id == public_id and (group is None or self.entry_is_group[index] == group):
                return self.entries[index]
        return None

    def group(self, public_id: str) -> str | None:
        for index, group_id in enumerate(self.group_ids):
            if group_id == public_id:
                return self.groups[index]
        return None

    def by_public_id(self) -> dict[str, int]:
        return {public_id: pk for pk, public_id in self.public_ids.items()}

    def to_text(self) -> str:
        return json.dumps(
            {
                "entries": self.entries,
                "entry_ids": self.entry_ids,
                "entry_is_group": self.entry_is_group,
                "groups": self.groups,
                "group_ids": self.group_ids,
                "embedded": list(self.embedded.items()),
                "names": list(self.names.items()),
                "public_ids": list(self.public_ids.items()),
                "page_order": list(self.page_order.items()),
                "default_order": list(self.default_order.items()),
                "all_ids": self.all_ids,
            }
        )

    @classmethod
    def from_text(cls, text: str) -> "Catalogue":
        data = json.loads(text)
        return cls(
            entries=tuple(data["entries"]),
            entry_ids=tuple(data["entry_ids"]),
            entry_is_group=tuple(data["entry_is_group"]),
            groups=tuple(data["groups"]),
            group_ids=tuple(data["group_ids"]),
            embedded=dict(map(tuple, data["embedded"])),
            names=dict(map(tuple, data["names"])),
            public_ids=dict(map(tuple, data["public_ids"])),
            page_order=dict(map(tuple, data["page_order"])),
            default_order=dict(map(tuple, data["default_order"])),
            all_ids=data["all_ids"],
        )


def group_object(entry: Json) -> Json:
    """Statuspage's GroupComponent, from the group's entry in the component list."""
    return {
        "id": entry["id"],
        "page_id": entry["page_id"],
        "name": entry["name"],
        "description": entry["description"],
        "components": entry["components"],
        "position": entry["position"],
        "created_at": entry["created_at"],
        "updated_at": entry["updated_at"],
    }


def _dumped(adapter: TypeAdapter, items: list[Json]) -> list[str]:
    # Validated against the response schemas, as ninja validates every answer.
    return [_json(item) for item in adapter.dump_python(adapter.validate_python(items))]


# What the catalogue shows of components and groups: loading only these, not the rows'
# bookkeeping (uptime accounting, status times), makes a render after a write a third cheaper.
CATALOGUE_FIELDS = (
    "public_id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "only_show_if_degraded",
    "group",
)
GROUP_FIELDS = ("public_id", "name", "position", "created_at", "updated_at", "description")


def _render_catalogue(page: PageSettings) -> Catalogue:
    # Component's own ordering (what a subscriber chose) numbered in the same statement.
    own_order = Window(RowNumber(), order_by=[F("position").asc(), F("name").asc(), F("pk").asc()])
    components = list(
        Component.objects.in_page_order()
        .only(*CATALOGUE_FIELDS, *(f"group__{name}" for name in GROUP_FIELDS))
        .annotate(own_order=own_order)
    )
    ctx = page_json_context(
        page=page,
        base_url=links.page_base_url(page),
        updated_at=timezone.now(),
        components=components,
        groups=ComponentGroup.objects.order_by("position", "name").only(*GROUP_FIELDS),
    )
    entries = [{**entry, "automation_email": None} for entry in ctx.components]
    groups = [group_object(entry) for entry in entries if entry["group"]]
    embedded_keys = list(schemas.IncidentComponent.model_fields)
    pks = list(ctx.by_component)
    embedded = [{key: ctx.by_component[pk][key] for key in embedded_keys} for pk in pks]
    public_ids = {pk: entry["id"] for pk, entry in ctx.by_component.items()}
    # The orders objects name components in: the page's (incidents; every component, the
    # tree's order) and Component's own (what a subscriber chose), ties broken alike.
    page_order = [component.pk for component in components]
    return Catalogue(
        entries=tuple(_dumped(_ENTRIES, entries)),
        entry_ids=tuple(entry["id"] for entry in entries),
        entry_is_group=tuple(entry["group"] for entry in entries),
        groups=tuple(_dumped(_GROUPS, groups)),
        group_ids=tuple(group["id"] for group in groups),
        embedded=dict(zip(pks, _dumped(_EMBEDDED, embedded), strict=True)),
        names={pk: _json(name) for pk, name in ctx.affected_names.items()},
        public_ids=public_ids,
        page_order={pk: index for index, pk in enumerate(page_order)},
        default_order={component.pk: component.own_order for component in components},
        all_ids=_json([public_ids[pk] for pk in page_order if pk in public_ids]),
    )


def component_entry(
    page: PageSettings, component_pk: int, *, held: Component | None = None
) -> str | None:
    """One component's entry of the component list, rendered alone.

    What a write of one component answers with: the catalogue is rendered again by the next
    read that needs it, once for however many writes came before it, not by every write.
    The position is counted as the catalogue counts it, from the page's order read as rows.
    `held`: the component's row (with its group) as the write left it, not read again.
    """
    places = Component.objects.in_page_order().values_list(
        "pk", "position", "group_id", "group__position"
    )
    groups = ComponentGroup.objects.order_by("position", "name").values_list("pk", "position")
    position = component_position(component_pk, places, groups)
    component = held or (
        Component.objects.select_related("group")
        .only(*CATALOGUE_FIELDS, "group__public_id")
        .filter(pk=component_pk)
        .first()
    )
    if position is None or component is None:
        return None
    entry = {**component_json(component, page=page, position=position), "automation_email": None}
    return _dumped(_ENTRIES, [entry])[0]


@dataclass(frozen=True)
class _Remembered:
    key: tuple[int, str]
    catalogue: Catalogue


# This process's parsed copy of the stored catalogue, replaced whole (threads share it).
_remembered: list[_Remembered] = []


def catalogue(page: PageSettings, stamp: str | None = None) -> Catalogue:
    """The components and groups as they are now: this process's copy while the stored one
    is current, else the stored text, else rendered and stored.

    Current means rendered at today's sum of the objects' marks: every commit that changes a
    component or group adds to it, so a render from data read after the sum was read is
    never older than what the sum stands for.
    """
    stamp = stamp or page_stamp(page)
    marks = connection.ops.quote_name(CatalogueMark._meta.db_table)
    table = connection.ops.quote_name(CatalogueFragment._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COALESCE(SUM(version), 0) FROM {marks}), kept.rendered_at, "
            f"kept.stamp, kept.rendered_id FROM (SELECT 1 AS one) AS here "
            f"LEFT JOIN {table} AS kept ON kept.id = %s",
            [CATALOGUE_ROW],
        )
        total, rendered_at, kept_stamp, rendered_id = cursor.fetchone()
    total = int(total)
    if rendered_at == total and kept_stamp == stamp:
        remembered = _remembered[0] if _remembered else None
        if remembered is not None and remembered.key == (total, rendered_id):
            return remembered.catalogue
        body = (
            CatalogueFragment.objects.using(DEFAULT_DB_ALIAS)
            .filter(pk=CATALOGUE_ROW, rendered_id=rendered_id)
            .values_list("body", flat=True)
            .first()
        )
        if body:
            kept = Catalogue.from_text(body)
            _remembered[:] = [_Remembered((total, rendered_id), kept)]
            return kept
    rendered = _render_catalogue(page)
    _store_catalogue(total, stamp, rendered.to_text(), secrets.token_hex(8))
    return rendered


class _CatalogueWhenNeeded:
    """The catalogue, read the first time something asks for it: incidents that name no
    component (their slots empty) need none of it."""

    def __init__(self, page: PageSettings, stamp: str) -> None:
        self._page = page
        self._stamp = stamp
        self._catalogue: Catalogue | None = None

    def __getattr__(self, name: str) -> Any:
        if self._catalogue is None:
            self._catalogue = catalogue(self._page, self._stamp)
        return getattr(self._catalogue, name)


class _CatalogueNeeded(Exception):
    pass


class _NoCatalogue:
    """Stands for the catalogue where reading it is not wanted: in a write's transaction, whose
    marks may have made it stale (rendering it there would hold the write's locks longer)."""

    def __getattr__(self, name: str) -> Any:
        raise _CatalogueNeeded


def _store_catalogue(total: int, stamp: str, body: str, rendered_id: str) -> None:
    # Readers only: the newest render (the greatest sum) stays, whichever stores last.
    table = connection.ops.quote_name(CatalogueFragment._meta.db_table)
    with _keeping() as keep, connection.cursor() as cursor:
        if keep:
            cursor.execute(
                f"INSERT INTO {table} (id, rendered_at, stamp, body, rendered_id) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "rendered_at = excluded.rendered_at, stamp = excluded.stamp, "
                "body = excluded.body, rendered_id = excluded.rendered_id "
                f"WHERE {table}.rendered_at <= excluded.rendered_at",
                [CATALOGUE_ROW, total, stamp, body, rendered_id],
            )
            _forget_marks(CatalogueMark)


# Slots


class _Unresolved(Exception):
    """A slot names a component the catalogue no longer has: render the object again."""


def _slot(nonce: str, spec: str) -> str:
    return f"{SLOT}{nonce}{spec}{SLOT}"


# A slot as json.dumps writes the string: the nonce, then the kind and its numbers.
_SLOT_STRING = re.compile(r'"\\u001e([0-9a-f]{16})([A-Z][0-9,]*)\\u001e"')


def _with_slots(value: Any, nonce: str) -> str:
    """JSON text of `value` whose slot strings became raw slot marks: only strings made
    with this render's random nonce can, never a user's text that looks like one."""
    text = _json(value)
    return _SLOT_STRING.sub(
        lambda match: SLOT + match[2] + SLOT if match[1] == nonce else match[0], text
    )


def fill(text: str, kept: Catalogue) -> str:
    if SLOT not in text:
        return text
    parts = text.split(SLOT)
    for index in range(1, len(parts), 2):
        kind, numbers = parts[index][0], parts[index][1:]
        pks = [int(number) for number in numbers.split(",") if number]
        if kind == "C":  # an incident's components, in page order (gone ones left out)
            if not pks:  # none: no need of the catalogue
                parts[index] = "[]"
                continue
            named = [pk for pk in pks if pk in kept.embedded]
            present = sorted(named, key=lambda pk: kept.page_order.get(pk, 0))
            parts[index] = json_list(kept.embedded[pk] for pk in present)
        elif kind == "N":  # an affected component's "Group - Name"
            if pks[0] not in kept.names:
                raise _Unresolved
            parts[index] = kept.names[pks[0]]
        elif kind == "A":  # a subscriber to everything: every component
            parts[index] = kept.all_ids
        elif kind == "S":  # a subscriber's components, in Component's own order
            chosen = [pk for pk in pks if pk in kept.public_ids]
            present = sorted(chosen, key=lambda pk: kept.default_order.get(pk, 0))
            parts[index] = _json([kept.public_ids[pk] for pk in present])
        else:
            raise _Unresolved
    return "".join(parts)


# Incidents


def incident_object(incident: Incident, ctx: PageJson, *, bare: bool = False) -> Json:
    """The manage API's Incident: the webhook's full incident plus the manage-only fields
    (`bare`: without its updates and components, which the caller shows apart)."""
    data = webhook_bodies.incident_json(incident, ctx, update_id=None, bare=bare)
    maintenance = incident.is_maintenance
    for update in data["incident_updates"]:
        update["tweet_id"] = None
    data.update(
        {
            "started_at": ctx.time(incident.started_at),
            "metadata": incident.metadata,
            "auto_transition_to_maintenance_state": maintenance,
            "auto_transition_to_operational_state": maintenance,
            "auto_transition_deliver_notifications_at_start": (
                maintenance and incident.auto_transition_deliver_notifications_at_start
            ),
            "auto_transition_deliver_notifications_at_end": (
                maintenance and incident.auto_transition_deliver_notifications_at_end
            ),
        }
    )
    return data


# The update fields an update's text is rendered from, and its affected components' fields.
UPDATE_FIELDS = (
    "pk",
    "incident_id",
    "public_id",
    "status",
    "body",
    "created_at",
    "updated_at",
    "display_at",
    "deliver_notifications",
)
AFFECTED = ("component_id", "component__public_id", "component__name", "old_status", "new_status")
# What each process keeps of update texts: at most this many, of at most this many
# characters in all (a text's key holds the body again: about twice that in memory).
UPDATE_TEXTS_KEPT = 8192
UPDATE_TEXTS_KEPT_CHARS = 8_000_000
UPDATE_TEXT_KEPT_CHARS = 16384


# This process's update texts (slots in place), each under everything it is rendered from:
# the update's fields, its affected components', the incident's id and the page's stamp. A
# text is therefore never out of date, and an incident rendered again after one more update
# renders that update, not its whole timeline again.
update_texts = Kept(
    lambda: UPDATE_TEXTS_KEPT, lambda: UPDATE_TEXTS_KEPT_CHARS, lambda: UPDATE_TEXT_KEPT_CHARS, len
)


def _update_text(update: IncidentUpdate, ctx: PageJson, incident_id: str, slots: dict) -> str:
    data = webhook_bodies.incident_update_object(update, ctx, incident_id)
    data["tweet_id"] = None
    data = schemas.IncidentUpdate.model_validate(data).model_dump()
    nonce = secrets.token_hex(8)
    for affected in data["affected_components"] or ():
        pk = slots.get(affected["code"])
        if pk is not None:
            affected["name"] = _slot(nonce, f"N{pk}")
    return _with_slots(data, nonce)


def _update_from_rows(row: tuple, affected: tuple) -> IncidentUpdate:
    """The update as its rows were read, with its affected components: what the canonical
    serialisers render, without reading it again as objects."""
    update = IncidentUpdate(**dict(zip(UPDATE_FIELDS, row, strict=True)))
    entries = []
    for component_pk, public_id, name, old_status, new_status, _ in affected:
        entry = AffectedComponent(
            update=update, component_id=component_pk, old_status=old_status, new_status=new_status
        )
        entry.component = Component(pk=component_pk, public_id=public_id, name=name)
        entries.append(entry)
    update._prefetched_objects_cache = {"affected_components": entries}  # type: ignore[attr-defined]
    return update


def _timelines(
    public_ids: dict[int, str],
    ctx: PageJson,
    stamp: str,
    kept: Catalogue,
    *,
    heads: dict[int, tuple] | None = None,
    only_update: int | None = None,
) -> dict[int, list[str]]:
    """Each incident's update texts (by pk: its public id), newest first: read as plain
    rows, rendered only where this process has no text for exactly those rows. `heads`
    receives each incident's newest update's place (display_at, pk); `only_update`: that
    update alone."""
    pks = list(public_ids)
    updates_read = IncidentUpdate.objects.filter(incident_id__in=pks)
    if only_update is not None:
        updates_read = updates_read.filter(pk=only_update)
    rows = updates_read.order_by("-display_at", "-id", "affected_components__id").values_list(
        *UPDATE_FIELDS, *(f"affected_components__{name}" for name in AFFECTED)
    )
    # One row per affected component (one with none of them for an update without any).
    updates: dict[int, tuple] = {}
    affected: dict[int, list[tuple]] = {}
    by_public_id: dict[str, int] = {}  # the catalogue's, once an update names a component
    width = len(UPDATE_FIELDS)
    for row in rows:
        update, entry = row[:width], row[width:]
        updates.setdefault(update[0], update)
        if entry[0] is not None:
            by_public_id = by_public_id or kept.by_public_id()
            affected.setdefault(update[0], []).append((*entry, by_public_id.get(entry[1])))
    timelines: dict[int, list[str]] = {}
    for row in updates.values():
        if heads is not None and row[1] not in heads:
            heads[row[1]] = (row[UPDATE_FIELDS.index("display_at")], row[0])
        incident_id = public_ids[row[1]]
        key = (stamp, incident_id, row, tuple(affected.get(row[0], ())))
        text = update_texts.get(key)
        if text is None:
            update = _update_from_rows(row, key[3])
            text = _update_text(update, ctx, incident_id, by_public_id)
            update_texts.put(key, text)
        timelines.setdefault(row[1], []).append(text)
    return timelines


def _incident_text(
    incident: Incident, ctx: PageJson, timeline: list[str], component_pks: list[int]
) -> str:
    data = schemas.Incident.model_validate(incident_object(incident, ctx, bare=True)).model_dump()
    nonce = secrets.token_hex(8)
    data["components"] = _slot(nonce, "C" + ",".join(map(str, component_pks)))
    data["incident_updates"] = _slot(nonce, "U")
    text = _with_slots(data, nonce)
    return text.replace(f"{SLOT}U{SLOT}", json_list(timeline), 1)


@dataclass(frozen=True)
class _Timeline:
    rendered_id: str  # the render kept with them: used only while the row holds it, current
    stamp: str
    texts: tuple[str, ...]  # newest first, slots in place
    head: tuple  # the newest update's place: (display_at, pk)


# How many incidents' timelines each process keeps, and their characters in all.
TIMELINES_KEPT = 1024
TIMELINES_KEPT_CHARS = 8_000_000


# This process's last timeline of each incident it rendered, under the id of the render it
# kept: an update posted to an incident whose fragment row still held that render, current,
# right before the post's mark renders that one update and puts it before the rest, instead
# of reading the whole timeline again (incident_post_update changes no other update).
#
# A render is kept only where no write marked the row since its version was read (the
# store's `WHERE version =`), so the rows it was made from are the row's at that version;
# its random id tells it from a render of an earlier life of the row, whose versions repeat
# after a restore or a failover.
timelines_kept = Kept(
    lambda: TIMELINES_KEPT,
    lambda: TIMELINES_KEPT_CHARS,
    lambda: TIMELINES_KEPT_CHARS // 8,
    lambda kept: sum(map(len, kept.texts)),
)


def _render_incidents(
    pks: dict[int, int | None], page: PageSettings, kept: Catalogue, stamp: str | None
) -> dict[int, str]:
    """Render these incidents (pk: the fragment version read) and, with the page's `stamp`,
    keep what is still current."""
    if not pks:
        return {}
    # The incidents' own fields; their updates and components come as rows, and go in as slots.
    incidents = list(Incident.objects.filter(pk__in=pks))
    ctx = _incidents_context(page)
    heads: dict[int, tuple] = {}
    public_ids = {incident.pk: incident.public_id for incident in incidents}
    timelines = _timelines(public_ids, ctx, stamp or page_stamp(page), kept, heads=heads)
    rendered = _incident_texts(incidents, ctx, timelines)
    if stamp is not None:
        ids = _store(IncidentFragment, "incident_id", pks, rendered, stamp)
        if current_scope() is None:  # read from the primary
            read = [
                (pk, _Timeline(ids[pk], stamp, tuple(timelines[pk]), heads[pk]))
                for pk in pks
                if pk in timelines
            ]
            # Once committed (at once outside a transaction): a rolled back one's rows never were.
            transaction.on_commit(lambda: timelines_kept.put_all(read))
    return rendered


def _incidents_context(page: PageSettings) -> PageJson:
    # What the incidents show of components becomes slots: no component entries needed.
    return PageJson(
        page=page,
        base_url=links.page_base_url(page),
        updated_at=timezone.now(),
        components=[],
        by_component={},
        affected_names={},
    )


def _named_components(incidents: list[Incident]) -> dict[int, list[int]]:
    components: dict[int, list[int]] = {}
    for incident_pk, component_pk in Incident.components.through.objects.filter(
        incident_id__in=[incident.pk for incident in incidents]
    ).values_list("incident_id", "component_id"):
        components.setdefault(incident_pk, []).append(component_pk)
    return components


def _incident_texts(
    incidents: list[Incident],
    ctx: PageJson,
    timelines: dict[int, list[str]],
    components: dict[int, list[int]] | None = None,
) -> dict[int, str]:
    if components is None:
        components = _named_components(incidents)
    return {
        incident.pk: _incident_text(
            incident, ctx, timelines.get(incident.pk, []), components.get(incident.pk, [])
        )
        for incident in incidents
    }


def written_incident_text(
    incident: Incident, page: PageSettings, posted: IncidentUpdate | None = None
) -> str | None:
    """The answer to a write of `incident`, rendered in the writing transaction from the row
    it holds as the write left it (slots in place: `filled` fills them after the commit), and
    kept. None when this transaction did not mark the incident, or the render needs the
    catalogue or failed: read it after the commit. `posted`: the one update the write
    posted, and nothing else of the timeline changed.

    Its mark locked the fragment's row until the commit: no other write of what the incident
    shows can commit before this one, and what this transaction reads is what its commit
    makes current, so the render is kept as current without reading the version first.
    A render that fails does not fail the write it answers (one the database refused has
    spoilt the transaction: that is the write's failure)."""
    table = connection.ops.quote_name(IncidentFragment._meta.db_table)
    if not connection.in_atomic_block or _not_marked_yet(table, [incident.pk]):
        return None
    try:
        return _written_incident_text(incident, page, posted, table)
    except _CatalogueNeeded:
        return None
    except DatabaseError:
        raise
    except Exception:
        logger.exception("the answer to a write of incident %s is read after it", incident.pk)
        return None


def _written_incident_text(
    incident: Incident, page: PageSettings, posted: IncidentUpdate | None, table: str
) -> str:
    stamp = page_stamp(page)
    left = _marked_row(table, incident.pk)
    ctx = _incidents_context(page)
    kept = cast(Catalogue, _NoCatalogue())
    components = _named_components([incident])
    texts, head = _timeline_with(posted, left, stamp, incident, ctx, kept) or (None, None)
    if texts is None:
        if components:  # its updates name them: their texts need the catalogue
            raise _CatalogueNeeded
        heads: dict[int, tuple] = {}
        public_ids = {incident.pk: incident.public_id}
        texts = tuple(_timelines(public_ids, ctx, stamp, kept, heads=heads).get(incident.pk, []))
        head = heads.get(incident.pk)
    text = _incident_texts([incident], ctx, {incident.pk: list(texts)}, components)[incident.pk]
    if current_scope() is None:
        rendered_id = secrets.token_hex(8)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET rendered_version = version, stamp = %s, body = %s, "
                "rendered_id = %s WHERE incident_id = %s",
                [stamp, text, rendered_id, incident.pk],
            )
        _forget_marks(IncidentFragment, [incident.pk])
        if head is not None:
            kept_timeline = _Timeline(rendered_id, stamp, texts, head)
            transaction.on_commit(lambda: timelines_kept.put(incident.pk, kept_timeline))
    return text


def _timeline_with(
    posted: IncidentUpdate | None,
    left: tuple[int, int | None, str] | None,
    stamp: str,
    incident: Incident,
    ctx: PageJson,
    kept: Catalogue,
) -> tuple[tuple[str, ...], tuple] | None:
    """The timeline this process kept of the incident, with the update posted put first;
    None unless it is the one the fragment's row held, current, right before this write's
    mark (`left`: the row as the mark left it: its version, and the kept render's version
    and id, which tell a timeline of an earlier life of the row, before a restore or a
    failover, from this one)."""
    if posted is None or left is None:
        return None
    version, rendered_version, rendered_id = left
    before = timelines_kept.get(incident.pk)
    if (
        before is None
        or rendered_version != version - 1
        or before.rendered_id != rendered_id
        or before.stamp != stamp
    ):
        return None
    head = (posted.display_at, posted.pk)
    if head <= before.head:  # not the newest: its place is further down
        return None
    [text] = _timelines({incident.pk: incident.public_id}, ctx, stamp, kept, only_update=posted.pk)[
        incident.pk
    ]
    return (text, *before.texts), head


def filled(text: str, page: PageSettings) -> str | None:
    """A rendered object's text with its slots filled from the catalogue as it is now; None
    when a slot names a component gone since (render the object again)."""
    try:
        return fill(text, cast(Catalogue, _CatalogueWhenNeeded(page, page_stamp(page))))
    except _Unresolved:
        return None


def incident_texts(incidents: QuerySet[Incident], page: PageSettings) -> list[str]:
    """The JSON of these incidents in the queryset's order, from their fragments."""
    return _texts(incidents, page, _render_incidents)


# Subscribers


def subscriber_object(subscriber: Subscriber, page: PageSettings, components: Any) -> Json:
    """Statuspage's manage-API Subscriber; `components` is the list of ids it names."""
    return {
        "id": subscriber.public_id,
        "mode": subscriber.channel,
        "email": subscriber.email or None,
        "endpoint": subscriber.endpoint or None,
        "phone_number": None,
        "phone_country": None,
        "display_phone_number": None,
        "obfuscated_channel_name": None,
        "workspace_name": None,
        "quarantined_at": timestamp(subscriber.quarantined_at, page.zone),
        "purge_at": None,
        "components": components,
        "page_access_user_id": None,
        "created_at": timestamp(subscriber.created_at, page.zone),
        "skip_confirmation_notification": False,
    }


def _subscriber_text(subscriber: Subscriber, page: PageSettings) -> str:
    ids = [component.public_id for component in subscriber.components.all()]
    data = schemas.Subscriber.model_validate(subscriber_object(subscriber, page, ids)).model_dump()
    nonce = secrets.token_hex(8)
    if subscriber.all_components:
        data["components"] = _slot(nonce, "A")
    else:
        pks = [component.pk for component in subscriber.components.all()]
        data["components"] = _slot(nonce, "S" + ",".join(map(str, pks)))
    return _with_slots(data, nonce)


def _render_subscribers(
    pks: dict[int, int | None], page: PageSettings, kept: Catalogue, stamp: str | None
) -> dict[int, str]:
    if not pks:
        return {}
    subscribers = Subscriber.objects.filter(pk__in=pks).prefetch_related("components")
    rendered = {subscriber.pk: _subscriber_text(subscriber, page) for subscriber in subscribers}
    if stamp is not None:
        _store(SubscriberFragment, "subscriber_id", pks, rendered, stamp)
    return rendered


def subscriber_texts(subscribers: QuerySet[Subscriber], page: PageSettings) -> list[str]:
    """The JSON of these subscribers in the queryset's order, from their fragments."""
    return _texts(subscribers, page, _render_subscribers)


# Assembling


def _texts(queryset: QuerySet, page: PageSettings, render) -> list[str]:
    stamp = page_stamp(page)
    rows: Sequence[tuple[int, int | None, int | None, str | None, str | None]] = list(
        queryset.values_list(
            "pk",
            "api_fragment__version",
            "api_fragment__rendered_version",
            "api_fragment__stamp",
            "api_fragment__body",
        )
    )
    stale = {
        pk: version
        for pk, version, rendered_version, row_stamp, _ in rows
        if version is None or rendered_version != version or row_stamp != stamp
    }
    kept = cast(Catalogue, _CatalogueWhenNeeded(page, stamp))
    rendered = render(stale, page, kept, stamp)
    texts = []
    for pk, version, _, _, body in rows:
        text = rendered.get(pk) if pk in stale else body
        if text is None:  # deleted between the two reads
            continue
        try:
            texts.append(fill(text, kept))
        except _Unresolved:
            again = render({pk: version}, page, kept, None).get(pk)
            if again is not None:
                texts.append(fill(again, kept))
    return texts


# A write's answer may name its object for the audit trail (id, name) as this attribute, so
# that the trail does not parse the answer (an incident's carries its whole timeline).
AUDIT_TARGET = "beacon_audit_target"


def json_answer(
    text: str, status: int = 200, *, audit_target: tuple[str, str] | None = None
) -> HttpResponse:
    """An answer of assembled JSON, with the headers ninja's renderer gives its own."""
    response = HttpResponse(text, status=status, content_type="application/json; charset=utf-8")
    if audit_target is not None:
        setattr(response, AUDIT_TARGET, audit_target)
    return response
