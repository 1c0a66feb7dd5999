import os
import time

import pytest
from django.test import Client

from models_registry.demo_data import churn_frame
from monitoring.models import Alert, IngestedFile
from monitoring.services.ingestion import ingestion_run_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingested(settings, tmp_path, churn_model):
    settings.MLAPP_DATA_DIR = tmp_path
    (tmp_path / "raw").mkdir()
    frame = churn_frame(n_rows=30, seed=1).drop(columns=["churned"]).astype(object)
    frame.loc[:9, "region"] = "atlantis"
    path = tmp_path / "raw" / "shop.csv"
    frame.to_csv(path, index=False)
    os.utime(path, (time.time() - 60, time.time() - 60))
    ingestion_run_execute()
    return IngestedFile.objects.get()


def test_ingestion_pages_show_runs_issues_quarantined_rows_and_alerts(user_client, ingested):
    overview = user_client.get("/monitoring/ingestion/").content.decode()
    detail = user_client.get(f"/monitoring/ingestion/files/{ingested.pk}/").content.decode()
    alerts = user_client.get("/monitoring/alerts/").content.decode()

    assert "shop.csv" in overview
    assert "unknown_category" in detail and "region=atlantis" in detail
    assert "33% bad rows in shop.csv" in alerts


def test_only_staff_acknowledge_alerts(user_client, staff_user, ingested):
    alert = Alert.objects.get()
    staff_client = Client()
    staff_client.force_login(staff_user)

    assert user_client.post(f"/monitoring/alerts/{alert.pk}/acknowledge/").status_code == 403
    staff_client.post(f"/monitoring/alerts/{alert.pk}/acknowledge/")

    alert.refresh_from_db()
    assert alert.acknowledged_by.username == "staff"


def test_ingestion_api_lists_files_with_counts(user_client, ingested):
    body = user_client.get("/api/v1/ingestion/files/").json()
    rows = body["results"] if isinstance(body, dict) else body
    (row,) = rows
    assert (row["rows_in"], row["rows_good"], row["rows_bad"]) == (30, 20, 10)
