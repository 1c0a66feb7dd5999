import hashlib
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from models_registry.demo_data import churn_frame, housing_frame
from predictions.models import GoodFile, Prediction, ScheduledRun
from predictions.services import good_file_register
from predictions.services.scheduled import scheduled_scoring_run
from tests.conftest import CHURN, HOUSING, requires_postgres


def _good_file(tmp_path, name, n_rows, seed, model_name=CHURN):
    frame = churn_frame(n_rows=n_rows, seed=seed).drop(columns=["churned"])
    frame.insert(0, "row_number", range(1, n_rows + 1))
    frame["ingest_note"] = "ignored"
    path = tmp_path / name
    frame.to_csv(path, index=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return good_file_register(model_name=model_name, path=str(path), sha256=digest, rows=n_rows)


def _assert_each_row_once(files):
    for good_file in files:
        good_file.refresh_from_db()
        per_row = Prediction.objects.filter(good_file=good_file).values("row_number").annotate(n=Count("id"))
        assert good_file.status == "scored" and good_file.rows_scored == good_file.rows
        assert len(per_row) == good_file.rows and {r["n"] for r in per_row} == {1}


@pytest.mark.django_db
def test_a_run_scores_every_row_once_and_a_second_run_writes_nothing(churn_model, tmp_path):
    files = [_good_file(tmp_path, "a.csv", 120, 1), _good_file(tmp_path, "b.csv", 80, 2)]

    first = scheduled_scoring_run(model_name=CHURN, chunk_rows=50)
    second = scheduled_scoring_run(model_name=CHURN)

    assert (first.status, first.files_scored, first.rows_scored) == ("succeeded", 2, 200)
    assert first.model_version == churn_model.version
    assert (second.files_scored, second.rows_scored) == (0, 0)
    assert set(Prediction.objects.values_list("source", flat=True)) == {"scheduled"}
    _assert_each_row_once(files)


@pytest.mark.django_db
def test_a_file_left_half_scored_by_a_killed_worker_is_completed_once(churn_model, tmp_path):
    good_file = _good_file(tmp_path, "c.csv", 100, 3)
    scheduled_scoring_run(model_name=CHURN, chunk_rows=40)
    # As if the worker died after the first chunk: half the rows gone, the claim left behind.
    Prediction.objects.filter(good_file=good_file, row_number__gt=40).delete()
    GoodFile.objects.filter(pk=good_file.pk).update(status="scoring", claimed_at=timezone.now() - timedelta(hours=1))

    rerun = scheduled_scoring_run(model_name=CHURN, chunk_rows=40)

    assert rerun.rows_scored == 60
    _assert_each_row_once([good_file])


@pytest.mark.django_db
def test_a_run_that_crashes_mid_file_is_recorded_and_the_next_run_finishes_the_file(churn_model, tmp_path, monkeypatch):
    from predictions.services import scheduled

    good_file = _good_file(tmp_path, "crash.csv", 100, 8)
    real_write, calls = scheduled.prediction_rows_write, []

    def write_then_die(**kwargs):  # the worker dies while writing its second chunk
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return real_write(**kwargs)

    monkeypatch.setattr(scheduled, "prediction_rows_write", write_then_die)
    with pytest.raises(RuntimeError):
        scheduled.scheduled_scoring_run(model_name=CHURN, chunk_rows=30)
    crashed = ScheduledRun.objects.get()
    good_file.refresh_from_db()
    assert crashed.status == "failed" and "worker lost" in crashed.error and crashed.finished_at
    assert good_file.status == "scoring" and Prediction.objects.count() == 30
    monkeypatch.undo()

    assert scheduled.scheduled_scoring_run(model_name=CHURN).files_scored == 0  # the claim is fresh: left alone
    GoodFile.objects.filter(pk=good_file.pk).update(claimed_at=timezone.now() - timedelta(hours=1))
    rerun = scheduled.scheduled_scoring_run(model_name=CHURN, chunk_rows=30)

    assert (rerun.status, rerun.files_scored, rerun.rows_scored) == ("succeeded", 1, 70)
    _assert_each_row_once([good_file])


@pytest.mark.django_db
def test_a_fresh_claim_is_not_stolen(churn_model, tmp_path):
    good_file = _good_file(tmp_path, "d.csv", 10, 4)
    GoodFile.objects.filter(pk=good_file.pk).update(status="scoring", claimed_at=timezone.now())

    run = scheduled_scoring_run(model_name=CHURN)

    assert run.files_scored == 0 and not Prediction.objects.exists()


@pytest.mark.django_db
def test_a_missing_file_fails_alone(churn_model, tmp_path):
    gone = _good_file(tmp_path, "gone.csv", 10, 5)
    (tmp_path / "gone.csv").unlink()
    kept = _good_file(tmp_path, "kept.csv", 10, 6)

    run = scheduled_scoring_run(model_name=CHURN)

    gone.refresh_from_db()
    assert gone.status == "failed" and "gone.csv" in run.error
    assert run.files_scored == 1
    _assert_each_row_once([kept])


@pytest.mark.django_db
def test_no_model_in_production_fails_the_run_and_touches_nothing(settings, tmp_path, mlflow_store):
    good_file = _good_file(tmp_path, "e.csv", 10, 7, model_name="no-such-model")

    run = scheduled_scoring_run(model_name="no-such-model")

    good_file.refresh_from_db()
    assert run.status == "failed" and "no-such-model" in run.error
    assert good_file.status == "pending" and not Prediction.objects.exists()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_score_each_row_exactly_once(churn_model, tmp_path):
    files = [_good_file(tmp_path, f"f{i}.csv", 300, 10 + i) for i in range(4)]
    barrier = threading.Barrier(2)
    runs, failures = [], []

    def worker():
        try:
            barrier.wait()
            runs.append(scheduled_scoring_run(model_name=CHURN, chunk_rows=100))
        except Exception as exc:  # surfaced by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures
    assert sum(run.rows_scored for run in runs) == 1200 and sum(run.files_scored for run in runs) == 4
    assert Prediction.objects.count() == 1200
    _assert_each_row_once(files)
    assert ScheduledRun.objects.filter(status="succeeded").count() == 2


def test_scheduled_page_lists_runs(user_client, churn_model, tmp_path):
    _good_file(tmp_path, "g.csv", 10, 20)
    scheduled_scoring_run(model_name=CHURN)
    page = user_client.get(f"/models/{CHURN}/scheduled/").content.decode()
    assert "succeeded" in page and f"v{churn_model.version}" in page


@pytest.mark.django_db
def test_each_model_scores_only_its_own_files(churn_model, housing_model, tmp_path):
    churn_file = _good_file(tmp_path, "mine.csv", 10, 22)
    frame = housing_frame(n_rows=12, seed=3).drop(columns=["price"])
    frame.insert(0, "row_number", range(1, 13))
    frame.to_csv(tmp_path / "house.csv", index=False)
    digest = hashlib.sha256((tmp_path / "house.csv").read_bytes()).hexdigest()
    house_file = good_file_register(model_name=HOUSING, path=str(tmp_path / "house.csv"), sha256=digest, rows=12)

    churn_run = scheduled_scoring_run(model_name=CHURN)
    house_run = scheduled_scoring_run(model_name=HOUSING)

    assert (churn_run.files_scored, churn_run.rows_scored) == (1, 10)
    assert (house_run.files_scored, house_run.rows_scored) == (1, 12)
    assert set(Prediction.objects.filter(good_file=churn_file).values_list("model_name", flat=True)) == {CHURN}
    assert set(Prediction.objects.filter(good_file=house_file).values_list("model_name", flat=True)) == {HOUSING}
    _assert_each_row_once([churn_file, house_file])


@pytest.mark.django_db
def test_the_task_and_the_command_run_one_pass(churn_model, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    from predictions.tasks import score_good_files_task

    _good_file(tmp_path, "h.csv", 10, 21)
    run_id = score_good_files_task.delay(CHURN).get()
    out = StringIO()
    call_command("score_good_files", "--model", CHURN, stdout=out)

    assert ScheduledRun.objects.get(pk=run_id).rows_scored == 10
    assert "succeeded: 0 file(s), 0 row(s)" in out.getvalue()
