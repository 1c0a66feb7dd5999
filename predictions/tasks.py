"""Celery tasks of the predictions app: thin wrappers around services."""

from celery import shared_task

from .services import batch, scheduled


@shared_task(name="predictions.batch_job_run", acks_late=True, reject_on_worker_lost=True)
def batch_job_run_task(job_id: int) -> str:
    return batch.batch_job_run(job_id=job_id).status


@shared_task(name="predictions.score_good_files", acks_late=True, reject_on_worker_lost=True, expires=100)
def score_good_files_task(model_name: str) -> int:
    return scheduled.scheduled_scoring_run(model_name=model_name).pk
