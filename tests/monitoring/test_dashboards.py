"""Dashboards: rollups, series selectors, pages (classification and regression) and the series API."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.models import DataQualityIssue, IngestedFile, PredictionRollup
from monitoring.selectors import dashboards as selectors
from monitoring.services.drift import PREDICTION_FEATURE, drift_report_create
from monitoring.services.rollups import prediction_rollups_refresh
from monitoring.tasks import refresh_prediction_rollups_task
from predictions.models import Prediction, ScheduledRun
from tests.conftest import CHURN
from tests.monitoring.test_drift_service import served_rows_write

pytestmark = pytest.mark.django_db


def _rollup_totals():
    return {
        (r.hour, r.model_version, r.source, r.predicted_label, r.actual_label): (r.n, r.n_feedback)
        for r in PredictionRollup.objects.all()
    }


# --------------------------------------------------------------------------- rollups


def test_rollups_count_predictions_per_hour_version_source_and_label(churn_model):
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    rows = served_rows_write(churn_model, dataset="churn", n_rows=360, end=now, spacing=timedelta(seconds=30))

    result = prediction_rollups_refresh()

    assert result.refreshed and result.since is None
    assert sum(r.n for r in PredictionRollup.objects.all()) == 360
    by_hour = {}
    for row in rows:
        hour = row.created_at.replace(minute=0, second=0, microsecond=0)
        by_hour[hour] = by_hour.get(hour, 0) + 1
    for hour, count in by_hour.items():
        assert sum(PredictionRollup.objects.filter(hour=hour).values_list("n", flat=True)) == count
    labels = set(PredictionRollup.objects.values_list("predicted_label", flat=True))
    assert labels <= {"yes", "no"} and labels
    assert set(PredictionRollup.objects.values_list("source", flat=True)) == {"api"}

    before = _rollup_totals()
    assert prediction_rollups_refresh().refreshed
    assert _rollup_totals() == before  # idempotent: same predictions, same rows


def test_rollups_pick_up_new_rows_and_late_feedback_on_old_hours(housing_model):
    now = timezone.now()
    old = served_rows_write(housing_model, dataset="housing", n_rows=50, end=now - timedelta(days=3))
    prediction_rollups_refresh()
    assert not PredictionRollup.objects.filter(n_feedback__gt=0).exists()

    served_rows_write(housing_model, dataset="housing", n_rows=30, end=now, seed=4)
    # Ground truth for the three-day-old predictions arrives now.
    for row in old[:10]:
        row.actual_value = row.predicted_value + 1000.0
        row.feedback_at = now
    Prediction.objects.bulk_update(old[:10], ["actual_value", "feedback_at"])

    result = refresh_prediction_rollups_task.delay().get()

    assert result > 0
    assert sum(PredictionRollup.objects.values_list("n", flat=True)) == 80
    feedback = PredictionRollup.objects.filter(n_feedback__gt=0)
    assert sum(r.n_feedback for r in feedback) == 10
    assert sum(r.abs_error_sum for r in feedback) == pytest.approx(10_000.0)
    incremental = _rollup_totals()
    prediction_rollups_refresh(full=True)
    assert _rollup_totals() == incremental


# --------------------------------------------------------------------------- series


def test_prediction_series_per_minute_hour_and_day_agree(churn_model):
    now = timezone.now()
    served_rows_write(churn_model, dataset="churn", n_rows=240, end=now, spacing=timedelta(seconds=30))
    prediction_rollups_refresh()
    since = now - timedelta(hours=3)

    minute = selectors.prediction_series(
        model_name=churn_model.name, granularity="minute", since=since, until=now + timedelta(seconds=1)
    )
    hour = selectors.prediction_series(
        model_name=churn_model.name, granularity="hour", since=since, until=now + timedelta(seconds=1)
    )
    day = selectors.prediction_series(model_name=churn_model.name, granularity="day")

    for series in (minute, hour, day):
        assert sum(p["n"] for p in series["points"]) == 240
        assert all(sum(p["labels"].values()) == p["n"] for p in series["points"])
    assert len(minute["points"]) >= 119  # two rows a minute over two hours
    assert {p["model_version"] for p in hour["points"]} == {churn_model.version}

    with pytest.raises(selectors.SeriesError, match="at most 12 hours"):
        selectors.prediction_series(
            model_name=churn_model.name, granularity="minute", since=now - timedelta(days=1), until=now
        )
    with pytest.raises(selectors.SeriesError, match="granularity must be one of"):
        selectors.prediction_series(model_name=churn_model.name, granularity="week")


def test_performance_series_matches_the_feedback(churn_model, housing_model):
    rows = served_rows_write(churn_model, dataset="churn", n_rows=200, feedback=True)
    prediction_rollups_refresh()

    series = selectors.performance_series(model_name=churn_model.name, granularity="day")

    assert series["task"] == "classification"
    correct = sum(r.actual_label == r.predicted_label for r in rows)
    assert sum(p["n_feedback"] for p in series["points"]) == 200
    if len(series["points"]) == 1:  # unless the rows straddle midnight
        assert series["points"][0]["accuracy"] == pytest.approx(correct / 200)
        assert 0 < series["points"][0]["f1_macro"] <= 1

    housing_rows = served_rows_write(housing_model, dataset="housing", n_rows=100, feedback=True)
    prediction_rollups_refresh()
    regression = selectors.performance_series(model_name=housing_model.name, granularity="hour")
    errors = [r.predicted_value - r.actual_value for r in housing_rows]
    n = sum(p["n_feedback"] for p in regression["points"])
    assert regression["task"] == "regression" and n == 100
    mae = sum(p["mae"] * p["n_feedback"] for p in regression["points"]) / n
    assert mae == pytest.approx(sum(abs(e) for e in errors) / 100)
    if len(regression["points"]) == 1:
        assert regression["points"][0]["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 100))


# --------------------------------------------------------------------------- pages


def test_pages_need_a_login(client):
    assert "/accounts/login/" in client.get(reverse("monitoring:overview"))["Location"]
    for name in ("model_overview", "drift", "prediction_series", "data_quality", "performance"):
        response = client.get(reverse(f"monitoring:{name}", args=[CHURN]))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], name


def test_home_redirects_to_the_overview(user_client):
    response = user_client.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("monitoring:overview")


def test_drifted_stream_shows_on_the_overview_and_feature_page(user_client, churn_model):
    """Acceptance: drift turned on → dataset drift on the overview, an alert, the shifted distribution."""
    served_rows_write(churn_model, dataset="churn", n_rows=600, drift=0.8)
    prediction_rollups_refresh()
    report = drift_report_create(model_name=churn_model.name, scheduled=True)
    ScheduledRun.objects.create(model_name=churn_model.name, model_version=churn_model.version, rows_scored=42)

    page = user_client.get(reverse("monitoring:model_overview", args=[churn_model.name]))

    assert page.status_code == 200
    html = page.content.decode()
    assert f"v{churn_model.version}" in html and "dataset drift" in html
    assert f"Data drift on {churn_model.name} v{churn_model.version}" in html  # the open alert
    assert "42 rows" in html  # the last scheduled job
    assert "600 in all" in html  # predictions in the last 48 hours, from the rollups
    assert 'class="plotly-graph-div"' in html and "plotly/plotly.min.js" in html
    assert "cdn" not in html.lower()

    feature = user_client.get(reverse("monitoring:drift_feature", args=[churn_model.name, "age"]))

    assert feature.status_code == 200
    html = feature.content.decode()
    assert f"report #{report.pk}" in html and '<span class="badge bad">drift</span>' in html
    assert '"name":"training"' in html and '"name":"served"' in html
    assert html.count('class="plotly-graph-div"') == 2  # the distributions and the history


def test_drift_pages_for_a_classification_model(user_client, churn_model):
    response = user_client.get(reverse("monitoring:drift", args=[churn_model.name]))
    assert response.status_code == 200 and "No drift report yet" in response.content.decode()
    assert user_client.get(reverse("monitoring:drift_feature", args=[churn_model.name, "age"])).status_code == 404

    served_rows_write(churn_model, dataset="churn", n_rows=300, drift=0.8)
    first = drift_report_create(model_name=churn_model.name)
    second = drift_report_create(model_name=churn_model.name, last_n=200)

    latest = user_client.get(reverse("monitoring:drift", args=[churn_model.name])).content.decode()
    assert f"Latest report #{second.pk}" in latest and "contract" in latest and "<em>predictions</em>" in latest
    older = user_client.get(reverse("monitoring:drift_report", args=[churn_model.name, first.pk])).content.decode()
    assert f"Report #{first.pk}" in older and '300 <span class="small muted">served rows</span>' in older
    output = user_client.get(
        reverse("monitoring:drift_feature", args=[churn_model.name, PREDICTION_FEATURE]) + f"?report={first.pk}"
    )
    assert output.status_code == 200 and "Drift · predictions" in output.content.decode()
    assert user_client.get(reverse("monitoring:drift_feature", args=[churn_model.name, "salary"])).status_code == 404
    assert user_client.get(reverse("monitoring:drift_report", args=[churn_model.name, 99999])).status_code == 404


def test_pages_for_a_regression_model(user_client, housing_model):
    served_rows_write(housing_model, dataset="housing", n_rows=300, drift=0.8, feedback=True)
    prediction_rollups_refresh()
    drift_report_create(model_name=housing_model.name, scheduled=True)

    overview = user_client.get(reverse("monitoring:model_overview", args=[housing_model.name])).content.decode()
    assert housing_model.name in overview and "dataset drift" in overview
    feature = user_client.get(
        reverse("monitoring:drift_feature", args=[housing_model.name, "area_m2"])
    ).content.decode()
    assert "Served vs training distribution" in feature and '"name":"served"' in feature
    output = user_client.get(
        reverse("monitoring:drift_feature", args=[housing_model.name, PREDICTION_FEATURE])
    ).content.decode()
    assert '"name":"training"' in output
    for granularity in ("minute", "hour", "day"):
        page = user_client.get(
            reverse("monitoring:prediction_series", args=[housing_model.name]), {"granularity": granularity}
        )
        html = page.content.decode()
        assert page.status_code == 200 and "Predicted value per" in html and '"name":"mean"' in html, granularity
    performance = user_client.get(reverse("monitoring:performance", args=[housing_model.name])).content.decode()
    assert "MAE and RMSE" in performance and f'"name":"v{housing_model.version} rmse"' in performance


def test_prediction_and_performance_pages_for_a_classification_model(user_client, churn_model):
    performance = user_client.get(reverse("monitoring:performance", args=[churn_model.name])).content.decode()
    assert "No feedback yet" in performance

    served_rows_write(churn_model, dataset="churn", n_rows=200, feedback=True, source="batch")
    prediction_rollups_refresh()

    page = user_client.get(
        reverse("monitoring:prediction_series", args=[churn_model.name]),
        {"granularity": "hour", "model_version": churn_model.version, "source": "batch"},
    ).content.decode()
    assert "Predicted labels per hour" in page and '"name":"yes"' in page and "200 predictions" in page
    empty = user_client.get(
        reverse("monitoring:prediction_series", args=[churn_model.name]), {"source": "web"}
    ).content.decode()
    assert "No predictions in this interval" in empty
    bad = user_client.get(
        reverse("monitoring:prediction_series", args=[churn_model.name]), {"granularity": "week"}
    ).content.decode()
    assert "Select a valid choice" in bad

    performance = user_client.get(reverse("monitoring:performance", args=[churn_model.name])).content.decode()
    assert "Accuracy and macro F1" in performance and "accuracy" in performance


def test_data_quality_page_shows_bad_shares_and_issues_by_rule(user_client):
    page = user_client.get(reverse("monitoring:data_quality", args=[CHURN])).content.decode()
    assert "No file ingested in this interval" in page

    good = IngestedFile.objects.create(
        model_name=CHURN, original_name="a.csv", sha256="a" * 64, status="done", rows_in=100, rows_good=90, rows_bad=10
    )
    IngestedFile.objects.create(
        model_name=CHURN, original_name="b.csv", sha256="b" * 64, status="quarantined", rows_in=5, rows_bad=5
    )
    DataQualityIssue.objects.create(ingested_file=good, rule="out_of_range", column="age", severity="error", count=7)
    DataQualityIssue.objects.create(ingested_file=good, rule="missing_value", column="plan", severity="error", count=3)

    page = user_client.get(reverse("monitoring:data_quality", args=[CHURN]), {"days": "7"}).content.decode()
    assert "2 files, 105 rows, 15 quarantined" in page
    assert '"name":"out_of_range"' in page and '"name":"missing_value"' in page and "a.csv" in page

    series = selectors.data_quality_series(model_name=CHURN)
    assert [f["bad_share"] for f in series["files"]] == [0.1, 1.0]
    assert {(i["rule"], i["rows"]) for i in series["issues_by_rule"]} == {("out_of_range", 7), ("missing_value", 3)}


def test_plotly_js_is_served_from_our_static_files():
    """Needs the STATICFILES_DIRS entry for plotly's package data (see docs/monitoring.md)."""
    found = finders.find("plotly/plotly.min.js")
    assert found and found.endswith("plotly/package_data/plotly.min.js")


# --------------------------------------------------------------------------- API


def test_drift_report_api(api_client_factory, churn_model, staff_user, plain_user):
    served_rows_write(churn_model, dataset="churn", n_rows=300, drift=0.8)
    user_api = api_client_factory(plain_user)
    staff_api = api_client_factory(staff_user)
    url = reverse("monitoring_api:drift_reports", args=[churn_model.name])

    assert user_api.get(reverse("monitoring_api:drift_verdict", args=[churn_model.name])).status_code == 404
    assert user_api.post(url, {}, format="json").status_code == 403
    refused = staff_api.post(url, {"last_n": 0, "source": "fax"}, format="json")
    assert refused.status_code == 400 and {e["field"] for e in refused.json()["errors"]} == {"last_n", "source"}
    created = staff_api.post(url, {"last_n": 250}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["n_rows"] == 250 and body["dataset_drift"] is True
    age = next(f for f in body["features"] if f["feature"] == "age")
    assert age["drifted"] and age["distribution"]["kind"] == "numeric"

    listed = user_api.get(url, {"model_name": churn_model.name}).json()
    assert [r["id"] for r in listed] == [body["id"]]
    assert user_api.get(url, {"limit": "x"}).status_code == 400
    detail = user_api.get(reverse("monitoring_api:drift_report", args=[churn_model.name, body["id"]])).json()
    assert detail["config"]["window"]["last_n"] == 250
    assert user_api.get(reverse("monitoring_api:drift_report", args=[churn_model.name, 999999])).status_code == 404
    # A check run through the API is hand-run: stored and listed, never the model's drift status.
    assert user_api.get(reverse("monitoring_api:drift_verdict", args=[churn_model.name])).status_code == 404
    scheduled = drift_report_create(model_name=churn_model.name, scheduled=True)
    verdict = user_api.get(reverse("monitoring_api:drift_verdict", args=[churn_model.name])).json()
    assert verdict["report_id"] == scheduled.pk and verdict["dataset_drift"] and "age" in verdict["drifted_features"]
    history = user_api.get(reverse("monitoring_api:drift_history", args=[churn_model.name]), {"feature": "age"}).json()
    assert len(history) == 2 and history[0]["drifted"] and history[0]["effect_threshold"] == 0.1
    assert (
        user_api.get(reverse("monitoring_api:drift_history", args=[churn_model.name])).status_code == 400
    )  # feature is required

    nothing = staff_api.post(url, {"source": "web"}, format="json")
    assert nothing.status_code == 400 and "0 served rows" in nothing.json()["detail"]


def test_series_api(api_client_factory, plain_user, churn_model):
    served_rows_write(churn_model, dataset="churn", n_rows=120, feedback=True)
    prediction_rollups_refresh()
    api = api_client_factory(plain_user)

    predictions = api.get(
        reverse("monitoring_api:series_predictions", args=[churn_model.name]), {"granularity": "day"}
    ).json()
    assert predictions["granularity"] == "day" and sum(p["n"] for p in predictions["points"]) == 120
    assert predictions["points"][0]["time"].endswith("Z") or "+00:00" in predictions["points"][0]["time"]
    too_long = api.get(
        reverse("monitoring_api:series_predictions", args=[churn_model.name]),
        {"granularity": "minute", "since": "2026-01-01T00:00:00Z", "until": "2026-01-03T00:00:00Z"},
    )
    assert too_long.status_code == 400 and "at most 12 hours" in too_long.json()["detail"]
    assert (
        api.get(
            reverse("monitoring_api:series_predictions", args=[churn_model.name]), {"granularity": "week"}
        ).status_code
        == 400
    )

    performance = api.get(reverse("monitoring_api:series_performance", args=[churn_model.name])).json()
    assert performance["task"] == "classification" and sum(p["n_feedback"] for p in performance["points"]) == 120
    quality = api.get(reverse("monitoring_api:series_data_quality", args=[churn_model.name])).json()
    assert quality["files"] == [] and quality["issues_by_rule"] == []


@pytest.fixture
def api_client_factory():
    def make(user):
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make
