"""A fast path for scoring a few rows: the fitted pipeline re-expressed in numpy.

scikit-learn spends ~3 ms on a one-row DataFrame, almost all of it in per-call
overhead (ColumnTransformer indexing, input checks, one Python call per boosting
iteration), not in arithmetic. Serving one request at a time is exactly that
case, so for the pipelines mlapp trains we build, once per loaded version:

- numeric columns passed through: copied straight into the feature matrix;
- numeric columns imputed and scaled (`SimpleImputer`, `StandardScaler`) and date
  columns turned into their parts (`dates.DateParts`, then the same steps): the
  fitted statistics applied per column, the date parts by the pipeline's own function;
- categorical columns (imputer + one-hot encoder, or any encoder that treats
  columns independently): a lookup table per column, made by running the
  *fitted transformer itself* on every known category, on a missing value and on
  an unseen one, so the encoding is scikit-learn's, not a re-implementation;
- a HistGradientBoosting model: its trees as flat node arrays, walked for all
  trees at once, summed in scikit-learn's order, through the model's own link;
- a linear model (`LogisticRegression`, `Ridge`): one matrix product, then the
  logistic or softmax function for probabilities.

Other models (the random forest the trainer may choose) have no fast path: they
are served by scikit-learn, which `row_scorer_build` says by returning None.

A compiled scorer is only used after it reproduced the pipeline's output on the
training profile's reference sample and on edge rows (every category, missing
and unseen values, out-of-range numbers); anything else, or any disagreement,
keeps the version on the plain scikit-learn path. Large batches always take that
path (its vectorised code wins there).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit, softmax
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from .dates import DateParts, date_parts_row
from .features import frame_for_model
from .profile import CATEGORICAL, DATETIME, NUMERIC, TrainingProfile, profile_read

logger = logging.getLogger(__name__)

# Above this many rows the scikit-learn path is as fast or faster.
MAX_ROWS = 64
# A category value no training set contains: probes what the encoder does with unseen values.
_UNSEEN = "\x00mlapp-unseen\x00"
_VERIFY_SAMPLE_ROWS = 500


class NotCompilable(Exception):
    """The pipeline has a step the fast path does not cover; it is served by scikit-learn."""


@dataclass(frozen=True)
class _CategoricalBlock:
    """One categorical transformer's output columns, as base row + per-column deltas."""

    columns: tuple[str, ...]
    output: slice
    base: np.ndarray
    deltas: tuple[dict, ...]  # per column: category (str) or None -> delta vector
    unseen: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class _ColumnsBlock:
    """Numeric or date columns through per-column steps: date parts, then fill and scale."""

    columns: tuple[str, ...]
    output: slice
    parts: tuple[str, ...] | None  # date columns: the parts of each; None: numbers
    steps: tuple[tuple[str, np.ndarray | None, np.ndarray | None], ...]  # ("fill", values) / ("scale", mean, scale)

    def values(self, records: list[dict]) -> np.ndarray:
        if self.parts is None:
            x = np.array([[record[name] for name in self.columns] for record in records], dtype=float)
        else:
            x = np.array(
                [[p for name in self.columns for p in date_parts_row(record[name], self.parts)] for record in records],
                dtype=float,
            ).reshape(len(records), len(self.columns) * len(self.parts))
        for step, first, second in self.steps:
            if step == "fill":
                x = np.where(np.isnan(x), first, x)
            else:
                if first is not None:
                    x = x - first
                if second is not None:
                    x = x / second
        return x


@dataclass(frozen=True)
class _Linear:
    """A fitted linear model: decision = X @ coef.T + intercept."""

    coef: np.ndarray  # (n_outputs, width)
    intercept: np.ndarray  # (n_outputs,)


@dataclass(frozen=True)
class _Forest:
    """All trees of a HistGradientBoosting model in flat arrays (node ids global)."""

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray  # a leaf points at itself, so walking past it stays on it
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray  # per tree, ordered (iteration, output)
    depth: int
    n_iterations: int
    n_outputs: int
    baseline: np.ndarray  # (n_outputs,)


@dataclass(frozen=True)
class RowScorer:
    task: str
    numeric_columns: tuple[str, ...]
    numeric_output: np.ndarray  # output column of each numeric feature
    categorical: tuple[_CategoricalBlock, ...]
    width: int
    forest: _Forest | None
    model: object = field(repr=False)  # for its link function (sigmoid/softmax/identity)
    classes: tuple[str, ...] | None = None
    columns_blocks: tuple[_ColumnsBlock, ...] = ()
    linear: _Linear | None = None

    def features_matrix(self, records: list[dict]) -> np.ndarray:
        matrix = np.empty((len(records), self.width))
        if self.numeric_columns:
            numbers = np.array(
                [[record[name] for name in self.numeric_columns] for record in records], dtype=float
            )  # None -> nan, which the trees route as missing
            matrix[:, self.numeric_output] = numbers
        for block in self.categorical:
            for i, record in enumerate(records):
                row = block.base.copy()
                for column, deltas, unseen in zip(block.columns, block.deltas, block.unseen, strict=True):
                    row += deltas.get(_category_key(record[column]), unseen)
                matrix[i, block.output] = row
        for block in self.columns_blocks:
            matrix[:, block.output] = block.values(records)
        return matrix

    def raw_predict(self, matrix: np.ndarray) -> np.ndarray:
        """Sum of leaf values per row and output, like HistGradientBoosting's `_raw_predict`."""
        forest = self.forest
        rows = np.arange(len(matrix))[:, None]
        node = np.broadcast_to(forest.roots, (len(matrix), len(forest.roots)))
        for _ in range(forest.depth):
            x = matrix[rows, forest.feature[node]]
            go_left = np.where(np.isnan(x), forest.missing_left[node], x <= forest.threshold[node])
            node = np.where(go_left, forest.left[node], forest.right[node])
        leaves = forest.value[node].reshape(len(matrix), forest.n_iterations, forest.n_outputs)
        # Added one iteration at a time after the baseline, as scikit-learn does, so
        # the sums round the same way.
        terms = np.concatenate([np.broadcast_to(forest.baseline, (len(matrix), 1, forest.n_outputs)), leaves], axis=1)
        return np.cumsum(terms, axis=1)[:, -1, :]

    def predict(self, records: list[dict]) -> tuple[np.ndarray | None, np.ndarray]:
        """(probabilities, labels) for classification; (None, values) for regression."""
        if self.linear is not None:
            return self._linear_predict(self.features_matrix(records))
        raw = self.raw_predict(self.features_matrix(records))
        if self.task == "regression":
            return None, np.asarray(self.model._loss.link.inverse(raw.ravel()), dtype=float)
        probabilities = self.model._loss.predict_proba(raw)
        return probabilities, np.asarray(self.classes, dtype=object)[probabilities.argmax(axis=1)]

    def _linear_predict(self, matrix: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        decision = matrix @ self.linear.coef.T + self.linear.intercept  # as scikit-learn's safe_sparse_dot
        if self.task == "regression":
            return None, np.asarray(decision.ravel(), dtype=float)
        if decision.shape[1] == 1:
            positive = expit(decision.ravel())
            probabilities = np.vstack([1 - positive, positive]).T
        else:
            probabilities = softmax(decision, axis=1)
        return probabilities, np.asarray(self.classes, dtype=object)[probabilities.argmax(axis=1)]


def _category_key(value):
    """The category as the pipeline sees it (see `features.frame_coerce`)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


def row_scorer_build(pipeline, profile: TrainingProfile | dict) -> RowScorer | None:
    """A verified fast scorer for `pipeline`, or None when it must stay on scikit-learn."""
    profile = profile_read(profile)
    try:
        scorer = _compile(pipeline, profile)
    except NotCompilable as exc:
        logger.info("Fast row scoring off for this model: %s", exc)
        return None
    except Exception:  # private scikit-learn attributes moved (an upgrade): serve through scikit-learn
        logger.warning("Fast row scoring off for this model: cannot read the fitted pipeline", exc_info=True)
        return None
    mismatch = _disagreement(scorer, pipeline, profile)
    if mismatch:
        logger.warning("Fast row scoring off for this model: it disagrees with scikit-learn (%s)", mismatch)
        return None
    return scorer


def _compile(pipeline, profile: TrainingProfile) -> RowScorer:
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise NotCompilable("not a two-step (preprocess, model) pipeline")
    preprocess, model = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(preprocess, ColumnTransformer):
        raise NotCompilable(f"preprocessing is {type(preprocess).__name__}, not a ColumnTransformer")
    if not isinstance(
        model, (HistGradientBoostingClassifier, HistGradientBoostingRegressor, LogisticRegression, Ridge)
    ):
        raise NotCompilable(f"model is {type(model).__name__}")
    kinds = {spec.name: spec.kind for spec in profile.features}
    width = 0
    numeric_columns, numeric_output, blocks, columns_blocks = [], [], [], []
    for name, transformer, columns in preprocess.transformers_:
        output = preprocess.output_indices_[name]
        width = max(width, output.stop)
        if transformer == "drop" or output.stop == output.start:
            continue
        columns = list(columns)
        if any(not isinstance(c, str) or c not in kinds for c in columns):
            raise NotCompilable(f"transformer {name!r} selects columns not named in the profile")
        # A fitted ColumnTransformer holds "passthrough" as an identity FunctionTransformer.
        if transformer == "passthrough" or (isinstance(transformer, FunctionTransformer) and transformer.func is None):
            if any(kinds[c] != NUMERIC for c in columns):
                raise NotCompilable(f"passthrough {name!r} carries non-numeric columns")
            numeric_columns += columns
            numeric_output += range(output.start, output.stop)
            continue
        column_kinds = {kinds[c] for c in columns}
        if column_kinds <= {NUMERIC} or column_kinds <= {DATETIME}:
            columns_blocks.append(_columns_block(transformer, columns, output, profile))
            continue
        if column_kinds != {CATEGORICAL}:
            raise NotCompilable(f"transformer {name!r} ({type(transformer).__name__}) mixes kinds of columns")
        blocks.append(_categorical_block(transformer, columns, output, profile))
    classes = tuple(str(c) for c in model.classes_) if hasattr(model, "classes_") else None
    linear = isinstance(model, (LogisticRegression, Ridge))
    return RowScorer(
        task="classification" if classes is not None else "regression",
        numeric_columns=tuple(numeric_columns),
        numeric_output=np.array(numeric_output, dtype=np.intp),
        categorical=tuple(blocks),
        width=width,
        forest=None if linear else _forest(model),
        model=model,
        classes=classes,
        columns_blocks=tuple(columns_blocks),
        linear=_linear(model, width) if linear else None,
    )


def _columns_block(transformer, columns: list[str], output: slice, profile: TrainingProfile) -> _ColumnsBlock:
    steps = transformer.steps if isinstance(transformer, Pipeline) else [(None, transformer)]
    parts = None
    compiled = []
    for index, (_, step) in enumerate(steps):
        if isinstance(step, DateParts) and index == 0:
            parts = tuple(step.parts)
        elif isinstance(step, SimpleImputer) and not step.add_indicator:
            compiled.append(("fill", np.asarray(step.statistics_, dtype=float), None))
        elif isinstance(step, StandardScaler):
            mean = np.asarray(step.mean_, dtype=float) if step.with_mean else None
            scale = np.asarray(step.scale_, dtype=float) if step.with_std else None
            compiled.append(("scale", mean, scale))
        else:
            raise NotCompilable(f"column step {type(step).__name__} has no fast path")
    if parts is None and any(profile.specs[c].is_datetime for c in columns):
        raise NotCompilable("date columns without a DateParts step")
    block = _ColumnsBlock(columns=tuple(columns), output=output, parts=parts, steps=tuple(compiled))
    width = len(columns) * (len(parts) if parts else 1)
    if width != output.stop - output.start:
        raise NotCompilable(f"column block width {width} is not its slice's")
    return block


def _linear(model, width: int) -> _Linear:
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=float))
    if coef.shape[1] != width:
        raise NotCompilable(f"linear model takes {coef.shape[1]} inputs, the preprocessing gives {width}")
    return _Linear(coef=coef, intercept=np.atleast_1d(np.asarray(model.intercept_, dtype=float)))


def _known_categories(transformer, columns: list[str], profile: TrainingProfile) -> list[list]:
    """Per column: what the encoder learned (`categories_`) and what the profile saw."""
    steps = transformer.steps if isinstance(transformer, Pipeline) else [(None, transformer)]
    learned = next((step.categories_ for _, step in steps if hasattr(step, "categories_")), None)
    known = []
    for j, column in enumerate(columns):
        values = [str(v) for v in (learned[j] if learned is not None else [])]
        values += list(profile.specs[column].categories)
        known.append(list(dict.fromkeys([None, *values])))
    return known


def _categorical_block(transformer, columns: list[str], output: slice, profile: TrainingProfile) -> _CategoricalBlock:
    known = _known_categories(transformer, columns, profile)
    base = [values[0] for values in known]
    probes, where = [base], []
    for j, values in enumerate(known):
        for value in [*values, _UNSEEN]:
            probe = list(base)
            probe[j] = value
            where.append((j, value, len(probes)))
            probes.append(probe)
    encoded = transformer.transform(pd.DataFrame(probes, columns=columns, dtype=object))
    if hasattr(encoded, "toarray"):
        encoded = encoded.toarray()
    encoded = np.asarray(encoded, dtype=float)
    if encoded.shape[1] != output.stop - output.start:
        raise NotCompilable(f"transformer output width {encoded.shape[1]} is not its slice's")
    deltas = [{} for _ in columns]
    unseen = [None] * len(columns)
    for j, value, row in where:
        delta = encoded[row] - encoded[0]
        if value == _UNSEEN:
            unseen[j] = delta
        else:
            deltas[j][value] = delta
    return _CategoricalBlock(
        columns=tuple(columns), output=output, base=encoded[0], deltas=tuple(deltas), unseen=tuple(unseen)
    )


def _forest(model) -> _Forest:
    predictors = model._predictors  # list (iterations) of lists (outputs) of TreePredictor
    n_iterations, n_outputs = len(predictors), len(predictors[0])
    trees = [predictor.nodes for iteration in predictors for predictor in iteration]
    if any(tree["is_categorical"].any() for tree in trees):
        raise NotCompilable("native categorical splits")
    sizes = np.array([len(tree) for tree in trees])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    nodes = np.concatenate(trees)
    offset_per_node = np.repeat(offsets, sizes)
    node_ids = np.arange(len(nodes))
    is_leaf = nodes["is_leaf"].astype(bool)
    return _Forest(
        feature=np.where(is_leaf, 0, nodes["feature_idx"]).astype(np.intp),
        threshold=nodes["num_threshold"].astype(float),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=np.where(is_leaf, node_ids, nodes["left"] + offset_per_node).astype(np.intp),
        right=np.where(is_leaf, node_ids, nodes["right"] + offset_per_node).astype(np.intp),
        value=nodes["value"].astype(float),
        roots=offsets.astype(np.intp),
        depth=int(nodes["depth"].max()),
        n_iterations=n_iterations,
        n_outputs=n_outputs,
        baseline=np.asarray(model._baseline_prediction, dtype=float).reshape(n_outputs),
    )


def _verification_records(profile: TrainingProfile) -> list[dict]:
    """The reference sample plus edge rows: each category, missing, unseen, out of range."""
    names = profile.feature_names
    sample = profile.reference_sample
    n_sample = min(_VERIFY_SAMPLE_ROWS, min((len(sample.get(n, [])) for n in names), default=0))
    records = [{n: sample[n][i] for n in names} for i in range(n_sample)]
    base = records[0] if records else dict.fromkeys(names)
    for spec in profile.features:
        name = spec.name
        if spec.kind == NUMERIC:
            low, high = spec.minimum, spec.maximum
            edges = [None, float("nan")] + ([low - 1, low, high, high + 1] if low is not None else [])
        elif spec.is_datetime:
            edges = [None, spec.first, spec.last, "2000-02-29", "2100-12-31 23:59", "not a date"]
        else:
            edges = [None, _UNSEEN, *spec.category_shares]
        records += [{**base, name: value} for value in edges]
    return records


def _disagreement(scorer: RowScorer, pipeline, profile: TrainingProfile) -> str | None:
    records = _verification_records(profile)
    frame = frame_for_model(pd.DataFrame.from_records(records, columns=profile.feature_names), profile)
    try:
        probabilities, outputs = scorer.predict(records)
    except Exception as exc:  # a broken fast path must never take serving down
        return f"{type(exc).__name__}: {exc}"
    try:
        return _compare(scorer, pipeline, frame, probabilities, outputs)
    except ValueError as exc:  # scikit-learn refuses an edge row (a missing value it cannot take)
        return f"scikit-learn cannot score the verification rows ({str(exc).splitlines()[0]})"


def _compare(scorer: RowScorer, pipeline, frame: pd.DataFrame, probabilities, outputs) -> str | None:
    if scorer.task == "regression":
        expected = np.asarray(pipeline.predict(frame), dtype=float)
        if not np.allclose(outputs, expected, rtol=1e-9, atol=1e-12):
            return f"largest value difference {np.max(np.abs(outputs - expected)):.3g}"
        return None
    expected = pipeline.predict_proba(frame)
    if probabilities.shape != expected.shape or not np.allclose(probabilities, expected, rtol=1e-9, atol=1e-12):
        return "probabilities differ"
    if list(outputs) != [str(c) for c in pipeline.predict(frame)]:
        return "labels differ"
    return None
