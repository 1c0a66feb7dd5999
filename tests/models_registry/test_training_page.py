import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from kombu.exceptions import OperationalError

from models_registry.models import ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db


def test_staff_trains_from_an_upload_and_sees_the_result(
    mlflow_store, staff_client, churn_csv, unique_model_name, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("customers.csv", churn_csv.read_bytes(), content_type="text/csv")

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/models/train/", {"csv_file": upload, "target": "churned", "model_name": unique_model_name, "task": ""}
        )

    job = TrainingJob.objects.get(model_name=unique_model_name)
    assert response.status_code == 302 and response.url == f"/models/train/{job.pk}/"
    # Eager Celery in tests: the job ran when the request's transaction committed.
    status = staff_client.get(f"/models/train/{job.pk}/status/").json()
    assert status["status"] == "succeeded" and status["progress"] == 100 and status["version"] == 1
    assert ModelVersion.objects.get(name=unique_model_name).source_name == "customers.csv"
    assert "Training #" in staff_client.get(f"/models/train/{job.pk}/").content.decode()


def test_bad_upload_is_refused_on_the_page_and_queues_nothing(mlflow_store, staff_client, unique_model_name):
    upload = SimpleUploadedFile("x.csv", b"a,b\n1,2\n", content_type="text/csv")

    response = staff_client.post(
        "/models/train/", {"csv_file": upload, "target": "churned", "model_name": unique_model_name}
    )

    assert response.status_code == 200
    assert "no column &#x27;churned&#x27;" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_a_training_the_task_queue_cannot_take_fails_saying_so(
    mlflow_store, staff_client, churn_csv, unique_model_name, django_capture_on_commit_callbacks, monkeypatch
):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("models_registry.tasks.training_job_run_task.apply_async", broker_down)
    upload = SimpleUploadedFile("customers.csv", churn_csv.read_bytes(), content_type="text/csv")

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post("/models/train/", {"csv_file": upload, "target": "churned", "model_name": unique_model_name})

    job = TrainingJob.objects.get(model_name=unique_model_name)
    status = staff_client.get(f"/models/train/{job.pk}/status/").json()
    assert status["status"] == "failed"
    job.refresh_from_db()
    assert job.error == (
        "The task queue is unavailable: Error 111 connecting to 127.0.0.1:6379. Connection refused. "
        "(the job was not started)"
    )


def test_the_form_names_no_model_until_the_user_does(mlflow_store, churn_model, staff_client):
    page = staff_client.get("/models/train/").content.decode()

    field = page[page.index('name="model_name"') :].split(">", 1)[0]
    assert "value=" not in field and 'list="model-names"' in field
    assert f'<option value="{churn_model.name}">' in page  # existing names are offered, not chosen
