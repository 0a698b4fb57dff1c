from celery import shared_task

from components import services


@shared_task
def roll_up_uptime() -> None:
    services.roll_up_uptime()
