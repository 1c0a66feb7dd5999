"""Bring your own model: register an existing MLflow model with mlapp, as if mlapp had trained it.

`model_import` takes an MLflow model (a `runs:/` or `models:/` URI in mlapp's store, or a
directory on this machine) whose MLmodel has an input signature, plus a reference CSV (rows
like the ones the model will see). It accepts only what loads without running code from the
file (scikit-learn saved with skops, only types of the trusted-type list: `trust.py`), then:

1. copies the model's files and hashes them; reads the signature (feature names and types);
2. loads the copy through skops and scores the reference with it;
3. builds the training profile from the reference with the same builder training uses
   (`profile.profile_build`): ranges, categories, reference sample, prediction reference;
4. logs a run (the profile, the reference's hash, where the model came from) and the very
   files it checked as a new version of `name`, records the version with its artifact hash
   (`origin="imported"`), and smoke-tests it through the serving loader.

From then on the version is served, validated, ingested and monitored like a trained one.
Anything refused says why and leaves nothing behind (no run, version or record).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from django.db import transaction

from core.errors import ApplicationError

from . import mlflow_access, trust
from .features import frame_coerce
from .models import ModelVersion
from .profile import CATEGORICAL, NUMERIC, profile_build
from .services import model_version_smoke_test
from .training import (
    TrainingData,
    TrainingInputError,
    _metrics,
    _registration_undo,
    frame_sha256,
    training_csv_read,
    training_schema_check,
)

logger = logging.getLogger(__name__)

URI_SCHEMES = ("runs:/", "models:/")
# MLflow signature column types, by the feature kind mlapp's profile gives them.
SIGNATURE_KINDS = {
    "double": NUMERIC,
    "float": NUMERIC,
    "long": NUMERIC,
    "integer": NUMERIC,
    "string": CATEGORICAL,
    "boolean": CATEGORICAL,
}


class ModelImportError(ApplicationError, ValueError):
    """The model or its reference CSV cannot be registered; the message says why."""


@dataclass(frozen=True)
class ImportResult:
    model_version: ModelVersion
    reused_existing: bool


def _source_copy(source: str, destination: Path) -> Path:
    """The model's files, copied into `destination` (symbolic links kept, so the manifest refuses them)."""
    if source.startswith(URI_SCHEMES):
        mlflow_access.tracking_configure()
        try:
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(destination)))
        except Exception as exc:  # MLflow raises its own and the store's errors
            raise ModelImportError(f"Cannot read the model {source}: {exc}") from exc
    if "://" in source or source.startswith(("runs:", "models:")):
        raise ModelImportError(
            f"Cannot read the model {source}: give a runs:/<run>/<path> or models:/<name>/<version> URI "
            "of mlapp's MLflow store, or a directory on this machine"
        )
    path = Path(source)
    if not path.is_dir():
        raise ModelImportError(f"Cannot read the model {source}: no such directory")
    copy = destination / "model"
    shutil.copytree(path, copy, symlinks=True)
    return copy


def signature_features(mlmodel: dict) -> dict[str, str]:
    """Feature name -> kind (numeric or categorical) from the MLmodel's input signature."""
    signature = mlmodel.get("signature") or {}
    raw = signature.get("inputs")
    if not raw:
        raise ModelImportError(
            "The model has no input signature: log it with a signature (mlflow.models.infer_signature) "
            "so mlapp knows its features"
        )
    try:
        columns = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ModelImportError(f"The model's input signature cannot be read: {exc}") from exc
    features, problems = {}, []
    for column in columns if isinstance(columns, list) else []:
        name, kind = column.get("name"), SIGNATURE_KINDS.get(column.get("type"))
        if not name:
            problems.append("a column without a name (tensor signatures are not supported)")
        elif kind is None:
            problems.append(f"{name!r} has type {column.get('type')!r}")
        else:
            features[str(name)] = kind
    if problems or not features:
        raise ModelImportError(
            "The model's input signature is not a table of numbers, text and booleans: "
            + ("; ".join(problems) or "no columns")
        )
    return features


def _task_of(pipeline, task: str | None) -> str:
    is_classifier = hasattr(pipeline, "predict_proba") and hasattr(pipeline, "classes_")
    if task in (None, ""):
        return "classification" if is_classifier else "regression"
    if task not in ("classification", "regression"):
        raise ModelImportError(f"Unknown task {task!r}: choose classification or regression")
    if task == "classification" and not is_classifier:
        raise ModelImportError("The model is not a classifier (it has no predict_proba and classes_)")
    return task


def _reference_read(reference_csv, *, display_name: str, features: dict[str, str]) -> pd.DataFrame:
    try:
        frame = training_csv_read(reference_csv, display_name=display_name)
    except TrainingInputError as exc:
        raise ModelImportError(str(exc)) from exc
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ModelImportError(
            f"{display_name} lacks the model's feature column(s) {', '.join(map(repr, missing))}; "
            f"its columns are: {', '.join(map(str, frame.columns))}"
        )
    return frame


@transaction.atomic
def _model_version_record(**fields) -> ModelVersion:
    return ModelVersion.objects.create(**fields)


def model_import(
    *,
    source: str,
    reference_csv: str | Path | io.IOBase,
    name: str,
    target: str,
    task: str | None = None,
    actor=None,
    actor_label: str = "",
    reference_name: str | None = None,
    allow_schema_change: bool = False,
) -> ImportResult:
    """Register an existing MLflow model as a new version of `name` (see the module's docstring).

    `target` names what the model predicts; if the reference has that column, the model's metrics on
    the reference are recorded too. Idempotent: the same files and reference return the same version.
    """
    source = str(source).strip()
    reference_name = reference_name or (
        Path(reference_csv).name if isinstance(reference_csv, (str, Path)) else "reference.csv"
    )
    actor_label = actor_label or getattr(actor, "username", "")
    with tempfile.TemporaryDirectory(prefix="mlapp-import-") as scratch:
        local = _source_copy(source, Path(scratch))
        try:
            files = trust.artifact_manifest(local)
            skops_file = trust.model_directory_check(local)
            features = signature_features(trust.mlmodel_read(local))
            pipeline = trust.skops_load(skops_file)
        except (trust.ModelFormatRefused, trust.UntrustedModel) as exc:
            raise ModelImportError(f"{source} cannot be registered: {exc}") from exc
        artifact_sha = trust.manifest_sha256(files)
        task = _task_of(pipeline, task)

        frame = _reference_read(reference_csv, display_name=reference_name, features=features)
        numeric = [n for n, kind in features.items() if kind == NUMERIC]
        categorical = [n for n, kind in features.items() if kind == CATEGORICAL]
        x = frame_coerce(frame[list(features)], numeric=numeric, categorical=categorical)[list(features)]
        has_target = target in frame.columns
        y = frame[target] if has_target else pd.Series(dtype=object, name=target)
        data = TrainingData(
            features=x, target=y.rename(target), task=task, numeric=numeric, categorical=categorical, dropped=[]
        )
        try:
            schema_changes = training_schema_check(name=name, data=data, allow_schema_change=allow_schema_change)
        except TrainingInputError as exc:
            raise ModelImportError(str(exc)) from exc
        reference_sha = frame_sha256(frame)
        fingerprint = hashlib.sha256(
            json.dumps(
                {"artifact": artifact_sha, "reference": reference_sha, "target": target, "task": task, "name": name},
                sort_keys=True,
            ).encode()
        ).hexdigest()
        existing = ModelVersion.objects.filter(name=name, fingerprint=fingerprint).first()
        if existing is not None:
            return ImportResult(model_version=existing, reused_existing=True)

        try:
            predictions = pd.Series(pipeline.predict(x), index=x.index)
        except Exception as exc:  # the model's own code fails on its reference: nothing to serve
            raise ModelImportError(f"The model cannot score {reference_name}: {type(exc).__name__}: {exc}") from exc
        classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
        if task == "classification":
            predictions = predictions.astype(str)
        metrics = {}
        if has_target:
            labelled = frame[target].notna()
            try:
                metrics, _ = _metrics(task, pipeline, x[labelled], frame.loc[labelled, target])
            except Exception as exc:  # labels the model does not know, say: recorded without metrics
                logger.warning("%s: no metrics on the reference: %s", name, exc)
        profile = profile_build(
            features=x, target=target, task=task, classes=classes, reference_predictions=predictions
        )
        params = {
            "target": target,
            "task": task,
            "source": reference_name,
            "imported_from": source[:500],
            "n_features": len(features),
            "numeric_features": ",".join(numeric),
            "categorical_features": ",".join(categorical),
            "n_reference_rows": len(frame),
            "reference_sha256": reference_sha,
            "artifact_sha256": artifact_sha,
        }

        mlflow_access.tracking_configure()
        client = mlflow_access.client()
        with mlflow.start_run(experiment_id=mlflow_access.experiment_id_get(), run_name=f"{name}-import") as run:
            mlflow.set_tags(
                {
                    "mlapp.model_name": name,
                    "mlapp.fingerprint": fingerprint,
                    "mlapp.created_by": actor_label,
                    "mlapp.imported_from": source[:5000],
                }
            )
            if schema_changes:
                mlflow.set_tag("mlapp.schema_change_confirmed", "; ".join(schema_changes)[:5000])
            mlflow.log_params(params)
            if metrics:
                mlflow.log_metrics(metrics)
            mlflow.log_dict(profile, "profile.json")
            mlflow.log_artifacts(str(local), artifact_path="model")
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(name)
        version = int(
            client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
        )

    try:
        recorded = trust.artifact_record_fields(artifact_uri=trust.version_artifact_uri(name=name, version=version))
        if recorded["artifact_sha256"] != artifact_sha:
            raise ModelImportError(f"{source}: the files stored in MLflow differ from the ones checked")
        model_version = _model_version_record(
            **recorded,
            origin="imported",
            name=name,
            version=version,
            run_id=run.info.run_id,
            task=task,
            target=target,
            estimator=type(getattr(pipeline, "steps", [(None, pipeline)])[-1][1]).__name__,
            metrics=metrics,
            params=params,
            training_data_sha256=reference_sha,
            test_data_sha256="",
            fingerprint=fingerprint,
            source_name=reference_name[:255],
            n_train_rows=len(frame),
            n_test_rows=0,
            profile=profile,
            created_by=actor,
            created_by_label=actor_label,
        )
    except Exception:
        _registration_undo(name=name, version=version, run_id=run.info.run_id)
        raise
    try:
        model_version_smoke_test(name=name, version=version)
    except ApplicationError as exc:
        ModelVersion.objects.filter(pk=model_version.pk).delete()
        _registration_undo(name=name, version=version, run_id=run.info.run_id)
        raise ModelImportError(f"{source} was not registered: {exc}") from exc
    logger.info("Imported %s as %s version %s (run %s)", source, name, version, run.info.run_id)
    return ImportResult(model_version=model_version, reused_existing=False)
