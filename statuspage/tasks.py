from celery import shared_task

from statuspage import audit
from statuspage.public.snapshots import build, keys, outage


@shared_task
def rebuild_snapshots() -> None:
    keys.rebuild_started()
    build.rebuild_hot_snapshots()


@shared_task
def probe_database() -> None:
    """Beat's probe: marks and clears the outage even when nginx serves every request and
    no web process is asked anything (the files tree then gets the notice too)."""
    outage.probe_database_now()


@shared_task
def prune_audit_events() -> None:
    """Beat: events older than AUDIT_RETENTION_DAYS."""
    audit.audit_prune()
