"""The killed-batch scenario, at any size: a real Celery worker on Redis is killed (SIGKILL) in the
middle of a batch job, a new worker is started at once, and a real `celery beat` (running the
reclaim step from its database schedule, as in production) gets the job going again.

Used by the suite (tests/integration/test_killed_jobs.py, small and with short timeouts) and by the
long scenario (tests/scenarios/, 500,000 rows with the default timeouts; command in docs/reliability.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobs.schedules import periodic_tasks as job_periodic_tasks
from models_registry.demo_data import churn_frame
from predictions.models import BatchJob, Prediction
from tests.integration.processes import ROOT, celery_worker_start, process_env


@dataclass
class KilledBatchFigures:
    rows: int
    chunk_rows: int
    stale_seconds: float
    reclaim_every: int
    chunks_before_kill: int
    rows_stored_at_kill: int
    seconds_to_kill: float  # from the send to the kill
    seconds_kill_to_done: float  # from the kill to the job's success (includes the new worker's start)
    seconds_restart_to_done: float  # from the new worker being ready to the job's success
    job: BatchJob

    def line(self) -> str:
        return (
            f"{self.rows:,} rows, chunks of {self.chunk_rows:,}; killed after {self.chunks_before_kill} chunks "
            f"({self.rows_stored_at_kill:,} rows stored, {self.seconds_to_kill:.1f} s in); finished "
            f"{self.seconds_kill_to_done:.1f} s after the kill ({self.seconds_restart_to_done:.1f} s after the "
            f"new worker was ready); stale {self.stale_seconds:g} s, reclaim every {self.reclaim_every} s; "
            f"attempts {self.job.attempts}"
        )


def batch_file(path: Path, *, n_rows: int, bad_rows: list[int]) -> Path:
    frame = churn_frame(n_rows=n_rows, seed=11).iloc[:, :-1].astype(object)
    frame.loc[bad_rows, "age"] = "not a number"
    frame.to_csv(path, index=False)
    return path


def rows_stored_per_line(job: BatchJob) -> dict[int, int]:
    """How many inference-log rows each input line has, counted by PostgreSQL (GROUP BY row_number)."""
    table = Prediction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT n, count(*) FROM (SELECT row_number, count(*) AS n FROM {table} "
            "WHERE batch_job_id = %s GROUP BY row_number) per_line GROUP BY n",
            [job.pk],
        )
        return dict(cursor.fetchall())


def _beat_start(tmp_path: Path, *, queue: str, broker: str, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mlapp", "beat", "--loglevel", "INFO"]
        + ["--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--max-interval", "1", "--pidfile="],
        cwd=ROOT,
        env=process_env(
            tmp_path, CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=broker, CELERY_TASK_DEFAULT_QUEUE=queue, **env
        ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _reclaim_scheduled(every: int) -> None:
    (spec,) = job_periodic_tasks()
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name=spec["name"],
        defaults={"task": spec["task"], "interval": interval, "expire_seconds": max(every - 1, 1), "enabled": True},
    )


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def killed_batch_run(
    tmp_path: Path,
    *,
    model_name: str,
    n_rows: int,
    bad_rows: list[int],
    chunk_rows: int,
    stale_seconds: float,
    reclaim_every: int,
    kill_after_chunks: int,
    deadline_seconds: float = 300,
) -> KilledBatchFigures:
    path = batch_file(tmp_path / "big.csv", n_rows=n_rows, bad_rows=bad_rows)
    job = BatchJob.objects.create(model_name=model_name, input_path=str(path), original_filename=path.name)
    queue, broker = f"test-{uuid.uuid4().hex[:8]}", os.environ["MLAPP_TEST_REDIS_URL"]
    env = {
        "MLAPP_BATCH_CHUNK_ROWS": str(chunk_rows),
        "MLAPP_JOB_STALE_SECONDS": str(stale_seconds),
        "MLAPP_JOB_RECLAIM_EVERY_SECONDS": str(reclaim_every),
    }
    _reclaim_scheduled(reclaim_every)
    first_log, second_log, beat_log = (tmp_path / f"{name}.log" for name in ("first", "second", "beat"))
    first = second = beat = None
    try:
        first = celery_worker_start(tmp_path, queue=queue, broker=broker, log=first_log, **env)
        beat = _beat_start(tmp_path, queue=queue, broker=broker, env=env, log=beat_log)
        Celery("mlapp-test-producer", broker=broker).send_task("predictions.batch_job_run", args=[job.pk], queue=queue)
        sent = time.monotonic()
        while BatchJob.objects.get(pk=job.pk).cursor.get("chunks_done", 0) < kill_after_chunks:
            assert first.poll() is None, first_log.read_text()[-3000:]
            assert time.monotonic() - sent < deadline_seconds, first_log.read_text()[-3000:]
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=30)
        at_kill = BatchJob.objects.get(pk=job.pk)
        stored_at_kill = Prediction.objects.filter(batch_job=at_kill).count()
        assert at_kill.status == "running" and stored_at_kill == at_kill.cursor["rows_scored"]

        second = celery_worker_start(tmp_path, queue=queue, broker=broker, log=second_log, **env)
        ready_at = time.monotonic()
        while not BatchJob.objects.get(pk=job.pk).is_finished:
            assert second.poll() is None, second_log.read_text()[-3000:]
            assert beat.poll() is None, beat_log.read_text()[-3000:]
            assert time.monotonic() - killed_at < deadline_seconds, second_log.read_text()[-3000:]
            time.sleep(0.1)
        done_at = time.monotonic()
    finally:
        for process in (first, second, beat):
            _stop(process)
    return KilledBatchFigures(
        rows=n_rows,
        chunk_rows=chunk_rows,
        stale_seconds=stale_seconds,
        reclaim_every=reclaim_every,
        chunks_before_kill=at_kill.cursor["chunks_done"],
        rows_stored_at_kill=stored_at_kill,
        seconds_to_kill=killed_at - sent,
        seconds_kill_to_done=done_at - killed_at,
        seconds_restart_to_done=done_at - ready_at,
        job=BatchJob.objects.get(pk=job.pk),
    )
