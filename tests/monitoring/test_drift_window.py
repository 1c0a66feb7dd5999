"""The scheduled drift check judges the rows since its previous check: a shift is flagged at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import DriftReport, DriftSettings
from monitoring.services.drift import DriftCheckError, drift_latest_verdict, drift_report_create
from tests.monitoring.test_drift_service import served_rows_write

pytestmark = pytest.mark.django_db

FILE_ROWS = 500
DRIFT_FROM_FILE = 6
FILES = 9


def test_a_stream_drifting_from_file_k_is_flagged_at_the_first_check_after_k_and_calm_files_do_not_fire(
    churn_model,
):
    start = timezone.now() - timedelta(hours=3)
    verdicts = []
    for number in range(1, FILES + 1):
        served_rows_write(
            churn_model,
            dataset="churn",
            n_rows=FILE_ROWS,
            drift=0.8 if number >= DRIFT_FROM_FILE else 0.0,
            seed=100 + number,
            end=start + timedelta(minutes=10 * number),
            spacing=timedelta(milliseconds=500),
        )
        report = drift_report_create(model_name=churn_model.name, scheduled=True)
        verdicts.append(report.dataset_drift)
        if number > 1:
            # Judged on this file's rows only: the window starts after the previous check's.
            assert report.n_rows == FILE_ROWS and report.config["window"]["mode"] == "since_previous"
    assert verdicts == [False] * (DRIFT_FROM_FILE - 1) + [True] * (FILES - DRIFT_FROM_FILE + 1)


def test_a_short_window_is_extended_back_and_nothing_new_stores_nothing(churn_model):
    DriftSettings.objects.create(model_name=churn_model.name, scheduled_min_rows=300)
    now = timezone.now()
    served_rows_write(churn_model, dataset="churn", n_rows=400, end=now - timedelta(minutes=30))
    first = drift_report_create(model_name=churn_model.name, scheduled=True)
    assert first.config["window"]["mode"] == "newest"
    with pytest.raises(DriftCheckError, match="no served rows since the previous scheduled check"):
        drift_report_create(model_name=churn_model.name, scheduled=True)
    served_rows_write(churn_model, dataset="churn", n_rows=100, seed=12, end=now)
    extended = drift_report_create(model_name=churn_model.name, scheduled=True)
    assert extended.config["window"]["mode"] == "extended" and extended.n_rows == 300


def test_a_hand_run_check_is_stored_beside_the_status_and_never_becomes_it(churn_model):
    served_rows_write(churn_model, dataset="churn", n_rows=300)
    scheduled = drift_report_create(model_name=churn_model.name, scheduled=True)
    served_rows_write(churn_model, dataset="churn", n_rows=300, drift=1.0, seed=13)
    hand_run = drift_report_create(model_name=churn_model.name, last_n=300)
    assert hand_run.dataset_drift and not hand_run.scheduled
    assert drift_latest_verdict(churn_model.name).report_id == scheduled.pk
    assert DriftReport.objects.filter(model_name=churn_model.name).count() == 2
    with pytest.raises(DriftCheckError, match="chooses its own window"):
        drift_report_create(model_name=churn_model.name, scheduled=True, last_n=10)
