"""A job whose worker is killed (SIGKILL) mid-job is taken again and finishes, nothing duplicated or lost.

The killed worker is a real process on the test's PostgreSQL database, running the
batch service as a Celery worker would; the restarted one is this test process.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db.models import Count

from models_registry.demo_data import churn_frame
from predictions.models import BatchJob, Prediction
from predictions.services import batch
from tests.conftest import requires_postgres
from tests.integration.processes import ROOT, process_env

# Chunks of 500 rows: the job takes a few seconds, long enough to be killed in the middle.
CHUNK = 500
WORKER = f"""
import sys
import django
django.setup()
from predictions.services import batch
batch.CHUNK_ROWS = {CHUNK}
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


def _killed_mid_job(job, tmp_path, *, after_chunks: int) -> BatchJob:
    log = tmp_path / "killed-worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(job.pk)],
        cwd=ROOT,
        env=process_env(tmp_path),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
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
def test_a_batch_job_killed_mid_file_finishes_after_restart_with_every_row_scored_once(
    churn_model, tmp_path, settings, monkeypatch
):
    n_rows, bad = 30_000, [7, 12_345]
    path = _batch_file(tmp_path, n_rows, bad)
    job = _job(path, churn_model.name)

    killed = _killed_mid_job(job, tmp_path, after_chunks=3)

    chunks = n_rows // CHUNK
    assert killed.status == "running" and 3 <= killed.cursor["chunks_done"] < chunks
    stored = Prediction.objects.filter(batch_job=job).count()
    assert stored == killed.cursor["rows_scored"]  # the log holds exactly the committed chunks
    assert (tmp_path / f"{job.pk}-scored.csv.part").exists() and not killed.finished_at

    # A restarted worker gets the redelivered task once the dead one's heartbeat is stale.
    settings.MLAPP_JOB_STALE_SECONDS = 1
    assert batch.batch_job_run(job_id=job.pk).status == "running"  # too early: still held, nothing done
    time.sleep(1.2)
    done = batch.batch_job_run(job_id=job.pk)

    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and done.cursor["chunks_done"] == chunks
    assert done.summary["rows_scored"] == n_rows - 2 and done.summary["rows_rejected"] == 2
    assert done.rows_done == done.rows_total == n_rows
    per_row = Prediction.objects.filter(batch_job=job).values("row_number").annotate(n=Count("id"))
    assert {row["n"] for row in per_row} == {1}
    assert {row["row_number"] for row in per_row} == set(range(1, n_rows + 1)) - {i + 1 for i in bad}
    assert sum(done.summary["predicted_classes"].values()) == n_rows - 2

    # The scored file is the one an uninterrupted run writes, byte for byte.
    monkeypatch.setattr(batch, "CHUNK_ROWS", CHUNK)
    clean = batch.batch_job_run(job_id=_job(path, churn_model.name).pk)
    assert clean.status == "succeeded" and clean.summary["predicted_classes"] == done.summary["predicted_classes"]
    assert Path(done.output_path).read_bytes() == Path(clean.output_path).read_bytes()
