"""The Celery app and the one policy every Beacon task follows."""

import logging
import math
import os
import time

from celery import Celery, Task
from celery.signals import before_task_publish
from django.core.cache import cache

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")

logger = logging.getLogger("beacon.celery")

# A message beat sends carries PERIODIC_HEADER; TICK_HEADER is stamped when it is published:
# which interval of its schedule it belongs to.
PERIODIC_HEADER = "beacon_periodic"
TICK_HEADER = "beacon_tick"
TICK_LOCK_KEY = "beacon:beat:{}:{}"


class BeaconTask(Task):
    """Every Beacon task. A periodic one that beat sent runs once per tick of its schedule,
    however many beat processes sent it (two after a careless failover): the first to run
    takes the tick (an atomic add in the shared cache: SET NX EX on Redis) and the others
    skip. Calls that did not come from beat (tests, code, a sweeper) always run."""

    def __call__(self, *args, **kwargs):
        interval = periodic_seconds(self.name)
        if interval is not None:
            tick = _request_tick(self.request, interval)
            if tick is not None and not claim_tick(self.name, tick, interval):
                logger.debug("%s already ran for tick %s; skipped", self.name, tick)
                return None
        return super().__call__(*args, **kwargs)


def periodic_seconds(task_name: str) -> float | None:
    for entry in app.conf.beat_schedule.values():
        if entry["task"] == task_name:
            return float(entry["schedule"])
    return None


def _request_tick(request, interval: float) -> int | None:
    headers = getattr(request, "headers", None) or {}
    if not (getattr(request, PERIODIC_HEADER, None) or headers.get(PERIODIC_HEADER)):
        return None
    tick = getattr(request, TICK_HEADER, None) or headers.get(TICK_HEADER)
    return int(tick) if tick is not None else current_tick(interval)


def current_tick(interval: float, now: float | None = None) -> int:
    return int((time.time() if now is None else now) // interval)


def claim_tick(task_name: str, tick: int, interval: float) -> bool:
    """Whether this run is the first for `tick`; True too when the cache cannot tell (a
    periodic task runs twice rather than never: each is idempotent)."""
    try:
        return bool(
            cache.add(TICK_LOCK_KEY.format(task_name, tick), 1, max(10, math.ceil(2 * interval)))
        )
    except Exception:
        logger.warning("could not claim %s tick %s; running it", task_name, tick, exc_info=True)
        return True


@before_task_publish.connect(dispatch_uid="beacon-periodic-tick")
def _stamp_tick(sender=None, headers=None, **kwargs) -> None:
    # Stamped when beat publishes, not when a worker gets to it: a backlog cannot push two
    # beats' messages for one tick into different ticks.
    if headers is not None and headers.get(PERIODIC_HEADER) and TICK_HEADER not in headers:
        interval = periodic_seconds(headers.get("task") or sender or "")
        if interval is not None:
            headers[TICK_HEADER] = current_tick(interval)


app = Celery("statuspage", task_cls=BeaconTask)
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
        "statuspage.tasks.probe_database": {"queue": "snapshots"},
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
        # Open incidents silent past the page's promised update interval (incidents/reminders.py).
        "remind-silent-incidents": {
            "task": "incidents.tasks.remind_silent_incidents",
            "schedule": 60.0,
            "options": {"expires": 50},
        },
        # Visitors' problem reports, counted in the cache, kept in PostgreSQL (docs/reports.md).
        "persist-report-counts": {
            "task": "components.tasks.persist_report_counts",
            "schedule": 60.0,
            "options": {"expires": 50},
        },
        # A surge of reports tells staff within two minutes of its start (docs/reports.md).
        "detect-report-surges": {
            "task": "components.tasks.detect_report_surges",
            "schedule": 30.0,
            "options": {"expires": 25},
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
        # Notices a database outage (and its end) for the pages nginx serves from files.
        "probe-database": {
            "task": "statuspage.tasks.probe_database",
            "schedule": float(os.environ.get("SNAPSHOT_PROBE_SECONDS", "5")),  # as settings
            "options": {"expires": 10},
        },
        "prune-check-results": {
            "task": "components.tasks.prune_check_results",
            "schedule": 3600.0,
        },
        # The audit trail keeps AUDIT_RETENTION_DAYS (statuspage/audit.py).
        "prune-audit-events": {
            "task": "statuspage.tasks.prune_audit_events",
            "schedule": 3600.0,
        },
    },
)
# Every message beat sends says so, so that its task runs once per tick (BeaconTask).
for _entry in app.conf.beat_schedule.values():
    _options = _entry.setdefault("options", {})
    _options["headers"] = {**_options.get("headers", {}), PERIODIC_HEADER: True}
app.autodiscover_tasks()
