"""A real Celery worker process, a real Redis broker, the real test database.

The worker is started as a subprocess with the same database (PostgreSQL in
CI) and MLflow store as the test, on a queue of its own, so the test exercises
what production does: enqueue after commit, a worker picks the job up, runs the
service, and writes the result where the web process reads it.
"""

import os
import time
import uuid

import pytest
from celery import Celery

from models_registry.models import ModelVersion, TrainingJob
from tests.conftest import requires_postgres, requires_redis
from tests.integration.processes import celery_worker_start

TASK = "models_registry.training_job_run"


@pytest.fixture
def redis_worker(mlflow_store, transactional_db, tmp_path):
    """Start `celery worker` on a private queue; stop it after the test."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    broker = os.environ["MLAPP_TEST_REDIS_URL"]
    log = tmp_path / "worker.log"
    process = celery_worker_start(tmp_path, queue=queue, broker=broker, log=log)
    # A producer of its own: the global app is eager in tests and may have cached its broker.
    producer = Celery("mlapp-test-producer", broker=broker, backend=broker)
    try:
        yield producer, queue, log
    finally:
        process.terminate()
        process.wait(timeout=30)


@requires_postgres
@requires_redis
def test_training_job_runs_on_a_real_worker_through_redis(redis_worker, churn_csv, staff_user, unique_model_name):
    producer, queue, log = redis_worker
    job = TrainingJob.objects.create(
        model_name=unique_model_name,
        csv_path=str(churn_csv),
        original_filename="churn.csv",
        target="churned",
        created_by=staff_user,
    )

    result = producer.send_task(TASK, args=[job.pk], queue=queue)
    status = result.get(timeout=120)

    job.refresh_from_db()
    assert status == "succeeded", log.read_text()[-3000:]
    assert job.status == TrainingJob.Status.SUCCEEDED and job.progress == 100
    assert ModelVersion.objects.get(name=unique_model_name).pk == job.model_version_id
    assert "training_job_run" in log.read_text()


@requires_postgres
@requires_redis
def test_duplicate_delivery_does_not_train_twice(redis_worker, churn_csv, unique_model_name):
    producer, queue, _ = redis_worker
    job = TrainingJob.objects.create(
        model_name=unique_model_name,
        csv_path=str(churn_csv),
        original_filename="churn.csv",
        target="churned",
    )

    first = producer.send_task(TASK, args=[job.pk], queue=queue)
    second = producer.send_task(TASK, args=[job.pk], queue=queue)
    assert (first.get(timeout=120), second.get(timeout=120)) == ("succeeded", "succeeded")

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ModelVersion.objects.filter(name=unique_model_name).count() != 1:
        time.sleep(0.2)
    assert ModelVersion.objects.filter(name=unique_model_name).count() == 1
