"""Reads about notifications, shaped for staff pages."""

from django.db.models import Count, Q

from incidents.models import Incident
from incidents.notify.models import Delivery, DeliveryState


def notifications_of_incident(incident: Incident) -> dict[str, int]:
    """How many notifications an incident made, and how their deliveries stand: two queries."""
    counts = Delivery.objects.filter(event__incident=incident).aggregate(
        **{state: Count("pk", filter=Q(state=state)) for state in DeliveryState.values}
    )
    counts["events"] = incident.notification_events.count()
    return counts
