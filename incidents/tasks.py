from celery import shared_task

from incidents import services


@shared_task
def advance_scheduled_maintenances() -> None:
    services.maintenances_advance_due()
