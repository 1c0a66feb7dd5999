import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from models_registry.demo_data import churn_frame, housing_frame
from predictions.models import BatchJob, Prediction

pytestmark = pytest.mark.django_db

CHURN_FORM = {
    "age": "40",
    "tenure_months": "3",
    "monthly_charges": "80.5",
    "total_charges": "241.5",
    "support_calls": "2",
    "contract": "month-to-month",
    "internet_service": "fiber",
    "payment_method": "card",
    "region": "north",
}


def test_form_is_generated_from_the_profile(user_client, churn_model):
    page = user_client.get("/predictions/predict/").content.decode()
    assert '<option value="month-to-month"' in page and 'name="monthly_charges"' in page
    assert "training range" in page and f"v{churn_model.version}" in page


def test_form_for_another_model_without_code_changes(user_client, housing_model):
    page = user_client.get("/predictions/predict/").content.decode()
    assert 'name="area_m2"' in page and '<option value="heat-pump"' in page and "contract" not in page


def test_form_predicts_and_stores_a_web_prediction(user_client, churn_model):
    response = user_client.post("/predictions/predict/", CHURN_FORM)

    stored = Prediction.objects.get()
    assert stored.source == "web" and stored.features["contract"] == "month-to-month"
    page = response.content.decode()
    assert f"stored as prediction #{stored.pk}" in page and f"v{churn_model.version}" in page


def test_form_errors_name_the_field_and_store_nothing(user_client, churn_model):
    response = user_client.post("/predictions/predict/", {**CHURN_FORM, "age": "old", "contract": "lifetime"})

    page = response.content.decode()
    assert "Enter a number." in page and "lifetime is not one of the available choices" in page
    assert Prediction.objects.count() == 0


def _upload(client, name, content, capture):
    with capture(execute=True):
        response = client.post("/predictions/batch/", {"csv_file": SimpleUploadedFile(name, content)})
    return response


@pytest.mark.parametrize("model_fixture", ["churn_model", "housing_model"])
def test_batch_upload_scores_rows_and_offers_the_scored_csv(
    request, user_client, model_fixture, django_capture_on_commit_callbacks
):
    request.getfixturevalue(model_fixture)
    maker = churn_frame if model_fixture == "churn_model" else housing_frame
    frame = maker(n_rows=120, seed=4).iloc[:, :-1].astype(object)
    numeric_column = frame.columns[0]
    frame.loc[5, numeric_column] = "not a number"

    response = _upload(user_client, "input.csv", frame.to_csv(index=False).encode(), django_capture_on_commit_callbacks)

    job = BatchJob.objects.get()
    assert response.status_code == 302 and response.url == f"/predictions/batch/{job.pk}/"
    status = user_client.get(f"/predictions/batch/{job.pk}/status/").json()
    assert status["status"] == "succeeded" and status["percent"] == 100
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


def test_past_predictions_filter_paginate_and_export(user_client, churn_model):
    for _ in range(3):
        user_client.post("/predictions/predict/", CHURN_FORM)
    Prediction.objects.filter(pk=Prediction.objects.order_by("id").first().pk).update(source="api")

    page = user_client.get("/predictions/", {"source": "web"}).content.decode()
    export = user_client.get("/predictions/export.csv", {"source": "web"})
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))

    assert page.count('<span class="badge">web</span>') == 2 and '<span class="badge">api</span>' not in page
    assert len(rows) == 2 and {r["source"] for r in rows} == {"web"}


def test_keyset_pagination_walks_every_row_once(user_client, churn_model, monkeypatch):
    monkeypatch.setattr("predictions.views.PAGE_ROWS", 2)
    for _ in range(5):
        user_client.post("/predictions/predict/", CHURN_FORM)
    seen, url = [], "/predictions/"
    while url:
        response = user_client.get(url)
        seen += [row.pk for row in response.context["rows"]]
        url = f"/predictions/?{response.context['next_query']}" if response.context["next_query"] else None
    assert seen == list(Prediction.objects.order_by("-created_at", "-id").values_list("pk", flat=True))


def test_pages_need_a_login(client):
    for url in ("/predictions/", "/predictions/predict/", "/predictions/export.csv"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")
