"""Celery time limits of the tasks that run a job (training, batch scoring).

The soft limit raises `SoftTimeLimitExceeded` inside the task, which fails its job
saying so; the hard one, a minute later, kills the worker process (the job is then
reclaimed like one whose worker died). Other tasks have the global limits
(`CELERY_TASK_SOFT_TIME_LIMIT`, `CELERY_TASK_TIME_LIMIT`).
"""

from django.conf import settings


def job_task_options() -> dict:
    soft = settings.MLAPP_JOB_TIME_LIMIT_SECONDS
    return {"acks_late": True, "reject_on_worker_lost": True, "soft_time_limit": soft, "time_limit": soft + 60}
