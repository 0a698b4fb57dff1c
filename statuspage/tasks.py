import logging

from celery import Task, shared_task

from statuspage import audit
from statuspage.public import cdn, internal, publish
from statuspage.public.snapshots import build, keys, outage

logger = logging.getLogger("beacon.publish")

PUBLISH_MAX_RETRIES = 8
PUBLISH_BACKOFF_SECONDS = 15
PUBLISH_BACKOFF_MAX_SECONDS = 600
PUBLISH_WAIT_SECONDS = 5


@shared_task
def rebuild_snapshots(deferred: bool = False) -> None:
    if deferred:
        keys.deferred_rebuild_runs()
    if keys.defer_rebuild():
        return  # queued again for when the pacing allows it (changes keep coming)
    keys.rebuild_started()
    if build.rebuild_hot_snapshots(paced=True, deferred=deferred) is None:
        return  # left to a later rebuild (pacing a stream): nothing new to publish
    if publish.bucket_enabled():
        publish_outputs.delay()


@shared_task(bind=True, max_retries=PUBLISH_MAX_RETRIES)
def publish_outputs(self: Task, upload: bool = True, purge_urls: list[str] | None = None) -> None:
    """Every public output to the bucket, then a purge of what changed at the CDN.

    A failure is retried 15 s, 30 s, 60 s … (at most 10 min) later; a retry after the upload
    succeeded only purges. The upload skips what the bucket holds already, so a change that
    left an output as it was uploads and purges nothing.
    """
    with publish.exclusive() as ours:
        if not ours:  # another publish is running: this one follows it, with what changed
            kwargs = {"upload": upload, "purge_urls": purge_urls}
            publish_outputs.apply_async(kwargs=kwargs, countdown=PUBLISH_WAIT_SECONDS)
            return
        _publish(self, upload, list(purge_urls or []))


def _publish(task: Task, upload: bool, pending: list[str]) -> None:
    try:
        if upload:
            try:
                pending += publish.purge_urls(publish.publish_site_to_bucket().changed)
            except publish.PublishFailed as error:
                pending += publish.purge_urls(error.changed)
                raise
            upload = False
        cdn.purge(pending)
    except Exception as error:
        retries = task.request.retries
        countdown = min(PUBLISH_BACKOFF_MAX_SECONDS, PUBLISH_BACKOFF_SECONDS * 2**retries)
        logger.warning(
            "publishing failed (%s: %s); retry %d of %d in %d s",
            type(error).__name__,
            error,
            retries + 1,
            PUBLISH_MAX_RETRIES,
            countdown,
        )
        kwargs = {"upload": upload, "purge_urls": list(dict.fromkeys(pending))}
        raise task.retry(exc=error, countdown=countdown, kwargs=kwargs) from error


@shared_task
def send_internal_sign_in_link(email: str, base_url: str) -> None:
    """The /internal/ sign-in link, to an address in an allowed domain (nothing otherwise)."""
    internal.sign_in_link_send(email=email, base_url=base_url)


@shared_task
def probe_database() -> None:
    """Beat's probe: marks and clears the outage even when nginx serves every request and
    no web process is asked anything (the files tree then gets the notice too)."""
    outage.probe_database_now()


@shared_task
def prune_audit_events() -> None:
    """Beat: events older than AUDIT_RETENTION_DAYS."""
    audit.audit_prune()
