"""Training from any CSV: read, check, infer types, choose a model, fit, log to MLflow, register.

`model_train` is the one entry point; the `train` command, the staff training
page (through a Celery task) and the bootstrap all call it. Every check on the
input runs before anything is written to MLflow or to our database.

What the data handling did is reported, never silent: rows dropped for a missing
target and every column left out (empty, constant, identifier-like text, a number
that only counts the rows), with counts, and date columns turned into their parts
(`dates.py`). The report is in the run (param ``data_report``, artifact
``data_report.json``), on the version page, the training job page and in the
`train` command's output. Which model is trained is chosen by cross-validation
on the training split (`selection.py`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from django.db import transaction
from mlflow.models import infer_signature
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

from core.errors import ApplicationError

from . import mlflow_access, selection, trust
from .comparison import ModelSchema, SchemaChangeRefusal, schema_differences
from .csv_reader import CsvReadError, csv_frame_read, delimiter_name
from .dates import DATETIME, is_date_column, parts_for
from .features import frame_coerce, nul_rows
from .models import ModelVersion
from .profile import CATEGORICAL, NUMERIC, infer_feature_kind, profile_build
from .reports import data_report_lines
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
# An integer column is a row number when it has no gaps and no repeats (a permutation of
# start..start+n-1) over at least this many rows.
MIN_ROW_NUMBER_ROWS = 20
TRAINING_CONFIG = {
    "estimator": "selected by cross-validation",
    "candidates": ",".join(c.name for c in selection.CANDIDATES),
    "candidate_config": json.dumps(selection.CANDIDATE_CONFIG, sort_keys=True),
    "random_state": selection.SEED,
    "test_share": TEST_SHARE,
    "split_seed": SPLIT_SEED,
}

Progress = Callable[[int, str], None]


def training_config() -> dict:
    """The settings a training depends on (in the fingerprint and the run's params)."""
    return {
        **TRAINING_CONFIG,
        "candidates": ",".join(selection.configured_candidates()),
        "selection_max_rows": selection.setting("MLAPP_TRAIN_SELECTION_MAX_ROWS"),
    }


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
        seen = delimiter_name(frame.attrs.get("csv_delimiter", ","))
        raise TrainingInputError(
            f"{name} has {frame.shape[1]} column (read with the delimiter {seen}; none of comma, semicolon, tab or "
            "pipe splits its header): expected a CSV with a target and at least one feature"
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
    rows_read = len(frame)
    frame = frame[frame[target].notna()]
    if len(frame) < MIN_TRAINING_ROWS:
        without = rows_read - len(frame)
        raise TrainingInputError(
            f"{name} has {len(frame)} row(s) with a value in {target!r}"
            + (f" ({without} of {rows_read} have none)" if without else "")
            + f": at least {MIN_TRAINING_ROWS} are needed to train and test a model"
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


def is_row_number(values: pd.Series) -> bool:
    """Whole numbers, none missing, none repeated, no gaps: the column numbers the rows (an index, a rank
    in file order, a shuffled id 1..n), which says nothing about the target."""
    if len(values) < MIN_ROW_NUMBER_ROWS or values.isna().any() or not pd.api.types.is_numeric_dtype(values):
        return False
    if pd.api.types.is_bool_dtype(values):
        return False
    numbers = values.to_numpy(dtype=float)
    if not np.all(np.mod(numbers, 1) == 0):
        return False
    return numbers.max() - numbers.min() == len(numbers) - 1 and len(np.unique(numbers)) == len(numbers)


def _features_select(
    frame: pd.DataFrame, target: str, *, row_numbers: dict[str, str] | None = None
) -> tuple[list[str], list[dict], dict[str, tuple[str, ...]]]:
    """Features to train on, the columns left out (column, reason), and the date columns with their parts."""
    kept, dropped, dates = [], [], {}
    row_numbers = row_numbers or {}
    for column in frame.columns:
        if column == target:
            continue
        values = frame[column]
        if values.isna().all():
            dropped.append({"column": str(column), "reason": "empty"})
            continue
        distinct = values.nunique()
        if distinct <= 1:
            dropped.append({"column": str(column), "reason": "constant"})
            continue
        if column in row_numbers:
            dropped.append({"column": str(column), "reason": row_numbers[column]})
            continue
        if infer_feature_kind(values) == CATEGORICAL:
            is_date, has_time = is_date_column(values)
            if is_date:
                dates[str(column)] = parts_for(has_time)
                kept.append(str(column))
                continue
        if (
            infer_feature_kind(values) == CATEGORICAL
            and distinct >= MIN_ID_LIKE_DISTINCT
            and distinct > MAX_CATEGORY_SHARE * len(values)
        ):
            dropped.append({"column": str(column), "reason": f"identifier-like: {distinct} distinct values"})
            continue
        kept.append(str(column))
    if not kept:
        left_out = ", ".join(f"{d['column']} ({d['reason']})" for d in dropped)
        raise TrainingInputError(f"No usable feature columns besides {target!r}: {left_out}")
    return kept, dropped, dates


def pipeline_build(
    *, task: str, numeric: list[str], categorical: list[str], dates: dict | None = None, candidate: str = selection.HGB
) -> Pipeline:
    """One candidate's unfitted pipeline (default: the HistGradientBoosting one)."""
    return selection.candidate_pipeline(candidate, task=task, numeric=numeric, categorical=categorical, dates=dates)


def output_reference(task: str, test_predictions: pd.Series, out_of_fold: pd.Series | None) -> pd.Series:
    """What the model's output is compared with for drift: its answers on rows it never learned from.

    Classifiers: the test split's answers plus the model selection's out-of-fold answers on the
    training split (each row answered by the fold that held it out). The test split alone is a fifth
    of the data (1,000 rows for 5,000), and a fixed reference that small is off by its own sampling
    luck for every later check: the worst of 12 churn models fired on 43 % of calm 1,000-row windows,
    6.1 % on average with both, 16.7 % at worst (bench/prediction_drift_calibration.py).
    Regressors keep the test split: the fold models' values are spread slightly differently from the
    final model's, and KS on 1,000-row windows sees it (false alarms 2.8 % -> 6.4 % in the same bench).
    """
    if task != "classification" or out_of_fold is None or out_of_fold.empty:
        return test_predictions
    return pd.concat([test_predictions.reset_index(drop=True), out_of_fold.reset_index(drop=True)], ignore_index=True)


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
    categorical: list[str]  # text features the model one-hot encodes
    dropped: list[str]  # columns left out, "name (why)"
    dates: dict[str, tuple[str, ...]] = field(default_factory=dict)  # date columns (text) -> derived parts
    left_out: tuple[dict, ...] = ()  # the same columns as {"column", "reason"}
    rows_read: int = 0
    rows_without_target: int = 0
    delimiter: str = ","

    @property
    def text_features(self) -> list[str]:
        """Features the model takes as text: categories, then dates."""
        return self.categorical + list(self.dates)

    @property
    def schema(self) -> ModelSchema:
        kinds = (
            dict.fromkeys(self.numeric, NUMERIC)
            | dict.fromkeys(self.categorical, CATEGORICAL)
            | dict.fromkeys(self.dates, DATETIME)
        )
        return ModelSchema(task=self.task, target=str(self.target.name), features=kinds)

    def report(self) -> dict:
        """What was read, dropped and derived: for the run, the pages and the command's output."""
        left_out = [dict(entry) for entry in self.left_out] or [{"column": text, "reason": ""} for text in self.dropped]
        return {
            "rows_read": self.rows_read,
            "rows_without_target": self.rows_without_target,
            "rows_used": len(self.target),
            "delimiter": self.delimiter,
            "columns_left_out": left_out,
            "date_features": {name: list(parts) for name, parts in self.dates.items()},
        }


def training_data_prepare(
    *, csv: str | Path | io.IOBase, target: str, task: str | None, source_name: str
) -> TrainingData:
    """Read and check a training CSV; raises TrainingInputError naming the problem."""
    frame = training_csv_read(csv, display_name=source_name)
    rows_read = len(frame)
    # Row numbers are judged on the file as read (before rows without a target go).
    row_numbers = {
        c: f"numbers the rows ({frame[c].min():g}..{frame[c].max():g}, each once)"
        for c in frame.columns
        if c != target and is_row_number(frame[c])
    }
    frame, task = _target_check(frame, target, task, source_name)
    feature_columns, left_out, dates = _features_select(frame, target, row_numbers=row_numbers)
    numeric = [c for c in feature_columns if infer_feature_kind(frame[c]) == NUMERIC]
    categorical = [c for c in feature_columns if c not in numeric and c not in dates]
    y = frame[target].astype(str) if task == "classification" else frame[target].astype(float)
    x = frame_coerce(frame[feature_columns], numeric=numeric, categorical=categorical + list(dates))
    return TrainingData(
        features=x[numeric + categorical + list(dates)],
        target=y,
        task=task,
        numeric=numeric,
        categorical=categorical,
        dropped=[f"{d['column']} ({d['reason']})" for d in left_out],
        dates=dates,
        left_out=tuple(left_out),
        rows_read=rows_read,
        rows_without_target=rows_read - len(frame),
        delimiter=frame.attrs.get("csv_delimiter", ","),
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
            {"data": data_sha, "target": target, "task": task, "config": training_config(), "name": name},
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
    dates = data.dates
    report(
        15, f"choosing a model: cross-validating {', '.join(selection.configured_candidates())} on {len(x_train)} rows"
    )
    chosen = selection.model_select(
        task=task, x=x_train, y=y_train, numeric=numeric, categorical=categorical, dates=dates
    )
    report(45, f"training {chosen.chosen} on {len(x_train)} rows, testing on {len(x_test)}")
    pipeline = pipeline_build(task=task, numeric=numeric, categorical=categorical, dates=dates, candidate=chosen.chosen)
    started = time.perf_counter()
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    metrics, test_predictions = _metrics(task, pipeline, x_test, y_test)
    metrics.setdefault(chosen.metric.name, chosen.metric.score(y_test, test_predictions))
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
    selection_record = chosen.as_dict()
    data_report = data.report()

    report(55, "profiling the training data")
    profile = profile_build(
        features=x_train,
        target=target,
        task=task,
        classes=classes,
        reference_predictions=output_reference(task, test_predictions, chosen.out_of_fold),
        dates=dates,
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
        "date_features": ",".join(f"{name}:{'+'.join(parts)}" for name, parts in dates.items()),
        "dropped_columns": "; ".join(dropped),
        "n_rows_read": data.rows_read,
        "n_rows_without_target": data.rows_without_target,
        "n_columns_left_out": len(dropped),
        "csv_delimiter": delimiter_name(data.delimiter),
        "n_train_rows": len(x_train),
        "n_test_rows": len(x_test),
        "data_sha256": data_sha,
        "train_sha256": train_sha,
        "test_sha256": test_sha,
        "selection.metric": chosen.metric.name,
        "selection.chosen": chosen.chosen,
        "selection.folds": chosen.folds,
        "selection.rows": chosen.rows,
        "selection.budget_seconds": chosen.budget_seconds,
        **{f"config.{k}": v for k, v in training_config().items()},
    }
    cv_metrics = {}
    for entry in chosen.candidates:
        cv_metrics[f"cv_seconds.{entry['name']}"] = entry["seconds"]
        if entry["status"] == "scored":
            cv_metrics[f"cv_{chosen.metric.name}.{entry['name']}"] = entry["cv_mean"]
            cv_metrics[f"cv_{chosen.metric.name}_std.{entry['name']}"] = entry["cv_std"]

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
        mlflow.set_tag("mlapp.selection", chosen.reason[:5000])
        mlflow.set_tag("mlapp.data_report", "; ".join(data_report_lines(data_report, target=target))[:5000])
        mlflow.log_params(params)
        mlflow.log_metrics({**metrics, **cv_metrics, "fit_seconds": fit_seconds, "selection_seconds": chosen.seconds})
        mlflow.log_dict(selection_record, "selection.json")
        mlflow.log_dict(data_report, "data_report.json")
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
            params={**params, "selection": selection_record, "data_report": data_report},
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
