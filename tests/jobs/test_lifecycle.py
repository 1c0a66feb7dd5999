"""The one job lifecycle (jobs/services.py), on real job tables: claim, heartbeat, reclaim, fail, succeed."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.services import (
    JobLost,
    job_claim,
    job_claim_next,
    job_create_claimed,
    job_fail,
    job_heartbeat,
    job_succeed,
    jobs_reclaim_stale,
    runnable_job_models,
)
from models_registry.demo_data import churn_frame
from models_registry.models import TrainingJob
from predictions.models import BatchJob, Prediction, ScheduledRun
from tests.conftest import requires_postgres


def _job(**fields) -> BatchJob:
    return BatchJob.objects.create(model_name="m", input_path="in.csv", original_filename="in.csv", **fields)


def _go_stale(job, settings) -> None:
    """Its worker stopped beating: the last heartbeat is older than the stale timeout."""
    then = timezone.now() - timedelta(seconds=settings.MLAPP_JOB_STALE_SECONDS + 1)
    type(job).objects.filter(pk=job.pk).update(heartbeat_at=then)


@pytest.mark.django_db
def test_a_queued_job_is_claimed_once_and_succeeds():
    job = _job()

    claim = job_claim(model=BatchJob, pk=job.pk)
    assert job_claim(model=BatchJob, pk=job.pk) is None  # a duplicate delivery: held, not stale
    job.refresh_from_db()
    assert (job.status, job.attempts, claim.attempt) == ("running", 1, 1)
    assert job.started_at and job.claimed_at and job.heartbeat_at and job.finished_at is None

    job_heartbeat(claim, rows_done=10)
    job_succeed(claim, rows_done=20)

    job.refresh_from_db()
    assert (job.status, job.rows_done, job.error) == ("succeeded", 20, "") and job.finished_at
    assert job_claim(model=BatchJob, pk=job.pk) is None  # finished: never claimed again


@pytest.mark.django_db
def test_a_failed_job_says_why_and_is_not_claimed_again():
    job = _job()
    claim = job_claim(model=BatchJob, pk=job.pk)

    assert job_fail(claim, error="Missing feature column(s): age")

    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", "Missing feature column(s): age") and job.finished_at
    assert job_claim(model=BatchJob, pk=job.pk) is None


@pytest.mark.django_db
def test_a_stale_job_is_taken_again_and_the_lost_worker_can_write_nothing(settings):
    job = _job()
    lost = job_claim(model=BatchJob, pk=job.pk)
    job_heartbeat(lost, rows_done=5)
    started = BatchJob.objects.get(pk=job.pk).started_at
    assert job_claim(model=BatchJob, pk=job.pk) is None  # alive: not taken

    _go_stale(job, settings)
    taken = job_claim(model=BatchJob, pk=job.pk)

    assert taken is not None and taken.attempt == 2
    with pytest.raises(JobLost):
        job_heartbeat(lost, rows_done=999)
    with pytest.raises(JobLost):
        job_succeed(lost)
    assert not job_fail(lost, error="from the lost worker")
    job.refresh_from_db()
    assert (job.status, job.attempts, job.rows_done, job.error) == ("running", 2, 5, "")
    assert job.started_at == started  # when it first started; claimed_at is this claim's
    job_succeed(taken)
    assert BatchJob.objects.get(pk=job.pk).status == "succeeded"


@pytest.mark.django_db
def test_a_job_whose_worker_is_lost_too_often_fails_saying_so(settings):
    settings.MLAPP_JOB_MAX_ATTEMPTS = 2
    job = _job()
    for _ in range(2):
        assert job_claim(model=BatchJob, pk=job.pk) is not None
        _go_stale(job, settings)

    assert job_claim(model=BatchJob, pk=job.pk) is None
    result = jobs_reclaim_stale()

    job.refresh_from_db()
    assert result.failed == [f"BatchJob #{job.pk}"] and result.requeued == []
    assert job.status == "failed" and job.error.startswith("Gave up after 2 attempts")


def test_the_reclaim_step_knows_every_job_table_that_has_a_run_task():
    assert {model.__name__ for model in runnable_job_models()} == {"BatchJob", "TrainingJob"}
    assert BatchJob.run_task_name == "predictions.batch_job_run"
    assert TrainingJob.run_task_name == "models_registry.training_job_run"


@pytest.mark.django_db
def test_the_reclaim_step_restarts_a_stale_batch_job_and_it_finishes(churn_model, tmp_path, settings):
    """Celery is eager in tests: the restart sent by the reclaim step runs the job here and now."""
    path = tmp_path / "in.csv"
    churn_frame(n_rows=40, seed=8).iloc[:, :-1].to_csv(path, index=False)
    job = BatchJob.objects.create(model_name=churn_model.name, input_path=str(path), original_filename="in.csv")
    fresh = _job()  # queued and never started: not the reclaim step's business
    job_claim(model=BatchJob, pk=job.pk)  # a worker took it, then died before its first chunk
    _go_stale(job, settings)

    result = jobs_reclaim_stale()

    job.refresh_from_db()
    assert result.requeued == [f"BatchJob #{job.pk}"]
    assert (job.status, job.attempts, job.rows_done) == ("succeeded", 2, 40), job.error
    assert Prediction.objects.filter(batch_job=job).count() == 40
    assert BatchJob.objects.get(pk=fresh.pk).status == "queued"
    assert jobs_reclaim_stale().requeued == []


@pytest.mark.django_db
def test_claim_next_takes_work_in_order_and_skips_what_is_held(settings):
    first, second = _job(), _job()

    a = job_claim_next(queryset=BatchJob.objects.all())
    b = job_claim_next(queryset=BatchJob.objects.all())

    assert (a.pk, b.pk) == (first.pk, second.pk)
    assert job_claim_next(queryset=BatchJob.objects.all()) is None
    _go_stale(first, settings)
    assert job_claim_next(queryset=BatchJob.objects.all()).pk == first.pk


def _race(n: int, attempt) -> list:
    """`attempt` run by n threads at once, each on its own database connection."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = attempt()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_workers_racing_for_a_stale_job_exactly_one_wins(settings):
    job = _job()
    job_claim(model=BatchJob, pk=job.pk)
    _go_stale(job, settings)

    claims = _race(8, lambda: job_claim(model=BatchJob, pk=job.pk))

    won = [claim for claim in claims if claim is not None]
    assert len(won) == 1 and won[0].attempt == 2
    assert BatchJob.objects.get(pk=job.pk).attempts == 2


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_workers_racing_for_a_queue_each_job_goes_to_one_of_them():
    jobs = [_job() for _ in range(5)]

    claims = _race(8, lambda: job_claim_next(queryset=BatchJob.objects.all()))

    won = sorted(claim.pk for claim in claims if claim is not None)
    assert won == [job.pk for job in jobs]


@pytest.mark.django_db
def test_the_reclaim_step_closes_a_scheduled_run_whose_worker_was_lost(settings):
    """A run is a record of one pass: not restarted (later runs retake its files), but not left running."""
    alive, _ = job_create_claimed(model=ScheduledRun, model_name="m")
    lost, _ = job_create_claimed(model=ScheduledRun, model_name="m")
    _go_stale(lost, settings)

    result = jobs_reclaim_stale()

    lost.refresh_from_db()
    assert result.failed == [f"ScheduledRun #{lost.pk}"]
    assert lost.status == "failed" and "worker running it was lost" in lost.error and lost.finished_at
    assert ScheduledRun.objects.get(pk=alive.pk).status == "running"


@pytest.mark.django_db
def test_a_queued_job_whose_message_was_lost_is_sent_again_once_and_finishes(churn_model, tmp_path, settings):
    """No worker ever got its message (a broker restarted empty): the reclaim step sends the task again."""
    path = tmp_path / "in.csv"
    churn_frame(n_rows=30, seed=9).iloc[:, :-1].to_csv(path, index=False)
    lost = BatchJob.objects.create(model_name=churn_model.name, input_path=str(path), original_filename="in.csv")
    recent = _job()  # queued a moment ago: its message is on its way
    long_ago = timezone.now() - timedelta(seconds=settings.MLAPP_JOB_QUEUED_RESEND_SECONDS + 1)
    BatchJob.objects.filter(pk=lost.pk).update(created_at=long_ago)

    result = jobs_reclaim_stale()

    lost.refresh_from_db()
    assert result.resent == [f"BatchJob #{lost.pk}"] and result.requeued == []
    assert (lost.status, lost.attempts, lost.rows_done) == ("succeeded", 1, 30), lost.error
    assert Prediction.objects.filter(batch_job=lost).count() == 30
    assert BatchJob.objects.get(pk=recent.pk).status == "queued"
    assert jobs_reclaim_stale().resent == []


@pytest.mark.django_db
def test_a_queued_job_is_sent_again_at_most_once_per_resend_interval(settings, monkeypatch):
    """The broker is the boundary here: sends are recorded, nothing runs, the job stays queued."""
    sent = []
    monkeypatch.setattr("jobs.services.task_send_by_name", lambda name, pk: sent.append((name, pk)))
    job = _job()
    long_ago = timezone.now() - timedelta(seconds=settings.MLAPP_JOB_QUEUED_RESEND_SECONDS + 1)
    BatchJob.objects.filter(pk=job.pk).update(created_at=long_ago)

    assert jobs_reclaim_stale().resent == [f"BatchJob #{job.pk}"]
    assert jobs_reclaim_stale().resent == []  # sent a moment ago: not again
    BatchJob.objects.filter(pk=job.pk).update(heartbeat_at=long_ago)  # one more interval without a taker
    assert jobs_reclaim_stale().resent == [f"BatchJob #{job.pk}"]

    assert sent == [("predictions.batch_job_run", job.pk)] * 2
    assert BatchJob.objects.get(pk=job.pk).status == "queued"
