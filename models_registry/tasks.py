from celery import shared_task

from jobs.limits import job_task_options

from . import services


@shared_task(name="models_registry.training_job_run", **job_task_options())
def training_job_run_task(job_id: int) -> str:
    return services.training_job_run(job_id=job_id).status
