"""Default beat schedules of the predictions app (see monitoring/services/schedules.py)."""

from django.conf import settings


def periodic_tasks() -> list[dict]:
    every = settings.MLAPP_SCORE_EVERY_MINUTES * 60
    return [
        {
            "name": "score good files",
            "task": "predictions.score_good_files",
            "every_seconds": every,
            "expires_seconds": max(every - 10, 10),
            "description": "Score validated files not yet scored by the production model.",
        },
    ]
