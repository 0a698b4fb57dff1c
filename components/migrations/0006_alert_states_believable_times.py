"""Alert times stored before deliveries were checked (a startsAt in year 9999 made every
later alert of its component stale): each one later than now, or before 2000, becomes the
time of this migration, as components.alerts.services now does on receipt."""

from django.db import migrations

BELIEVABLE = "BETWEEN '2000-01-01T00:00:00Z' AND now() + interval '5 minutes'"

SQL = [
    f"UPDATE components_alertstate SET {column} = now() WHERE NOT ({column} {BELIEVABLE})"
    for column in ("event_at", "starts_at", "ends_at")
]


class Migration(migrations.Migration):
    dependencies = [
        ("components", "0005_alert_permissions"),
    ]

    operations = [migrations.RunSQL(SQL, reverse_sql=migrations.RunSQL.noop)]
