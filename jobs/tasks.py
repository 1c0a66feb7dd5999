from celery import shared_task

from . import services


@shared_task(
    name="jobs.reclaim_stale", acks_late=True, reject_on_worker_lost=True, expires=10, soft_time_limit=30, time_limit=60
)
def reclaim_stale_jobs_task() -> dict:
    """Restart jobs whose worker was lost (see jobs.services.jobs_reclaim_stale)."""
    result = services.jobs_reclaim_stale()
    return {"requeued": result.requeued, "failed": result.failed, "resent": result.resent}
