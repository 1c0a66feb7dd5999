"""Default beat schedules of the monitoring app (see monitoring/services/schedules.py)."""

from django.conf import settings


def periodic_tasks() -> list[dict]:
    ingest_every = settings.MLAPP_INGEST_EVERY_SECONDS
    drift_every = settings.MLAPP_DRIFT_EVERY_MINUTES * 60
    return [
        {
            "name": "ingest raw files",
            "task": "monitoring.ingest_raw_files",
            "every_seconds": ingest_every,
            "expires_seconds": max(ingest_every - 5, 5),
            "description": "Validate new files in raw/, split them into good/ and bad/, raise alerts.",
        },
        {
            "name": "check drift",
            "task": "monitoring.check_drift",
            "every_seconds": drift_every,
            "expires_seconds": max(drift_every - 10, 10),
            "description": "Compare recent served data with the production model's training profile.",
        },
        {
            "name": "refresh prediction rollups",
            "task": "monitoring.refresh_prediction_rollups",
            "every_seconds": 60,
            "expires_seconds": 50,
            "description": "Hourly prediction rollups behind the dashboards.",
        },
    ]
