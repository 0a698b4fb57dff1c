"""Reading persisted report counts (for the chart and surge detection)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Sum
from django.db.models.functions import TruncHour

from components.reports.chart import HOURS, HourlyTally, ReportsChart, hour_starts, reports_chart
from components.reports.models import ReportCount, ReportSurge


@dataclass(frozen=True)
class ReportTally:
    component_id: int | None  # None: "something else"
    symptom: str  # "" when the visitor named none
    minute: datetime
    count: int


def report_counts(
    *, start: datetime, end: datetime, component_ids: list[int] | None = None
) -> list[ReportTally]:
    """Counts per component, symptom and minute in [start, end), oldest first.

    `component_ids` narrows to those components (None: all, "something else" included).
    """
    rows = ReportCount.objects.filter(minute__gte=start, minute__lt=end)
    if component_ids is not None:
        rows = rows.filter(component_id__in=component_ids)
    return [
        ReportTally(component_id=c, symptom=s, minute=m, count=n)
        for c, s, m, n in rows.order_by("minute", "component_id", "symptom").values_list(
            "component_id", "symptom", "minute", "count"
        )
    ]


def report_totals(*, start: datetime, end: datetime) -> dict[int | None, int]:
    """Reports per component (None: "something else") in [start, end)."""
    rows = (
        ReportCount.objects.filter(minute__gte=start, minute__lt=end)
        .values_list("component_id")
        .annotate(total=Sum("count"))
    )
    return dict(rows)


def report_surges_open() -> list[ReportSurge]:
    """Surges not ended yet, with their components, oldest first: one query."""
    return list(
        ReportSurge.objects.filter(ended_at=None)
        .select_related("component")
        .order_by("started_at", "id")
    )


def reports_last_day(*, now: datetime, include_internal: bool = False) -> ReportsChart:
    """The 24-hour reports chart's numbers: one query, at most 24 x (components + 1) x 6 rows
    (hours, components and "something else", symptoms and none).

    Reports of components made internal since are left out unless `include_internal`."""
    start = hour_starts(now)[0]
    counts = ReportCount.objects.filter(
        minute__gte=start, minute__lt=start + timedelta(hours=HOURS)
    )
    if not include_internal:
        counts = counts.exclude(component__internal=True).exclude(component__group__internal=True)
    rows = (
        counts.annotate(hour=TruncHour("minute", tzinfo=UTC))
        .values_list("component_id", "component__name", "symptom", "hour")
        .annotate(total=Sum("count"))
        .order_by()
    )
    tallies = [HourlyTally(*row) for row in rows]
    return reports_chart(tallies, now=now)
