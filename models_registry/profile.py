"""The training profile: one source of truth about a model's inputs.

Built once at training time from the training split and stored with the model
version (as the MLflow artifact ``profile.json`` and in ``ModelVersion.profile``).
The prediction form, API validation, ingestion validation and the drift
reference all read it; nothing re-reads the training set.

Every reader goes through `TrainingProfile.read` (or `profile_read`), which checks
``schema_version`` first: a version this code does not know (a profile written by
a newer mlapp) is refused with a `ProfileSchemaError` naming it, never half-read.
A stored profile without ``schema_version`` is read as version 1 (the layout has
not changed since the key was added). A new layout bumps `SCHEMA_VERSION` and
adds a reader for the old one, so stored profiles keep loading.

Format (``schema_version`` 1)::

    {
      "schema_version": 1,
      "target": "churned",
      "task": "classification" | "regression",
      "classes": ["no", "yes"] | null,          # classification only, as strings
      "n_rows": 4000,                           # rows in the training split
      "features": [
        {"name": "age", "kind": "numeric", "dtype": "integer" | "float",
         "min": 18.0, "max": 90.0, "mean": 44.1, "std": 14.2,
         "quantiles": {"0.01": .., "0.05": .., "0.25": .., "0.5": .., "0.75": .., "0.95": .., "0.99": ..},
         "missing_share": 0.0,
         "histogram": {"edges": [...11 floats], "counts": [...10 ints]}},
        {"name": "plan", "kind": "categorical",
         "categories": {"basic": 0.61, "premium": 0.39},   # share of non-missing rows
         "missing_share": 0.01},
        {"name": "signup", "kind": "datetime",             # ISO 8601 text in, parts derived (dates.py)
         "parts": ["year", "month", "day", "dayofweek"],   # + "hour", "minute" when training had times
         "first": "2021-01-04", "last": "2024-11-30", "missing_share": 0.0}
      ],
      "reference_sample": {"age": [...], "plan": [...]},   # <= REFERENCE_SAMPLE_ROWS rows, None for missing
      "prediction_reference": {                           # model output on the test split
        "kind": "categorical", "categories": {"no": 0.8, "yes": 0.2}, "n": 1000   # classification
        | "kind": "numeric", "min": .., "max": .., "mean": .., "std": .., "quantiles": {..},
          "histogram": {..}, "sample": [...]                               # regression
      }
    }
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .dates import DATE_PARTS, DATETIME, TIME_PARTS, date_parse

SCHEMA_VERSION = 1
REFERENCE_SAMPLE_ROWS = 5000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 10
# A numeric column with at most this many distinct values and a non-float dtype
# is still numeric; strings and booleans are categorical.
NUMERIC = "numeric"
CATEGORICAL = "categorical"


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def numeric_summary(values: pd.Series) -> dict:
    """Summary statistics of a numeric column (missing values ignored)."""
    present = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    if present.empty:
        return {"min": None, "max": None, "mean": None, "std": None, "quantiles": {}, "histogram": None}
    counts, edges = np.histogram(present.to_numpy(), bins=HISTOGRAM_BINS)
    return {
        "min": _finite_or_none(present.min()),
        "max": _finite_or_none(present.max()),
        "mean": _finite_or_none(present.mean()),
        "std": _finite_or_none(present.std(ddof=0)),
        "quantiles": {str(q): _finite_or_none(present.quantile(q)) for q in QUANTILES},
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def category_shares(values: pd.Series) -> dict[str, float]:
    present = values.dropna().astype(str)
    if present.empty:
        return {}
    shares = present.value_counts(normalize=True, sort=True)
    return {str(k): float(v) for k, v in shares.items()}


def infer_feature_kind(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values):
        return CATEGORICAL
    if pd.api.types.is_numeric_dtype(values):
        return NUMERIC
    return CATEGORICAL


def _json_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if pd.isna(value):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return _finite_or_none(value)
    if isinstance(value, (np.bool_, bool)):
        return str(bool(value))
    return value


def _date_range(column: pd.Series) -> tuple[str | None, str | None]:
    parsed = [date_parse(v) for v in pd.unique(column.dropna())]
    parsed = [p for p in parsed if p is not None]
    if not parsed:
        return None, None
    first, last = min(parsed), max(parsed)
    if any(p.hour or p.minute or p.second for p in parsed):
        return first.isoformat(sep=" ", timespec="minutes"), last.isoformat(sep=" ", timespec="minutes")
    return first.date().isoformat(), last.date().isoformat()


def profile_build(
    *,
    features: pd.DataFrame,
    target: str,
    task: str,
    classes: list[str] | None,
    reference_predictions: pd.Series,
    seed: int = 0,
    dates: Mapping[str, tuple[str, ...]] | None = None,
) -> dict:
    """Profile the training split ``features`` (target column excluded).

    ``dates``: the date columns (text) and the parts the model derives from each."""
    dates = dates or {}
    feature_profiles = []
    for name in features.columns:
        column = features[name]
        kind = DATETIME if name in dates else infer_feature_kind(column)
        entry: dict = {
            "name": str(name),
            "kind": kind,
            "missing_share": float(column.isna().mean()),
        }
        if kind == DATETIME:
            entry["parts"] = list(dates[name])
            entry["first"], entry["last"] = _date_range(column)
        elif kind == NUMERIC:
            is_integer = pd.api.types.is_integer_dtype(column) or bool(
                column.dropna().astype(float).apply(float.is_integer).all()
            )
            entry["dtype"] = "integer" if is_integer else "float"
            entry.update(numeric_summary(column))
        else:
            entry["categories"] = category_shares(column)
        feature_profiles.append(entry)

    n_sample = min(REFERENCE_SAMPLE_ROWS, len(features))
    sample = features.sample(n=n_sample, random_state=seed) if n_sample < len(features) else features
    reference_sample = {str(name): [_json_value(v) for v in sample[name].tolist()] for name in features.columns}

    if task == "classification":
        prediction_reference = {
            "kind": CATEGORICAL,
            "categories": category_shares(reference_predictions.astype(str)),
            "n": int(len(reference_predictions)),  # lets the drift test weigh the reference's own noise
        }
    else:
        preds = reference_predictions.astype(float)
        n_pred = min(REFERENCE_SAMPLE_ROWS, len(preds))
        prediction_reference = {
            "kind": NUMERIC,
            **numeric_summary(preds),
            "sample": [float(v) for v in preds.sample(n=n_pred, random_state=seed).tolist()],
        }

    return {
        "schema_version": SCHEMA_VERSION,
        "target": target,
        "task": task,
        "classes": classes,
        "n_rows": int(len(features)),
        "features": feature_profiles,
        "reference_sample": reference_sample,
        "prediction_reference": prediction_reference,
    }


class ProfileSchemaError(ValueError):
    """A stored profile this code cannot read: refused whole, never half-read."""


# Versions of the stored format this code reads. A profile stored without
# ``schema_version`` predates the key and has the version 1 layout: read as 1.
READABLE_SCHEMA_VERSIONS = frozenset({1})
KINDS = (NUMERIC, CATEGORICAL, DATETIME)
DATE_PART_NAMES = DATE_PARTS + TIME_PARTS
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of the profile, typed: what a caller needs to build an input or check one value."""

    name: str
    kind: str
    dtype: str | None
    minimum: float | None
    maximum: float | None
    categories: tuple[str, ...]  # most frequent first
    missing_share: float
    median: float | None = None
    category_shares: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)
    quantiles: Mapping[str, float | None] = field(default_factory=dict, compare=False, repr=False)
    parts: tuple[str, ...] = ()  # a datetime feature: the parts the model derives from it
    first: str | None = None  # a datetime feature: its earliest and latest training value
    last: str | None = None

    @property
    def is_numeric(self) -> bool:
        return self.kind == NUMERIC

    @property
    def is_datetime(self) -> bool:
        return self.kind == DATETIME

    @property
    def is_categorical(self) -> bool:
        return self.kind == CATEGORICAL

    @property
    def is_integer(self) -> bool:
        return self.kind == NUMERIC and self.dtype == "integer"

    @property
    def missing_in_training(self) -> bool:
        return self.missing_share > 0


def categories_by_share(feature: Mapping) -> list[tuple[str, float]]:
    """A categorical feature's categories, most frequent first (ties by name).

    Sorted on read: a profile stored in PostgreSQL's jsonb does not keep key order.
    """
    return sorted((feature.get("categories") or {}).items(), key=lambda item: (-item[1], item[0]))


def _number_or_none(entry: Mapping, key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileSchemaError(f"{where}: {key!r} is {value!r}, expected a number or null")
    return float(value)


def _feature_read(entry, index: int) -> FeatureSpec:
    where = f"training profile feature #{index}"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise ProfileSchemaError(f"{where}: expected an object with a non-empty text 'name'")
    where = f"training profile feature {entry['name']!r}"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ProfileSchemaError(f"{where}: unknown kind {kind!r} (expected {', '.join(map(repr, KINDS))})")
    parts = entry.get("parts") or []
    if kind == DATETIME and (
        not isinstance(parts, list) or not parts or any(part not in DATE_PART_NAMES for part in parts)
    ):
        raise ProfileSchemaError(f"{where}: a datetime feature needs 'parts' from {', '.join(DATE_PART_NAMES)}")
    dtype = entry.get("dtype")
    if dtype not in (None, "integer", "float"):
        raise ProfileSchemaError(f"{where}: unknown dtype {dtype!r} (expected 'integer' or 'float')")
    shares = entry.get("categories") or {}
    if not isinstance(shares, Mapping):
        raise ProfileSchemaError(f"{where}: 'categories' must be an object of category shares")
    quantiles = entry.get("quantiles") or {}
    return FeatureSpec(
        name=entry["name"],
        kind=kind,
        dtype=dtype,
        minimum=_number_or_none(entry, "min", where),
        maximum=_number_or_none(entry, "max", where),
        categories=tuple(category for category, _ in categories_by_share(entry)),
        missing_share=_number_or_none(entry, "missing_share", where) or 0.0,
        median=quantiles.get("0.5"),
        category_shares=dict(shares),
        quantiles=dict(quantiles),
        parts=tuple(parts) if kind == DATETIME else (),
        first=entry.get("first") if kind == DATETIME else None,
        last=entry.get("last") if kind == DATETIME else None,
    )


@dataclass(frozen=True)
class TrainingProfile:
    """A stored training profile, read through one door (`TrainingProfile.read`).

    The stored JSON (``ModelVersion.profile``, MLflow's ``profile.json``) keeps its
    format; this class checks ``schema_version`` and the shape of every feature when
    it reads one, and refuses an unknown version or a malformed feature with a
    `ProfileSchemaError` that names it. The stored dict stays available as ``data``
    for the parts that pass it on unchanged (the drift statistics' reference sample).
    """

    schema_version: int
    task: str | None
    target: str | None
    classes: tuple[str, ...] | None
    n_rows: int
    features: tuple[FeatureSpec, ...]
    reference_sample: Mapping[str, list] = field(repr=False)
    prediction_reference: Mapping = field(repr=False)
    data: Mapping = field(repr=False, compare=False)

    @classmethod
    def read(cls, data: TrainingProfile | Mapping) -> TrainingProfile:
        """The typed profile of a stored one (a typed one is returned as it is)."""
        if isinstance(data, TrainingProfile):
            return data
        if not isinstance(data, Mapping):
            raise ProfileSchemaError(f"a training profile is a JSON object, got {type(data).__name__}")
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or version not in READABLE_SCHEMA_VERSIONS:
            readable = ", ".join(str(v) for v in sorted(READABLE_SCHEMA_VERSIONS))
            raise ProfileSchemaError(
                f"training profile schema_version {version!r} is not supported: this mlapp reads version {readable}"
                " (a profile written by a newer mlapp; upgrade, or retrain the model with this one)"
            )
        features = data.get("features")
        if not isinstance(features, list) or not features:
            raise ProfileSchemaError("training profile has no 'features' list")
        specs = tuple(_feature_read(entry, i) for i, entry in enumerate(features))
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ProfileSchemaError(f"training profile names a feature twice: {names}")
        task = data.get("task")
        if task is not None and task not in TASKS:
            raise ProfileSchemaError(f"training profile task {task!r} is unknown (expected {' or '.join(TASKS)})")
        classes = data.get("classes")
        return cls(
            schema_version=int(version),
            task=task,
            target=data.get("target"),
            classes=tuple(str(c) for c in classes) if classes else None,
            n_rows=int(data.get("n_rows") or 0),
            features=specs,
            reference_sample=data.get("reference_sample") or {},
            prediction_reference=data.get("prediction_reference") or {},
            data=data,
        )

    @cached_property
    def specs(self) -> dict[str, FeatureSpec]:
        return {spec.name: spec for spec in self.features}

    @cached_property
    def feature_names(self) -> list[str]:
        return [spec.name for spec in self.features]

    @cached_property
    def numeric_names(self) -> list[str]:
        return [spec.name for spec in self.features if spec.is_numeric]

    @cached_property
    def categorical_names(self) -> list[str]:
        """Features the model takes as text: categories, and dates (read into parts by the pipeline)."""
        return [spec.name for spec in self.features if not spec.is_numeric]

    @cached_property
    def datetime_names(self) -> list[str]:
        return [spec.name for spec in self.features if spec.is_datetime]

    def to_dict(self) -> dict:
        """The stored JSON, unchanged."""
        return dict(self.data)


def profile_read(profile: TrainingProfile | Mapping) -> TrainingProfile:
    return TrainingProfile.read(profile)


def feature_specs(profile: TrainingProfile | Mapping) -> list[FeatureSpec]:
    return list(profile_read(profile).features)


def feature_names(profile: TrainingProfile | Mapping) -> list[str]:
    return profile_read(profile).feature_names
