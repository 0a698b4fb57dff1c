"""Incidents and maintenances: `/pages/{page_id}/incidents…`, their updates and postmortems.

Statuspage keeps both in one resource: a maintenance is an incident with a maintenance status
or a `scheduled_for`. Every write goes through incidents.services, and a request that does
several things does them in one transaction: a failing part writes nothing.
"""

import json
from datetime import date, datetime, time
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema
from pydantic import Field

from components.models import Component
from incidents import services
from incidents.models import (
    MAINTENANCE_STATUSES,
    MAX_POSTMORTEM_BODY,
    MAX_UPDATE_BODY,
    Incident,
    IncidentKind,
    IncidentStatus,
    IncidentUpdate,
)
from incidents.notify.models import EventKind
from incidents.statuspage_json import Json, timestamp
from statuspage.api_v1 import fragments, schemas
from statuspage.api_v1.base import (
    ERROR_RESPONSES,
    LAST_PAGE,
    MAX_PER_PAGE,
    Fields,
    OneLine,
    Paging,
    Text,
    components_named,
    empty_response,
    key_owner,
    page_or_404,
    page_window,
    replica_read,
    require_perm,
)
from statuspage.api_v1.fragments import json_answer, json_list
from statuspage.models import PageSettings

router = Router()


# Bodies


class IncidentFields(Fields):
    """`{"incident": {…}}`, for POST and PATCH alike (D.2); unknown keys are ignored."""

    name: OneLine | None = None
    status: str | None = None
    impact_override: str | None = None
    body: Text | None = Field(None, max_length=MAX_UPDATE_BODY)
    component_ids: list[str] | None = None
    components: dict[str, str] | None = None
    deliver_notifications: bool | None = None
    metadata: dict[str, dict[str, Any]] | None = None
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None
    scheduled_remind_prior: bool | None = None
    scheduled_auto_in_progress: bool | None = None
    scheduled_auto_transition: bool | None = None  # the older name of the one above
    scheduled_auto_completed: bool | None = None
    # Beacon always moves a maintenance's components at its start and end (unless the update
    # sets them itself): these are accepted for compatibility.
    auto_transition_to_maintenance_state: bool | None = None
    auto_transition_to_operational_state: bool | None = None
    auto_transition_deliver_notifications_at_start: bool | None = None
    auto_transition_deliver_notifications_at_end: bool | None = None
    backfilled: bool | None = None
    backfill_date: datetime | date | None = None
    # Legacy Twitter switches: accepted and ignored, as Statuspage does today.
    auto_tweet_at_beginning: bool | None = None
    auto_tweet_on_completion: bool | None = None
    auto_tweet_on_creation: bool | None = None
    auto_tweet_one_hour_before: bool | None = None
    wants_twitter_update: bool | None = None

    @property
    def auto_in_progress(self) -> bool | None:
        if self.scheduled_auto_in_progress is not None:
            return self.scheduled_auto_in_progress
        return self.scheduled_auto_transition


class IncidentBody(Schema):
    incident: IncidentFields


class IncidentUpdateFields(Fields):
    body: Text | None = Field(None, max_length=MAX_UPDATE_BODY)
    display_at: datetime | None = None
    deliver_notifications: bool | None = None
    wants_twitter_update: bool | None = None  # ignored


class IncidentUpdateBody(Schema):
    incident_update: IncidentUpdateFields


class PostmortemFields(Fields):
    # `default=` by name: type checkers read a positional default as no default.
    body_draft: Text | None = Field(default=None, max_length=MAX_POSTMORTEM_BODY)
    notify_subscribers: bool | None = None
    notify_twitter: bool | None = None  # ignored
    custom_tweet: str | None = None  # ignored


class PostmortemBody(Schema):
    postmortem: PostmortemFields


class PostmortemPublishBody(Schema):
    postmortem: PostmortemFields = Field(default_factory=PostmortemFields)


class Search(Schema):
    q: str = ""
    limit: int = Field(MAX_PER_PAGE, ge=1)
    page: int = Field(1, ge=1, le=LAST_PAGE)

    def window(self) -> slice:
        return page_window(self.page, self.limit)


# Responses


def _incidents(queryset: QuerySet, page: PageSettings) -> HttpResponse:
    return json_answer(json_list(fragments.incident_texts(queryset, page)))


def _one_text(incident_id: str, page: PageSettings) -> str:
    texts = fragments.incident_texts(Incident.objects.filter(public_id=incident_id), page)
    if not texts:
        raise Http404(f"No incident {incident_id!r}.")
    return texts[0]


def _get(incident_id: str, *, locked: bool = False) -> Incident:
    incidents = Incident.objects.select_for_update() if locked else Incident.objects.all()
    incident = incidents.filter(public_id=incident_id).first()
    if incident is None:
        raise Http404(f"No incident {incident_id!r}.")
    return incident


def _update_object(update: IncidentUpdate, page: PageSettings) -> Json:
    data = json.loads(_one_text(update.incident.public_id, page))
    return next(u for u in data["incident_updates"] if u["id"] == update.public_id)


def postmortem_object(incident: Incident, page: PageSettings) -> Json:
    published = incident.postmortem_published_at is not None
    notified = (
        published
        and incident.notification_events.filter(kind=EventKind.POSTMORTEM_PUBLISHED).exists()
    )
    return {
        "preview_key": None,
        "body": incident.postmortem_body if published else None,
        "body_last_updated_at": timestamp(incident.postmortem_published_at, page.zone),
        "body_draft": incident.postmortem_body or None,
        "ignored": False,
        "notify_subscribers": notified,
        "notify_twitter": False,
        "custom_tweet": None,
        "published_at": timestamp(incident.postmortem_published_at, page.zone),
        "created_at": None,
        "updated_at": timestamp(incident.updated_at, page.zone),
    }


# Turning a body into service arguments


def _aware(value: datetime | date | None, page: PageSettings) -> datetime | None:
    """Times without an offset are the page's local time; a bare date is its midnight."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=page.zone)
    return value


def _component_statuses(fields: IncidentFields) -> dict[Component, str]:
    # "" is allowed by Statuspage's enum and changes nothing.
    wanted = {code: status for code, status in (fields.components or {}).items() if status}
    found = {c.public_id: c for c in components_named(list(wanted), field="components")}
    return {found[code]: status for code, status in wanted.items()}


def _affected(fields: IncidentFields) -> list[Component]:
    return components_named(fields.component_ids or [], field="component_ids")


def _create(fields: IncidentFields, page: PageSettings, author: User | None) -> Incident:
    maintenance = (
        fields.status in MAINTENANCE_STATUSES
        or fields.scheduled_for is not None
        or fields.scheduled_until is not None
    )
    backfilled = bool(fields.backfilled)
    if maintenance:
        default_status = IncidentStatus.SCHEDULED
    elif backfilled:
        default_status = IncidentStatus.RESOLVED
    else:
        default_status = IncidentStatus.INVESTIGATING
    options: dict[str, Any] = {
        "scheduled_remind_prior": fields.scheduled_remind_prior,
        "scheduled_auto_in_progress": fields.auto_in_progress,
        "scheduled_auto_completed": fields.scheduled_auto_completed,
        "auto_transition_deliver_notifications_at_start": (
            fields.auto_transition_deliver_notifications_at_start
        ),
        "auto_transition_deliver_notifications_at_end": (
            fields.auto_transition_deliver_notifications_at_end
        ),
        "deliver_notifications": fields.deliver_notifications,
    }
    return services.incident_create(
        name=fields.name or "",
        status=services.incident_status_from_input(
            fields.status or default_status, maintenance=maintenance
        ),
        body=fields.body or "",
        kind=IncidentKind.MAINTENANCE if maintenance else IncidentKind.INCIDENT,
        component_statuses=_component_statuses(fields),
        affected_components=_affected(fields),
        impact_override=services.impact_override_from_input(fields.impact_override or ""),
        backfilled=backfilled,
        started_at=_aware(fields.backfill_date, page) if backfilled else None,
        scheduled_for=_aware(fields.scheduled_for, page),
        scheduled_until=_aware(fields.scheduled_until, page),
        metadata=fields.metadata,
        author=author,
        **{name: value for name, value in options.items() if value is not None},
    )


_SCHEDULE_FIELDS = {
    "scheduled_for",
    "scheduled_until",
    "scheduled_remind_prior",
    "scheduled_auto_in_progress",
    "scheduled_auto_transition",
    "scheduled_auto_completed",
    "auto_transition_deliver_notifications_at_start",
    "auto_transition_deliver_notifications_at_end",
}


def _change(
    incident: Incident, fields: IncidentFields, page: PageSettings, author: User | None
) -> tuple[bool, IncidentUpdate | None]:
    """A PATCH: rename, reschedule, name components, then post at most one update.

    `incident` was read with its lock in this transaction; the services that change it
    before the update read it again, and so then does the update. Returns whether `incident`
    is still the row as this transaction leaves it (nothing but the update changed it), and
    the update posted."""
    sent = fields.model_fields_set
    as_read = True  # the row as `incident` holds it
    if "name" in sent or "impact_override" in sent:
        as_read = False
        services.incident_edit(
            incident=incident,
            name=fields.name if fields.name is not None else incident.name,
            impact_override=(
                services.impact_override_from_input(fields.impact_override or "")
                if "impact_override" in sent
                else incident.impact_override
            ),
        )
    if sent & _SCHEDULE_FIELDS:
        as_read = False
        services.maintenance_reschedule(
            incident=incident,
            scheduled_for=_aware(fields.scheduled_for, page),
            scheduled_until=_aware(fields.scheduled_until, page),
            scheduled_remind_prior=fields.scheduled_remind_prior,
            scheduled_auto_in_progress=fields.auto_in_progress,
            scheduled_auto_completed=fields.scheduled_auto_completed,
            auto_transition_deliver_notifications_at_start=(
                fields.auto_transition_deliver_notifications_at_start
            ),
            auto_transition_deliver_notifications_at_end=(
                fields.auto_transition_deliver_notifications_at_end
            ),
        )
    if fields.metadata:
        as_read = False
        services.incident_merge_metadata(incident=incident, metadata=fields.metadata)
    affected = _affected(fields)
    if affected:
        as_read = False
        services.incident_add_components(incident=incident, components=affected)
    component_statuses = _component_statuses(fields)
    posted = None
    if fields.status or fields.body or component_statuses:
        if not fields.status and not as_read:  # the update keeps the incident's status now
            incident.refresh_from_db(fields=["status"])
        posted = services.incident_post_update(
            incident=incident,
            status=services.incident_status_from_input(
                fields.status or incident.status, maintenance=incident.is_maintenance
            ),
            body=fields.body or "",
            component_statuses=component_statuses,
            deliver_notifications=(
                True if fields.deliver_notifications is None else fields.deliver_notifications
            ),
            author=author,
            locked=as_read,
        )
    return as_read, posted


# Lists


@router.get(
    "/{page_id}/incidents",
    response={200: list[schemas.Incident], **ERROR_RESPONSES},
    summary="List incidents and maintenances",
)
@replica_read
def list_incidents(request: HttpRequest, page_id: str, params: Query[Search]):
    require_perm(request, "incidents.view_incident")
    page = page_or_404(page_id)
    incidents = Incident.objects.all()
    q = params.q.strip()
    if q:
        incidents = incidents.filter(
            Q(name__icontains=q)
            | Q(status__iexact=q)
            | Q(postmortem_body__icontains=q)
            | Exists(IncidentUpdate.objects.filter(incident=OuterRef("pk"), body__icontains=q))
        )
    return _incidents(incidents.order_by("-created_at", "-id")[params.window()], page)


@router.get(
    "/{page_id}/incidents/unresolved",
    response={200: list[schemas.Incident], **ERROR_RESPONSES},
    summary="List unresolved incidents",
)
@replica_read
def list_unresolved(request: HttpRequest, page_id: str, params: Query[Paging]):
    require_perm(request, "incidents.view_incident")
    incidents = Incident.objects.unresolved().order_by("-created_at", "-id")
    return _incidents(incidents[params.window()], page_or_404(page_id))


def _maintenances(queryset: QuerySet) -> QuerySet:
    return queryset.order_by(F("scheduled_for").desc(nulls_last=True), "-started_at", "-id")


@router.get(
    "/{page_id}/incidents/scheduled",
    response={200: list[schemas.Incident], **ERROR_RESPONSES},
    summary="List scheduled maintenances",
)
@replica_read
def list_scheduled(request: HttpRequest, page_id: str, params: Query[Paging]):
    require_perm(request, "incidents.view_incident")
    incidents = _maintenances(Incident.objects.maintenances())
    return _incidents(incidents[params.window()], page_or_404(page_id))


@router.get(
    "/{page_id}/incidents/upcoming",
    response={200: list[schemas.Incident], **ERROR_RESPONSES},
    summary="List maintenances yet to start",
)
@replica_read
def list_upcoming(request: HttpRequest, page_id: str, params: Query[Paging]):
    require_perm(request, "incidents.view_incident")
    incidents = _maintenances(Incident.objects.upcoming_maintenances())
    return _incidents(incidents[params.window()], page_or_404(page_id))


@router.get(
    "/{page_id}/incidents/active_maintenance",
    response={200: list[schemas.Incident], **ERROR_RESPONSES},
    summary="List maintenances in progress",
)
@replica_read
def list_active_maintenance(request: HttpRequest, page_id: str, params: Query[Paging]):
    require_perm(request, "incidents.view_incident")
    incidents = _maintenances(Incident.objects.active_maintenances())
    return _incidents(incidents[params.window()], page_or_404(page_id))


# One incident


@router.post(
    "/{page_id}/incidents",
    response={201: schemas.Incident, **ERROR_RESPONSES},
    summary="Create an incident or a maintenance",
)
def create_incident(request: HttpRequest, page_id: str, payload: IncidentBody):
    require_perm(request, "incidents.add_incident")
    page = page_or_404(page_id)
    incident = _create(payload.incident, page, key_owner(request))
    return json_answer(_one_text(incident.public_id, page), status=201)


@router.get(
    "/{page_id}/incidents/{incident_id}",
    response={200: schemas.Incident, **ERROR_RESPONSES},
    summary="Get an incident",
)
@replica_read
def get_incident(request: HttpRequest, page_id: str, incident_id: str):
    require_perm(request, "incidents.view_incident")
    return json_answer(_one_text(incident_id, page_or_404(page_id)))


@router.api_operation(
    ["PATCH", "PUT"],
    "/{page_id}/incidents/{incident_id}",
    response={200: schemas.Incident, **ERROR_RESPONSES},
    summary="Update an incident",
)
def update_incident(request: HttpRequest, page_id: str, incident_id: str, payload: IncidentBody):
    require_perm(request, "incidents.change_incident")
    page = page_or_404(page_id)
    with transaction.atomic():
        # Read with its lock: an update posted to it alone does not lock or read it again.
        incident = _get(incident_id, locked=True)
        if not payload.incident.model_fields_set:
            raise ValidationError("Send at least one incident field.")
        held, posted = _change(incident, payload.incident, page, key_owner(request))
        # Rendered from the row held, in the transaction: not read again after it.
        written = fragments.written_incident_text(incident, page, posted) if held else None
    answer = fragments.filled(written, page) if written is not None else None
    if answer is None:
        return json_answer(_one_text(incident_id, page))
    return json_answer(answer, audit_target=(incident.public_id, incident.name))


@router.delete(
    "/{page_id}/incidents/{incident_id}",
    response={200: schemas.Incident, **ERROR_RESPONSES},
    summary="Delete an incident",
)
def delete_incident(request: HttpRequest, page_id: str, incident_id: str):
    require_perm(request, "incidents.delete_incident")
    page = page_or_404(page_id)
    incident = _get(incident_id)
    deleted = _one_text(incident_id, page)
    services.incident_delete(incident=incident)
    return json_answer(deleted)


@router.api_operation(
    ["PATCH", "PUT"],
    "/{page_id}/incidents/{incident_id}/incident_updates/{update_id}",
    response={200: schemas.IncidentUpdate, **ERROR_RESPONSES},
    summary="Edit a posted incident update",
)
def edit_incident_update(
    request, page_id: str, incident_id: str, update_id: str, payload: IncidentUpdateBody
):
    require_perm(request, "incidents.change_incident")
    page = page_or_404(page_id)
    update = (
        IncidentUpdate.objects.select_related("incident")
        .filter(public_id=update_id, incident__public_id=incident_id)
        .first()
    )
    if update is None:
        raise Http404(f"No update {update_id!r} on incident {incident_id!r}.")
    fields = payload.incident_update
    if fields.body is None and fields.display_at is None and fields.deliver_notifications is None:
        raise ValidationError("Send the body, display_at or deliver_notifications to change.")
    services.incident_update_edit(
        update=update,
        body=fields.body,
        display_at=_aware(fields.display_at, page),
        deliver_notifications=fields.deliver_notifications,
    )
    return _update_object(update, page)


# Postmortems


def _incident_for_postmortem(incident_id: str) -> Incident:
    incident = Incident.objects.filter(public_id=incident_id).first()
    if incident is None:
        raise Http404(f"No incident {incident_id!r}.")
    return incident


@router.get(
    "/{page_id}/incidents/{incident_id}/postmortem",
    response={200: schemas.Postmortem, **ERROR_RESPONSES},
    summary="Get the postmortem",
)
@replica_read
def get_postmortem(request: HttpRequest, page_id: str, incident_id: str):
    require_perm(request, "incidents.view_incident")
    page = page_or_404(page_id)
    return postmortem_object(_incident_for_postmortem(incident_id), page)


@router.put(
    "/{page_id}/incidents/{incident_id}/postmortem",
    response={200: schemas.Postmortem, **ERROR_RESPONSES},
    summary="Save a postmortem draft",
)
def save_postmortem(request: HttpRequest, page_id: str, incident_id: str, payload: PostmortemBody):
    require_perm(request, "incidents.change_incident")
    page = page_or_404(page_id)
    if payload.postmortem.body_draft is None:
        raise ValidationError({"body_draft": "Send the postmortem's text."})
    incident = services.postmortem_save_draft(
        incident=_incident_for_postmortem(incident_id), body=payload.postmortem.body_draft
    )
    return postmortem_object(incident, page)


@router.put(
    "/{page_id}/incidents/{incident_id}/postmortem/publish",
    response={200: schemas.Postmortem, **ERROR_RESPONSES},
    summary="Publish the postmortem",
)
def publish_postmortem(
    request: HttpRequest, page_id: str, incident_id: str, payload: PostmortemPublishBody
):
    require_perm(request, "incidents.change_incident")
    page = page_or_404(page_id)
    fields = payload.postmortem
    with transaction.atomic():
        incident = _incident_for_postmortem(incident_id)
        if fields.body_draft is not None:
            incident = services.postmortem_save_draft(incident=incident, body=fields.body_draft)
        incident = services.postmortem_publish(
            incident=incident,
            notify_subscribers=(
                True if fields.notify_subscribers is None else fields.notify_subscribers
            ),
        )
    return postmortem_object(incident, page)


@router.put(
    "/{page_id}/incidents/{incident_id}/postmortem/revert",
    response={200: schemas.Postmortem, **ERROR_RESPONSES},
    summary="Unpublish the postmortem",
)
def revert_postmortem(request: HttpRequest, page_id: str, incident_id: str):
    require_perm(request, "incidents.change_incident")
    page = page_or_404(page_id)
    incident = services.postmortem_revert(incident=_incident_for_postmortem(incident_id))
    return postmortem_object(incident, page)


@router.delete(
    "/{page_id}/incidents/{incident_id}/postmortem",
    response={204: None, **ERROR_RESPONSES},
    summary="Delete the postmortem",
)
def delete_postmortem(request: HttpRequest, page_id: str, incident_id: str):
    require_perm(request, "incidents.change_incident")
    page_or_404(page_id)
    services.postmortem_delete(incident=_incident_for_postmortem(incident_id))
    return empty_response(204)
