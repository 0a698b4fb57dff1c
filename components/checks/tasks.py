"""Tasks of health checks that are not about running them. Imported by components.tasks,
which Celery's autodiscovery finds."""

from celery import shared_task

from components.checks.rollups import check_rollups_update


@shared_task  # type: ignore[untyped-decorator]  # Celery ships no type information
def update_check_rollups() -> None:
    """Beat, every minute: roll raw results up into hourly and daily buckets."""
    check_rollups_update()
