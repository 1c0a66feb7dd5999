import io
import logging

import mlflow
import pandas as pd
import pytest
from django.db import DatabaseError

from models_registry import mlflow_access
from models_registry.demo_data import housing_frame
from models_registry.models import ModelVersion
from models_registry.training import TrainingInputError, model_train, task_infer


def _mlflow_versions(name):
    return mlflow_access.client().search_model_versions(f"name = '{name}'")


@pytest.mark.django_db
def test_training_registers_a_version_with_metrics_profile_and_hashes(
    mlflow_store, churn_csv, unique_model_name, caplog
):
    with caplog.at_level(logging.WARNING):
        result = model_train(csv=churn_csv, target="churned", name=unique_model_name, actor_label="pytest")

    # MLflow's own check of the serving example cannot load the model with pickle loading off: its
    # warning is dropped (mlflow_access), the example file itself is still logged.
    assert not [r for r in caplog.records if "serving input example" in r.getMessage()]
    assert mlflow.artifacts.load_text(f"runs:/{result.model_version.run_id}/model/serving_input_example.json")

    mv = result.model_version
    assert not result.reused_existing
    assert mv.version == 1 and mv.task == "classification"
    assert set(mv.metrics) == {"accuracy", "f1", "roc_auc"}
    assert 0.5 < mv.metrics["roc_auc"] <= 1
    assert len(mv.training_data_sha256) == 64 and mv.training_data_sha256 != mv.test_data_sha256
    names = {f["name"]: f for f in mv.profile["features"]}
    assert names["age"]["kind"] == "numeric" and names["age"]["dtype"] == "integer"
    assert names["contract"]["kind"] == "categorical"
    assert set(names["contract"]["categories"]) == {"month-to-month", "one-year", "two-year"}
    assert mv.profile["classes"] == ["no", "yes"]
    assert len(mv.profile["reference_sample"]["age"]) == mv.n_train_rows  # fewer than 5,000 rows: all kept

    # The MLflow side: registered version, run params, metrics, the profile artifact, signature.
    (registered,) = _mlflow_versions(unique_model_name)
    assert registered.run_id == mv.run_id
    run = mlflow_access.client().get_run(mv.run_id)
    assert run.data.params["train_sha256"] == mv.training_data_sha256
    assert run.data.params["test_sha256"] == mv.test_data_sha256
    assert run.data.metrics["accuracy"] == pytest.approx(mv.metrics["accuracy"])
    assert mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/profile.json") == mv.profile
    model_info = mlflow.models.get_model_info(f"models:/{unique_model_name}/1")
    assert [c.name for c in model_info.signature.inputs.inputs] == [f["name"] for f in mv.profile["features"]]


@pytest.mark.django_db
def test_same_data_and_config_reuses_the_version(mlflow_store, churn_csv, unique_model_name):
    first = model_train(csv=churn_csv, target="churned", name=unique_model_name)
    second = model_train(csv=churn_csv, target="churned", name=unique_model_name)

    assert second.reused_existing and second.model_version.pk == first.model_version.pk
    assert len(_mlflow_versions(unique_model_name)) == 1


@pytest.mark.django_db
def test_regression_is_inferred_and_scored(mlflow_store, tmp_path, unique_model_name):
    path = tmp_path / "houses.csv"
    housing_frame(n_rows=300, seed=5).to_csv(path, index=False)

    mv = model_train(csv=path, target="price", name=unique_model_name).model_version

    assert mv.task == "regression"
    assert set(mv.metrics) == {"rmse", "mae", "r2"}
    assert mv.profile["prediction_reference"]["kind"] == "numeric"


def test_task_inference():
    assert task_infer(pd.Series(["a", "b"])) == "classification"
    assert task_infer(pd.Series([0, 1, 1, 0])) == "classification"
    assert task_infer(pd.Series([1.5, 2.25, 3.0, 8.1])) == "regression"
    assert task_infer(pd.Series(range(100))) == "regression"


BAD_INPUTS = [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\xff\xfe", "not UTF-8"),
    (b"a,b\n", "no data rows"),
    (b"a,b,churned\n1,2,yes\n", r"1 row\(s\)"),
    (b"a,b,other\n" + b"1,2,3\n" * 20, "no column 'churned'"),
    (b"a,b,churned\n" + b"1,2,yes\n3,4,yes\n" * 10, "constant"),
    (b"just one column\n1\n2\n", "1 column"),
    # PostgreSQL cannot store a NUL character in the profile: refused before MLflow logs anything.
    (b"a,plan,churned\n" + b"1,basic,yes\n2,basic,no\n" * 10 + b"3,pre\x00mium,yes\n", r"column 'plan' has a NUL"),
    (b"a,pl\x00an,churned\n" + b"1,basic,yes\n2,basic,no\n" * 10, "a column name contains a NUL"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("content", "message"), BAD_INPUTS)
def test_bad_training_input_is_refused_and_writes_nothing(mlflow_store, unique_model_name, content, message):
    with pytest.raises(TrainingInputError, match=message):
        model_train(csv=io.BytesIO(content), target="churned", name=unique_model_name, source_name="bad.csv")

    assert not ModelVersion.objects.filter(name=unique_model_name).exists()
    assert _mlflow_versions(unique_model_name) == []


@pytest.mark.django_db
def test_single_class_target_is_refused(mlflow_store, unique_model_name):
    rows = "x,label\n" + "".join(f"{i},only\n" for i in range(30)) + "".join(f"{i},\n" for i in range(5))
    with pytest.raises(TrainingInputError, match="constant"):
        model_train(csv=io.StringIO(rows), target="label", name=unique_model_name, task="classification")
    assert _mlflow_versions(unique_model_name) == []


@pytest.mark.django_db
def test_regression_on_text_target_is_refused(mlflow_store, unique_model_name):
    rows = "x,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(30))
    with pytest.raises(TrainingInputError, match="not numeric"):
        model_train(csv=io.StringIO(rows), target="label", name=unique_model_name, task="regression")


@pytest.mark.django_db
def test_identifier_columns_are_left_out(mlflow_store, tmp_path, unique_model_name):
    frame = housing_frame(n_rows=200, seed=3)
    frame.insert(0, "listing_id", [f"L{i:05d}" for i in range(len(frame))])
    path = tmp_path / "listings.csv"
    frame.to_csv(path, index=False)

    mv = model_train(csv=path, target="price", name=unique_model_name).model_version

    assert "listing_id" not in [f["name"] for f in mv.profile["features"]]
    assert "listing_id (identifier-like" in mv.params["dropped_columns"]


@pytest.mark.django_db
def test_a_version_our_database_cannot_record_is_taken_back_out_of_the_registry(
    mlflow_store, churn_csv, unique_model_name, monkeypatch
):
    def database_fails(**fields):
        raise DatabaseError("could not extend file: No space left on device")

    monkeypatch.setattr("models_registry.training._model_version_record", database_fails)

    with pytest.raises(DatabaseError):
        model_train(csv=churn_csv, target="churned", name=unique_model_name)

    assert _mlflow_versions(unique_model_name) == []
    assert mlflow_access.client().search_registered_models(f"name = '{unique_model_name}'") == []
    (run,) = mlflow.search_runs(
        experiment_ids=[mlflow_access.experiment_id_get()],
        filter_string=f"attributes.run_name = '{unique_model_name}-train'",
        output_format="list",
    )
    assert run.info.status == "FAILED"
