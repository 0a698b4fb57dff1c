"""The Celery app and the one policy every Beacon task follows."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")

app = Celery("statuspage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    task_default_queue="default",
    # Snapshot rebuilds never wait behind a backlog of checks or notifications.
    task_routes={
        "statuspage.tasks.rebuild_snapshots": {"queue": "snapshots"},
        "incidents.tasks.expand_notification_event": {"queue": "notify"},
        "incidents.tasks.send_notification_batch": {"queue": "notify"},
        "incidents.tasks.sweep_notifications": {"queue": "notify"},
        "incidents.tasks.send_subscription_email": {"queue": "notify"},
    },
    timezone="UTC",
    beat_schedule={
        "advance-scheduled-maintenances": {
            "task": "incidents.tasks.advance_scheduled_maintenances",
            "schedule": 30.0,
        },
        # Expands events whose doorbell was lost, and hands out retries and lost batches.
        "sweep-notifications": {
            "task": "incidents.tasks.sweep_notifications",
            "schedule": float(os.environ.get("NOTIFY_SWEEP_SECONDS", "10")),  # as settings
            "options": {"expires": 30},
        },
        # Inbound alerts whose firing or resolution has now held long enough (docs/alerts.md).
        "settle-alerts": {
            "task": "components.tasks.settle_alerts",
            "schedule": 5.0,
            "options": {"expires": 10},
        },
        # Staff hear of a flapping component once a window (incidents/automatic.py).
        "flush-staff-notices": {
            "task": "incidents.tasks.flush_staff_notices",
            "schedule": 30.0,
            "options": {"expires": 60},
        },
        "roll-up-uptime": {
            "task": "components.tasks.roll_up_uptime",
            "schedule": 300.0,
        },
        # One scheduler for every health check: the due ones are read from the database.
        "dispatch-due-checks": {
            "task": "components.tasks.dispatch_due_checks",
            "schedule": float(os.environ.get("CHECKS_DISPATCH_SECONDS", "2")),  # as settings
            "options": {"expires": 10},
        },
        "update-check-rollups": {
            "task": "components.checks.tasks.update_check_rollups",
            "schedule": 60.0,
            "options": {"expires": 50},
        },
        "prune-check-results": {
            "task": "components.tasks.prune_check_results",
            "schedule": 3600.0,
        },
    },
)
app.autodiscover_tasks()
