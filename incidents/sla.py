"""The monthly SLA report: a component's or group's month of uptime (components/sla.py) with
the incidents that affected it and the mean time to resolve them.

An incident counts for the month when it names one of the components and was open at some
time of the month (up to now in the current month); its duration is clipped to the month.
The MTTR is the mean of the full durations, start to resolution, of the incidents resolved
in the month. Maintenances are not incidents: their time is excluded from the uptime.
"""

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from components.models import Component, ComponentGroup
from components.sla import (
    DOWN_STATUSES,
    SlaMonth,
    component_terms,
    group_terms,
    month_uptime,
)
from incidents.models import Incident
from statuspage.lib.text import spreadsheet_cell
from statuspage.models import PageSettings


@dataclass(frozen=True)
class IncidentInMonth:
    code: str
    name: str
    started_at: datetime
    resolved_at: datetime | None
    seconds_in_month: float  # clipped to the month (and to now)

    @property
    def minutes_in_month(self) -> float:
        return self.seconds_in_month / 60


@dataclass(frozen=True)
class SlaReport:
    kind: str  # "component" or "group"
    public_id: str
    name: str
    uptime: SlaMonth
    incidents: list[IncidentInMonth]
    mttr_seconds: float | None  # None: nothing resolved in the month


def incidents_in_month(
    components: list[Component], *, start: datetime, until: datetime
) -> list[IncidentInMonth]:
    if not components or until <= start:
        return []
    rows = (
        Incident.objects.incidents()
        .filter(components__in=components, started_at__lt=until)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gt=start))
        .order_by("started_at", "id")
        .distinct()
    )
    return [
        IncidentInMonth(
            code=incident.public_id,
            name=incident.name,
            started_at=incident.started_at,
            resolved_at=incident.resolved_at,
            seconds_in_month=(
                min(incident.resolved_at or until, until) - max(incident.started_at, start)
            ).total_seconds(),
        )
        for incident in rows
    ]


def mean_time_to_resolve(
    incidents: list[IncidentInMonth], *, start: datetime, until: datetime
) -> float | None:
    durations = [
        (incident.resolved_at - incident.started_at).total_seconds()
        for incident in incidents
        if incident.resolved_at is not None and start <= incident.resolved_at < until
    ]
    return sum(durations) / len(durations) if durations else None


def _report(
    kind: str, public_id: str, name: str, uptime: SlaMonth, components: list[Component]
) -> SlaReport:
    found = incidents_in_month(components, start=uptime.start, until=uptime.until)
    return SlaReport(
        kind=kind,
        public_id=public_id,
        name=name,
        uptime=uptime,
        incidents=found,
        mttr_seconds=mean_time_to_resolve(found, start=uptime.start, until=uptime.until),
    )


def component_sla_report(
    *, component: Component, month: str, now: datetime | None = None
) -> SlaReport:
    """ValueError for a month not YYYY-MM (or out of range)."""
    uptime = month_uptime(
        components=[component],
        terms=component_terms(component),
        month=month,
        now=now or timezone.now(),
        zone=PageSettings.load().zone,
    )
    return _report("component", component.public_id, component.name, uptime, [component])


def group_sla_report(
    *, group: ComponentGroup, month: str, now: datetime | None = None
) -> SlaReport:
    """A group's components pooled, as the group's uptime is; its own terms."""
    components = list(group.components.select_related("group"))
    uptime = month_uptime(
        components=components,
        terms=group_terms(group),
        month=month,
        now=now or timezone.now(),
        zone=PageSettings.load().zone,
    )
    return _report("group", group.public_id, group.name, uptime, components)


def _number(value: Decimal | float | None, places: int) -> str:
    if value is None:
        return ""
    return f"{Decimal(str(value)):.{places}f}"


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def report_json(report: SlaReport) -> dict[str, object]:
    """The report as the management API answers it (minutes and percentages as numbers)."""
    uptime, figures = report.uptime, report.uptime.figures
    return {
        "id": report.public_id,
        "name": report.name,
        "kind": report.kind,
        "month": uptime.month,
        "range_start": uptime.start.astimezone(uptime.zone).isoformat(),
        "range_end": uptime.until.astimezone(uptime.zone).isoformat(),
        "partial": uptime.partial,
        "counted_from": uptime.counted_from.isoformat() if uptime.counted_from else None,
        "uptime_percentage": (
            None if figures.uptime_percent is None else round(float(figures.uptime_percent), 4)
        ),
        "counted_minutes": round(float(figures.counted_minutes), 2),
        "maintenance_minutes": round(float(figures.maintenance_minutes), 2),
        "downtime_minutes": {
            str(status): round(float(figures.minutes(status)), 2) for status in DOWN_STATUSES
        },
        "target": None if uptime.terms.target is None else float(uptime.terms.target),
        "target_inherited": uptime.terms.inherited,
        "breached": uptime.breached,
        "credit_percentage": None if uptime.credit is None else float(uptime.credit.credit),
        "credit_tiers": [tier.as_json() for tier in uptime.terms.tiers],
        "incidents": [
            {
                "id": incident.code,
                "name": incident.name,
                "started_at": incident.started_at.isoformat(),
                "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
                "minutes_in_month": round(incident.minutes_in_month, 2),
            }
            for incident in report.incidents
        ],
        "mttr_minutes": None if report.mttr_seconds is None else round(report.mttr_seconds / 60, 2),
    }


def report_csv(report: SlaReport) -> str:
    """The same report as CSV: a block of figures, a blank line, then one row per incident.

    Names are user text: a leading =, +, - or @ is quoted away so a spreadsheet never runs it.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    uptime = report.uptime.figures.uptime_percent
    downtime = report.uptime.figures
    credit = report.uptime.credit
    counted_from = report.uptime.counted_from
    rows: list[list[str]] = [
        ["subject", report.kind],
        ["id", report.public_id],
        ["name", spreadsheet_cell(report.name)],
        ["month", report.uptime.month],
        ["partial", "yes" if report.uptime.partial else "no"],
        ["counted_from", counted_from.isoformat() if counted_from else ""],
        ["uptime_percent", "no data" if uptime is None else _number(uptime, 4)],
        ["counted_minutes", _number(downtime.counted_minutes, 2)],
        ["maintenance_minutes", _number(downtime.maintenance_minutes, 2)],
        *[[f"{status}_minutes", _number(downtime.minutes(status), 2)] for status in DOWN_STATUSES],
        ["target_percent", _number(report.uptime.terms.target, 4)],
        ["breached", "yes" if report.uptime.breached else "no"],
        ["credit_percent", _number(credit.credit if credit else None, 2)],
        ["mttr_minutes", _number(_minutes(report.mttr_seconds), 2)],
        [],
        ["incident", "name", "started_at", "resolved_at", "minutes_in_month"],
    ]
    for incident in report.incidents:
        rows.append(
            [
                incident.code,
                spreadsheet_cell(incident.name),
                incident.started_at.isoformat(),
                incident.resolved_at.isoformat() if incident.resolved_at else "",
                _number(incident.minutes_in_month, 2),
            ]
        )
    writer.writerows(rows)
    return out.getvalue()
