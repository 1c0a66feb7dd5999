"""Sending work to the Celery workers from web requests and services.

Outcomes are recorded in our own tables (jobs, alerts, runs), so nothing waits on
Celery's result backend: with Redis as the backend, each send would otherwise
subscribe to its result, and a broker that is down held the request ~19 s before
failing. A send that cannot reach the broker fails in about a second, naming it.
Jobs are enqueued through `jobs.services.job_enqueue_on_commit`.
"""

from django.conf import settings
from django.utils.module_loading import import_string


class TaskQueueUnavailable(RuntimeError):
    """The broker cannot be reached; the message names its error."""


def task_send(task, *args) -> None:
    try:
        task.apply_async(args=args, ignore_result=True)
    except Exception as exc:  # the broker's client raises many types (kombu, redis, SQLAlchemy)
        raise TaskQueueUnavailable(f"The task queue is unavailable: {exc}") from exc


def task_send_by_name(name: str, *args) -> None:
    """Send a task known only by its registered name (a lower layer restarting an app's job).

    Through the project's Celery app, named by `CELERY_APP_PATH` (the project package wires it; this
    bottom layer cannot import it), not whichever app is current (a test's producer app may be).
    """
    app = import_string(settings.CELERY_APP_PATH)
    if name not in app.tasks:
        app.loader.import_default_modules()  # the apps' tasks.py (a worker imported them at start)
    task_send(app.tasks[name], *args)


def broker_check(*, timeout: float = 2.0) -> None:
    """Connect to the broker once (readiness); raises `TaskQueueUnavailable` naming the error within ~`timeout`."""
    app = import_string(settings.CELERY_APP_PATH)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            client = getattr(connection.default_channel, "client", None)
            if hasattr(client, "ping"):  # Redis: the connection above may be lazy
                client.ping()
    except Exception as exc:  # kombu, redis and SQLAlchemy raise many types
        raise TaskQueueUnavailable(f"The task queue is unavailable: {exc}") from exc
