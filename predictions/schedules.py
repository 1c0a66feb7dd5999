"""Default beat schedules of the predictions app (see monitoring/services/schedules.py)."""

from django.conf import settings


def periodic_tasks() -> list[dict]:
    every = settings.MLAPP_AB_CHECK_EVERY_MINUTES * 60
    return [
        {
            "name": "A/B auto-promote check",
            "task": "predictions.ab_auto_promote",
            "every_seconds": every,
            "expires_seconds": max(every - 10, 10),
            "description": "Promote each A/B challenger whose model's traffic policy allows it once its online "
            "verdict is clearly better (predictions/experiments.py); does nothing for other models.",
        },
    ]


def model_periodic_tasks(model_name: str) -> list[dict]:
    every = settings.MLAPP_SCORE_EVERY_MINUTES * 60
    return [
        {
            "name": f"score good files · {model_name}",
            "task": "predictions.score_good_files",
            "kwargs": {"model_name": model_name},
            "every_seconds": every,
            "expires_seconds": max(every - 10, 10),
            "description": f"Score {model_name}'s validated files not yet scored by its production version.",
        },
    ]
