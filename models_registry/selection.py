"""Model selection: a small fixed set of candidates, compared by cross-validation on the training split.

The trainer (`training.model_train`) never looks at the test split to choose: each
candidate is cross-validated on the training split (stratified folds for a
classifier), the one with the best mean score is refit on the whole training
split and evaluated once on the test split.

Candidates, in order (the first is the default, and wins ties):

- ``hist_gradient_boosting``: HistGradientBoosting (200 iterations), numbers as
  they are (it handles missing values), categories one-hot encoded;
- ``linear``: LogisticRegression (C=1) or Ridge (alpha=1) on standardised numbers
  (missing ones filled with the median) and one-hot categories;
- ``random_forest``: a random forest (100 trees, leaves of at least 2 rows) on
  median-filled numbers and one-hot categories.

Date columns enter every candidate as their parts (`dates.DateParts`).

The metric: accuracy for a classifier whose classes are balanced (the smallest
has at least half the rows of the largest), macro-F1 when they are not; RMSE for
a regressor. Folds: 5, or 3 when the training split has fewer than
`FEW_ROWS` rows (small files train quickly; the test suite's fixtures are such).

`MLAPP_TRAIN_CANDIDATES` restricts the set (in order); with a single candidate there
is nothing to compare and no cross-validation (the test suite's fixtures train so,
`tests/conftest.py`; `tests/models_registry/test_selection.py` runs the real selection).

Cost is bounded: cross-validation runs on at most `MLAPP_TRAIN_SELECTION_MAX_ROWS`
rows of the training split (a stratified sample; the winner is still refit on all
of it), and once `MLAPP_TRAIN_SELECTION_SECONDS` have gone by, the candidates not
yet finished are skipped and said so (the first candidate always finishes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.conf import settings
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, root_mean_squared_error
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .dates import DATE_PARTS, DateParts

SEED = 0
FOLDS = 5
FEW_ROWS = 2000
FEW_ROWS_FOLDS = 3
BALANCED_RATIO = 0.5  # smallest class / largest class at or above this: accuracy; below: macro-F1
DEFAULT_BUDGET_SECONDS = 300
DEFAULT_MAX_ROWS = 50_000

HGB = "hist_gradient_boosting"
LINEAR = "linear"
FOREST = "random_forest"
HGB_ITERATIONS = 200

CANDIDATE_CONFIG = {
    HGB: {"max_iter": HGB_ITERATIONS, "learning_rate": 0.1},
    LINEAR: {"C (classification)": 1.0, "alpha (regression)": 1.0},
    FOREST: {"n_estimators": 100, "min_samples_leaf": 2},
}


def _categorical_step() -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
            ("encode", OneHotEncoder(handle_unknown="ignore", min_frequency=5, sparse_output=False)),
        ]
    )


def _columns(
    *, numeric: list[str], categorical: list[str], dates: dict[str, tuple[str, ...]], number_steps: list
) -> ColumnTransformer:
    """numbers (through ``number_steps``, or as they are), date parts (likewise), one-hot categories."""
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(number_steps) if number_steps else "passthrough", numeric))
    by_parts: dict[tuple[str, ...], list[str]] = {}
    for column, parts in dates.items():
        by_parts.setdefault(tuple(parts), []).append(column)
    for index, (parts, columns) in enumerate(by_parts.items()):
        steps = [("parts", DateParts(parts=parts)), *number_steps]
        transformers.append(
            (f"dates{index}" if index else "dates", Pipeline(steps) if number_steps else steps[0][1], columns)
        )
    if categorical:
        transformers.append(("categorical", _categorical_step(), categorical))
    return ColumnTransformer(transformers)


def _hgb(task: str) -> object:
    cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    return cls(max_iter=HGB_ITERATIONS, learning_rate=0.1, random_state=SEED)


def _impute_scale() -> list:
    return [("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("scale", StandardScaler())]


def _impute() -> list:
    return [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]


@dataclass(frozen=True)
class Candidate:
    name: str
    label: str
    build: Callable[..., Pipeline]


def _build_hgb(*, task, numeric, categorical, dates):
    columns = _columns(numeric=numeric, categorical=categorical, dates=dates, number_steps=[])
    return Pipeline([("preprocess", columns), ("model", _hgb(task))])


def _build_linear(*, task, numeric, categorical, dates):
    columns = _columns(numeric=numeric, categorical=categorical, dates=dates, number_steps=_impute_scale())
    model = LogisticRegression(C=1.0, max_iter=2000) if task == "classification" else Ridge(alpha=1.0)
    return Pipeline([("preprocess", columns), ("model", model)])


def _build_forest(*, task, numeric, categorical, dates):
    columns = _columns(numeric=numeric, categorical=categorical, dates=dates, number_steps=_impute())
    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    model = cls(n_estimators=100, min_samples_leaf=2, random_state=SEED, n_jobs=1)
    return Pipeline([("preprocess", columns), ("model", model)])


CANDIDATES: tuple[Candidate, ...] = (
    Candidate(HGB, "HistGradientBoosting", _build_hgb),
    Candidate(LINEAR, "Linear (logistic regression / ridge)", _build_linear),
    Candidate(FOREST, "Random forest", _build_forest),
)
BY_NAME = {candidate.name: candidate for candidate in CANDIDATES}


def candidate_pipeline(
    name: str, *, task: str, numeric: list[str], categorical: list[str], dates: dict | None = None
) -> Pipeline:
    return BY_NAME[name].build(task=task, numeric=numeric, categorical=categorical, dates=dict(dates or {}))


# --------------------------------------------------------------------------- the metric


@dataclass(frozen=True)
class Metric:
    name: str  # "accuracy" | "f1_macro" | "rmse"
    why: str
    greater_is_better: bool

    def score(self, y_true, y_pred) -> float:
        if self.name == "accuracy":
            return float(accuracy_score(y_true, y_pred))
        if self.name == "f1_macro":
            return float(f1_score(y_true, y_pred, average="macro"))
        return float(root_mean_squared_error(y_true, y_pred))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.greater_is_better else a < b


def metric_choose(task: str, y: pd.Series) -> Metric:
    if task == "regression":
        return Metric("rmse", "regression: root mean squared error (lower is better)", False)
    counts = y.value_counts()
    ratio = float(counts.min() / counts.max())
    if ratio >= BALANCED_RATIO:
        return Metric("accuracy", f"classes balanced (smallest/largest class {ratio:.2f} >= {BALANCED_RATIO})", True)
    return Metric("f1_macro", f"classes unbalanced (smallest/largest class {ratio:.2f} < {BALANCED_RATIO})", True)


# --------------------------------------------------------------------------- cross-validation


def _folds(task: str, y: pd.Series):
    n_splits = FOLDS if len(y) >= FEW_ROWS else FEW_ROWS_FOLDS
    if task == "classification":
        smallest = int(y.value_counts().min())
        if smallest >= 2:
            return StratifiedKFold(n_splits=min(n_splits, smallest), shuffle=True, random_state=SEED)
    return KFold(n_splits=n_splits, shuffle=True, random_state=SEED)


def _sample(task: str, x: pd.DataFrame, y: pd.Series, max_rows: int) -> tuple[pd.DataFrame, pd.Series]:
    if len(y) <= max_rows:
        return x, y
    stratify = y if task == "classification" and y.value_counts().min() >= 2 else None
    x_sample, _, y_sample, _ = train_test_split(x, y, train_size=max_rows, random_state=SEED, stratify=stratify)
    return x_sample, y_sample


@dataclass
class Selection:
    metric: Metric
    chosen: str
    reason: str
    candidates: list[dict]
    folds: int
    rows: int
    rows_in_training_split: int
    budget_seconds: float
    seconds: float
    # The chosen candidate's predictions on each cross-validation row, made by the fold that held the row
    # out (None when nothing was cross-validated): out-of-sample answers the output's drift reference adds
    # to the test split's (models_registry/training.py).
    out_of_fold: pd.Series | None = None

    def as_dict(self) -> dict:
        return {
            "metric": self.metric.name,
            "metric_why": self.metric.why,
            "chosen": self.chosen,
            "chosen_label": BY_NAME[self.chosen].label,
            "reason": self.reason,
            "folds": self.folds,
            "rows": self.rows,
            "rows_in_training_split": self.rows_in_training_split,
            "budget_seconds": self.budget_seconds,
            "seconds": round(self.seconds, 3),
            "candidates": self.candidates,
        }


def model_select(
    *,
    task: str,
    x: pd.DataFrame,
    y: pd.Series,
    numeric: list[str],
    categorical: list[str],
    dates: dict | None = None,
    candidates: tuple[str, ...] | None = None,
    budget_seconds: float | None = None,
    max_rows: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Selection:
    """Cross-validate the candidates on (x, y), the training split; the best mean score wins."""
    budget = float(budget_seconds if budget_seconds is not None else setting("MLAPP_TRAIN_SELECTION_SECONDS"))
    rows_cap = int(max_rows if max_rows is not None else setting("MLAPP_TRAIN_SELECTION_MAX_ROWS"))
    names = tuple(candidates or setting("MLAPP_TRAIN_CANDIDATES"))
    metric = metric_choose(task, y)
    if len(names) == 1:
        entry = {"name": names[0], "label": BY_NAME[names[0]].label, "fold_scores": [], "seconds": 0.0}
        entry.update(status="only candidate", note="MLAPP_TRAIN_CANDIDATES names one candidate: nothing to compare")
        return Selection(
            metric=metric,
            chosen=names[0],
            reason=f"{entry['label']} is the only candidate configured (MLAPP_TRAIN_CANDIDATES): not cross-validated.",
            candidates=[entry],
            folds=0,
            rows=0,
            rows_in_training_split=len(y),
            budget_seconds=budget,
            seconds=0.0,
        )
    x_cv, y_cv = _sample(task, x, y, rows_cap)
    splitter = _folds(task, y_cv)
    splits = list(splitter.split(x_cv, y_cv))
    started = clock()
    results: list[dict] = []
    out_of_fold: dict[str, list[pd.Series]] = {}
    for index, name in enumerate(names):
        entry = {"name": name, "label": BY_NAME[name].label, "fold_scores": [], "seconds": 0.0}
        results.append(entry)
        out_of_fold[name] = []
        candidate_started = clock()
        for train_index, test_index in splits:
            if index > 0 and clock() - started > budget:
                entry["status"] = "skipped"
                entry["note"] = f"time budget of {budget:g} s used up after {clock() - started:.1f} s"
                break
            pipeline = candidate_pipeline(name, task=task, numeric=numeric, categorical=categorical, dates=dates)
            pipeline.fit(x_cv.iloc[train_index], y_cv.iloc[train_index])
            predicted = pipeline.predict(x_cv.iloc[test_index])
            entry["fold_scores"].append(round(metric.score(y_cv.iloc[test_index], predicted), 6))
            out_of_fold[name].append(pd.Series(predicted, index=x_cv.index[test_index]))
        else:
            entry["status"] = "scored"
        entry["seconds"] = round(clock() - candidate_started, 3)
        if entry["status"] == "scored":
            scores = np.asarray(entry["fold_scores"])
            entry["cv_mean"] = round(float(scores.mean()), 6)
            entry["cv_std"] = round(float(scores.std(ddof=0)), 6)
        else:
            entry["fold_scores"] = []
    scored = [entry for entry in results if entry["status"] == "scored"]
    best = scored[0]
    for entry in scored[1:]:
        if metric.better(entry["cv_mean"], best["cv_mean"]):
            best = entry
    return Selection(
        metric=metric,
        chosen=best["name"],
        reason=_reason(metric, best, scored, results, len(splits)),
        candidates=results,
        folds=len(splits),
        rows=len(y_cv),
        rows_in_training_split=len(y),
        budget_seconds=budget,
        seconds=clock() - started,
        out_of_fold=pd.concat(out_of_fold[best["name"]]).sort_index(),
    )


def _reason(metric: Metric, best: dict, scored: list[dict], results: list[dict], folds: int) -> str:
    direction = "highest" if metric.greater_is_better else "lowest"
    others = [f"{e['label']} {e['cv_mean']:.4f}" for e in scored if e is not best]
    text = (
        f"{best['label']} had the {direction} mean {metric.name} over {folds} cross-validation folds of the "
        f"training split: {best['cv_mean']:.4f} ± {best['cv_std']:.4f}"
    )
    if others:
        text += f" (vs {', '.join(others)})"
    elif len(scored) == 1:
        text += " (the only candidate scored)"
    skipped = [e["label"] for e in results if e["status"] != "scored"]
    if skipped:
        text += f"; not tried within the time budget: {', '.join(skipped)}"
    return text + "."


def configured_candidates() -> tuple[str, ...]:
    return tuple(setting("MLAPP_TRAIN_CANDIDATES"))


def setting(name: str):
    defaults = {
        "MLAPP_TRAIN_SELECTION_SECONDS": DEFAULT_BUDGET_SECONDS,
        "MLAPP_TRAIN_SELECTION_MAX_ROWS": DEFAULT_MAX_ROWS,
        "MLAPP_TRAIN_CANDIDATES": tuple(c.name for c in CANDIDATES),
    }
    return getattr(settings, name, defaults[name])


__all__ = ["CANDIDATES", "DATE_PARTS", "Metric", "Selection", "candidate_pipeline", "metric_choose", "model_select"]
