"""Batch scoring: upload → job (Celery, eager in tests) → status → scored CSV."""

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from django.utils import timezone
from kombu.exceptions import OperationalError

from models_registry.demo_data import churn_frame, housing_frame
from predictions.models import BatchJob, Prediction
from predictions.services import batch
from predictions.services.batch import batch_job_run
from tests.conftest import CHURN, requires_postgres

pytestmark = pytest.mark.django_db


def _upload(client, name, content, capture, model=CHURN):
    with capture(execute=True):
        response = client.post(f"/models/{model}/batch/", {"csv_file": SimpleUploadedFile(name, content)})
    return response


@pytest.mark.parametrize("model_fixture", ["churn_model", "housing_model"])
def test_batch_upload_scores_rows_and_offers_the_scored_csv(
    request, user_client, model_fixture, django_capture_on_commit_callbacks
):
    model = request.getfixturevalue(model_fixture)
    maker = churn_frame if model_fixture == "churn_model" else housing_frame
    frame = maker(n_rows=120, seed=4).iloc[:, :-1].astype(object)
    numeric_column = frame.columns[0]
    frame.loc[5, numeric_column] = "not a number"

    content = frame.to_csv(index=False).encode()
    response = _upload(user_client, "input.csv", content, django_capture_on_commit_callbacks, model=model.name)

    job = BatchJob.objects.get()
    assert job.model_name == model.name and job.model_version == model.version
    assert response.status_code == 302 and response.url == f"/predictions/batch/{job.pk}/"
    status = user_client.get(f"/predictions/batch/{job.pk}/status/").json()
    assert status["status"] == "succeeded" and status["percent"] == 100, status
    assert status["summary"]["rows_scored"] == 119 and status["summary"]["rows_rejected"] == 1
    assert Prediction.objects.filter(source="batch", batch_job=job).count() == 119
    download = user_client.get(f"/predictions/batch/{job.pk}/download/")
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(rows) == 120 and rows[0]["prediction"] != "" and rows[0]["error"] == ""
    assert rows[5]["prediction"] == "" and f"{numeric_column}: not a number" in rows[5]["error"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"age,contract\n40,one-year\n", "Missing feature column(s): tenure_months"),
        (b"\xff\xfe\x00\x01binary", "not UTF-8"),
        (b"\n", "empty"),
    ],
)
def test_bad_batch_files_fail_with_a_clear_error_and_store_nothing(
    user_client, churn_model, django_capture_on_commit_callbacks, content, message
):
    _upload(user_client, "bad.csv", content, django_capture_on_commit_callbacks)

    job = BatchJob.objects.get()
    assert job.status == "failed" and message in job.error
    assert Prediction.objects.count() == 0
    assert user_client.get(f"/predictions/batch/{job.pk}/download/").status_code == 404


def _job_for(frame, tmp_path, served_name):
    path = tmp_path / "input.csv"
    frame.to_csv(path, index=False)
    return BatchJob.objects.create(model_name=served_name, input_path=str(path), original_filename="input.csv")


def test_a_job_is_claimed_once_and_the_scored_csv_has_probabilities(churn_model, tmp_path):
    job = _job_for(churn_frame(n_rows=30, seed=2).iloc[:, :-1], tmp_path, churn_model.name)

    first = batch_job_run(job_id=job.pk)
    again = batch_job_run(job_id=job.pk)  # a duplicate delivery

    assert first.status == again.status == "succeeded" and first.model_version == churn_model.version
    assert Prediction.objects.filter(batch_job=job).count() == 30
    with open(first.output_path) as handle:
        header = handle.readline().strip().split(",")
    assert header[-1] == "error" and "prediction" in header
    assert any(column.startswith("probability_") for column in header)
    assert sum(first.summary["predicted_classes"].values()) == 30


def test_job_page_shows_progress_summary_and_download(staff_client, housing_model, tmp_path):
    job = _job_for(housing_frame(n_rows=20, seed=3).iloc[:, :-1], tmp_path, housing_model.name)
    page = staff_client.get(f"/predictions/batch/{job.pk}/").content.decode()
    assert "progress" in page and f"/predictions/batch/{job.pk}/status/" in page

    done = batch_job_run(job_id=job.pk)
    assert done.status == "succeeded", done.error

    page = staff_client.get(f"/predictions/batch/{job.pk}/").content.decode()
    assert f"/predictions/batch/{job.pk}/download/" in page and "Rows scored: 20" in page
    assert f"{housing_model.name} v{housing_model.version}" in page and "Predicted values: min" in page


@requires_postgres  # the writer thread is used on PostgreSQL only
@pytest.mark.django_db(transaction=True)
def test_rows_written_on_a_second_connection_on_postgresql(churn_model, tmp_path, settings):
    """Outside a transaction, PostgreSQL writes go through the writer thread's own connection."""
    frame = churn_frame(n_rows=50, seed=5).iloc[:, :-1]
    job = _job_for(frame, tmp_path, churn_model.name)
    settings.MLAPP_BATCH_CHUNK_ROWS = 20  # three chunks, two in flight at most
    done = batch.batch_job_run(job_id=job.pk)
    assert done.status == "succeeded" and done.summary["rows_scored"] == 50
    assert Prediction.objects.filter(batch_job=job, source="batch").count() == 50


def test_a_cell_the_log_cannot_store_rejects_its_row_not_the_job(churn_model, tmp_path):
    frame = churn_frame(n_rows=10, seed=3).iloc[:, :-1].astype(object)
    frame.loc[4, "region"] = "no\x00rth"
    job = batch_job_run(job_id=_job_for(frame, tmp_path, churn_model.name).pk)

    assert job.status == "succeeded", job.error
    assert job.summary["rows_scored"] == 9 and job.summary["rows_rejected"] == 1
    with open(job.output_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[4]["error"] == "region: text contains a NUL character (\\u0000)"


def test_a_batch_the_task_queue_cannot_take_fails_saying_so(
    user_client, churn_model, django_capture_on_commit_callbacks, monkeypatch
):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("predictions.tasks.batch_job_run_task.apply_async", broker_down)
    content = churn_frame(n_rows=5, seed=6).iloc[:, :-1].to_csv(index=False).encode()

    _upload(user_client, "input.csv", content, django_capture_on_commit_callbacks)

    job = BatchJob.objects.get()
    assert job.status == "failed" and job.error.startswith("The task queue is unavailable")
    assert "The task queue is unavailable" in user_client.get(f"/predictions/batch/{job.pk}/").content.decode()


def test_a_job_abandoned_after_its_first_chunk_resumes_there_and_stores_each_row_once(churn_model, tmp_path, settings):
    """As a killed worker leaves it: one chunk committed, the next chunk's CSV appended but not
    committed, the heartbeat stale. Taken again, the job goes on from the committed chunk."""
    settings.MLAPP_BATCH_CHUNK_ROWS = 10
    frame = churn_frame(n_rows=35, seed=9).iloc[:, :-1]
    (tmp_path / "clean").mkdir()
    clean = batch_job_run(job_id=_job_for(frame, tmp_path / "clean", churn_model.name).pk)
    scored = Path(clean.output_path).read_bytes()
    first_chunk = len(b"".join(scored.splitlines(keepends=True)[:11]))  # the header and 10 rows

    job = _job_for(frame, tmp_path, churn_model.name)
    batch_job_run(job_id=job.pk)
    Prediction.objects.filter(batch_job=job, row_number__gt=10).delete()
    part = tmp_path / f"{job.pk}-scored.1.csv.part"
    part.write_bytes(scored[: first_chunk + 25])  # and a piece of chunk 2, never committed
    (tmp_path / f"{job.pk}-scored.csv").unlink()
    cursor = {**job.__class__.objects.get(pk=job.pk).cursor, "chunks_done": 1, "output_bytes": first_chunk}
    cursor.update(rows_scored=10, rows_rejected=0, classes={}, part=1)
    BatchJob.objects.filter(pk=job.pk).update(
        status="running", cursor=cursor, heartbeat_at=timezone.now() - timedelta(minutes=5), finished_at=None
    )

    done = batch_job_run(job_id=job.pk)

    assert done.status == "succeeded" and done.attempts == 2, done.error
    assert Path(done.output_path).read_bytes() == scored and not part.exists()
    per_row = Prediction.objects.filter(batch_job=job).values("row_number").annotate(n=Count("id"))
    assert sorted(row["row_number"] for row in per_row) == list(range(1, 36)) and {r["n"] for r in per_row} == {1}
    assert done.summary["rows_scored"] == 35 and sum(done.summary["predicted_classes"].values()) == 25
