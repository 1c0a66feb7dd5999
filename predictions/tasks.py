"""Celery tasks of the predictions app: thin wrappers around services."""

from celery import shared_task

from jobs.limits import job_task_options

from . import experiments
from .routing import ShadowWork, shadow_rows_score
from .services import batch, scheduled


@shared_task(name="predictions.batch_job_run", **job_task_options())
def batch_job_run_task(job_id: int) -> str:
    return batch.batch_job_run(job_id=job_id).status


@shared_task(name="predictions.score_good_files", expires=100, **job_task_options())
def score_good_files_task(model_name: str) -> int:
    return scheduled.scheduled_scoring_run(model_name=model_name).pk


@shared_task(name="predictions.shadow_score", expires=300, ignore_result=True)
def shadow_score_task(work: dict) -> int:
    """`MLAPP_SHADOW_RUNNER=celery`: one request's shadow scoring (JSON in, the rows stored out)."""
    return shadow_rows_score([ShadowWork(**work)])


@shared_task(name="predictions.ab_auto_promote", expires=240)
def ab_auto_promote_task() -> list[str]:
    return experiments.ab_auto_promote()
