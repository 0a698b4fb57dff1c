"""Fill an empty, migrated Beacon database with a page of a given size, fast.

    DJANGO_SETTINGS_MODULE=statuspage.settings DATABASE_URL=... REDIS_URL=... \\
        python bench/seed.py --components 1000 --incidents 100000

- `--components` components in groups of ten, created 90 days ago, with a DailyUptime row
  per component and past day (bulk_create; about one day in twenty has some downtime);
- `--incidents` past, resolved incidents written directly with bulk_create (Incident, two
  IncidentUpdates, one to three AffectedComponents and the incident-component links): about
  thirty in the last 90 days, the rest packed two hours apart before that, so the status
  page shows what a real page shows while the history and the tables grow;
- through incidents.services, so the page has live content: two open incidents (one with a
  second update) and an upcoming maintenance.

Prints one JSON line: the sizes, the seconds it took and `incident_code`, the open incident
whose page the benchmark loads. Deterministic (random.Random(42)) apart from the ids.
"""

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from components.models import (  # noqa: E402
    Component,
    ComponentGroup,
    ComponentStatus,
    DailyUptime,
)
from components.services import roll_up_uptime  # noqa: E402
from incidents.models import (  # noqa: E402
    AffectedComponent,
    Impact,
    Incident,
    IncidentKind,
    IncidentStatus,
    IncidentUpdate,
)
from incidents.services import incident_create, incident_post_update  # noqa: E402
from statuspage.models import PageSettings  # noqa: E402
from statuspage.public import public_cache  # noqa: E402

HISTORY_DAYS = 90
GROUP_SIZE = 10
BATCH = 5000
RECENT_INCIDENTS = 30  # in the 90-day window, three days apart
OLDER_SPACING = timedelta(hours=2)
BAD_STATUSES = [
    ComponentStatus.DEGRADED_PERFORMANCE,
    ComponentStatus.PARTIAL_OUTAGE,
    ComponentStatus.MAJOR_OUTAGE,
]
IMPACT = {
    ComponentStatus.DEGRADED_PERFORMANCE: Impact.MINOR,
    ComponentStatus.PARTIAL_OUTAGE: Impact.MAJOR,
    ComponentStatus.MAJOR_OUTAGE: Impact.CRITICAL,
}
BODY_START = (
    "We are investigating reports of **elevated error rates**. Some requests may fail or "
    "take longer than usual. We will post an update within 30 minutes."
)
BODY_END = "The issue has been resolved and the service is operating normally again."


def seed(*, components: int, incidents: int) -> dict:
    rng = random.Random(42)
    now = timezone.now()
    page = PageSettings.load()
    page = PageSettings.objects.get(pk=page.pk)
    page.name = f"Bench {components}c/{incidents}i"
    page.save()
    PageSettings.forget_cached()
    zone = PageSettings.load().zone
    today = now.astimezone(zone).date()
    start = datetime.combine(
        today - timedelta(days=HISTORY_DAYS - 1), datetime.min.time(), tzinfo=zone
    )
    midnight = datetime.combine(today, datetime.min.time(), tzinfo=zone)

    with transaction.atomic():
        comps = _components(components, start=start, accounted_until=midnight)
        _uptime(comps, rng, first_day=start.date(), today=today)
        _past_incidents(incidents, comps, rng, now=now)
    roll_up_uptime(until=now)
    code = _live_incidents(comps, now=now)
    # What autovacuum would do a minute later: without statistics, the planner reads 100,000
    # incidents' affected components with a sequential scan, and the run measures that.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    public_cache.invalidate()
    return {"components": components, "incidents": incidents, "incident_code": code}


def _components(count: int, *, start, accounted_until) -> list[Component]:
    groups = ComponentGroup.objects.bulk_create(
        ComponentGroup(
            name=f"Region {n + 1}", description=f"Services of region {n + 1}.", position=n + 1
        )
        for n in range((count + GROUP_SIZE - 1) // GROUP_SIZE)
    )
    return Component.objects.bulk_create(
        (
            Component(
                name=f"Service {n + 1}",
                description=f"Service number {n + 1}, one of ten in its region.",
                group=groups[n // GROUP_SIZE],
                position=n % GROUP_SIZE + 1,
                created_at=start,
                status_changed_at=start,
                uptime_accounted_until=accounted_until,
            )
            for n in range(count)
        ),
        batch_size=BATCH,
    )


def _uptime(comps: list[Component], rng: random.Random, *, first_day, today) -> None:
    def rows():
        for component in comps:
            day = first_day
            while day < today:
                row = DailyUptime(component=component, day=day, operational_seconds=86400)
                if rng.random() < 0.05:
                    bad = rng.choice(BAD_STATUSES)
                    seconds = rng.randrange(300, 7200)
                    row.operational_seconds -= seconds
                    setattr(row, DailyUptime.seconds_field(bad), seconds)
                yield row
                day += timedelta(days=1)

    DailyUptime.objects.bulk_create(rows(), batch_size=BATCH)


def _past_incidents(count: int, comps: list[Component], rng: random.Random, *, now) -> None:
    links = Incident.components.through
    done = 0
    while done < count:
        size = min(BATCH, count - done)
        plan = []
        for n in range(done, done + size):
            if n < RECENT_INCIDENTS:
                started = now - timedelta(days=3 * n + 1, hours=rng.randrange(24))
            else:
                started = now - timedelta(days=3 * RECENT_INCIDENTS) - OLDER_SPACING * n
            resolved = started + timedelta(minutes=rng.randrange(10, 240))
            affected = rng.sample(comps, min(len(comps), rng.randint(1, 3)))
            bad = rng.choice(BAD_STATUSES)
            plan.append((started, resolved, affected, bad))
        incidents = Incident.objects.bulk_create(
            Incident(
                kind=IncidentKind.INCIDENT,
                name=f"Elevated error rates on {affected[0].name}",
                status=IncidentStatus.RESOLVED,
                impact=IMPACT[bad],
                created_at=started,
                started_at=started,
                resolved_at=resolved,
                updated_at=resolved,
            )
            for started, resolved, affected, bad in plan
        )
        updates = IncidentUpdate.objects.bulk_create(
            IncidentUpdate(
                incident=incident,
                status=status,
                body=body,
                display_at=at,
                created_at=at,
                updated_at=at,
                deliver_notifications=False,
            )
            for incident, (started, resolved, _, _) in zip(incidents, plan, strict=True)
            for status, body, at in (
                (IncidentStatus.INVESTIGATING, BODY_START, started),
                (IncidentStatus.RESOLVED, BODY_END, resolved),
            )
        )
        AffectedComponent.objects.bulk_create(
            (
                AffectedComponent(
                    update=update, component=component, old_status=old, new_status=new
                )
                for n, (_, _, affected, bad) in enumerate(plan)
                for update, old, new in (
                    (updates[2 * n], ComponentStatus.OPERATIONAL, bad),
                    (updates[2 * n + 1], bad, ComponentStatus.OPERATIONAL),
                )
                for component in affected
            ),
            batch_size=BATCH,
        )
        links.objects.bulk_create(
            (
                links(incident_id=incident.pk, component_id=component.pk)
                for incident, (_, _, affected, _) in zip(incidents, plan, strict=True)
                for component in affected
            ),
            batch_size=BATCH,
        )
        done += size


def _live_incidents(comps: list[Component], *, now) -> str:
    first = incident_create(
        name="Elevated API latency",
        status=IncidentStatus.INVESTIGATING,
        body="API requests take longer than usual. We are investigating.",
        component_statuses={comps[0]: ComponentStatus.DEGRADED_PERFORMANCE},
        deliver_notifications=False,
        started_at=now - timedelta(minutes=40),
        created_at=now - timedelta(minutes=40),
    )
    incident_post_update(
        incident=first,
        status=IncidentStatus.IDENTIFIED,
        body="A database replica is lagging. We are moving traffic to a healthy one.",
        component_statuses={comps[0]: ComponentStatus.PARTIAL_OUTAGE},
        deliver_notifications=False,
        display_at=now - timedelta(minutes=10),
    )
    if len(comps) > 1:
        incident_create(
            name="Delayed notifications",
            status=IncidentStatus.MONITORING,
            body="Notifications were delayed; a fix is out and we are monitoring.",
            component_statuses={comps[1]: ComponentStatus.DEGRADED_PERFORMANCE},
            deliver_notifications=False,
            started_at=now - timedelta(minutes=90),
            created_at=now - timedelta(minutes=90),
        )
    incident_create(
        name="Network upgrade",
        status=IncidentStatus.SCHEDULED,
        body="We will upgrade the network. Short interruptions are possible.",
        kind=IncidentKind.MAINTENANCE,
        affected_components=comps[:2],
        deliver_notifications=False,
        scheduled_for=now + timedelta(days=2),
        scheduled_until=now + timedelta(days=2, hours=2),
        created_at=now,
    )
    return first.public_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--incidents", type=int, default=1000)
    args = parser.parse_args()
    began = time.monotonic()
    result = seed(components=args.components, incidents=args.incidents)
    result["seconds"] = round(time.monotonic() - began, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
