"""Alert times stored before deliveries were checked (a startsAt in year 9999 made every
later alert of its component stale): each one later than now, or before 2000, becomes the
time of this migration, as components.alerts.services now does on receipt."""

from datetime import UTC, datetime, timedelta

from django.db import migrations
from django.utils import timezone

FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def believable_times(apps, schema_editor):
    AlertState = apps.get_model("components", "AlertState")
    now = timezone.now()
    # UPDATEs only: a row PostgreSQL holds past Python's year 9999 ('infinity') is never read.
    for column in ("event_at", "starts_at", "ends_at"):
        AlertState.objects.filter(**{f"{column}__gt": now + SKEW}).update(**{column: now})
        AlertState.objects.filter(**{f"{column}__lt": FLOOR}).update(**{column: now})


class Migration(migrations.Migration):
    dependencies = [
        ("components", "0005_alert_permissions"),
    ]

    operations = [migrations.RunPython(believable_times, migrations.RunPython.noop)]
