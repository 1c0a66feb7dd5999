"""Celery tasks: time limits on every one; tasks that run jobs survive a lost worker."""

from jobs.services import runnable_job_models
from mlapp.celery import app as current_app
from monitoring.services.schedules import default_periodic_tasks


def _our_tasks() -> dict:
    current_app.loader.import_default_modules()
    return {name: task for name, task in current_app.tasks.items() if not name.startswith("celery.")}


def test_every_task_has_time_limits_and_acks_late(settings):
    assert current_app.conf.task_soft_time_limit == settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert current_app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT > settings.CELERY_TASK_SOFT_TIME_LIMIT
    tasks = _our_tasks()
    assert {"jobs.reclaim_stale", "predictions.batch_job_run", "models_registry.training_job_run"} <= set(tasks)
    for name, task in tasks.items():
        assert task.acks_late and task.reject_on_worker_lost, name
        soft = task.soft_time_limit or current_app.conf.task_soft_time_limit
        hard = task.time_limit or current_app.conf.task_time_limit
        assert 0 < soft < hard, name


def test_tasks_that_run_jobs_have_the_job_limits_and_the_reclaim_step_is_scheduled(settings):
    tasks = _our_tasks()
    for model in runnable_job_models():
        task = tasks[model.run_task_name]
        assert task.soft_time_limit == settings.MLAPP_JOB_TIME_LIMIT_SECONDS < task.time_limit
    (reclaim,) = [spec for spec in default_periodic_tasks() if spec["task"] == "jobs.reclaim_stale"]
    assert reclaim["every_seconds"] == settings.MLAPP_JOB_RECLAIM_EVERY_SECONDS
    assert reclaim["expires_seconds"] < reclaim["every_seconds"]
