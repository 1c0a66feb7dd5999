"""Default beat schedules of the monitoring app (see monitoring/services/schedules.py)."""

from django.conf import settings


def periodic_tasks() -> list[dict]:
    return [
        {
            "name": "refresh prediction rollups",
            "task": "monitoring.refresh_prediction_rollups",
            "every_seconds": 60,
            "expires_seconds": 50,
            "description": "Hourly prediction rollups behind the dashboards.",
        },
        {
            "name": "sync deployments",
            "task": "monitoring.deployments_sync",
            "every_seconds": 60,
            "expires_seconds": 50,
            "description": "Folders and schedules for every model with a production version; "
            "decide on production moves made in MLflow directly.",
        },
    ]


def model_periodic_tasks(model_name: str) -> list[dict]:
    """The schedules every served model gets, each naming the model in its arguments."""
    ingest_every = settings.MLAPP_INGEST_EVERY_SECONDS
    drift_every = settings.MLAPP_DRIFT_EVERY_MINUTES * 60
    return [
        {
            "name": f"ingest raw files · {model_name}",
            "task": "monitoring.ingest_raw_files",
            "kwargs": {"model_name": model_name},
            "every_seconds": ingest_every,
            "expires_seconds": max(ingest_every - 5, 5),
            "description": f"Validate new files in raw/{model_name}/ against {model_name}'s profile, "
            "split them into good/ and bad/, raise alerts.",
        },
        {
            "name": f"check drift · {model_name}",
            "task": "monitoring.check_drift",
            "kwargs": {"model_name": model_name},
            "every_seconds": drift_every,
            "expires_seconds": max(drift_every - 10, 10),
            "description": f"Compare {model_name}'s recent served data with its production version's training profile.",
        },
    ]
