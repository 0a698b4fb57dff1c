"""Reads about notifications, shaped for staff pages, and who an event reaches."""

from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from components.models import PUBLIC_COMPONENT, Component
from incidents.models import Incident
from incidents.notify.models import (
    Audience,
    Channel,
    Delivery,
    DeliveryState,
    NotificationEvent,
    Subscriber,
    SubscriberState,
)


def audience(component_ids: Collection[int], *, internal: bool = False) -> QuerySet[Subscriber]:
    """Subscribers who hear about an event of these components: active ones (confirmed,
    not unsubscribed, not quarantined) of every component, or of one of these; for an
    `internal` event (an internal incident, an internal component's change) internal
    subscribers only. The one rule: delivery expands events with it and the admin counts an
    update's reach with it."""
    chosen = Subscriber.components.through.objects.filter(
        subscriber_id=OuterRef("pk"), component_id__in=list(component_ids)
    )
    subscribers = Subscriber.objects.filter(state=SubscriberState.ACTIVE)
    if internal:
        subscribers = subscribers.filter(audience=Audience.INTERNAL)
    return subscribers.filter(Q(all_components=True) | Exists(chosen))


def event_is_internal(event: NotificationEvent) -> bool:
    """Whether only internal subscribers may hear of the event: it is about an internal
    incident or maintenance, or an internal component's status change."""
    if event.incident_id is not None:
        return Incident.objects.filter(pk=event.incident_id, internal=True).exists()
    if event.status_change_id is not None:
        return Component.objects.filter(
            ~PUBLIC_COMPONENT, status_changes__pk=event.status_change_id
        ).exists()
    return False


@dataclass(frozen=True)
class Reach:
    by_channel: dict[str, int]  # every channel, in Channel's order, 0 included

    @property
    def total(self) -> int:
        return sum(self.by_channel.values())

    def channels(self) -> list[tuple[str, int]]:
        """(label, count) of each channel, e.g. ("email", 1180); browser push only when it
        reaches someone (a page whose visitors never used it need not hear "none")."""
        labels = dict(Channel.choices)
        return [
            (str(labels[channel]).lower(), n)
            for channel, n in self.by_channel.items()
            if n or channel != Channel.PUSH
        ]


def reach(component_ids: Collection[int], *, internal: bool = False) -> Reach:
    """How many subscribers an update of an incident with these components notifies, per
    channel: one query."""
    subscribers = audience(component_ids, internal=internal)
    counts = dict(subscribers.order_by().values_list("channel").annotate(n=Count("pk")))
    return Reach({channel: counts.get(channel, 0) for channel in Channel.values})


def notifications_of_incident(incident: Incident) -> dict[str, int]:
    """How many notifications an incident made, and how their deliveries stand: two queries."""
    counts = Delivery.objects.filter(event__incident=incident).aggregate(
        **{state: Count("pk", filter=Q(state=state)) for state in DeliveryState.values}
    )
    counts["events"] = incident.notification_events.count()
    return counts
