import httpx
from celery import shared_task

from incidents import services


@shared_task
def advance_scheduled_maintenances() -> None:
    services.maintenances_advance_due()


@shared_task(autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=600, max_retries=8)
def tell_staff_by_email(subject: str, text: str) -> None:
    from incidents.automatic import staff_email

    staff_email(subject=subject, text=text)


@shared_task(
    autoretry_for=(OSError, httpx.HTTPError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def tell_staff_by_webhook(subject: str, text: str) -> None:
    from incidents.automatic import staff_webhook

    staff_webhook(subject=subject, text=text)
