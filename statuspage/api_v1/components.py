"""Components and their groups: `/pages/{page_id}/components…` and `/component-groups…`.

A component's fields are those of the public API v2 (statuspage_json.component_json, groups
included in the list as entries with `group: true`) plus `automation_email`; positions come
from the page order, as on the public page. Writes go through components.services; a status
sent is the API's word to the arbiter (components.status.component_status_state, cause "api",
the key's owner as actor), recorded in the same transaction, so the status history and
uptime see it.
"""

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from ninja.errors import HttpError
from pydantic import Field, field_validator

from components import services
from components.models import (
    MAX_DESCRIPTION,
    Component,
    ComponentGroup,
    ComponentStatus,
    StatusChangeCause,
)
from components.sla_terms import parse_month
from components.status import component_status_state
from components.uptime import UptimeRangeError, UptimeRangeRefused
from incidents.selectors import uptime_report
from incidents.sla import component_sla_report, group_sla_report, report_json
from incidents.statuspage_json import Json
from statuspage.api_v1 import fragments, schemas
from statuspage.api_v1.base import (
    ERROR_RESPONSES,
    Fields,
    OneLine,
    Paging,
    Text,
    components_named,
    empty_response,
    key_owner,
    page_or_404,
    replica_read,
    require_perm,
)
from statuspage.api_v1.fragments import json_answer, json_list
from statuspage.models import PageSettings

router = Router()

# The component statuses; the manage spec also allows "", which leaves the status as it is.
StatusInBody = Literal[
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
    "",
]


# Bodies


class SlaFields(Fields):
    """Beacon's own: a component's or group's SLA terms (docs/sla.md); null clears them."""

    sla_target: float | None = Field(
        None, description="Monthly uptime promised, in percent (above 0, at most 100)."
    )
    sla_credit_tiers: list[Any] | None = Field(
        None,
        description='From the highest threshold down: [{"below": 99.9, "credit": 10}, …].',
    )


def _sla_changes(fields: SlaFields) -> dict[str, Any]:
    """The SLA terms a body sends, validated by the model (full_clean) like the admin's."""
    sent = fields.model_fields_set
    changes: dict[str, Any] = {}
    if "sla_target" in sent:
        target = fields.sla_target
        changes["sla_target"] = None if target is None else Decimal(str(target))
    if "sla_credit_tiers" in sent:
        changes["sla_credit_tiers"] = fields.sla_credit_tiers or []
    return changes


class ComponentFields(SlaFields):
    """`{"component": {…}}` for PATCH and PUT; unknown keys are ignored, as Statuspage does."""

    name: OneLine | None = Field(None, max_length=255)
    description: Text | None = Field(None, max_length=MAX_DESCRIPTION)
    status: StatusInBody | None = None
    group_id: str | None = None
    showcase: bool | None = None
    only_show_if_degraded: bool | None = None
    start_date: date | None = None

    @field_validator("name", "description", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        # As the admin's forms clean them: a name of spaces is a blank name.
        return value.strip() if isinstance(value, str) else value

    @field_validator("description", "group_id", "start_date", mode="before")
    @classmethod
    def _empty_is_null(cls, value: Any) -> Any:
        # Form bodies cannot send null: `component[group_id]=` ungroups.
        return None if value == "" else value


class NewComponentFields(ComponentFields):
    name: OneLine = Field(max_length=255)


class ComponentBody(Schema):
    component: ComponentFields


class NewComponentBody(Schema):
    component: NewComponentFields


class GroupFields(SlaFields):
    name: OneLine | None = Field(None, max_length=255)
    components: list[str] | None = None
    # Statuspage reads it beside the envelope; both work.
    description: Text | None = Field(None, max_length=MAX_DESCRIPTION)

    @field_validator("name", "description", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class NewGroupFields(GroupFields):
    name: OneLine = Field(max_length=255)
    components: list[str]


class GroupBody(Schema):
    """Statuspage's quirk: `description` sits beside `component_group`, not inside it."""

    description: Text | None = Field(None, max_length=MAX_DESCRIPTION)
    component_group: GroupFields

    @field_validator("description", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @property
    def group_description(self) -> str | None:
        inner = self.component_group.description
        return inner if inner is not None else self.description


class NewGroupBody(GroupBody):
    component_group: NewGroupFields


class SlaMonth(Schema):
    month: str | None = Field(
        None, description="YYYY-MM, a month of the page's time zone; the current one if left out."
    )


class UptimeRange(Schema):
    start: str | None = Field(None, description="YYYY, YYYY-MM or YYYY-MM-DD.")
    end: str | None = Field(None, description="YYYY, YYYY-MM or YYYY-MM-DD.")


# Objects


def _entry(page: PageSettings, public_id: str, *, group: bool | None = None) -> str:
    """A component's (or, without `group=False`, a group's) entry of the component list."""
    text = fragments.catalogue(page).entry(public_id, group=group)
    if text is None:
        raise Http404(f"No {'component group' if group else 'component'} {public_id!r}.")
    return text


def _written_entry(page: PageSettings, component: Component, *, held: bool = False) -> str:
    """The entry of a component just written (the write's answer); `held`: `component` is its
    row (with its group) as the write left it."""
    text = fragments.component_entry(page, component.pk, held=component if held else None)
    if text is None:  # deleted by someone else since the write
        raise Http404(f"No component {component.public_id!r}.")
    return text


def _group_object(page: PageSettings, public_id: str) -> str:
    text = fragments.catalogue(page).group(public_id)
    if text is None:
        raise Http404(f"No component group {public_id!r}.")
    return text


def _component(component_id: str, *, locked: bool = False) -> Component:
    components = Component.objects.select_related("group")
    if locked:
        components = components.select_for_update(of=("self",))
    component = components.filter(public_id=component_id).first()
    if component is None:
        raise Http404(f"No component {component_id!r}.")
    return component


def _group(group_id: str) -> ComponentGroup:
    group = ComponentGroup.objects.filter(public_id=group_id).first()
    if group is None:
        raise Http404(f"No component group {group_id!r}.")
    return group


def _group_for_body(group_id: str | None) -> ComponentGroup | None:
    if group_id is None:
        return None
    group = ComponentGroup.objects.filter(public_id=group_id).first()
    if group is None:
        raise ValidationError({"group_id": [f"No component group {group_id!r}."]})
    return group


def _component_changes(fields: ComponentFields) -> dict[str, Any]:
    """The model fields a body sets; null clears a description, group or start date."""
    sent = fields.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("name", "showcase", "only_show_if_degraded"):
        if name in sent and getattr(fields, name) is not None:
            changes[name] = getattr(fields, name)
    if "description" in sent:
        changes["description"] = fields.description or ""
    if "start_date" in sent:
        changes["start_date"] = fields.start_date
    if "group_id" in sent:
        changes["group"] = _group_for_body(fields.group_id)
    return {**changes, **_sla_changes(fields)}


# Components


@router.get(
    "/{page_id}/components",
    response={200: list[schemas.ComponentEntry], **ERROR_RESPONSES},
    summary="List components",
)
@replica_read
def list_components(request: HttpRequest, page_id: str, paging: Query[Paging]):
    require_perm(request, "components.view_component")
    entries = fragments.catalogue(page_or_404(page_id)).entries
    return json_answer(json_list(entries[paging.window()]))


@router.post(
    "/{page_id}/components",
    response={201: schemas.Component, **ERROR_RESPONSES},
    summary="Create a component",
)
def create_component(request: HttpRequest, page_id: str, payload: NewComponentBody):
    require_perm(request, "components.add_component")
    page = page_or_404(page_id)
    fields = payload.component
    changes = _component_changes(fields)
    with transaction.atomic():
        component = services.component_create(**changes)
        component_status_state(
            component=component,
            source=StatusChangeCause.API,
            status=fields.status or ComponentStatus.OPERATIONAL,
            actor=key_owner(request),
        )
    return json_answer(_written_entry(page, component), status=201)


@router.get(
    "/{page_id}/components/{component_id}",
    response={200: schemas.ComponentEntry, **ERROR_RESPONSES},
    summary="Get a component",
)
@replica_read
def get_component(request: HttpRequest, page_id: str, component_id: str):
    require_perm(request, "components.view_component")
    return json_answer(_entry(page_or_404(page_id), component_id))


@router.api_operation(
    ["PATCH", "PUT"],
    "/{page_id}/components/{component_id}",
    response={200: schemas.Component, **ERROR_RESPONSES},
    summary="Update a component",
)
def update_component(request: HttpRequest, page_id: str, component_id: str, payload: ComponentBody):
    require_perm(request, "components.change_component")
    page = page_or_404(page_id)
    fields = payload.component
    status = fields.status or None
    with transaction.atomic():
        # Read with its lock: the arbiter then neither locks nor reads it again.
        component = _component(component_id, locked=True)
        changes = _component_changes(fields)
        if not changes and status is None:
            raise ValidationError("Send at least one component field.")
        component = services.component_update(component=component, changes=changes)
        if status is not None:
            component_status_state(
                component=component,
                source=StatusChangeCause.API,
                status=status,
                actor=key_owner(request),
                locked=True,
            )
    # A status alone: the row read with its lock, as the arbiter saved it, is the row now.
    return json_answer(_written_entry(page, component, held=not changes))


@router.delete(
    "/{page_id}/components/{component_id}",
    response={204: None, **ERROR_RESPONSES},
    summary="Delete a component",
)
def delete_component(request: HttpRequest, page_id: str, component_id: str):
    require_perm(request, "components.delete_component")
    page_or_404(page_id)
    services.component_delete(component=_component(component_id))
    return empty_response(204)


# Uptime: the report is incidents.selectors.uptime_report, shared with API v2.


def _uptime(
    public_id: str, name: str, components: list[Component], params: UptimeRange, page
) -> Json:
    try:
        report = uptime_report(
            public_id=public_id,
            name=name,
            components=components,
            start=params.start,
            end=params.end,
            page=page,
        )
    except UptimeRangeRefused as error:
        raise ValidationError(str(error)) from error
    except UptimeRangeError as error:
        raise HttpError(400, str(error)) from error
    return report.body


@router.get(
    "/{page_id}/components/{component_id}/uptime",
    response={200: schemas.Uptime, **ERROR_RESPONSES},
    summary="Get a component's uptime",
)
@replica_read
def component_uptime(
    request: HttpRequest, page_id: str, component_id: str, params: Query[UptimeRange]
):
    require_perm(request, "components.view_component")
    page = page_or_404(page_id)
    component = _component(component_id)
    return _uptime(component.public_id, component.name, [component], params, page)


@router.get(
    "/{page_id}/component-groups/{group_id}/uptime",
    response={200: schemas.Uptime, **ERROR_RESPONSES},
    summary="Get a component group's uptime",
)
@replica_read
def group_uptime(request: HttpRequest, page_id: str, group_id: str, params: Query[UptimeRange]):
    require_perm(request, "components.view_componentgroup")
    page = page_or_404(page_id)
    group = _group(group_id)
    components = list(group.components.all())
    return _uptime(group.public_id, group.name, components, params, page)


def _sla_month(params: SlaMonth, page: PageSettings) -> str:
    if params.month is None:
        return timezone.now().astimezone(page.zone).strftime("%Y-%m")
    try:
        parse_month(params.month)
    except ValueError as error:
        raise HttpError(400, f"month: {error}") from None
    return params.month


@router.get(
    "/{page_id}/components/{component_id}/sla",
    response={200: schemas.SlaReport, **ERROR_RESPONSES},
    summary="Get a component's SLA report for a month",
)
@replica_read
def component_sla(request: HttpRequest, page_id: str, component_id: str, params: Query[SlaMonth]):
    require_perm(request, "components.view_component")
    page = page_or_404(page_id)
    component = _component(component_id)
    month = _sla_month(params, page)
    return report_json(component_sla_report(component=component, month=month))


@router.get(
    "/{page_id}/component-groups/{group_id}/sla",
    response={200: schemas.SlaReport, **ERROR_RESPONSES},
    summary="Get a component group's SLA report for a month",
)
@replica_read
def group_sla(request: HttpRequest, page_id: str, group_id: str, params: Query[SlaMonth]):
    require_perm(request, "components.view_componentgroup")
    page = page_or_404(page_id)
    group = _group(group_id)
    month = _sla_month(params, page)
    return report_json(group_sla_report(group=group, month=month))


# Component groups


@router.get(
    "/{page_id}/component-groups",
    response={200: list[schemas.GroupComponent], **ERROR_RESPONSES},
    summary="List component groups",
)
@replica_read
def list_groups(request: HttpRequest, page_id: str, paging: Query[Paging]):
    require_perm(request, "components.view_componentgroup")
    groups = fragments.catalogue(page_or_404(page_id)).groups
    return json_answer(json_list(groups[paging.window()]))


@router.post(
    "/{page_id}/component-groups",
    response={201: schemas.GroupComponent, **ERROR_RESPONSES},
    summary="Create a component group",
)
def create_group(request: HttpRequest, page_id: str, payload: NewGroupBody):
    require_perm(request, "components.add_componentgroup", "components.change_component")
    page = page_or_404(page_id)
    group = services.component_group_create(
        name=payload.component_group.name,
        description=payload.group_description or "",
        components=components_named(payload.component_group.components, field="components"),
        **_sla_changes(payload.component_group),
    )
    return json_answer(_group_object(page, group.public_id), status=201)


@router.get(
    "/{page_id}/component-groups/{group_id}",
    response={200: schemas.GroupComponent, **ERROR_RESPONSES},
    summary="Get a component group",
)
@replica_read
def get_group(request: HttpRequest, page_id: str, group_id: str):
    require_perm(request, "components.view_componentgroup")
    return json_answer(_group_object(page_or_404(page_id), group_id))


@router.api_operation(
    ["PATCH", "PUT"],
    "/{page_id}/component-groups/{group_id}",
    response={200: schemas.GroupComponent, **ERROR_RESPONSES},
    summary="Update a component group",
)
def update_group(request: HttpRequest, page_id: str, group_id: str, payload: GroupBody):
    fields = payload.component_group
    perms = ["components.change_componentgroup"]
    if fields.components is not None:
        perms.append("components.change_component")
    require_perm(request, *perms)
    page = page_or_404(page_id)
    group = _group(group_id)
    description = payload.group_description
    terms = _sla_changes(fields)
    if fields.name is None and fields.components is None and description is None and not terms:
        raise ValidationError("Send at least one component group field.")
    services.component_group_update(
        group=group,
        name=fields.name,
        description=description,
        components=(
            None
            if fields.components is None
            else components_named(fields.components, field="components")
        ),
        changes=terms,
    )
    return json_answer(_group_object(page, group.public_id))


@router.delete(
    "/{page_id}/component-groups/{group_id}",
    response={200: schemas.GroupComponent, **ERROR_RESPONSES},
    summary="Delete a component group",
)
def delete_group(request: HttpRequest, page_id: str, group_id: str):
    """Statuspage answers with the deleted group; its components stay, ungrouped."""
    require_perm(request, "components.delete_componentgroup")
    page = page_or_404(page_id)
    group = _group(group_id)
    deleted = _group_object(page, group.public_id)
    services.component_group_delete(group=group)
    return json_answer(deleted)
