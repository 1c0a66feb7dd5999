"""Batch scoring: upload → job (Celery, eager in tests) → status → scored CSV."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from kombu.exceptions import OperationalError

from models_registry.demo_data import churn_frame, housing_frame
from predictions.models import BatchJob, Prediction
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
    from predictions.models import BatchJob

    path = tmp_path / "input.csv"
    frame.to_csv(path, index=False)
    return BatchJob.objects.create(model_name=served_name, input_path=str(path), original_filename="input.csv")


def test_a_job_is_claimed_once_and_the_scored_csv_has_probabilities(churn_model, tmp_path):
    from predictions.services.batch import batch_job_run

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
    from predictions.services.batch import batch_job_run

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
def test_rows_written_on_a_second_connection_on_postgresql(churn_model, tmp_path):
    """Outside a transaction, PostgreSQL writes go through the writer thread's own connection."""
    from predictions.services import batch

    frame = churn_frame(n_rows=50, seed=5).iloc[:, :-1]
    job = _job_for(frame, tmp_path, churn_model.name)
    original = batch.CHUNK_ROWS
    batch.CHUNK_ROWS = 20  # three chunks, two in flight at most
    try:
        done = batch.batch_job_run(job_id=job.pk)
    finally:
        batch.CHUNK_ROWS = original
    assert done.status == "succeeded" and done.summary["rows_scored"] == 50
    assert Prediction.objects.filter(batch_job=job, source="batch").count() == 50


def test_a_cell_the_log_cannot_store_rejects_its_row_not_the_job(churn_model, tmp_path):
    from predictions.services.batch import batch_job_run

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
