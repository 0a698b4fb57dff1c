"""Subscribers: `/pages/{page_id}/subscribers…`, email and webhook (Beacon has no SMS or chat
apps of Statuspage's kind; those types list nothing and cannot be created)."""

from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, CharField, Count, F, QuerySet, When
from django.http import Http404, HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from components.models import Component
from incidents.notify import subscriptions
from incidents.notify.models import Channel, Subscriber, SubscriberState
from statuspage.api_v1 import fragments, schemas
from statuspage.api_v1.base import (
    ERROR_RESPONSES,
    LAST_PAGE,
    MAX_PER_PAGE,
    Fields,
    components_named,
    empty_response,
    page_or_404,
    page_window,
    require_perm,
)
from statuspage.api_v1.fragments import json_answer, json_list
from statuspage.models import PageSettings

router = Router()

SubscriberType = Literal["email", "sms", "webhook", "slack", "teams", "integration_partner"]
StateFilter = Literal["active", "unconfirmed", "quarantined", "all"]


# Bodies and parameters


class SubscriberFields(Fields):
    email: str | None = None
    endpoint: str | None = None
    phone_number: str | None = None
    phone_country: str | None = None
    component_ids: list[str] | None = None
    skip_confirmation_notification: bool = False
    page_access_user: str | None = None  # audience-specific pages: not in Beacon


class SubscriberBody(Schema):
    subscriber: SubscriberFields


class ComponentsFields(Fields):
    component_ids: list[str] | None = None


class SubscriberPatch(Schema):
    """Statuspage's spec puts `component_ids` at the top; some clients wrap it."""

    component_ids: list[str] | None = None
    subscriber: ComponentsFields | None = None


class Selection(Schema):
    """Up to 100 subscriber codes, or "all" of a type in a state (if there are 100 or fewer)."""

    subscribers: list[str] | Literal["all"] = Field(..., max_length=MAX_PER_PAGE)
    type: SubscriberType | None = None
    state: StateFilter = "active"


class UnsubscribeBody(Selection):
    skip_unsubscription_notification: bool = False  # Beacon sends no goodbye message


class ReactivateBody(Selection):
    state: StateFilter = "quarantined"


class ResendConfirmationBody(Selection):
    state: StateFilter = "unconfirmed"


class Filters(Schema):
    type: SubscriberType | None = None
    state: StateFilter = "active"


class Listing(Filters):
    q: str = ""
    limit: int = Field(MAX_PER_PAGE, ge=1)
    page: int = Field(0, ge=0, le=LAST_PAGE)
    sort_field: Literal["primary", "created_at", "quarantined_at", "relevance"] = "primary"
    sort_direction: Literal["asc", "desc"] = "asc"


class Removal(Schema):
    skip_unsubscription_notification: bool = False  # Beacon sends no goodbye message


# Responses


# Statuspage's modes that Beacon has. Browser push subscribers are not among them: the API
# neither lists nor counts them (staff see them in the admin).
API_CHANNELS = [Channel.EMAIL, Channel.WEBHOOK]


def _in_api() -> QuerySet[Subscriber]:
    return Subscriber.objects.filter(channel__in=API_CHANNELS)


def _filtered(filters: Filters | Selection) -> QuerySet[Subscriber]:
    subscribers = _in_api()
    if filters.type is not None:
        if filters.type not in API_CHANNELS:
            return Subscriber.objects.none()
        subscribers = subscribers.filter(channel=filters.type)
    if filters.state != "all":
        subscribers = subscribers.filter(state=filters.state)
    return subscribers


def _get(subscriber_id: str) -> Subscriber:
    subscriber = _in_api().filter(public_id=subscriber_id).first()
    if subscriber is None:
        raise Http404(f"No subscriber {subscriber_id!r}.")
    return subscriber


def _subscriber_text(subscriber_id: str, page: PageSettings) -> str:
    texts = fragments.subscriber_texts(_in_api().filter(public_id=subscriber_id), page)
    if not texts:
        raise Http404(f"No subscriber {subscriber_id!r}.")
    return texts[0]


def _component_pks(component_ids: list[str] | None) -> list[int]:
    return [c.pk for c in components_named(component_ids or [], field="component_ids")]


# Lists and counts


@router.get(
    "/{page_id}/subscribers",
    response={200: list[schemas.Subscriber], **ERROR_RESPONSES},
    summary="List subscribers",
)
def list_subscribers(request: HttpRequest, page_id: str, params: Query[Listing]):
    require_perm(request, "incidents.view_subscriber")
    page = page_or_404(page_id)
    subscribers = _filtered(params)
    q = params.q.strip()
    if q:
        subscribers = subscribers.filter(email__icontains=q) | subscribers.filter(
            endpoint__icontains=q
        )
    primary = Case(
        When(channel=Channel.WEBHOOK, then=F("endpoint")),
        default=F("email"),
        output_field=CharField(),
    )
    sorts: dict[str, Case | F] = {
        "primary": primary,
        "relevance": primary,
        "created_at": F("created_at"),
        "quarantined_at": F("quarantined_at"),
    }
    sort = sorts[params.sort_field]
    order = (
        sort.desc(nulls_last=True) if params.sort_direction == "desc" else sort.asc(nulls_last=True)
    )
    # Statuspage counts this list's pages from 0.
    window = subscribers.order_by(order, "id")[page_window(params.page + 1, params.limit)]
    return json_answer(json_list(fragments.subscriber_texts(window, page)))


@router.get(
    "/{page_id}/subscribers/count",
    response={200: schemas.SubscriberCount, **ERROR_RESPONSES},
    summary="Count subscribers",
)
def count_subscribers(request: HttpRequest, page_id: str, params: Query[Filters]):
    require_perm(request, "incidents.view_subscriber")
    page_or_404(page_id)
    return {"count": _filtered(params).count()}


@router.get(
    "/{page_id}/subscribers/histogram_by_state",
    response={200: schemas.HistogramByState, **ERROR_RESPONSES},
    summary="Count subscribers by state",
)
def histogram_by_state(request: HttpRequest, page_id: str):
    require_perm(request, "incidents.view_subscriber")
    page_or_404(page_id)
    result: dict[str, Any] = {
        channel: dict.fromkeys(SubscriberState.values, 0) for channel in API_CHANNELS
    }
    counts = _in_api().values_list("channel", "state").annotate(n=Count("id")).order_by()
    for channel, state, n in counts:
        result[channel][state] = n
    return result


# Creating and removing


@router.post(
    "/{page_id}/subscribers",
    response={201: schemas.Subscriber, **ERROR_RESPONSES},
    summary="Create a subscriber",
)
def create_subscriber(request: HttpRequest, page_id: str, payload: SubscriberBody):
    require_perm(request, "incidents.add_subscriber")
    page = page_or_404(page_id)
    fields = payload.subscriber
    if fields.phone_number:
        raise ValidationError({"phone_number": "Beacon has no SMS subscribers."})
    component_pks = _component_pks(fields.component_ids)
    if fields.endpoint:
        subscriber = subscriptions.webhook_subscriber_create(
            endpoint=fields.endpoint,
            email=fields.email or "",
            component_ids=component_pks,
            confirmed=True,
        )
    elif fields.email:
        address = subscriptions.normalise_email(fields.email)
        if fields.skip_confirmation_notification:
            subscriber = subscriptions.email_subscriber_create_confirmed(
                email=address, components=Component.objects.filter(pk__in=component_pks)
            )
        else:
            # The double opt-in: the address gets the confirmation (or the "already
            # subscribed" note) and stays unconfirmed until its owner clicks.
            subscriptions.subscription_request(email=address, component_ids=component_pks)
            subscriber = Subscriber.objects.get(channel=Channel.EMAIL, email=address)
    else:
        raise ValidationError({"email": "Send an email address or a webhook endpoint."})
    return json_answer(_subscriber_text(subscriber.public_id, page), status=201)


def _selected(selection: Selection) -> list[Subscriber]:
    chosen = _filtered(selection)
    if selection.subscribers == "all":
        if chosen.count() > MAX_PER_PAGE:
            raise ValidationError(
                f"More than {MAX_PER_PAGE} subscribers match: name them, 100 at a time."
            )
        return list(chosen)
    codes = set(selection.subscribers)
    targets = list(chosen.filter(public_id__in=codes))
    unknown = sorted(codes - {s.public_id for s in targets})
    if unknown:
        raise ValidationError(
            {"subscribers": f"No such subscriber here: {', '.join(map(repr, unknown))}."}
        )
    return targets


@router.post(
    "/{page_id}/subscribers/unsubscribe",
    response={202: None, **ERROR_RESPONSES},
    summary="Unsubscribe several subscribers",
)
def unsubscribe(request: HttpRequest, page_id: str, payload: UnsubscribeBody):
    require_perm(request, "incidents.delete_subscriber")
    page_or_404(page_id)
    with transaction.atomic():
        for subscriber in _selected(payload):
            subscriptions.subscription_cancel(subscriber=subscriber)
    return empty_response(202)


@router.post(
    "/{page_id}/subscribers/reactivate",
    response={202: None, **ERROR_RESPONSES},
    summary="Send to quarantined subscribers again",
)
def reactivate(request: HttpRequest, page_id: str, payload: ReactivateBody):
    require_perm(request, "incidents.change_subscriber")
    page_or_404(page_id)
    targets = _selected(payload)
    not_quarantined = [s.public_id for s in targets if s.state != SubscriberState.QUARANTINED]
    if not_quarantined:
        # Reactivating an unconfirmed address would skip its owner's consent.
        raise ValidationError(
            {"subscribers": f"Not quarantined: {', '.join(map(repr, not_quarantined))}."}
        )
    with transaction.atomic():
        for subscriber in targets:
            subscriptions.subscriber_reactivate(subscriber=subscriber)
    return empty_response(202)


@router.post(
    "/{page_id}/subscribers/resend_confirmation",
    response={202: None, **ERROR_RESPONSES},
    summary="Send unconfirmed subscribers a fresh confirmation link",
)
def resend_confirmations(request: HttpRequest, page_id: str, payload: ResendConfirmationBody):
    require_perm(request, "incidents.change_subscriber")
    page_or_404(page_id)
    targets = _selected(payload)
    _refuse_confirmed(targets)
    with transaction.atomic():
        for subscriber in targets:
            subscriptions.subscription_resend_confirmation(subscriber=subscriber)
    return empty_response(202)


def _refuse_confirmed(targets: list[Subscriber]) -> None:
    confirmed = [
        s.public_id
        for s in targets
        if s.channel != Channel.EMAIL or s.state != SubscriberState.UNCONFIRMED
    ]
    if confirmed:
        raise ValidationError(
            {"subscribers": f"Not awaiting confirmation: {', '.join(map(repr, confirmed))}."}
        )


@router.get(
    "/{page_id}/subscribers/unsubscribed",
    response={200: list[schemas.Subscriber], **ERROR_RESPONSES},
    summary="List unsubscribed subscribers",
)
def list_unsubscribed(request: HttpRequest, page_id: str, params: Query[Listing]):
    """Always empty: Beacon forgets an address (and what was sent to it) when it leaves."""
    require_perm(request, "incidents.view_subscriber")
    page_or_404(page_id)
    return []


@router.get(
    "/{page_id}/subscribers/{subscriber_id}",
    response={200: schemas.Subscriber, **ERROR_RESPONSES},
    summary="Get a subscriber",
)
def get_subscriber(request: HttpRequest, page_id: str, subscriber_id: str):
    require_perm(request, "incidents.view_subscriber")
    return json_answer(_subscriber_text(subscriber_id, page_or_404(page_id)))


@router.patch(
    "/{page_id}/subscribers/{subscriber_id}",
    response={200: schemas.Subscriber, **ERROR_RESPONSES},
    summary="Choose a subscriber's components",
)
def update_subscriber(
    request: HttpRequest, page_id: str, subscriber_id: str, payload: SubscriberPatch
):
    require_perm(request, "incidents.change_subscriber")
    page = page_or_404(page_id)
    subscriber = _get(subscriber_id)
    component_ids = payload.component_ids
    if component_ids is None and payload.subscriber is not None:
        component_ids = payload.subscriber.component_ids
    if component_ids is None:
        raise ValidationError({"component_ids": "Send the component ids ([] for all)."})
    subscriptions.subscription_set_components(
        subscriber=subscriber, component_ids=_component_pks(component_ids)
    )
    return json_answer(_subscriber_text(subscriber_id, page))


@router.delete(
    "/{page_id}/subscribers/{subscriber_id}",
    response={200: schemas.Subscriber, **ERROR_RESPONSES},
    summary="Unsubscribe a subscriber",
)
def delete_subscriber(
    request: HttpRequest, page_id: str, subscriber_id: str, params: Query[Removal]
):
    require_perm(request, "incidents.delete_subscriber")
    page = page_or_404(page_id)
    subscriber = _get(subscriber_id)
    deleted = _subscriber_text(subscriber_id, page)
    subscriptions.subscription_cancel(subscriber=subscriber)
    return json_answer(deleted)


@router.post(
    "/{page_id}/subscribers/{subscriber_id}/resend_confirmation",
    # Statuspage's spec answers this one with an empty 201.
    response={201: None, **ERROR_RESPONSES},
    summary="Send one unconfirmed subscriber a fresh confirmation link",
)
def resend_confirmation(request: HttpRequest, page_id: str, subscriber_id: str):
    require_perm(request, "incidents.change_subscriber")
    page_or_404(page_id)
    subscriber = _get(subscriber_id)
    _refuse_confirmed([subscriber])
    subscriptions.subscription_resend_confirmation(subscriber=subscriber)
    return empty_response(201)
