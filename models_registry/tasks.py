from celery import shared_task

from . import services


@shared_task(name="models_registry.training_job_run", acks_late=True, reject_on_worker_lost=True)
def training_job_run_task(job_id: int) -> str:
    return services.training_job_run(job_id=job_id).status
