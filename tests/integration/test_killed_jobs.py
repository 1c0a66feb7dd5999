"""A job whose worker is killed (SIGKILL) mid-job is taken again and finishes, nothing duplicated or lost.

Killed workers are real processes on the test's PostgreSQL database: the batch
service run as a worker runs it (restarted here, as a redelivered task), and a
real Celery worker on Redis (restarted by the reclaim step, as beat runs it).
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.db.models import Count

from models_registry.csv_reader import csv_batches
from models_registry.demo_data import churn_frame
from predictions.models import BatchJob, Prediction
from predictions.services import batch
from tests.conftest import requires_postgres, requires_redis
from tests.integration.killed_batch import killed_batch_run, rows_stored_per_line
from tests.integration.processes import ROOT, celery_worker_start, process_env

# Chunks of 500 rows: the job takes a few seconds, long enough to be killed in the middle.
CHUNK = 500
WORKER = """
import sys
import django
django.setup()
from predictions.services import batch
batch.batch_job_run(job_id=int(sys.argv[1]))
"""


def _batch_file(tmp_path, n_rows, bad_rows):
    frame = churn_frame(n_rows=n_rows, seed=11).iloc[:, :-1].astype(object)
    frame.loc[bad_rows, "age"] = "not a number"
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    return path


def _job(path, model_name) -> BatchJob:
    return BatchJob.objects.create(model_name=model_name, input_path=str(path), original_filename=path.name)


def _killed_mid_job(job, worker, log, *, after_chunks: int) -> BatchJob:
    deadline = time.monotonic() + 120
    try:
        while BatchJob.objects.get(pk=job.pk).cursor.get("chunks_done", 0) < after_chunks:
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    return BatchJob.objects.get(pk=job.pk)


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_job_killed_mid_file_finishes_after_restart_with_every_row_scored_once(churn_model, tmp_path, settings):
    n_rows, bad = 30_000, [7, 12_345]
    path = _batch_file(tmp_path, n_rows, bad)
    job = _job(path, churn_model.name)

    log = tmp_path / "killed-worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(job.pk)],
        cwd=ROOT,
        env=process_env(tmp_path, MLAPP_BATCH_CHUNK_ROWS=str(CHUNK)),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    _assert_killed_mid_job(_killed_mid_job(job, worker, log, after_chunks=3), n_rows, tmp_path)

    # A restarted worker gets the redelivered task once the dead one's heartbeat is stale.
    settings.MLAPP_JOB_STALE_SECONDS = 1
    assert batch.batch_job_run(job_id=job.pk).status == "running"  # too early: still held, nothing done
    time.sleep(1.2)
    done = batch.batch_job_run(job_id=job.pk)

    _assert_finished_once(done, n_rows=n_rows, bad=bad, attempts=2)
    _assert_same_as_an_uninterrupted_run(done, path, churn_model.name, settings)


def _chunks_in(path) -> int:
    """Chunks the one CSV reader cuts the file into (at most CHUNK rows each; a read block can end one early)."""
    return sum(1 for _ in csv_batches(path, chunk_rows=CHUNK))


def _assert_killed_mid_job(killed: BatchJob, n_rows: int, tmp_path) -> None:
    assert killed.status == "running" and 3 <= killed.cursor["chunks_done"] < _chunks_in(killed.input_path)
    stored = Prediction.objects.filter(batch_job=killed).count()
    assert stored == killed.cursor["rows_scored"]  # the log holds exactly the committed chunks
    assert Path(killed.input_path).with_name(f"{killed.pk}-scored.1.csv.part").exists() and not killed.finished_at


def _assert_finished_once(done: BatchJob, *, n_rows: int, bad: list[int], attempts: int) -> None:
    assert done.status == "succeeded", done.error
    assert done.attempts == attempts and done.cursor["chunks_done"] == _chunks_in(done.input_path)
    assert done.summary["rows_scored"] == n_rows - len(bad) and done.summary["rows_rejected"] == len(bad)
    assert done.rows_done == done.rows_total == n_rows
    per_row = Prediction.objects.filter(batch_job=done).values("row_number").annotate(n=Count("id"))
    assert {row["n"] for row in per_row} == {1}
    assert {row["row_number"] for row in per_row} == set(range(1, n_rows + 1)) - {i + 1 for i in bad}
    assert sum(done.summary["predicted_classes"].values()) == n_rows - len(bad)


def _assert_same_as_an_uninterrupted_run(done: BatchJob, path, model_name: str, settings) -> None:
    """The scored file is the one an uninterrupted run writes, byte for byte."""
    settings.MLAPP_BATCH_CHUNK_ROWS = CHUNK
    clean = batch.batch_job_run(job_id=_job(path, model_name).pk)
    assert clean.status == "succeeded" and clean.summary["predicted_classes"] == done.summary["predicted_classes"]
    assert Path(done.output_path).read_bytes() == Path(clean.output_path).read_bytes()


@requires_postgres
@requires_redis
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_killed_mid_batch_the_reclaim_step_restarts_the_job_and_it_finishes(
    churn_model, tmp_path, settings
):
    """The whole worker is killed: Redis would give its message back only after the visibility
    timeout (an hour), so the reclaim step that beat runs every few seconds restarts the job."""
    n_rows, bad = 30_000, [3, 29_999]
    path = _batch_file(tmp_path, n_rows, bad)
    job = _job(path, churn_model.name)
    queue, broker = f"test-{uuid.uuid4().hex[:8]}", os.environ["MLAPP_TEST_REDIS_URL"]
    env = {"MLAPP_BATCH_CHUNK_ROWS": str(CHUNK), "MLAPP_JOB_STALE_SECONDS": "2"}
    producer = Celery("mlapp-test-producer", broker=broker)

    first_log = tmp_path / "first.log"
    first = celery_worker_start(tmp_path, queue=queue, broker=broker, log=first_log, **env)
    producer.send_task("predictions.batch_job_run", args=[job.pk], queue=queue)
    _assert_killed_mid_job(_killed_mid_job(job, first, first_log, after_chunks=3), n_rows, tmp_path)

    second_log = tmp_path / "second.log"
    second = celery_worker_start(tmp_path, queue=queue, broker=broker, log=second_log, **env)
    try:
        time.sleep(2.5)  # the dead worker's heartbeat goes stale
        producer.send_task("jobs.reclaim_stale", queue=queue)  # what beat sends
        deadline = time.monotonic() + 120
        while not BatchJob.objects.get(pk=job.pk).is_finished:
            assert second.poll() is None and time.monotonic() < deadline, second_log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        second.terminate()
        second.wait(timeout=30)

    assert "its worker was lost (no heartbeat); restarted" in second_log.read_text()
    _assert_finished_once(BatchJob.objects.get(pk=job.pk), n_rows=n_rows, bad=bad, attempts=2)
    _assert_same_as_an_uninterrupted_run(BatchJob.objects.get(pk=job.pk), path, churn_model.name, settings)


@requires_postgres
@requires_redis
@pytest.mark.django_db(transaction=True)
def test_kill_9_of_a_celery_worker_then_a_restart_the_job_finishes_through_beat_every_row_once(churn_model, tmp_path):
    """The acceptance, small: a real worker killed mid-batch, a new one started, a real `celery beat`
    running the reclaim step from its database schedule; nothing sent by hand. The long version
    (500,000 rows, default timeouts) is tests/scenarios/test_killed_batch_scenario.py."""
    n_rows, bad = 20_000, [5, 19_998]
    figures = killed_batch_run(
        tmp_path,
        model_name=churn_model.name,
        n_rows=n_rows,
        bad_rows=bad,
        chunk_rows=CHUNK,
        stale_seconds=3,
        reclaim_every=1,
        kill_after_chunks=3,
    )

    _assert_finished_once(figures.job, n_rows=n_rows, bad=bad, attempts=2)
    assert rows_stored_per_line(figures.job) == {1: n_rows - len(bad)}  # counted by PostgreSQL
    assert figures.rows_stored_at_kill < n_rows - len(bad)
    print(figures.line())
