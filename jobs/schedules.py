"""Default beat schedules of the jobs app (see monitoring/services/schedules.py)."""

from django.conf import settings


def periodic_tasks() -> list[dict]:
    every = settings.MLAPP_JOB_RECLAIM_EVERY_SECONDS
    return [
        {
            "name": "reclaim stale jobs",
            "task": "jobs.reclaim_stale",
            "every_seconds": every,
            "expires_seconds": max(every - 2, 1),
            "description": "Restart training and batch jobs whose worker stopped sending heartbeats.",
        },
    ]
