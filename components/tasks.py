from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from components import services
from components.alerts.services import alerts_settle
from components.checks import services as checks
from components.checks.runner import run_batch
from components.checks.tasks import update_check_rollups  # noqa: F401 - found by Celery here
from components.reports.public_chart import reports_chart_publish
from components.reports.services import report_counts_persist, report_surges_detect


@shared_task
def settle_alerts() -> None:
    """Beat, every few seconds: alerts whose report has held long enough move components."""
    alerts_settle()


@shared_task
def persist_report_counts() -> None:
    """Beat, every minute: visitors' report counts from the cache to PostgreSQL, then the
    public reports chart when the page shows it (docs/reports.md)."""
    now = timezone.now()
    report_counts_persist(now=now)
    reports_chart_publish(now=now)


@shared_task
def detect_report_surges() -> None:
    """Beat, every 30 seconds: surges of visitor reports (staff hear within two minutes)."""
    report_surges_detect(now=timezone.now())


@shared_task
def roll_up_uptime() -> None:
    services.roll_up_uptime()


@shared_task
def dispatch_due_checks() -> None:
    """Beat, every few seconds: hand the due checks to their locations' queues in batches."""
    for batch in checks.checks_claim_due(ahead=settings.BEACON_CHECKS_DISPATCH_SECONDS):
        run_checks.apply_async(
            args=(batch.location, [(pk, slot.isoformat()) for pk, slot in batch.runs]),
            queue=checks.queue_for(batch.location),
        )


@shared_task
def run_checks(location: str, runs: list) -> None:
    """Run a batch of checks concurrently from this worker's location and record them."""
    slots = {pk: datetime.fromisoformat(slot) for pk, slot in runs}
    claimed = checks.check_runs_claim(location=location, runs=list(slots.items()))
    if claimed:
        outcomes = run_batch(claimed, start_at=[slots[check.pk] for check in claimed])
        results = list(zip(claimed, outcomes, strict=True))
        checks.check_results_record(location=location, results=results)


@shared_task
def prune_check_results() -> None:
    checks.check_results_prune()
