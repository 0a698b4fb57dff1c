"""Reads of incidents shared by the public outputs, the APIs and the webhook payloads."""

from django.db.models import Prefetch, QuerySet

from components.models import Component
from incidents.models import AffectedComponent, Incident, IncidentUpdate


def with_timeline(incidents: QuerySet[Incident]) -> QuerySet[Incident]:
    """Incidents with their updates (newest first), affected components and components."""
    return incidents.prefetch_related(
        Prefetch(
            "updates",
            queryset=IncidentUpdate.objects.order_by("-display_at", "-id").prefetch_related(
                Prefetch(
                    "affected_components",
                    queryset=AffectedComponent.objects.select_related("component"),
                )
            ),
        ),
        Prefetch("components", queryset=Component.objects.in_page_order()),
    )
