"""Acceptance: the loop closes on a real Celery worker, Redis and PostgreSQL.

The demo stream drops labelled files (drift, with a concept shift, from the fourth file on) into the
model's raw folder; the worker ingests and scores them and runs the model's scheduled drift checks.
The check after the drift starts flags it, its signal queues a retraining pass on the same worker,
which trains on production's data plus the labelled rows, registers the challenger, compares it with
production on the newest labelled rows, and promotes it; this process (the web side) then serves it
without a restart.
"""

import os
import time
import uuid

import pytest
from celery import Celery

from models_registry import mlflow_access, services
from models_registry.demo_data import churn_frame
from models_registry.models import AliasChange, TrainingJob, TrainingSnapshot
from models_registry.selectors import served_version_get
from models_registry.serving import loader
from models_registry.training import model_train
from monitoring.models import DriftReport
from monitoring.services.demo_stream import DemoStreamConfig, demo_stream_file_write
from monitoring.services.ingestion import data_folders
from predictions.services.predict import predictions_make
from retraining.models import RetrainJob, RetrainPolicy
from tests.conftest import requires_postgres, requires_redis
from tests.integration.processes import celery_worker_start

FILE_ROWS = 500


@pytest.fixture
def loop_worker(mlflow_store, transactional_db, tmp_path, settings):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    broker = os.environ["MLAPP_TEST_REDIS_URL"]
    data_dir = tmp_path / "data"
    settings.MLAPP_DATA_DIR = data_dir
    log = tmp_path / "worker.log"
    mlflow_access.experiment_id_get()  # the MLflow store's tables exist before two processes race to make them
    process = celery_worker_start(
        tmp_path,
        queue=queue,
        broker=broker,
        log=log,
        MLAPP_DATA_DIR=str(data_dir),
        MLAPP_INGEST_MIN_AGE_SECONDS="0",
        OMP_NUM_THREADS="1",
    )
    producer = Celery("mlapp-test-producer", broker=broker, backend=broker)
    try:
        yield producer, queue, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def _run(producer, queue, log, task, **kwargs):
    return producer.send_task(task, kwargs=kwargs, queue=queue).get(timeout=180)


@requires_postgres
@requires_redis
@pytest.mark.django_db(transaction=True)
def test_drift_on_the_demo_stream_retrains_compares_promotes_and_serves(loop_worker, tmp_path, unique_model_name):
    producer, queue, log = loop_worker
    name = unique_model_name
    path = tmp_path / "churn.csv"
    churn_frame(n_rows=2000, seed=1).to_csv(path, index=False)
    champion = model_train(csv=path, target="churned", name=name, actor_label="tests").model_version
    TrainingJob.objects.create(  # the training page keeps the CSV: the data production learned from
        model_name=name,
        csv_path=str(path),
        original_filename="churn.csv",
        target="churned",
        status=TrainingJob.Status.SUCCEEDED,
        model_version=champion,
    )
    services.alias_move(name=name, version=champion.version, reason="the champion")
    RetrainPolicy.objects.create(model_name=name, drift_trigger=True, drift_min_interval_minutes=60, min_eval_rows=150)
    raw = data_folders(name)["raw"]
    config = DemoStreamConfig(dataset="churn", rows=FILE_ROWS, broken_every=0, with_target=True)

    verdicts = []
    for number in range(1, 7):
        drift = 1.0 if number >= 4 else 0.0
        demo_stream_file_write(config=config, raw_dir=raw, seed=500 + number, drift=drift)
        _run(producer, queue, log, "monitoring.ingest_raw_files", model_name=name)
        _run(producer, queue, log, "predictions.score_good_files", model_name=name)
        report_id = _run(producer, queue, log, "monitoring.check_drift", model_name=name)
        assert report_id is not None, log.read_text()[-3000:]
        verdicts.append(DriftReport.objects.get(pk=report_id).dataset_drift)
        if number == 4:
            alert_seen = time.monotonic()
        if number < 4:
            assert not RetrainJob.objects.filter(model_name=name).exists()
    assert verdicts[:3] == [False] * 3 and verdicts[3], verdicts  # flagged at the first check after the onset

    deadline = time.monotonic() + 300
    while True:
        job = RetrainJob.objects.filter(model_name=name).first()
        if job is not None and job.is_finished:
            break
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.5)
    seconds = time.monotonic() - alert_seen
    assert RetrainJob.objects.filter(model_name=name).count() == 1  # one pass for a lasting drift
    assert job.trigger == RetrainJob.Trigger.DRIFT and job.status == RetrainJob.Status.SUCCEEDED, job.error
    assert job.outcome == RetrainJob.Outcome.PROMOTED, job.outcome_text
    assert job.rows_by_source["files"] > 0 and job.rows_by_source["base"] > 0
    challenger = job.model_version
    assert TrainingSnapshot.objects.get(model_version=challenger).n_rows == sum(job.rows_by_source.values())
    assert job.evaluation.eval_data == "recent" and job.evaluation.promoted
    promotion = AliasChange.objects.filter(model_name=name, alias="production").first()
    assert promotion.action == AliasChange.Action.AUTO_PROMOTE and promotion.to_version == challenger.version
    assert served_version_get(name=name) == challenger.version

    # This process learns of it as every serving process does (its alias check), no restart.
    loader().alias_refresh(name, preload=True)
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in churn_frame(n_rows=1, seed=9).iloc[0, :-1].items()}
    answer = predictions_make(model_name=name, records=[row], source="api")
    assert answer.model_version == challenger.version
    print(f"drift check with the alert -> promoted challenger: {seconds:.1f} s")
