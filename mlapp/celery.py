"""The Celery app. Tasks live in each app's tasks.py; schedules live in the
database (django-celery-beat) and are seeded by `manage.py setup_periodic_tasks`."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapp.settings")
# HistGradientBoosting's OpenMP threads spin between calls and hurt tail latency
# on small machines; workers and web processes score with one thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")

app = Celery("mlapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _watch_deployments(**kwargs):
    """Each pool process loads every model's served version before it takes a task, then follows
    them (outside moves included), loaded ahead."""
    from models_registry.deployments import preload, watch_start  # noqa: PLC0415 (imported before the apps)

    preload()
    watch_start()
