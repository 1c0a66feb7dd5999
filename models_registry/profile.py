"""The training profile: one source of truth about a model's inputs.

Built once at training time from the training split and stored with the model
version (as the MLflow artifact ``profile.json`` and in ``ModelVersion.profile``).
The prediction form, API validation, ingestion validation and the drift
reference all read it; nothing re-reads the training set.

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
         "missing_share": 0.01}
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
from dataclasses import dataclass

import numpy as np
import pandas as pd

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


def profile_build(
    *,
    features: pd.DataFrame,
    target: str,
    task: str,
    classes: list[str] | None,
    reference_predictions: pd.Series,
    seed: int = 0,
) -> dict:
    """Profile the training split ``features`` (target column excluded)."""
    feature_profiles = []
    for name in features.columns:
        column = features[name]
        kind = infer_feature_kind(column)
        entry: dict = {
            "name": str(name),
            "kind": kind,
            "missing_share": float(column.isna().mean()),
        }
        if kind == NUMERIC:
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


@dataclass(frozen=True)
class FeatureSpec:
    """What a caller needs to build an input or check one value."""

    name: str
    kind: str
    dtype: str | None
    minimum: float | None
    maximum: float | None
    categories: tuple[str, ...]  # most frequent first
    missing_share: float
    median: float | None = None


def categories_by_share(feature: dict) -> list[tuple[str, float]]:
    """A categorical feature's categories, most frequent first (ties by name).

    Sorted on read: a profile stored in PostgreSQL's jsonb does not keep key order.
    """
    return sorted(feature.get("categories", {}).items(), key=lambda item: (-item[1], item[0]))


def feature_specs(profile: dict) -> list[FeatureSpec]:
    return [
        FeatureSpec(
            name=f["name"],
            kind=f["kind"],
            dtype=f.get("dtype"),
            minimum=f.get("min"),
            maximum=f.get("max"),
            categories=tuple(category for category, _ in categories_by_share(f)),
            missing_share=f.get("missing_share", 0.0),
            median=(f.get("quantiles") or {}).get("0.5"),
        )
        for f in profile["features"]
    ]


def feature_names(profile: dict) -> list[str]:
    return [f["name"] for f in profile["features"]]
