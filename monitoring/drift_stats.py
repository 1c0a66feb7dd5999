"""Drift statistics: a window of served values against a model's training profile.

Pure numpy/scipy, no Django and no database: the service that stores drift
reports calls :func:`drift_compute` and saves ``DriftResult.to_dict()``.

Per feature (and for the model's predictions):

- numeric: two-sample Kolmogorov-Smirnov against the profile's
  ``reference_sample``; Wasserstein distance divided by the reference standard
  deviation (floored at 0.001, as Evidently does); PSI over ten bins cut at the
  reference deciles.
- categorical: chi-square on category counts, Jensen-Shannon distance (base 2)
  and PSI against the profile's category shares. Categories the reference never
  saw are pooled into one "other" bucket.

Which number decides the verdict (``method_used``)
--------------------------------------------------
A p-value answers "could both samples come from one distribution?", and with
enough rows the answer is "no" for shifts nobody cares about: the KS critical
distance at p = 0.05 is about ``1.36 / sqrt(n_eff)`` with
``n_eff = n_window * n_reference / (n_window + n_reference)``. With the 5,000-row
reference sample and a 100,000-row window ``n_eff`` is about 4,760 and KS flags a
0.05-standard-deviation shift. An effect size has the opposite problem on small
samples: between two samples of one normal distribution the normalised
Wasserstein distance averages about ``1.25 / sqrt(n_eff)`` -- 0.13 at 100 window
rows, above the 0.1 threshold -- but 0.045 once both sides have more than 1,000
rows (99th percentile 0.09). Jensen-Shannon behaves alike, growing with the number
of categories: about ``sqrt((k - 1) / (8 ln 2 n_eff))``, 0.036 for 8 categories at
1,000 rows but near 0.1 for 50 categories, where the p-value test is the better
judge (set ``method`` per feature).

So, in ``"auto"`` mode: **effect size when both the window and the reference have
more than ``effect_size_min_rows`` (1,000) non-missing values, p-value otherwise.**
Evidently switches on the reference size alone; our reference sample usually
has 5,000 rows, so the window size must take part or every window would be
judged by effect size, including 100-row windows where it raises false alarms.
A reference of unknown size counts as large.

The model's output is judged by the same rule stated as the noise it bounds
(its reference is the test split, usually exactly 1,000 rows, which the rule
above would never count as large): effect size when the window has more than
``effect_size_min_rows`` values and ``n_eff`` exceeds half of it, p-value
otherwise (see ``_prediction_effect_size_fits``). False alarms on calm windows,
from ``bench/prediction_drift_calibration.py``: docs/monitoring.md.

Verdicts: p-value method -> drift when p <= ``stattest_threshold`` (0.05), after
the optional Bonferroni / Benjamini-Hochberg correction across the features;
effect-size method -> drift when the effect size >= ``effect_threshold`` (0.1).
PSI is reported and never decides.

Chi-square is the two-sample (homogeneity) test on the 2 x k table of window
counts and reference counts (shares x non-missing training rows), which reduces
to the goodness-of-fit test against the shares when the reference is much larger
than the window but does not treat a small reference as exact proportions (that
inflates false alarms: at window = reference size the goodness-of-fit test flags
about 28 % of undrifted windows at p <= 0.05, the two-sample test 5 %). When the reference size is unknown the
goodness-of-fit test against the shares is used. Buckets whose expected count is
below 5 are pooled into the "other" bucket; if that bucket is still below 5 it is
merged into the smallest remaining bucket. With fewer than two buckets left the
test cannot say anything: statistic 0, p-value 1.

Missing values (None, NaN, +-inf, unparsable numbers) are dropped from the window
before testing and their share reported; a feature with no values left gets
verdict ``"no_data"``: not drifted, statistics ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from models_registry.profile import TrainingProfile, profile_read

NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATETIME = "datetime"  # not tested: served dates move past the training range by nature

AUTO = "auto"
P_VALUE = "p_value"
EFFECT_SIZE = "effect_size"
METHODS = (AUTO, P_VALUE, EFFECT_SIZE)

BONFERRONI = "bonferroni"
BENJAMINI_HOCHBERG = "bh"
CORRECTIONS = (None, BONFERRONI, BENJAMINI_HOCHBERG)

DRIFT = "drift"
NO_DRIFT = "no_drift"
NO_DATA = "no_data"

PREDICTION = "prediction"

PSI_EPSILON = 1e-4
PSI_BINS = 10
MIN_EXPECTED_COUNT = 5.0
STD_FLOOR = 1e-3
# scipy's ks_2samp computes exact p-values up to this many rows per sample and
# uses the asymptotic distribution beyond; above it we compute the same
# statistic from the sorted window ourselves (ks_2samp is O(n log n) per call
# with a large constant) and take the p-value from the same distribution.
KS_EXACT_MAX_ROWS = 10_000

OVERRIDE_KEYS = frozenset({"stattest_threshold", "effect_threshold", "method"})


# --------------------------------------------------------------------------- config


def _check_override(where: str, override: Mapping[str, Any]) -> None:
    unknown = set(override) - OVERRIDE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(OVERRIDE_KEYS)}")
    if "stattest_threshold" in override:
        _check_probability(f"{where}.stattest_threshold", override["stattest_threshold"])
    if "effect_threshold" in override:
        _check_positive(f"{where}.effect_threshold", override["effect_threshold"])
    if "method" in override and override["method"] not in METHODS:
        raise ValueError(f"{where}.method must be one of {METHODS}, got {override['method']!r}")


def _check_probability(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")


def _check_positive(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds for one model; stored as JSON with :meth:`to_dict`.

    ``per_feature`` maps a feature name to overrides of ``stattest_threshold``,
    ``effect_threshold`` and ``method``; ``prediction`` holds the same overrides
    for the model's output.
    """

    stattest_threshold: float = 0.05
    effect_threshold: float = 0.1
    method: str = AUTO
    effect_size_min_rows: int = 1000
    drift_share: float = 0.5
    critical_features: tuple[str, ...] = ()
    correction: str | None = None
    per_feature: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prediction: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_probability("stattest_threshold", self.stattest_threshold)
        _check_positive("effect_threshold", self.effect_threshold)
        _check_probability("drift_share", self.drift_share)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if not isinstance(self.effect_size_min_rows, int) or self.effect_size_min_rows < 0:
            raise ValueError(f"effect_size_min_rows must be a non-negative integer, got {self.effect_size_min_rows!r}")
        if isinstance(self.critical_features, str):
            raise ValueError("critical_features must be a list of feature names, not a string")
        object.__setattr__(self, "critical_features", tuple(self.critical_features))
        for name, override in self.per_feature.items():
            _check_override(f"per_feature[{name!r}]", override)
        _check_override("prediction", self.prediction)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DriftConfig:
        data = dict(data or {})
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown drift config key(s): {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["critical_features"] = list(self.critical_features)
        data["per_feature"] = {k: dict(v) for k, v in self.per_feature.items()}
        data["prediction"] = dict(self.prediction)
        return data


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" | "categorical"
    test: str  # "ks" | "chi2"
    statistic: float | None
    p_value: float | None
    p_value_adjusted: float | None  # None unless a correction is configured
    effect_name: str  # "wasserstein_norm" | "jensen_shannon"
    effect_size: float | None
    psi: float | None
    method_used: str | None  # "p_value" | "effect_size"; None without data
    threshold: float | None  # what the deciding number was compared with
    drifted: bool
    verdict: str  # "drift" | "no_drift" | "no_data"
    n_window: int  # non-missing window values tested
    n_reference: int | None  # None when the profile does not say
    missing_share_window: float | None  # None for an empty window
    unseen_share_window: float | None  # categorical only: values the reference never saw


@dataclass(frozen=True)
class DriftResult:
    dataset_drift: bool
    drifted_share: float | None  # None when no feature had data
    n_drifted: int
    n_features: int  # features with data (tested)
    n_no_data: int
    drift_share: float  # the configured threshold
    drifted_features: list[str]
    critical_drifted: list[str]
    n_rows_window: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class _NumericReference:
    values: np.ndarray  # sorted, finite
    std: float
    psi_edges: np.ndarray
    psi_shares: np.ndarray


@dataclass(frozen=True)
class _CategoricalReference:
    categories: tuple[str, ...]
    shares: np.ndarray  # sums to 1
    n: int | None


def _numeric_reference(values: Sequence[float | None]) -> _NumericReference:
    array = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    array = np.sort(array[np.isfinite(array)])
    if array.size == 0:
        return _NumericReference(array, 0.0, np.empty(0), np.empty(0))
    edges = np.unique(np.quantile(array, np.arange(1, PSI_BINS) / PSI_BINS))
    return _NumericReference(
        values=array,
        std=float(array.std()),
        psi_edges=edges,
        psi_shares=_sorted_bin_counts(array, edges) / array.size,
    )


def _categorical_reference(shares: Mapping[str, float], n: int | None) -> _CategoricalReference:
    categories = tuple(str(k) for k in shares)
    array = np.asarray([float(shares[k]) for k in shares], dtype=float)
    total = array.sum()
    if total > 0:
        array = array / total
    return _CategoricalReference(categories, array, n if n else None)


# --------------------------------------------------------------------------- window parsing


def _numeric_values(column: pd.Series) -> np.ndarray:
    """Finite values of ``column``, sorted (a copy)."""
    if pd.api.types.is_bool_dtype(column):
        column = column.astype("float64")
    elif not pd.api.types.is_numeric_dtype(column):
        column = pd.to_numeric(column, errors="coerce")
    values = column.to_numpy(dtype=float, na_value=np.nan)
    values = values[np.isfinite(values)]
    values.sort()
    return values


def _category_counts(column: pd.Series, categories: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Counts per reference category (same order) and the count of unseen values."""
    counts = column.value_counts(dropna=True, sort=False)
    if counts.empty:
        return np.zeros(len(categories), dtype=np.int64), 0
    # The profile keys categories by str(value) (see profile.category_shares).
    by_key = pd.Series(counts.to_numpy(), index=[str(k) for k in counts.index]).groupby(level=0).sum()
    known = by_key.reindex(list(categories), fill_value=0).to_numpy(dtype=np.int64)
    return known, int(by_key.sum()) - int(known.sum())


# --------------------------------------------------------------------------- statistics


def _sorted_bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e1], (e1, e2], ..., (ek, inf) of already sorted values."""
    cuts = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate(([0], cuts, [sorted_values.size]))).astype(float)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.clip(expected, PSI_EPSILON, None)
    actual = np.clip(actual, PSI_EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_wasserstein_sorted(reference: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """KS statistic and Wasserstein-1 distance of two sorted, non-empty samples.

    Equal to ``ks_2samp(...).statistic`` and ``wasserstein_distance(...)``, from
    one merge of the two sorted arrays: linear after sorting, where scipy sorts
    and binary-searches the pooled sample again in each function.
    """
    m, n = reference.size, window.size
    total = m + n
    positions = np.searchsorted(window, reference, side="left") + np.arange(m)
    from_reference = np.zeros(total, dtype=bool)
    from_reference[positions] = True
    merged = np.empty(total, dtype=float)
    merged[positions] = reference
    merged[~from_reference] = window
    # CDF difference just after each pooled point: F_ref - F_window.
    cdf_diff = np.arange(1, total + 1, dtype=float)
    cdf_diff *= -1.0 / n
    cdf_diff += np.cumsum(from_reference, dtype=float) * (1.0 / m + 1.0 / n)
    abs_diff = np.abs(cdf_diff[:-1], out=cdf_diff[:-1])
    gaps = np.diff(merged)
    wasserstein = float(np.dot(abs_diff, gaps))
    # Within a run of ties only the value after the last tied point is a CDF value.
    ks = float(np.max(abs_diff, where=gaps > 0, initial=0.0))
    return ks, wasserstein


def _ks_asymptotic_p(statistic: float, m: int, n: int) -> float:
    """ks_2samp's two-sided 'asymp' p-value."""
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(en)), 0.0, 1.0))


@dataclass(frozen=True)
class _Stats:
    statistic: float
    p_value: float
    effect_size: float
    psi: float
    n_window: int
    n_reference: int | None
    unseen_share: float | None


def _numeric_stats(reference: _NumericReference, window: np.ndarray) -> _Stats:
    m, n = reference.values.size, window.size
    if max(m, n) <= KS_EXACT_MAX_ROWS:
        ks = stats.ks_2samp(reference.values, window)
        statistic, p_value = float(ks.statistic), float(ks.pvalue)
        wasserstein = float(stats.wasserstein_distance(reference.values, window))
    else:
        statistic, wasserstein = ks_wasserstein_sorted(reference.values, window)
        p_value = _ks_asymptotic_p(statistic, m, n)
    window_shares = _sorted_bin_counts(window, reference.psi_edges) / n
    return _Stats(
        statistic=statistic,
        p_value=p_value,
        effect_size=wasserstein / max(reference.std, STD_FLOOR),
        psi=_psi(reference.psi_shares, window_shares),
        n_window=n,
        n_reference=m,
        unseen_share=None,
    )


def _pool_small_buckets(observed: np.ndarray, reference: np.ndarray, expected: np.ndarray):
    """Pool buckets with expected count < 5 into the last ("other") bucket.

    ``expected`` is the smallest expected cell count per bucket; the last bucket
    holds the unseen categories and is always the pool. Returns the pooled
    ``observed`` and ``reference`` arrays.
    """
    keep = expected >= MIN_EXPECTED_COUNT
    keep[-1] = False
    pool_observed = observed[~keep].sum()
    pool_reference = reference[~keep].sum()
    pool_expected = expected[~keep].sum()
    observed, reference, expected = observed[keep], reference[keep], expected[keep]
    if pool_expected >= MIN_EXPECTED_COUNT or observed.size == 0:
        observed = np.append(observed, pool_observed)
        reference = np.append(reference, pool_reference)
    else:
        smallest = int(np.argmin(expected))
        observed = observed.copy()
        reference = reference.copy()
        observed[smallest] += pool_observed
        reference[smallest] += pool_reference
    present = (observed + reference) > 0
    return observed[present], reference[present]


def _chi_square(known: np.ndarray, unseen: int, reference: _CategoricalReference):
    observed = np.append(known, unseen).astype(float)
    n_window = observed.sum()
    shares = np.append(reference.shares, 0.0)
    if reference.n is not None:
        reference_counts = shares * reference.n
        n_total = n_window + reference.n
        # Smallest expected cell per column of the 2 x k table.
        expected = min(n_window, reference.n) * (observed + reference_counts) / n_total
        observed, reference_counts = _pool_small_buckets(observed, reference_counts, expected)
        if observed.size < 2:
            return 0.0, 1.0
        result = stats.chi2_contingency(np.vstack([observed, reference_counts]), correction=False)
        return float(result.statistic), float(result.pvalue)
    expected = n_window * shares
    observed, expected = _pool_small_buckets(observed, expected, expected)
    if observed.size < 2:
        return 0.0, 1.0
    positive = expected > 0
    if not positive.all():  # only unseen values left in a bucket of their own
        return math.inf, 0.0
    result = stats.chisquare(observed, f_exp=expected * (n_window / expected.sum()))
    return float(result.statistic), float(result.pvalue)


def _categorical_stats(reference: _CategoricalReference, known: np.ndarray, unseen: int) -> _Stats:
    n_window = int(known.sum()) + unseen
    statistic, p_value = _chi_square(known, unseen, reference)
    reference_shares = np.append(reference.shares, 0.0)
    window_shares = np.append(known, unseen) / n_window
    return _Stats(
        statistic=statistic,
        p_value=p_value,
        effect_size=float(distance.jensenshannon(reference_shares, window_shares, base=2)),
        psi=_psi(reference_shares, window_shares),
        n_window=n_window,
        n_reference=reference.n,
        unseen_share=unseen / n_window,
    )


def p_values_adjust(p_values: Sequence[float], correction: str | None) -> list[float]:
    """Adjusted p-values: Bonferroni (``min(1, p * m)``) or Benjamini-Hochberg."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    array = np.asarray(p_values, dtype=float)
    if correction is None or array.size == 0:
        return array.tolist()
    if correction == BONFERRONI:
        return np.minimum(array * array.size, 1.0).tolist()
    return stats.false_discovery_control(array, method="bh").tolist()


# --------------------------------------------------------------------------- assembly


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class _Pending:
    """A feature's statistics before the verdict (which may need all p-values)."""

    name: str
    kind: str
    override: Mapping[str, Any]
    stats: _Stats | None
    missing_share: float | None
    n_reference: int | None
    is_output: bool = False  # the model's prediction, not a feature (a feature may be called "prediction")


def _pending(
    *,
    name: str,
    kind: str,
    column: pd.Series | None,
    n_rows: int,
    numeric: _NumericReference | None = None,
    categorical: _CategoricalReference | None = None,
    override: Mapping[str, Any],
) -> _Pending:
    n_reference = numeric.values.size if numeric is not None else categorical.n
    if column is None:
        return _Pending(name, kind, override, None, 1.0 if n_rows else None, n_reference)
    if kind == NUMERIC:
        values = _numeric_values(column)
        n_present = values.size
        result = _numeric_stats(numeric, values) if n_present and numeric.values.size else None
    else:
        known, unseen = _category_counts(column, categorical.categories)
        n_present = int(known.sum()) + unseen
        has_reference = categorical.shares.size and categorical.shares.sum() > 0
        result = _categorical_stats(categorical, known, unseen) if n_present and has_reference else None
    missing_share = (n_rows - n_present) / n_rows if n_rows else None
    return _Pending(name, kind, override, result, missing_share, n_reference)


def _method(pending: _Pending, config: DriftConfig) -> str:
    method = pending.override.get("method", config.method)
    if method != AUTO:
        return method
    limit = config.effect_size_min_rows
    if pending.is_output:
        return (
            EFFECT_SIZE if _prediction_effect_size_fits(pending.stats.n_window, pending.n_reference, limit) else P_VALUE
        )
    large_reference = pending.n_reference is None or pending.n_reference > limit
    return EFFECT_SIZE if pending.stats.n_window > limit and large_reference else P_VALUE


def _prediction_effect_size_fits(n_window: int, n_reference: int | None, limit: int) -> bool:
    """The feature rule, stated by the noise it bounds: the model's output is judged by its effect size once
    the window has more than ``limit`` values and the effective sample size
    ``n_eff = n_window * n_reference / (n_window + n_reference)`` exceeds ``limit / 2`` (the least ``n_eff``
    the features' both-sides-above-``limit`` rule lets through; effect-size noise shrinks as
    ``1 / sqrt(n_eff)``). The output's reference is the test split (1,000 rows for 5,000 training rows), never
    "more than 1,000", so the features' rule kept it on the p-value at every size: at a large window a fixed
    reference then fires on every calm check or on none, by the luck of its own split (about one model in
    twenty fires for ever). bench/prediction_drift_calibration.py prints both rules' false-alarm rates.
    """
    if n_window <= limit:
        return False
    if n_reference is None:
        return True
    return n_window * n_reference / (n_window + n_reference) > limit / 2


def _verdict(pending: _Pending, config: DriftConfig, p_adjusted: float | None) -> FeatureDrift:
    numeric = pending.kind == NUMERIC
    common = {
        "feature": pending.name,
        "kind": pending.kind,
        "test": "ks" if numeric else "chi2",
        "effect_name": "wasserstein_norm" if numeric else "jensen_shannon",
        "missing_share_window": _finite(pending.missing_share),
    }
    result = pending.stats
    if result is None:
        return FeatureDrift(
            **common,
            statistic=None,
            p_value=None,
            p_value_adjusted=None,
            effect_size=None,
            psi=None,
            method_used=None,
            threshold=None,
            drifted=False,
            verdict=NO_DATA,
            n_window=0,
            n_reference=pending.n_reference,
            unseen_share_window=None,
        )
    method = _method(pending, config)
    if method == P_VALUE:
        threshold = pending.override.get("stattest_threshold", config.stattest_threshold)
        deciding = result.p_value if p_adjusted is None else p_adjusted
        drifted = deciding <= threshold
    else:
        threshold = pending.override.get("effect_threshold", config.effect_threshold)
        drifted = result.effect_size >= threshold
    return FeatureDrift(
        **common,
        statistic=_finite(result.statistic),
        p_value=_finite(result.p_value),
        p_value_adjusted=_finite(p_adjusted),
        effect_size=_finite(result.effect_size),
        psi=_finite(result.psi),
        method_used=method,
        threshold=float(threshold),
        drifted=bool(drifted),
        verdict=DRIFT if drifted else NO_DRIFT,
        n_window=result.n_window,
        n_reference=result.n_reference,
        unseen_share_window=_finite(result.unseen_share),
    )


def _prediction_pending(profile: TrainingProfile, predictions: pd.Series, config: DriftConfig) -> _Pending:
    pending = _output_pending(profile, predictions, config)
    pending.is_output = True
    return pending


def _output_pending(profile: TrainingProfile, predictions: pd.Series, config: DriftConfig) -> _Pending:
    reference = profile.prediction_reference
    kind = reference.get("kind")
    if kind == NUMERIC:
        return _pending(
            name=PREDICTION,
            kind=NUMERIC,
            column=predictions,
            n_rows=len(predictions),
            numeric=_numeric_reference(reference.get("sample") or []),
            override=config.prediction,
        )
    if kind == CATEGORICAL:
        return _pending(
            name=PREDICTION,
            kind=CATEGORICAL,
            column=predictions,
            n_rows=len(predictions),
            categorical=_categorical_reference(reference.get("categories") or {}, reference.get("n")),
            override=config.prediction,
        )
    raise ValueError(f"profile prediction_reference has unknown kind {kind!r}")


def drift_compute(
    *,
    profile: TrainingProfile | Mapping,
    window: pd.DataFrame,
    predictions: pd.Series | None = None,
    config: DriftConfig | None = None,
) -> DriftResult:
    """Compare ``window`` (and ``predictions``) with the training ``profile``.

    Every feature of the profile is checked; window columns the profile does not
    know are ignored, and a profile feature absent from the window is "no_data".
    """
    config = config or DriftConfig()
    profile = profile_read(profile)
    features = profile.features
    names = profile.feature_names
    unknown = (set(config.per_feature) | set(config.critical_features)) - set(names)
    if unknown:
        raise ValueError(f"drift config names feature(s) not in the profile: {sorted(unknown)}")
    samples = profile.reference_sample
    n_rows = len(window)

    pending: list[_Pending] = []
    for feature in features:
        name, kind = feature.name, feature.kind
        column = window[name] if name in window.columns else None
        override = config.per_feature.get(name, {})
        if kind == NUMERIC:
            if name not in samples:
                raise ValueError(f"profile has no reference_sample for numeric feature {name!r}")
            item = _pending(
                name=name,
                kind=kind,
                column=column,
                n_rows=n_rows,
                numeric=_numeric_reference(samples[name]),
                override=override,
            )
        elif kind == CATEGORICAL:
            n_present = round(profile.n_rows * (1 - feature.missing_share))
            item = _pending(
                name=name,
                kind=kind,
                column=column,
                n_rows=n_rows,
                categorical=_categorical_reference(feature.category_shares, n_present),
                override=override,
            )
        elif kind == DATETIME:
            continue
        else:
            raise ValueError(f"profile feature {name!r} has unknown kind {kind!r}")
        pending.append(item)

    tested = [p for p in pending if p.stats is not None]
    adjusted: dict[str, float] = {}
    if config.correction is not None:
        values = p_values_adjust([p.stats.p_value for p in tested], config.correction)
        adjusted = {p.name: v for p, v in zip(tested, values, strict=True)}
    results = [_verdict(p, config, adjusted.get(p.name)) for p in pending]

    prediction = None
    if predictions is not None:
        prediction = _verdict(_prediction_pending(profile, predictions, config), config, None)

    drifted = [r.feature for r in results if r.drifted]
    critical = [name for name in drifted if name in config.critical_features]
    n_tested = len(tested)
    share = len(drifted) / n_tested if n_tested else None
    return DriftResult(
        dataset_drift=bool(critical) or (share is not None and share >= config.drift_share),
        drifted_share=share,
        n_drifted=len(drifted),
        n_features=n_tested,
        n_no_data=len(pending) - n_tested,
        drift_share=config.drift_share,
        drifted_features=drifted,
        critical_drifted=critical,
        n_rows_window=n_rows,
        features=results,
        prediction=prediction,
    )
