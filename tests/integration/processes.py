"""Other processes on the test's database and MLflow store: a Celery worker, a worker killed mid-job."""

import os
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _database_url(settings_dict) -> str:
    user, host, port, name = (settings_dict.get(k) for k in ("USER", "HOST", "PORT", "NAME"))
    password = settings_dict.get("PASSWORD")
    auth = f"{user}:{password}@" if password else f"{user}@"
    return f"postgres://{auth}{host or 'localhost'}:{port or 5432}/{name}"


def process_env(tmp_path: Path, **extra: str) -> dict:
    """The environment of a process that works on the test's database (PostgreSQL) and MLflow store."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mlapp.settings",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
        "MLFLOW_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
        "MLAPP_VAR_DIR": str(tmp_path / "worker-var"),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        **extra,
    }
