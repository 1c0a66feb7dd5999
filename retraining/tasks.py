from celery import shared_task

from jobs.limits import job_task_options

from .services import runs


@shared_task(name="retraining.retrain_job_run", **job_task_options())
def retrain_job_run_task(job_id: int) -> str:
    """One retraining pass (a duplicate delivery, or one for a job another worker holds, does nothing)."""
    return runs.retrain_job_run(job_id=job_id).outcome


@shared_task(name="retraining.retrain_scheduled", acks_late=True, reject_on_worker_lost=True, expires=50)
def retrain_scheduled_task(model_name: str) -> int | None:
    """The model's retraining schedule came round: queue a pass (none if one is queued or running)."""
    job = runs.retrain_job_request(model_name=model_name, trigger="schedule")
    return job.pk if job else None
