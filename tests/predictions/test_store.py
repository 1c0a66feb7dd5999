"""The bulk writer of the inference log: every field read back as written (COPY on
PostgreSQL, bulk_create on SQLite)."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.utils import timezone

from models_registry.demo_data import churn_frame, housing_frame
from models_registry.features import frame_for_model
from models_registry.serving import loader
from predictions.models import BatchJob, Prediction
from predictions.services.store import RowContext, inference_rows_insert, prediction_rows_write

pytestmark = pytest.mark.django_db


def _features(served, frame):
    return frame_for_model(frame[served.feature_names], served.profile)


def test_classifier_rows_are_stored_field_for_field(churn_model):
    served = loader().get_version(churn_model.name, churn_model.version)
    features = _features(served, churn_frame(n_rows=30, seed=21))
    features.loc[features.index[0], "region"] = None  # a missing category is stored as null
    features.loc[features.index[1], "contract"] = 'quote " and café'  # JSON escaping, non-ASCII
    outputs = served.predict_frame(features)
    job = BatchJob.objects.create(model_name=served.name, input_path="in.csv", original_filename="in.csv")
    before = timezone.now()

    written = prediction_rows_write(
        served=served,
        features=features,
        outputs=outputs,
        context=RowContext(source="batch", request_id=f"batch:{job.pk}", batch_job_id=job.pk, latency_ms=1.5),
        row_numbers=np.arange(1, 31),
    )

    rows = list(Prediction.objects.filter(batch_job=job).order_by("row_number"))
    assert written == 30 and len(rows) == 30
    first, second = rows[0], rows[1]
    assert first.features["region"] is None and first.features["age"] == float(features.iloc[0]["age"])
    assert second.features["contract"] == 'quote " and café'
    assert [r.predicted_label for r in rows] == list(outputs.labels)
    assert all(r.predicted_value is None for r in rows)
    assert first.probabilities == {
        c: round(float(p), 6) for c, p in zip(outputs.classes, outputs.probabilities[0], strict=True)
    }
    assert {(r.model_name, r.model_version, r.run_id, r.source, r.latency_ms) for r in rows} == {
        (served.name, served.version, served.run_id, "batch", 1.5)
    }
    assert [r.row_number for r in rows] == list(range(1, 31))
    assert before - timedelta(seconds=1) <= first.created_at <= timezone.now()
    assert first.good_file_id is None and first.request_id == f"batch:{job.pk}"


def test_regressor_rows_store_a_value_and_no_probabilities(housing_model):
    served = loader().get_version(housing_model.name, housing_model.version)
    features = _features(served, housing_frame(n_rows=12, seed=22))
    outputs = served.predict_frame(features)

    written = prediction_rows_write(
        served=served, features=features, outputs=outputs, context=RowContext(source="api", request_id="r-1")
    )

    rows = list(Prediction.objects.filter(request_id="r-1").order_by("id"))
    assert written == 12
    assert [r.predicted_value for r in rows] == pytest.approx(list(outputs.values))
    assert all(r.predicted_label is None and r.probabilities is None and r.row_number is None for r in rows)
    assert all(r.batch_job_id is None and r.latency_ms is None for r in rows)


def test_an_empty_chunk_writes_nothing(churn_model):
    served = loader().get_version(churn_model.name, churn_model.version)
    empty = pd.DataFrame(columns=served.feature_names)
    outputs = served.predict_frame(_features(served, churn_frame(n_rows=1, seed=1)))
    assert prediction_rows_write(served=served, features=empty, outputs=outputs, context=RowContext("api", "x")) == 0
    assert Prediction.objects.count() == 0


def _log_row(**overrides):
    return {
        "created_at": timezone.now(),
        "model_name": "churn-demo",
        "model_version": 3,
        "run_id": "r" * 32,
        "source": "api",
        "request_id": "a" * 32,
        "features": {"age": 42.5, "contract": 'quote " and café', "region": None, "paperless": True},
        "predicted_label": "yes",
        "predicted_value": None,
        "probabilities": {"no": 0.25, "yes": 0.75},
        "latency_ms": 0.125,
        "variant": "challenger",
        **overrides,
    }


@pytest.mark.parametrize(
    "overrides",
    [{}, {"predicted_label": None, "predicted_value": -1.5e300, "probabilities": None, "source": "mlflow"}],
    ids=["classifier", "regressor"],
)
def test_one_on_demand_row_is_stored_as_the_orm_would_store_it(staff_user, overrides):
    """One row skips the model instance and Django's statement building (on PostgreSQL a prepared
    statement); what lands must be what `Prediction.save` would have written, field for field."""
    row = _log_row(created_by_id=staff_user.pk, **overrides)
    (fast_id,) = inference_rows_insert([row])
    orm = Prediction(**row)
    orm.save()

    fast, expected = (Prediction.objects.filter(pk=pk).values().get() for pk in (fast_id, orm.pk))
    assert fast_id != orm.pk
    assert {k: v for k, v in fast.items() if k != "id"} == {k: v for k, v in expected.items() if k != "id"}
    assert fast["features"] == row["features"] and fast["created_by_id"] == staff_user.pk
    # As the database holds them (SQLite keeps timestamps as text, compared as text by range queries).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Prediction._meta.db_table} WHERE id IN (%s, %s) ORDER BY id", [fast_id, orm.pk])
        stored = [columns[1:] for columns in cursor.fetchall()]  # without the id
    assert stored[0] == stored[1]


def test_several_rows_are_stored_together_and_their_ids_come_back_in_order():
    rows = [_log_row(request_id="b" * 32, latency_ms=float(i)) for i in range(3)]
    ids = inference_rows_insert(rows)

    assert len(set(ids)) == 3
    assert [Prediction.objects.get(pk=pk).latency_ms for pk in ids] == [0.0, 1.0, 2.0]
