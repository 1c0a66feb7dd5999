from celery import shared_task

from .services import alerts


@shared_task(name="monitoring.alert_notify", acks_late=True, reject_on_worker_lost=True)
def alert_notify_task(alert_id: int) -> None:
    alerts.alert_notify(alert_id=alert_id)
