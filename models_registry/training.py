"""Training from any CSV: read, check, infer types, fit, log to MLflow, register.

`model_train` is the one entry point; the `train` command, the staff training
page (through a Celery task) and the bootstrap all call it. Every check on the
input runs before anything is written to MLflow or to our database.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from django.db import transaction
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from core.errors import ApplicationError

from . import mlflow_access, trust
from .comparison import ModelSchema, SchemaChangeRefusal, schema_differences
from .csv_reader import CsvReadError, csv_frame_read
from .features import frame_coerce, nul_rows
from .models import ModelVersion
from .profile import CATEGORICAL, NUMERIC, infer_feature_kind, profile_build
from .selectors import production_version_get

logger = logging.getLogger(__name__)

MIN_TRAINING_ROWS = 10
MIN_ROWS_PER_CLASS = 2
TEST_SHARE = 0.2
SPLIT_SEED = 42
# A numeric target with at most this many distinct integer values is a class label.
MAX_CLASSES_FOR_NUMERIC_TARGET = 10
# Text columns with more distinct values than this share of rows are identifiers, not features.
MAX_CATEGORY_SHARE = 0.5
MIN_ID_LIKE_DISTINCT = 50
TRAINING_CONFIG = {
    "estimator": "HistGradientBoosting",
    "max_iter": 200,
    "learning_rate": 0.1,
    "random_state": 0,
    "test_share": TEST_SHARE,
    "split_seed": SPLIT_SEED,
}

Progress = Callable[[int, str], None]


class TrainingInputError(ApplicationError, ValueError):
    """The CSV, target or task cannot be trained on; the message says why."""


class SchemaChangeNotConfirmed(SchemaChangeRefusal, TrainingInputError):
    """The new version would answer another question or take other inputs than production."""


@dataclass(frozen=True)
class TrainingResult:
    model_version: ModelVersion
    reused_existing: bool


def frame_sha256(frame: pd.DataFrame) -> str:
    """A hash of the whole content (MLflow's dataset digest reads only 10,000 rows)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def training_csv_read(source: str | Path | io.IOBase, *, display_name: str | None = None) -> pd.DataFrame:
    """Read a training CSV (`csv_reader`, as every path reads one), turning every way it can be
    unreadable into a clear error."""
    name = display_name or (str(source) if isinstance(source, (str, Path)) else "upload")
    try:
        frame = csv_frame_read(source)
    except FileNotFoundError as exc:
        raise TrainingInputError(f"{name}: no such file") from exc
    except CsvReadError as exc:
        message = str(exc)
        if message.startswith("empty file"):
            raise TrainingInputError(f"{name} is empty: expected a CSV with a header row and data rows") from exc
        if message.startswith("no header row"):
            raise TrainingInputError(f"{name} has no header row") from exc
        raise TrainingInputError(
            f"{name} is {message}" if message.startswith("not ") else f"{name}: {message}"
        ) from exc
    if frame.shape[1] < 2:
        raise TrainingInputError(
            f"{name} has {frame.shape[1]} column: expected a CSV with a target and at least one feature"
        )
    if frame.empty:
        raise TrainingInputError(f"{name} has a header but no data rows")
    _nul_check(frame, name)
    return frame


def _nul_check(frame: pd.DataFrame, name: str) -> None:
    """A NUL character cannot be stored in the profile (PostgreSQL's jsonb refuses it):
    refuse the file before anything is logged, naming where the first one is."""
    for column in frame.columns:
        if "\x00" in str(column):
            raise TrainingInputError(f"{name}: a column name contains a NUL character (\\u0000)")
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind in "biufcmM":
            continue
        has_nul = nul_rows(values)
        if has_nul.any():
            data_row = int(has_nul.argmax()) + 1
            raise TrainingInputError(f"{name}: column {column!r} has a NUL character (\\u0000) in data row {data_row}")


def task_infer(target: pd.Series) -> str:
    values = target.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classification"
    as_float = values.astype(float)
    if (as_float % 1 == 0).all() and values.nunique() <= MAX_CLASSES_FOR_NUMERIC_TARGET:
        return "classification"
    return "regression"


def _target_check(frame: pd.DataFrame, target: str, task: str | None, name: str) -> tuple[pd.DataFrame, str]:
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise TrainingInputError(f"{name} has no column {target!r}; its columns are: {columns}")
    frame = frame[frame[target].notna()]
    if len(frame) < MIN_TRAINING_ROWS:
        raise TrainingInputError(
            f"{name} has {len(frame)} row(s) with a value in {target!r}: "
            f"at least {MIN_TRAINING_ROWS} are needed to train and test a model"
        )
    if frame[target].nunique() < 2:
        raise TrainingInputError(
            f"Target {target!r} is constant ({frame[target].iloc[0]!r} in every row): nothing to learn"
        )
    if task is None or task == "":
        task = task_infer(frame[target])
    if task not in ("classification", "regression"):
        raise TrainingInputError(f"Unknown task {task!r}: choose classification or regression")
    if task == "regression" and not pd.api.types.is_numeric_dtype(frame[target]):
        raise TrainingInputError(f"Target {target!r} is not numeric: regression needs numbers")
    if task == "classification":
        counts = frame[target].astype(str).value_counts()
        if len(counts) < 2:
            raise TrainingInputError(f"Target {target!r} has a single class: classification needs two or more")
    return frame, task


def _features_select(frame: pd.DataFrame, target: str) -> tuple[list[str], list[str]]:
    """Features to train on, and the columns left out (with why, for the run's params)."""
    kept, dropped = [], []
    for column in frame.columns:
        if column == target:
            continue
        values = frame[column]
        if values.isna().all():
            dropped.append(f"{column} (empty)")
            continue
        distinct = values.nunique()
        if distinct <= 1:
            dropped.append(f"{column} (constant)")
            continue
        if (
            infer_feature_kind(values) == CATEGORICAL
            and distinct >= MIN_ID_LIKE_DISTINCT
            and distinct > MAX_CATEGORY_SHARE * len(values)
        ):
            dropped.append(f"{column} (identifier-like: {distinct} distinct values)")
            continue
        kept.append(str(column))
    if not kept:
        raise TrainingInputError(f"No usable feature columns besides {target!r}: {', '.join(dropped)}")
    return kept, dropped


def pipeline_build(*, task: str, numeric: list[str], categorical: list[str]) -> Pipeline:
    transformers = []
    if numeric:
        # HistGradientBoosting handles missing numbers natively.
        transformers.append(("numeric", "passthrough", numeric))
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                        (
                            "encode",
                            OneHotEncoder(handle_unknown="ignore", min_frequency=5, sparse_output=False),
                        ),
                    ]
                ),
                categorical,
            )
        )
    estimator_class = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    estimator = estimator_class(
        max_iter=TRAINING_CONFIG["max_iter"],
        learning_rate=TRAINING_CONFIG["learning_rate"],
        random_state=TRAINING_CONFIG["random_state"],
    )
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("model", estimator)])


def _metrics(task: str, pipeline: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> tuple[dict, pd.Series]:
    predicted = pd.Series(pipeline.predict(x_test), index=x_test.index)
    if task == "regression":
        return (
            {
                "rmse": float(root_mean_squared_error(y_test, predicted)),
                "mae": float(mean_absolute_error(y_test, predicted)),
                "r2": float(r2_score(y_test, predicted)),
            },
            predicted,
        )
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1": float(
            f1_score(
                y_test,
                predicted,
                average="binary" if len(pipeline.classes_) == 2 else "macro",
                pos_label=pipeline.classes_[-1] if len(pipeline.classes_) == 2 else 1,
            )
        ),
    }
    if y_test.nunique() == len(pipeline.classes_):
        probabilities = pipeline.predict_proba(x_test)
        if len(pipeline.classes_) == 2:
            metrics["roc_auc"] = float(roc_auc_score(y_test == pipeline.classes_[1], probabilities[:, 1]))
        else:
            metrics["roc_auc"] = float(
                roc_auc_score(y_test, probabilities, multi_class="ovr", labels=list(pipeline.classes_))
            )
    return metrics, predicted


@dataclass(frozen=True)
class TrainingData:
    features: pd.DataFrame
    target: pd.Series
    task: str
    numeric: list[str]
    categorical: list[str]
    dropped: list[str]

    @property
    def schema(self) -> ModelSchema:
        kinds = dict.fromkeys(self.numeric, NUMERIC) | dict.fromkeys(self.categorical, CATEGORICAL)
        return ModelSchema(task=self.task, target=str(self.target.name), features=kinds)


def training_data_prepare(
    *, csv: str | Path | io.IOBase, target: str, task: str | None, source_name: str
) -> TrainingData:
    """Read and check a training CSV; raises TrainingInputError naming the problem."""
    frame = training_csv_read(csv, display_name=source_name)
    frame, task = _target_check(frame, target, task, source_name)
    feature_columns, dropped = _features_select(frame, target)
    numeric = [c for c in feature_columns if infer_feature_kind(frame[c]) == NUMERIC]
    categorical = [c for c in feature_columns if c not in numeric]
    y = frame[target].astype(str) if task == "classification" else frame[target].astype(float)
    x = frame_coerce(frame[feature_columns], numeric=numeric, categorical=categorical)
    return TrainingData(
        features=x[numeric + categorical],
        target=y,
        task=task,
        numeric=numeric,
        categorical=categorical,
        dropped=dropped,
    )


def training_schema_check(*, name: str, data: TrainingData, allow_schema_change: bool = False) -> list[str]:
    """How a version of `name` trained on `data` would differ from its production version.

    Raises SchemaChangeNotConfirmed, listing the differences, unless `allow_schema_change`.
    Cheap (no fitting): run before training, and before queueing a training.
    """
    production = production_version_get(name)
    if production is None:
        return []
    differences = schema_differences(
        ModelSchema.of_profile(production.profile),
        data.schema,
        current_label=f"production (v{production.version})",
        candidate_label="the new version",
    )
    if differences and not allow_schema_change:
        raise SchemaChangeNotConfirmed(
            f"A version of {name} trained on this data would not be a drop-in replacement for its production "
            f"version {production.version}: {'; '.join(differences)}. Nothing was registered; confirm the "
            "schema change to register it anyway.",
            differences=differences,
        )
    return differences


@transaction.atomic
def _model_version_record(**fields) -> ModelVersion:
    return ModelVersion.objects.create(**fields)


def _registration_undo(*, name: str, version: int, run_id: str) -> None:
    """Our record of a version could not be written: take the version back out of the
    registry (and the registered model, if this was its only version) and mark the run
    failed, so no version exists that mlapp does not know."""
    logger.exception("Recording %s version %s failed; removing it from the registry", name, version)
    client = mlflow_access.client()
    try:
        client.delete_model_version(name, str(version))
        if not client.search_model_versions(f"name='{name}'"):
            client.delete_registered_model(name)
        client.set_terminated(run_id, status="FAILED")
    except Exception:  # the registry is failing too: say what is left behind
        logger.exception("Could not remove %s version %s (run %s) from the registry", name, version, run_id)


def model_train(
    *,
    csv: str | Path | io.IOBase,
    target: str,
    name: str,
    task: str | None = None,
    actor=None,
    actor_label: str = "",
    source_name: str | None = None,
    progress: Progress | None = None,
    allow_schema_change: bool = False,
) -> TrainingResult:
    """Train a model on a CSV and register it as a new version of `name`.

    Idempotent: the same data, target, task and config as an existing version of
    `name` returns that version instead of registering a copy. A version whose task,
    target or features differ from `name`'s production version is refused (before
    fitting) unless `allow_schema_change`.
    """
    report = progress or (lambda percent, stage: None)
    source_name = source_name or (Path(csv).name if isinstance(csv, (str, Path)) else "upload.csv")
    report(5, "reading the CSV")
    data = training_data_prepare(csv=csv, target=target, task=task, source_name=source_name)
    x, y, task = data.features, data.target, data.task
    numeric, categorical, dropped = data.numeric, data.categorical, data.dropped
    feature_columns = numeric + categorical
    schema_changes = training_schema_check(name=name, data=data, allow_schema_change=allow_schema_change)

    data_sha = frame_sha256(pd.concat([x, y.rename(target)], axis=1))
    fingerprint = hashlib.sha256(
        json.dumps(
            {"data": data_sha, "target": target, "task": task, "config": TRAINING_CONFIG, "name": name},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    existing = ModelVersion.objects.filter(name=name, fingerprint=fingerprint).first()
    if existing is not None:
        report(100, f"same data and config as version {existing.version}: reused")
        return TrainingResult(model_version=existing, reused_existing=True)

    stratify = None
    if task == "classification" and y.value_counts().min() >= MIN_ROWS_PER_CLASS:
        stratify = y
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SHARE, random_state=SPLIT_SEED, stratify=stratify
    )
    report(20, f"training on {len(x_train)} rows, testing on {len(x_test)}")
    pipeline = pipeline_build(task=task, numeric=numeric, categorical=categorical)
    started = time.perf_counter()
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    metrics, test_predictions = _metrics(task, pipeline, x_test, y_test)
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None

    report(55, "profiling the training data")
    profile = profile_build(
        features=x_train,
        target=target,
        task=task,
        classes=classes,
        reference_predictions=test_predictions,
    )
    train_sha = frame_sha256(pd.concat([x_train, y_train.rename(target)], axis=1))
    test_sha = frame_sha256(pd.concat([x_test, y_test.rename(target)], axis=1))
    params = {
        "target": target,
        "task": task,
        "source": source_name,
        "n_features": len(feature_columns),
        "numeric_features": ",".join(numeric),
        "categorical_features": ",".join(categorical),
        "dropped_columns": "; ".join(dropped),
        "n_train_rows": len(x_train),
        "n_test_rows": len(x_test),
        "data_sha256": data_sha,
        "train_sha256": train_sha,
        "test_sha256": test_sha,
        **{f"config.{k}": v for k, v in TRAINING_CONFIG.items()},
    }

    report(70, "logging to MLflow")
    mlflow_access.tracking_configure()
    with mlflow.start_run(experiment_id=mlflow_access.experiment_id_get(), run_name=f"{name}-train") as run:
        mlflow.set_tags(
            {
                "mlapp.model_name": name,
                "mlapp.fingerprint": fingerprint,
                "mlapp.created_by": actor_label or getattr(actor, "username", ""),
            }
        )
        if schema_changes:
            mlflow.set_tag("mlapp.schema_change_confirmed", "; ".join(schema_changes)[:5000])
        mlflow.log_params(params)
        mlflow.log_metrics({**metrics, "fit_seconds": fit_seconds})
        train_frame = pd.concat([x_train, y_train.rename(target)], axis=1)
        mlflow.log_input(
            mlflow.data.from_pandas(train_frame, name=f"{source_name}:train", targets=target),
            context="training",
        )
        mlflow.log_dict(profile, "profile.json")
        signature = infer_signature(x_train.head(50), pipeline.predict(x_train.head(50)))
        model_info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=x_train.head(3),
            registered_model_name=name,
            skops_trusted_types=mlflow_access.SKOPS_TRUSTED_TYPES,
            # Stated, not inferred: MLflow's inference spawns a Python subprocess (~5 s per model).
            pip_requirements=mlflow_access.serving_requirements(),
        )
    version = int(model_info.registered_model_version)
    report(95, f"registered {name} version {version}")

    try:
        model_version = _model_version_record(
            **trust.artifact_record_fields(artifact_uri=trust.version_artifact_uri(name=name, version=version)),
            name=name,
            version=version,
            run_id=run.info.run_id,
            task=task,
            target=target,
            estimator=type(pipeline.named_steps["model"]).__name__,
            metrics=metrics,
            params=params,
            training_data_sha256=train_sha,
            test_data_sha256=test_sha,
            fingerprint=fingerprint,
            source_name=source_name,
            n_train_rows=len(x_train),
            n_test_rows=len(x_test),
            profile=profile,
            created_by=actor,
            created_by_label=actor_label or getattr(actor, "username", ""),
        )
    except Exception:
        _registration_undo(name=name, version=version, run_id=run.info.run_id)
        raise
    logger.info("Registered %s version %s (run %s): %s", name, version, run.info.run_id, metrics)
    report(100, f"registered {name} version {version}")
    return TrainingResult(model_version=model_version, reused_existing=False)
