from celery import shared_task

from statuspage import snapshots


@shared_task
def rebuild_snapshots() -> None:
    snapshots.rebuild_started()
    snapshots.rebuild_hot_snapshots()
