from datetime import timedelta

import factory
from django.db import connection

from components.models import (
    CheckKind,
    Component,
    ComponentGroup,
    ComponentStatus,
    DailyUptime,
    HealthCheck,
)


class ComponentGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ComponentGroup

    name = factory.Sequence(lambda n: f"Group {n}")
    position = factory.Sequence(lambda n: n + 1)


class ComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Component

    name = factory.Sequence(lambda n: f"Component {n}")
    position = factory.Sequence(lambda n: n + 1)

    class Params:
        degraded_performance = factory.Trait(status=ComponentStatus.DEGRADED_PERFORMANCE)
        partial_outage = factory.Trait(status=ComponentStatus.PARTIAL_OUTAGE)
        major_outage = factory.Trait(status=ComponentStatus.MAJOR_OUTAGE)
        under_maintenance = factory.Trait(status=ComponentStatus.UNDER_MAINTENANCE)


class HealthCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealthCheck

    component = factory.SubFactory(ComponentFactory)
    name = factory.Sequence(lambda n: f"Check {n}")
    kind = CheckKind.HTTP
    url = "http://example.test/health"
    timeout = 2.0


def bulk_uptime_history(count: int, *, days: int, now, zone) -> list[Component]:
    """`count` showcased components created `days` ago, each with a DailyUptime row per past
    day (one day in twenty with half an hour of downtime): a big page, fast. On PostgreSQL the
    rows are one INSERT … SELECT over generate_series (365,000 model instances would take half
    a minute); elsewhere bulk_create."""
    created = now - timedelta(days=days)
    components = Component.objects.bulk_create(
        Component(name=f"Service {n + 1}", position=n + 1, created_at=created) for n in range(count)
    )
    Component.objects.filter(pk__in=[c.pk for c in components]).update(uptime_accounted_until=now)
    today = now.astimezone(zone).date()
    ids = [c.pk for c in components]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {DailyUptime._meta.db_table} (component_id, day, operational_seconds,
                    degraded_performance_seconds, partial_outage_seconds, major_outage_seconds,
                    under_maintenance_seconds)
                SELECT c.id, %s::date - g.n,
                    CASE WHEN (c.i + g.n) %% 20 = 0 THEN 84600 ELSE 86400 END,
                    CASE WHEN (c.i + g.n) %% 60 = 0 THEN 1800 ELSE 0 END,
                    CASE WHEN (c.i + g.n) %% 60 = 20 THEN 1800 ELSE 0 END,
                    CASE WHEN (c.i + g.n) %% 60 = 40 THEN 1800 ELSE 0 END,
                    0
                FROM unnest(%s::bigint[]) WITH ORDINALITY AS c(id, i)
                CROSS JOIN generate_series(1, %s) AS g(n)
                """,
                [today, ids, days - 1],
            )
        return components
    bad = ["degraded_performance", "partial_outage", "major_outage"]
    rows = []
    for index, component in enumerate(components, start=1):
        for n in range(1, days):
            seconds = {"operational_seconds": 24 * 3600}
            if (index + n) % 20 == 0:
                status = bad[(index + n) % 60 // 20]
                seconds = {"operational_seconds": 24 * 3600 - 1800, f"{status}_seconds": 1800}
            rows.append(DailyUptime(component=component, day=today - timedelta(days=n), **seconds))
    DailyUptime.objects.bulk_create(rows, batch_size=10000)
    return components
