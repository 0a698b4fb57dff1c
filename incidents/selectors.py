"""Reads of incidents shared by the public outputs, the APIs, the webhook payloads and the
staff console."""

from django.db.models import Prefetch, QuerySet

from components.models import Component
from incidents.models import AffectedComponent, Incident, IncidentDraft, IncidentUpdate


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


def drafts_waiting() -> list[IncidentDraft]:
    """Drafts health checks prepared that nobody has published or discarded, newest first."""
    return list(
        IncidentDraft.objects.filter(published_at__isnull=True, discarded_at__isnull=True)
        .select_related("component")
        .order_by("-created_at", "-id")
    )
