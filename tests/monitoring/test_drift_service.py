"""Drift reports on served rows: window loading, verdicts, settings, alerts, the job and the command."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from models_registry.demo_data import demo_frame
from models_registry.serving import loader
from monitoring.models import Alert, DriftReport, DriftSettings, FeatureDrift
from monitoring.schedules import model_periodic_tasks
from monitoring.services.drift import (
    PREDICTION_FEATURE,
    DriftCheckError,
    drift_latest_verdict,
    drift_report_create,
)
from monitoring.tasks import check_drift_task
from predictions.models import Prediction

pytestmark = pytest.mark.django_db


def served_rows_write(
    model,
    *,
    dataset: str,
    n_rows: int,
    drift: float = 0.0,
    seed: int = 11,
    end=None,
    spacing: timedelta = timedelta(seconds=20),
    source: str = "api",
    feedback: bool = False,
) -> list[Prediction]:
    """Score demo rows with the real model and store them as the prediction log would (newest at ``end``)."""
    frame = demo_frame(dataset, n_rows=n_rows, seed=seed, drift=drift)
    target = model.target
    inputs = frame.drop(columns=[target])
    served = loader().get_version(model.name, model.version)
    outputs = served.predict_frame(inputs)
    end = end or timezone.now()
    records = inputs.to_dict(orient="records")
    probabilities = outputs.probability_dicts()
    rows = []
    for i, record in enumerate(records):
        created_at = end - spacing * (n_rows - 1 - i)
        row = Prediction(
            created_at=created_at,
            model_name=model.name,
            model_version=model.version,
            run_id=model.run_id,
            source=source,
            request_id=uuid.uuid4().hex,
            features={k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()},
        )
        if outputs.labels is not None:
            row.predicted_label = str(outputs.labels[i])
            row.probabilities = probabilities[i]
        else:
            row.predicted_value = float(outputs.values[i])
        if feedback:
            actual = frame[target].iloc[i]
            if outputs.labels is not None:
                row.actual_label = str(actual)
            else:
                row.actual_value = float(actual)
            row.feedback_at = created_at + timedelta(minutes=5)
        rows.append(row)
    return Prediction.objects.bulk_create(rows)


def _mean(distribution: dict, which: str) -> float:
    edges = np.asarray(distribution["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    shares = np.asarray(distribution[which])
    return float((centers * shares).sum() / shares.sum())


def test_drifted_stream_gives_dataset_drift_an_alert_and_stored_distributions(churn_model):
    served_rows_write(churn_model, dataset="churn", n_rows=600, drift=0.8)

    report = drift_report_create(model_name=churn_model.name, scheduled=True)

    assert report.model_name == churn_model.name and report.model_version == churn_model.version
    assert report.n_rows == 600 and report.dataset_drift
    assert report.n_features == 9 and report.n_drifted >= 5
    rows = {row.feature: row for row in report.features.all()}
    assert set(rows) == {f["name"] for f in churn_model.profile["features"]} | {PREDICTION_FEATURE}
    age = rows["age"]
    assert age.drifted and age.verdict == "drift" and age.test == "ks" and age.p_value < 1e-6
    # The stored served histogram is the shifted one (+8 years on average), next to the training one.
    assert _mean(age.distribution, "window") - _mean(age.distribution, "reference") == pytest.approx(8, abs=2.5)
    contract = rows["contract"].distribution
    assert contract["kind"] == "categorical" and contract["categories"][0] in {"month-to-month", "one-year", "two-year"}
    share = dict(zip(contract["categories"], contract["window"], strict=True))
    assert share["month-to-month"] > 0.65  # 0.5 + 0.3 * 0.8 in the drifted stream
    assert rows[PREDICTION_FEATURE].kind == "categorical" and rows[PREDICTION_FEATURE].distribution["categories"]
    internet = rows["internet_service"]  # the demo stream never shifts it
    assert not internet.drifted and internet.verdict == "no_drift"

    alert = Alert.objects.get()
    assert alert.kind == "drift" and alert.drift_report == report and alert.severity == "warning"
    assert f"{churn_model.name} v{churn_model.version}" in alert.title and "age" in alert.message

    again = drift_report_create(model_name=churn_model.name)  # by hand: stored, not the status
    assert again.dataset_drift and DriftReport.objects.count() == 2
    assert Alert.objects.count() == 1  # one alert per model version and day

    verdict = drift_latest_verdict(churn_model.name)
    assert verdict.report_id == report.pk and verdict.dataset_drift and "age" in verdict.drifted_features
    assert PREDICTION_FEATURE not in verdict.drifted_features


def test_undrifted_stream_gives_no_dataset_drift_and_no_alert(churn_model):
    served_rows_write(churn_model, dataset="churn", n_rows=600, drift=0.0, seed=7)

    report = drift_report_create(model_name=churn_model.name, scheduled=True)

    assert not report.dataset_drift and report.n_drifted <= 2
    assert not Alert.objects.exists()
    assert drift_latest_verdict(churn_model.name).dataset_drift is False


def test_regression_model_checks_its_numeric_predictions(housing_model):
    served_rows_write(housing_model, dataset="housing", n_rows=500, drift=0.8)

    report = drift_report_create(model_name=housing_model.name)

    assert report.dataset_drift
    output = report.features.get(feature=PREDICTION_FEATURE)
    assert output.kind == "numeric" and output.test == "ks" and output.drifted
    assert _mean(output.distribution, "window") > _mean(output.distribution, "reference")
    rooms = report.features.get(feature="rooms").distribution
    assert all(b - a == 1 for a, b in zip(rooms["edges"][:-1], rooms["edges"][1:], strict=True))  # integer bins


def test_window_is_the_newest_rows_or_an_interval_or_a_source(churn_model):
    now = timezone.now()
    old_end = now - timedelta(days=2)
    served_rows_write(churn_model, dataset="churn", n_rows=300, drift=0.0, seed=5, end=old_end, source="batch")
    served_rows_write(churn_model, dataset="churn", n_rows=300, drift=0.8, end=now, source="api")

    newest = drift_report_create(model_name=churn_model.name, last_n=300)
    assert newest.n_rows == 300 and newest.dataset_drift
    assert newest.window_start > old_end
    assert newest.config["window"]["last_n"] == 300

    interval = drift_report_create(
        model_name=churn_model.name, since=old_end - timedelta(days=1), until=old_end + timedelta(seconds=1)
    )
    assert interval.n_rows == 300 and not interval.dataset_drift
    assert interval.window_end <= old_end

    batch = drift_report_create(model_name=churn_model.name, source="batch")
    assert batch.n_rows == 300 and not batch.dataset_drift
    assert batch.config["window"]["source"] == "batch"

    everything = drift_report_create(model_name=churn_model.name)  # default window: the model's newest 5,000 rows
    assert everything.n_rows == 600


def test_window_query_extracts_only_the_profile_keys_and_is_bounded(churn_model):
    served_rows_write(churn_model, dataset="churn", n_rows=120)

    with CaptureQueriesContext(connection) as queries:
        drift_report_create(model_name=churn_model.name, last_n=100)

    window_sql = next(q["sql"] for q in queries.captured_queries if 'FROM "predictions_prediction"' in q["sql"])
    select_list = window_sql.split(" FROM ")[0]
    # Each feature is extracted by key in the database (->> on PostgreSQL, JSON_EXTRACT on SQLite);
    # the whole JSON document is never selected as a column.
    assert not re.search(r'"predictions_prediction"\."features"\s*(,\s*"predictions_prediction"|$| AS)', select_list)
    for name in ("age", "tenure_months", "contract", "region"):
        assert re.search(rf"'(\$\.\")?{name}\"?'", select_list), name
    assert "probabilities" not in select_list
    assert "LIMIT 100" in window_sql


def test_critical_feature_decides_and_raises_an_error_alert(churn_model):
    DriftSettings.objects.create(model_name=churn_model.name, config={"drift_share": 1.0, "critical_features": ["age"]})
    served_rows_write(churn_model, dataset="churn", n_rows=400, drift=0.8)

    report = drift_report_create(model_name=churn_model.name)

    assert report.dataset_drift and report.drifted_share < 1.0
    assert report.config["critical_drifted"] == ["age"]
    assert report.config["drift"]["critical_features"] == ["age"]
    assert Alert.objects.get().severity == "error"


def test_per_feature_thresholds_come_from_the_settings(churn_model):
    DriftSettings.objects.create(
        model_name=churn_model.name,
        config={"per_feature": {"age": {"method": "effect_size", "effect_threshold": 5.0}}},
        window_rows=250,
    )
    served_rows_write(churn_model, dataset="churn", n_rows=400, drift=0.8)

    report = drift_report_create(model_name=churn_model.name)

    age = report.features.get(feature="age")
    assert report.n_rows == 250
    assert not age.drifted and age.method_used == "effect_size" and age.threshold == 5.0
    assert report.features.get(feature="tenure_months").drifted  # the defaults still hold elsewhere


def test_invalid_settings_are_rejected_in_the_admin_and_at_check_time(churn_model):
    record = DriftSettings(model_name=churn_model.name, config={"drift_share": 2, "nonsense": 1})
    with pytest.raises(ValidationError) as error:
        record.full_clean()
    assert "nonsense" in str(error.value)
    record.save()  # bypassing validation, as a raw SQL edit would
    served_rows_write(churn_model, dataset="churn", n_rows=100)

    with pytest.raises(DriftCheckError, match=f"Drift settings of {churn_model.name} are invalid"):
        drift_report_create(model_name=churn_model.name)
    assert not DriftReport.objects.exists() and not FeatureDrift.objects.exists()


def test_settings_naming_an_unknown_feature_fail_with_the_name(churn_model):
    DriftSettings.objects.create(model_name=churn_model.name, config={"critical_features": ["salary"]})
    served_rows_write(churn_model, dataset="churn", n_rows=100)

    with pytest.raises(DriftCheckError, match="salary"):
        drift_report_create(model_name=churn_model.name)
    assert not DriftReport.objects.exists()


def test_too_small_a_window_stores_nothing(churn_model):
    served_rows_write(churn_model, dataset="churn", n_rows=20)

    with pytest.raises(DriftCheckError, match="20 served rows in the window, at least 50 needed"):
        drift_report_create(model_name=churn_model.name)
    with pytest.raises(DriftCheckError, match="since"):
        now = timezone.now()
        drift_report_create(model_name=churn_model.name, since=now, until=now - timedelta(hours=1))
    assert not DriftReport.objects.exists() and not Alert.objects.exists()


def test_a_model_without_production_version_cannot_be_checked(mlflow_store, unique_model_name):
    with pytest.raises(DriftCheckError, match=f"{unique_model_name} has no production version"):
        drift_report_create(model_name=unique_model_name)
    assert not DriftReport.objects.exists()


def test_check_drift_task_stores_a_report_and_skips_quietly_without_data(churn_model):
    assert check_drift_task.name == "monitoring.check_drift"
    assert check_drift_task.delay(churn_model.name).get() is None  # no served rows yet
    assert not DriftReport.objects.exists()

    served_rows_write(churn_model, dataset="churn", n_rows=300, drift=0.8)
    report_id = check_drift_task.delay(churn_model.name).get()

    report = DriftReport.objects.get(pk=report_id)
    assert report.dataset_drift and Alert.objects.filter(drift_report=report).exists()


def test_check_drift_is_the_task_each_model_s_beat_schedule_names():
    (spec,) = [spec for spec in model_periodic_tasks("m") if spec["task"] == "monitoring.check_drift"]
    assert spec["kwargs"] == {"model_name": "m"}


def test_drift_in_one_model_shows_and_alerts_on_that_model_only(churn_model, housing_model):
    served_rows_write(churn_model, dataset="churn", n_rows=400, drift=0.8)
    served_rows_write(housing_model, dataset="housing", n_rows=400, drift=0.0)

    drifted = drift_report_create(model_name=churn_model.name, scheduled=True)
    calm = drift_report_create(model_name=housing_model.name, scheduled=True)

    assert drifted.dataset_drift and not calm.dataset_drift
    assert set(Alert.objects.values_list("model_name", flat=True)) == {churn_model.name}
    assert drift_latest_verdict(housing_model.name).dataset_drift is False
    assert drift_latest_verdict(churn_model.name).dataset_drift is True


def test_check_drift_command_prints_the_verdict(churn_model):
    served_rows_write(churn_model, dataset="churn", n_rows=300, drift=0.8)
    out = StringIO()

    call_command("check_drift", "--model", churn_model.name, "--last-n", "200", stdout=out)

    text = out.getvalue()
    assert "DATASET DRIFT" in text and "on 200 rows" in text and "age" in text
    assert DriftReport.objects.get().n_rows == 200
    with pytest.raises(CommandError, match="no time zone"):
        call_command("check_drift", "--model", churn_model.name, "--since", "2026-01-01T00:00:00", stdout=StringIO())
