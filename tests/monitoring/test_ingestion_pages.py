"""Ingestion and alert pages and their REST API, on files really ingested."""

import os
import time

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError as KombuOperationalError

from models_registry.demo_data import churn_frame
from monitoring.models import Alert, IngestedFile, IngestionRun
from monitoring.services.ingestion import ingestion_run_execute
from tests.conftest import CHURN

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingested(settings, tmp_path, churn_model, strict_ingestion):
    """Two files through a real pass: one split with bad rows (and an alert), one rejected whole."""
    settings.MLAPP_DATA_DIR = tmp_path
    settings.MLAPP_INGEST_MIN_AGE_SECONDS = 0
    settings.MLAPP_ALERT_BAD_SHARE = 0.2
    raw = tmp_path / "raw" / CHURN
    raw.mkdir(parents=True)
    frame = churn_frame(n_rows=20, seed=8).drop(columns=["churned"]).astype(object)
    for row in range(5):
        frame.loc[row, "region"] = f"mars-{row}"
    (raw / "shipment.csv").write_text(frame.to_csv(index=False))
    (raw / "garbled.csv").write_bytes(frame.to_csv(index=False).encode("utf-16"))
    for path in raw.iterdir():
        os.utime(path, (time.time() - 60, time.time() - 60))
    ingestion_run_execute(model_name=CHURN)
    return {f.original_name: f for f in IngestedFile.objects.all()}


def test_pages_need_a_login(client):
    for url in (reverse("monitoring:ingestion", args=[CHURN]), reverse("monitoring:alerts")):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_overview_lists_files_with_counts_and_runs(user_client, ingested):
    response = user_client.get(reverse("monitoring:ingestion", args=[CHURN]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "shipment.csv" in page and "garbled.csv" in page and "UTF-16" in page
    assert '<td class="num">20</td>' in page and '<td class="num">15</td>' in page
    assert "Recent runs" in page and f"#{IngestionRun.objects.get().pk}" in page
    assert "Run ingestion now" not in page  # staff only
    assert reverse("predictions:scheduled_runs", args=[CHURN]) in page  # the scheduled prediction jobs


def test_each_model_s_ingestion_page_shows_its_own_files_only(user_client, ingested, housing_model):
    house = user_client.get(reverse("monitoring:ingestion", args=[housing_model.name])).content.decode()
    churn = user_client.get(reverse("monitoring:ingestion", args=[CHURN])).content.decode()

    assert "shipment.csv" in churn and "shipment.csv" not in house
    assert f"raw/{housing_model.name}" in house


def test_an_ingestion_page_creates_no_folder(user_client, settings, tmp_path, unique_model_name):
    settings.MLAPP_DATA_DIR = tmp_path

    page = user_client.get(reverse("monitoring:ingestion", args=[unique_model_name]))

    assert page.status_code == 200 and f"raw/{unique_model_name}" in page.content.decode()
    assert not (tmp_path / "raw" / unique_model_name).exists()


def test_alerts_filter_by_model(user_client, ingested, housing_model):
    mine = user_client.get(reverse("monitoring:alerts"), {"model": CHURN}).content.decode()
    other = user_client.get(reverse("monitoring:alerts"), {"model": housing_model.name}).content.decode()

    assert "shipment.csv" in mine and "shipment.csv" not in other
    (alert, *_) = user_client.get("/api/v1/alerts/", {"model_name": CHURN}).json()["results"]
    assert alert["model_name"] == CHURN
    assert user_client.get("/api/v1/alerts/", {"model_name": housing_model.name}).json()["results"] == []


def test_the_overview_filters_by_status(user_client, ingested):
    page = user_client.get(reverse("monitoring:ingestion", args=[CHURN]), {"status": "quarantined"}).content.decode()
    assert "garbled.csv" in page and "shipment.csv" not in page


def test_a_file_page_shows_issues_and_quarantined_rows_with_reasons(user_client, ingested):
    response = user_client.get(reverse("monitoring:ingested_file", args=[ingested["shipment.csv"].pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "unknown_category" in page and "<code>mars-0</code>" in page
    assert "unknown_category:region=mars-3" in page  # the reason column of a quarantined row
    assert "All 5 rows" in page
    assert "25% bad rows in shipment.csv" in page  # its alert


def test_a_file_rejected_whole_shows_its_reason_and_first_bytes(user_client, ingested):
    page = user_client.get(reverse("monitoring:ingested_file", args=[ingested["garbled.csv"].pk])).content.decode()
    assert "Quarantined whole" in page and "UTF-16 encoded" in page and "<pre>" in page


def test_an_unknown_file_is_404(user_client, ingested):
    assert user_client.get(reverse("monitoring:ingested_file", args=[999999])).status_code == 404


def test_staff_acknowledge_alerts_others_get_403(client, staff_user, plain_user, ingested):
    alert = Alert.objects.filter(ingested_file=ingested["shipment.csv"]).get()
    url = reverse("monitoring:alert_acknowledge", args=[alert.pk])

    client.force_login(plain_user)
    page = client.get(reverse("monitoring:alerts")).content.decode()
    assert "25% bad rows in shipment.csv" in page and "Acknowledge</button>" not in page
    assert client.post(url).status_code == 403

    client.force_login(staff_user)
    assert "Acknowledge</button>" in client.get(reverse("monitoring:alerts")).content.decode()
    response = client.post(url, {"next": reverse("monitoring:alerts") + "?state=all"})
    assert response.status_code == 302 and response["Location"] == "/monitoring/alerts/?state=all"
    alert.refresh_from_db()
    assert alert.acknowledged_by == staff_user
    open_page = client.get(reverse("monitoring:alerts")).content.decode()
    assert "Acknowledged: 25% bad rows in shipment.csv" in open_page  # the confirmation
    assert url not in open_page and "garbled.csv quarantined whole" in open_page  # open alerts only by default
    assert "by staff" in client.get(reverse("monitoring:alerts"), {"state": "acknowledged"}).content.decode()


def test_acknowledge_refuses_get_and_foreign_redirects(staff_client, ingested):
    alert = Alert.objects.first()
    url = reverse("monitoring:alert_acknowledge", args=[alert.pk])
    assert staff_client.get(url).status_code == 405
    response = staff_client.post(url, {"next": "https://evil.example.com/"})
    assert response["Location"] == reverse("monitoring:alerts")


def test_run_now_is_staff_only(client, staff_user, plain_user, ingested, settings):
    client.force_login(plain_user)
    assert client.post(reverse("monitoring:ingestion_run_now", args=[CHURN])).status_code == 403
    client.force_login(staff_user)
    before = IngestionRun.objects.count()

    response = client.post(reverse("monitoring:ingestion_run_now", args=[CHURN]))  # Celery runs eagerly in tests

    assert response.status_code == 302 and IngestionRun.objects.count() == before + 1


def test_run_now_with_the_task_queue_down_says_so(staff_client, churn_model, monkeypatch):
    def broker_down(*args, **kwargs):
        raise KombuOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("monitoring.tasks.ingest_raw_files_task.apply_async", broker_down)

    page = staff_client.post(reverse("monitoring:ingestion_run_now", args=[CHURN]), follow=True).content.decode()

    assert "The task queue is unavailable: Error 111" in page and f"scripts/manage ingest --model {CHURN}" in page


# --- REST API ------------------------------------------------------------------------


def test_api_lists_ingested_files_with_counts_and_issues(user_client, ingested):
    body = user_client.get("/api/v1/ingestion/files/").json()

    assert body["count"] == 2
    by_name = {f["original_name"]: f for f in body["results"]}
    shipment = by_name["shipment.csv"]
    assert (shipment["rows_in"], shipment["rows_good"], shipment["rows_bad"]) == (20, 15, 5)
    assert shipment["bad_share"] == 0.25 and shipment["status"] == "done"
    assert shipment["issues"][0]["rule"] == "unknown_category" and shipment["issues"][0]["count"] == 5
    assert by_name["garbled.csv"]["status"] == "quarantined" and "UTF-16" in by_name["garbled.csv"]["reason"]


def test_api_filters_and_rejects_unknown_values(user_client, ingested):
    body = user_client.get("/api/v1/ingestion/files/", {"status": "quarantined"}).json()
    assert [f["original_name"] for f in body["results"]] == ["garbled.csv"]
    response = user_client.get("/api/v1/ingestion/files/", {"status": "exploded"})
    assert response.status_code == 400 and response.json()["detail"] == "Invalid input"
    (error,) = response.json()["errors"]
    assert error["field"] == "status" and error["problem"].startswith("unknown status 'exploded'")
    assert user_client.get("/api/v1/ingestion/files/", {"run": "x"}).status_code == 400
    assert user_client.get("/api/v1/alerts/", {"state": "whatever"}).status_code == 400


def test_api_file_detail_has_its_quarantined_rows(user_client, ingested):
    body = user_client.get(f"/api/v1/ingestion/files/{ingested['shipment.csv'].pk}/", {"rows": 2}).json()

    assert len(body["quarantined_rows"]) == 2
    assert body["quarantined_rows"][0]["reason"] == "unknown_category:region=mars-0"
    assert body["quarantined_rows"][0]["row_number"] == "1"
    assert user_client.get("/api/v1/ingestion/files/999999/").status_code == 404


def test_api_runs(user_client, ingested):
    (run,) = user_client.get("/api/v1/ingestion/runs/").json()
    assert (run["files_seen"], run["files_processed"], run["rows_in"]) == (2, 2, 40)


def test_api_alerts_and_acknowledge(client, staff_user, plain_user, ingested):
    assert client.get("/api/v1/alerts/").status_code in (401, 403)
    client.force_login(plain_user)
    alerts = client.get("/api/v1/alerts/").json()["results"]
    assert {a["title"] for a in alerts} == {"25% bad rows in shipment.csv", "garbled.csv quarantined whole"}
    target = next(a for a in alerts if a["title"].startswith("25%"))
    url = f"/api/v1/alerts/{target['id']}/acknowledge/"
    assert client.post(url).status_code == 403

    client.force_login(staff_user)
    response = client.post(url)

    assert response.status_code == 200 and response.json()["acknowledged_by"] == "staff"
    assert len(client.get("/api/v1/alerts/").json()["results"]) == 1
    assert len(client.get("/api/v1/alerts/", {"state": "all"}).json()["results"]) == 2
    assert client.post("/api/v1/alerts/999999/acknowledge/").status_code == 404
