"""Bring your own model: a scikit-learn pipeline logged to MLflow outside mlapp, registered with a
reference CSV, then served, validated, ingested and checked for drift like one mlapp trained."""

import os
import time

import mlflow
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from models_registry import mlflow_access
from models_registry.demo_data import churn_frame
from models_registry.importing import ModelImportError, model_import
from models_registry.models import AliasChange, ModelVersion
from models_registry.selectors import served_version_get
from monitoring.models import DataQualityIssue, IngestedFile
from monitoring.services.drift import drift_report_create
from monitoring.services.ingestion import ingestion_run_execute

from .payloads import payload_model_dir

pytestmark = pytest.mark.django_db(transaction=True)

NUMERIC = ["age", "tenure_months", "monthly_charges", "total_charges", "support_calls"]
CATEGORICAL = ["contract", "internet_service", "payment_method", "region"]


def _pipeline(frame):
    preprocess = ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), NUMERIC),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("encode", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                CATEGORICAL,
            ),
        ]
    )
    pipeline = Pipeline([("preprocess", preprocess), ("model", LogisticRegression(max_iter=500))])
    return pipeline.fit(frame[NUMERIC + CATEGORICAL], frame["churned"].astype(str))


def _log_outside_mlapp(pipeline, frame, **kwargs) -> str:
    """What a data scientist does in a notebook: log the model to the same MLflow store, not through mlapp."""
    mlflow_access.tracking_configure()
    features = frame[NUMERIC + CATEGORICAL]
    with mlflow.start_run(experiment_id=mlflow_access.experiment_id_get(), run_name="notebook"):
        info = mlflow.sklearn.log_model(
            pipeline, name="model", signature=infer_signature(features, pipeline.predict(features)), **kwargs
        )
    return info.model_uri


@pytest.fixture
def churn_rows():
    return churn_frame(n_rows=600, seed=31)


@pytest.fixture
def reference_csv(churn_rows, tmp_path):
    path = tmp_path / "reference.csv"
    churn_rows.to_csv(path, index=False)
    return path


def test_a_skops_pipeline_logged_outside_mlapp_is_served_validated_ingested_and_checked_for_drift(
    churn_rows, reference_csv, unique_model_name, staff_client, settings, tmp_path
):
    uri = _log_outside_mlapp(
        _pipeline(churn_rows), churn_rows, serialization_format="skops", skops_trusted_types=["numpy.dtype"]
    )

    call_command(
        "register_model",
        "--name", unique_model_name, "--model", uri, "--reference", str(reference_csv), "--target", "churned",
        "--promote",
    )  # fmt: skip

    record = ModelVersion.objects.get(name=unique_model_name)
    assert (record.origin, record.task, record.estimator, record.n_train_rows) == (
        "imported",
        "classification",
        "LogisticRegression",
        600,
    )
    assert len(record.artifact_sha256) == 64 and "model.skops" in record.artifact_manifest["files"]
    assert record.training_profile.feature_names == NUMERIC + CATEGORICAL
    assert set(record.training_profile.specs["contract"].categories) == set(churn_rows["contract"].dropna())
    assert "accuracy" in record.metrics and record.params["imported_from"] == uri
    assert served_version_get(name=unique_model_name) == record.version
    assert AliasChange.objects.get(model_name=unique_model_name).action == "promote"

    # Served through the API, validated by the profile built from the reference.
    row = churn_rows.drop(columns=["churned"]).iloc[0].to_dict()
    answer = staff_client.post(
        f"/api/v1/models/{unique_model_name}/predict/", {"features": row}, content_type="application/json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["model_version"] == record.version
    bad = staff_client.post(
        f"/api/v1/models/{unique_model_name}/predict/",
        {"features": {**row, "age": "old"}},
        content_type="application/json",
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "age"

    # Ingested: its raw folder, its rules.
    settings.MLAPP_DATA_DIR = tmp_path / "data"
    settings.MLAPP_INGEST_MIN_AGE_SECONDS = 0
    raw = tmp_path / "data" / "raw" / unique_model_name
    raw.mkdir(parents=True)
    incoming = churn_frame(n_rows=40, seed=32).drop(columns=["churned"]).astype(object)
    incoming.loc[3, "age"] = "old"
    (raw / "day1.csv").write_text(incoming.to_csv(index=False))
    old = time.time() - 60
    os.utime(raw / "day1.csv", (old, old))
    ingestion_run_execute(model_name=unique_model_name)
    ingested = IngestedFile.objects.get(model_name=unique_model_name)
    assert (ingested.rows_in, ingested.rows_good, ingested.rows_bad) == (40, 39, 1)
    assert DataQualityIssue.objects.filter(ingested_file=ingested, rule="wrong_type", column="age").exists()

    # Checked for drift against the reference: drifted traffic through the API is flagged.
    drifted = churn_frame(n_rows=300, seed=33, drift=1.0).drop(columns=["churned"])
    rows = [{k: (None if v != v else v) for k, v in r.items()} for r in drifted.to_dict(orient="records")]
    scored = staff_client.post(
        f"/api/v1/models/{unique_model_name}/predict/", {"rows": rows}, content_type="application/json"
    )
    assert scored.status_code == 200, scored.content
    report = drift_report_create(model_name=unique_model_name, last_n=300)
    assert report.model_version == record.version and report.dataset_drift


def test_a_pickle_format_model_is_refused_naming_why_and_nothing_is_written(
    churn_rows, reference_csv, unique_model_name
):
    uri = _log_outside_mlapp(_pipeline(churn_rows), churn_rows, serialization_format="cloudpickle")

    with pytest.raises(CommandError, match="saved as cloudpickle: loading it unpickles, which can run arbitrary code"):
        call_command(
            "register_model", "--name", unique_model_name, "--model", uri, "--reference", str(reference_csv),
            "--target", "churned",
        )  # fmt: skip

    assert not ModelVersion.objects.filter(name=unique_model_name).exists()
    assert not mlflow_access.client().search_registered_models(filter_string=f"name='{unique_model_name}'")


def test_a_custom_python_model_directory_is_refused_and_its_payload_never_runs(
    reference_csv, unique_model_name, tmp_path
):
    marker = tmp_path / "payload-ran.txt"
    directory = payload_model_dir(tmp_path / "model", marker)

    with pytest.raises(ModelImportError, match="loading it unpickles"):
        model_import(source=str(directory), reference_csv=reference_csv, name=unique_model_name, target="churned")

    assert not marker.exists()
    assert not ModelVersion.objects.filter(name=unique_model_name).exists()


def test_a_skops_model_with_an_untrusted_type_is_refused_naming_the_type(churn_rows, reference_csv, tmp_path):
    pipeline = Pipeline([("hook", FunctionTransformer(func=os.getcwd)), ("model", _pipeline(churn_rows))])
    directory = tmp_path / "model"
    mlflow.sklearn.save_model(
        pipeline, str(directory), serialization_format="skops", skops_trusted_types=["posix.getcwd", "numpy.dtype"]
    )

    with pytest.raises(ModelImportError, match="not trusted: .*getcwd"):
        model_import(source=str(directory), reference_csv=reference_csv, name="t-untrusted", target="churned")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_signature", "has no input signature"),
        ("missing_column", "lacks the model's feature column(s) 'region'"),
        ("bad_uri", "give a runs:/<run>/<path> or models:/<name>/<version> URI"),
    ],
)
def test_bad_imports_are_refused_with_the_reason(
    churn_rows, reference_csv, unique_model_name, tmp_path, change, message
):
    pipeline = _pipeline(churn_rows)
    directory = tmp_path / "model"
    signature = None if change == "no_signature" else infer_signature(churn_rows[NUMERIC + CATEGORICAL])
    mlflow.sklearn.save_model(
        pipeline, str(directory), serialization_format="skops", signature=signature, skops_trusted_types=["numpy.dtype"]
    )
    if change == "missing_column":
        churn_rows.drop(columns=["region"]).to_csv(reference_csv, index=False)
    source = "s3://bucket/model" if change == "bad_uri" else str(directory)

    with pytest.raises(ModelImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model_import(source=source, reference_csv=reference_csv, name=unique_model_name, target="churned")

    assert not ModelVersion.objects.filter(name=unique_model_name).exists()


def test_registering_the_same_model_and_reference_again_reuses_the_version(
    churn_rows, reference_csv, unique_model_name, tmp_path
):
    directory = tmp_path / "model"
    mlflow.sklearn.save_model(
        _pipeline(churn_rows),
        str(directory),
        serialization_format="skops",
        signature=infer_signature(churn_rows[NUMERIC + CATEGORICAL]),
        skops_trusted_types=["numpy.dtype"],
    )

    first = model_import(source=str(directory), reference_csv=reference_csv, name=unique_model_name, target="churned")
    again = model_import(source=str(directory), reference_csv=reference_csv, name=unique_model_name, target="churned")

    assert not first.reused_existing and again.reused_existing
    assert again.model_version.pk == first.model_version.pk


def test_the_staff_page_registers_a_model_directory_and_shows_refusals(
    churn_rows, reference_csv, unique_model_name, tmp_path, staff_client, plain_user
):
    user_client = Client()
    user_client.force_login(plain_user)
    good, pickled = tmp_path / "good", tmp_path / "pickled"
    signature = infer_signature(churn_rows[NUMERIC + CATEGORICAL])
    pipeline = _pipeline(churn_rows)
    mlflow.sklearn.save_model(
        pipeline, str(good), serialization_format="skops", signature=signature, skops_trusted_types=["numpy.dtype"]
    )
    mlflow.sklearn.save_model(pipeline, str(pickled), serialization_format="pickle", signature=signature)

    def post(source, as_client=staff_client):
        with reference_csv.open("rb") as upload:
            return as_client.post(
                "/models/register/",
                {"model_name": unique_model_name, "source": str(source), "reference_csv": upload, "target": "churned"},
            )

    assert staff_client.get("/models/register/").status_code == 200
    assert post(good, user_client).status_code == 403
    refused = post(pickled)
    assert refused.status_code == 200 and "saved as pickle: loading it unpickles" in refused.content.decode()
    assert not ModelVersion.objects.filter(name=unique_model_name).exists()
    registered = post(good)
    assert registered.status_code == 302 and registered["Location"] == f"/models/{unique_model_name}/versions/1/"
    assert ModelVersion.objects.get(name=unique_model_name).origin == "imported"
