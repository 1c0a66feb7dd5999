"""Sending work to the Celery workers from web requests and services.

Outcomes are recorded in our own tables (jobs, alerts, runs), so nothing waits on
Celery's result backend: with Redis as the backend, each send would otherwise
subscribe to its result, and a broker that is down held the request ~19 s before
failing. A send that cannot reach the broker fails in about a second, naming it.
"""

import logging

from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


class TaskQueueUnavailable(RuntimeError):
    """The broker cannot be reached; the message names its error."""


def task_send(task, *args) -> None:
    try:
        task.apply_async(args=args, ignore_result=True)
    except Exception as exc:  # the broker's client raises many types (kombu, redis, SQLAlchemy)
        raise TaskQueueUnavailable(f"The task queue is unavailable: {exc}") from exc


def job_enqueue_on_commit(task, job) -> None:
    """Send `job` to the worker once the transaction commits.

    If the task queue cannot be reached, the job fails saying so, instead of staying
    "queued" forever behind a progress bar that never moves. `job` is a model with
    the `status` (QUEUED/FAILED), `error` and `finished_at` fields of our job tables.
    """
    job_model, job_id = type(job), job.pk

    def send():
        try:
            task_send(task, job_id)
        except TaskQueueUnavailable as exc:
            logger.error("Could not queue %s #%s: %s", job_model.__name__, job_id, exc)
            job_model.objects.filter(pk=job_id, status=job_model.Status.QUEUED).update(
                status=job_model.Status.FAILED,
                error=f"{exc} (the job was not started)"[:2000],
                finished_at=timezone.now(),
            )

    transaction.on_commit(send)
