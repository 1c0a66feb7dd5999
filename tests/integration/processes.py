"""Other processes on the test's database and MLflow store: a Celery worker, a worker killed mid-job."""

import os
import subprocess
import sys
import time
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


def celery_worker_start(tmp_path: Path, *, queue: str, broker: str, log: Path, **env: str) -> subprocess.Popen:
    """`celery worker` (solo pool) on `queue`, which is also its default queue (tasks it sends come back
    to it); returns once the queue is bound: Redis drops messages sent to an unbound queue."""
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mlapp", "worker", "-Q", queue, "--pool", "solo"]
        + ["--loglevel", "INFO", "-n", f"{queue}-{log.stem}@%h"],
        cwd=ROOT,
        env=process_env(
            tmp_path,
            CELERY_BROKER_URL=broker,
            CELERY_RESULT_BACKEND=broker,
            CELERY_TASK_DEFAULT_QUEUE=queue,
            **env,
        ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180  # a busy 2-core machine can take a minute or more
    try:
        while "ready." not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"worker did not start: {log.read_text()}"
            time.sleep(0.2)
    except BaseException:
        process.kill()  # not left running behind a failed test
        process.wait(timeout=30)
        raise
    return process
