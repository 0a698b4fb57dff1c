"""Report counts and surges on the embedded default (SQLite, the file cache), as `make run`
starts Beacon: the suite runs on PostgreSQL, so these run in a process of their own."""

import os
import subprocess
import sys
import textwrap

from tests.processes import ROOT

SCRIPT = textwrap.dedent(
    """
    from datetime import UTC, datetime, timedelta
    from django.db import IntegrityError, transaction
    from components.models import Component
    from components.reports.models import ReportCount, ReportSurge
    from components.reports.services import report_counts_persist, report_record

    now = datetime(2026, 12, 5, 12, 0, 30, tzinfo=UTC)
    api = Component.objects.create(name="API")
    for n in range(3):
        report_record(component_ids=[api.public_id, "other"], symptom="errors",
                      address=f"203.0.113.{n}", user_agent="ua", now=now)
    report_record(component_ids=["other"], symptom="", address="203.0.113.9",
                  user_agent="ua", now=now)
    report_counts_persist(now=now)
    report_record(component_ids=["other"], symptom="", address="203.0.113.10",
                  user_agent="ua", now=now)
    report_counts_persist(now=now + timedelta(seconds=20))
    rows = sorted(
        (str(c), s, n) for c, s, n in
        ReportCount.objects.values_list("component__name", "symptom", "count")
    )
    print("ROWS", rows)

    ReportSurge.objects.create(component=None, started_at=now, last_seen_at=now,
                               window_minutes=5, peak_count=12, usual_count=0)
    try:
        with transaction.atomic():
            ReportSurge.objects.create(component=None, started_at=now, last_seen_at=now,
                                       window_minutes=5, peak_count=13, usual_count=0)
        print("SECOND OPEN SURGE STORED")
    except IntegrityError:
        print("SECOND OPEN SURGE REFUSED")
    """
)


def test_counts_persist_and_one_surge_stays_open_on_sqlite(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL")
    }
    env.update(BEACON_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="statuspage.settings")
    manage = [sys.executable, "manage.py"]
    migrated = subprocess.run(
        [*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, capture_output=True
    )
    assert migrated.returncode == 0, migrated.stderr.decode()
    ran = subprocess.run(
        [*manage, "shell", "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "beacon.sqlite3").exists()  # it ran on SQLite, not the suite's database
    assert "ROWS [('API', 'errors', 3), ('None', '', 2), ('None', 'errors', 3)]" in ran.stdout
    assert "SECOND OPEN SURGE REFUSED" in ran.stdout
