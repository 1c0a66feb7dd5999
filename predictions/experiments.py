"""Production vs challenger on live traffic: agreement, online metrics, a significance test, a verdict.

What `routing` stored is compared here, for the model's current challenger version since it
got the ``challenger`` alias (the newest `MAX_ROWS` rows of each kind):

- **shadow**: both versions scored the same rows, so the comparison is *paired*: agreement
  (same label; for regression, answers within a tenth of a standard deviation of production's),
  the two prediction distributions and their drift statistic (chi-square and Jensen-Shannon on
  labels, Kolmogorov-Smirnov and Wasserstein on values), and once feedback arrives on
  production's rows, both online metrics with 95 % intervals and an exact McNemar test
  (classification: accuracy) or a paired t-test on the absolute errors (regression).
- **A/B**: each request was answered by one version, so the arms are *independent samples*:
  accuracy with Wilson intervals and a two-proportion z-test (Fisher's exact test when a cell
  is small), or mean absolute error with t intervals and Welch's t-test.

The verdict says in words what the data support: "challenger better, p = 0.01, n = 1,240",
"challenger worse, ...", "no clear difference, ...", or "not enough data yet: need about N more
labelled rows" -- N from a power calculation (80 % power at the 5 % level) for the observed
difference, or for a minimum difference worth finding (`MIN_ACCURACY_DIFFERENCE`,
`MIN_RELATIVE_MAE_DIFFERENCE`) when the observed one is smaller. Tests are two-sided at
``ALPHA``; looking again and again at a running experiment raises the chance of a false "better",
so automatic promotion (`ab_auto_promote`, off unless a model's policy allows it) asks for
``MLAPP_AB_AUTO_PROMOTE_P`` (0.01) and ``MLAPP_AB_MIN_ROWS`` labelled rows per arm.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from scipy import stats
from scipy.spatial import distance

from models_registry import mlflow_access
from models_registry.models import AliasChange
from models_registry.selectors import model_version_get, served_version_get
from models_registry.services import PromotionError, model_version_promote

from .models import Prediction, Source, TrafficMode, TrafficPolicy, Variant
from .routing import CHALLENGER, traffic_policy_set

logger = logging.getLogger(__name__)

MAX_ROWS = 50_000
ALPHA = 0.05
POWER = 0.8
MIN_LABELLED = 30  # per arm (or pairs) before any test is run
MIN_ACCURACY_DIFFERENCE = 0.02
MIN_RELATIVE_MAE_DIFFERENCE = 0.05
AGREEMENT_SD_SHARE = 0.1  # regression: answers within this share of production's sd agree

BETTER, WORSE, NO_DIFFERENCE, NOT_ENOUGH, NO_FEEDBACK = (
    "challenger_better",
    "challenger_worse",
    "no_difference",
    "not_enough_data",
    "no_feedback",
)


# --------------------------------------------------------------------------- statistics (plain numbers in, out)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: np.ndarray, *, confidence: float = 0.95) -> tuple[float, float]:
    n = len(values)
    if n < 2:
        return (math.nan, math.nan)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    mean = float(values.mean())
    return (mean - half, mean + half)


def proportions_test(k1: int, n1: int, k2: int, n2: int) -> tuple[str, float]:
    """Two-sided test of equal proportions: Fisher's exact test when an expected cell is below 5,
    else the pooled two-proportion z-test. Returns (test name, p-value)."""
    pooled = (k1 + k2) / (n1 + n2)
    expected = [n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled)]
    if min(expected) < 5:
        return "Fisher's exact test", float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return "two-proportion z-test", 1.0
    z = (k1 / n1 - k2 / n2) / se
    return "two-proportion z-test", float(2 * stats.norm.sf(abs(z)))


def _z(power: float = POWER, alpha: float = ALPHA) -> float:
    return stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)


def proportions_rows_needed(p_production: float, p_challenger: float, *, ratio: float, difference: float) -> float:
    """Labelled challenger rows needed to find `difference` in accuracy at POWER, with `ratio`
    production rows per challenger row (unpooled normal approximation)."""
    z_alpha, z_beta = stats.norm.ppf(1 - ALPHA / 2), stats.norm.ppf(POWER)
    pooled = (p_production * ratio + p_challenger) / (ratio + 1)
    spread_null = math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
    spread_alt = math.sqrt(p_production * (1 - p_production) / ratio + p_challenger * (1 - p_challenger))
    spread_alt = max(spread_alt, 1e-3)
    return ((z_alpha * spread_null + z_beta * spread_alt) / difference) ** 2


def means_rows_needed(sd_production: float, sd_challenger: float, *, ratio: float, difference: float) -> float:
    """Labelled challenger rows needed to find `difference` in mean absolute error (Welch, normal approximation)."""
    return _z() ** 2 * (sd_challenger**2 + sd_production**2 / ratio) / difference**2


def _p_text(p: float) -> str:
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.2g}"


@dataclass(frozen=True)
class ArmMetric:
    variant: str
    version: int | None
    n_rows: int
    n_labelled: int
    metric: str  # "accuracy" or "MAE"
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Verdict:
    outcome: str
    text: str
    test: str = ""
    p_value: float | None = None
    n: int = 0  # labelled rows (A/B: both arms; shadow: pairs)
    more_rows_needed: int | None = None


def _decide(
    *, p_value: float, better: bool, n: int, n_needed: float, test: str, difference_text: str, unit: str
) -> Verdict:
    n_text = f"n = {n:,}"
    if p_value <= ALPHA:
        outcome = BETTER if better else WORSE
        word = "better" if better else "worse"
        return Verdict(outcome, f"challenger {word}, {_p_text(p_value)}, {n_text}", test, p_value, n)
    if n_needed > n:
        more = math.ceil(n_needed - n)
        return Verdict(
            NOT_ENOUGH,
            f"not enough data yet: need about {more:,} more labelled {unit} to tell a difference of "
            f"{difference_text} ({_p_text(p_value)}, {n_text} so far)",
            test,
            p_value,
            n,
            more,
        )
    return Verdict(
        NO_DIFFERENCE,
        f"no clear difference, {_p_text(p_value)}, {n_text} (enough to tell a difference of {difference_text})",
        test,
        p_value,
        n,
    )


def _too_few(n: int, unit: str) -> Verdict:
    if n == 0:
        return Verdict(NO_FEEDBACK, "no feedback yet: the online metrics and the test need recorded outcomes")
    more = MIN_LABELLED - n
    return Verdict(NOT_ENOUGH, f"not enough data yet: need about {more:,} more labelled {unit} before testing", n=n)


def ab_classification_verdict(*, k_production: int, n_production: int, k_challenger: int, n_challenger: int) -> Verdict:
    """Independent arms, accuracy (k correct of n labelled)."""
    if min(n_production, n_challenger) < MIN_LABELLED:
        verdict = _too_few(min(n_production, n_challenger), "rows per variant")
        return verdict if n_production + n_challenger else _too_few(0, "")
    test, p_value = proportions_test(k_challenger, n_challenger, k_production, n_production)
    p_c, p_p = k_challenger / n_challenger, k_production / n_production
    difference = max(abs(p_c - p_p), MIN_ACCURACY_DIFFERENCE)
    ratio = n_production / n_challenger
    need_c = proportions_rows_needed(p_p, p_c, ratio=ratio, difference=difference)
    n = n_production + n_challenger
    return _decide(
        p_value=p_value,
        better=p_c > p_p,
        n=n,
        n_needed=need_c * (1 + ratio),
        test=test,
        difference_text=f"{difference:.3f} in accuracy",
        unit="rows",
    )


def ab_regression_verdict(*, errors_production: np.ndarray, errors_challenger: np.ndarray) -> Verdict:
    """Independent arms, absolute errors: Welch's t-test on their means."""
    n_p, n_c = len(errors_production), len(errors_challenger)
    if min(n_p, n_c) < MIN_LABELLED:
        return _too_few(min(n_p, n_c), "rows per variant") if n_p + n_c else _too_few(0, "")
    result = stats.ttest_ind(errors_challenger, errors_production, equal_var=False)
    p_value = float(result.pvalue) if np.isfinite(result.pvalue) else 1.0
    mae_p, mae_c = float(errors_production.mean()), float(errors_challenger.mean())
    difference = max(abs(mae_c - mae_p), MIN_RELATIVE_MAE_DIFFERENCE * (mae_p + mae_c) / 2, 1e-12)
    ratio = n_p / n_c
    need_c = means_rows_needed(
        float(errors_production.std(ddof=1)), float(errors_challenger.std(ddof=1)), ratio=ratio, difference=difference
    )
    return _decide(
        p_value=p_value,
        better=mae_c < mae_p,
        n=n_p + n_c,
        n_needed=need_c * (1 + ratio),
        test="Welch's t-test on absolute errors",
        difference_text=f"{difference:.3g} in MAE",
        unit="rows",
    )


def shadow_classification_verdict(*, production_right: np.ndarray, challenger_right: np.ndarray) -> Verdict:
    """Paired rows, accuracy: exact McNemar test on the rows only one version got right."""
    n = len(production_right)
    if n < MIN_LABELLED:
        return _too_few(n, "rows")
    only_challenger = int((challenger_right & ~production_right).sum())
    only_production = int((production_right & ~challenger_right).sum())
    discordant = only_challenger + only_production
    p_value = float(stats.binomtest(only_challenger, discordant, 0.5).pvalue) if discordant else 1.0
    observed = (only_challenger - only_production) / n
    difference = max(abs(observed), MIN_ACCURACY_DIFFERENCE)
    share = max(discordant / n, difference)  # discordant share; at least the difference it must hold
    z_alpha, z_beta = stats.norm.ppf(1 - ALPHA / 2), stats.norm.ppf(POWER)
    needed = (z_alpha * math.sqrt(share) + z_beta * math.sqrt(max(share - difference**2, 1e-9))) ** 2 / difference**2
    return _decide(
        p_value=p_value,
        better=observed > 0,
        n=n,
        n_needed=needed,
        test="exact McNemar test",
        difference_text=f"{difference:.3f} in accuracy",
        unit="rows",
    )


def shadow_regression_verdict(*, errors_production: np.ndarray, errors_challenger: np.ndarray) -> Verdict:
    """Paired rows, absolute errors: paired t-test on their differences."""
    n = len(errors_production)
    if n < MIN_LABELLED:
        return _too_few(n, "rows")
    differences = errors_challenger - errors_production
    if not differences.any():
        p_value = 1.0
    else:
        result = stats.ttest_rel(errors_challenger, errors_production)
        p_value = float(result.pvalue) if np.isfinite(result.pvalue) else 1.0
    mean_difference = float(differences.mean())
    scale = (errors_production.mean() + errors_challenger.mean()) / 2
    difference = max(abs(mean_difference), MIN_RELATIVE_MAE_DIFFERENCE * scale, 1e-12)
    needed = (_z() * float(differences.std(ddof=1)) / difference) ** 2
    return _decide(
        p_value=p_value,
        better=mean_difference < 0,
        n=n,
        n_needed=needed,
        test="paired t-test on absolute errors",
        difference_text=f"{difference:.3g} in MAE",
        unit="rows",
    )


def distribution_drift(production, challenger, *, task: str) -> dict | None:
    """How far apart the two prediction distributions are (the drift page's statistics)."""
    if len(production) == 0 or len(challenger) == 0:
        return None
    if task == "regression":
        a, b = np.asarray(production, dtype=float), np.asarray(challenger, dtype=float)
        result = stats.ks_2samp(a, b)
        sd = max(float(a.std()), 1e-3)
        return {
            "test": "Kolmogorov-Smirnov",
            "statistic": float(result.statistic),
            "p_value": float(result.pvalue),
            "effect_name": "Wasserstein / sd",
            "effect": float(stats.wasserstein_distance(a, b) / sd),
        }
    labels = sorted(set(production) | set(challenger))
    counts = np.array([[list(production).count(c) for c in labels], [list(challenger).count(c) for c in labels]])
    if len(labels) < 2:
        p_value, statistic = 1.0, 0.0
    else:
        result = stats.chi2_contingency(counts)
        p_value, statistic = float(result.pvalue), float(result.statistic)
    shares = counts / counts.sum(axis=1, keepdims=True)
    return {
        "test": "chi-square",
        "statistic": statistic,
        "p_value": p_value,
        "effect_name": "Jensen-Shannon",
        "effect": float(distance.jensenshannon(shares[0], shares[1], base=2)),
    }


# --------------------------------------------------------------------------- reading what was stored


@dataclass
class Section:
    """One kind of comparison (shadow pairs or A/B arms) of the current challenger."""

    n_production: int = 0
    n_challenger: int = 0
    production_outputs: list = field(default_factory=list)
    challenger_outputs: list = field(default_factory=list)
    agreement: float | None = None
    agreement_note: str = ""
    mean_abs_difference: float | None = None
    drift: dict | None = None
    metrics: list[ArmMetric] = field(default_factory=list)
    verdict: Verdict | None = None

    @property
    def empty(self) -> bool:
        return not (self.n_production or self.n_challenger)


@dataclass
class ExperimentSummary:
    model_name: str
    task: str | None
    mode: str
    challenger_percent: float
    auto_promote: bool
    shadow_dropped: int
    production_version: int | None
    challenger_version: int | None
    since: object
    shadow: Section
    ab: Section


def _classification_metric(variant, version, n_rows, right: np.ndarray) -> ArmMetric:
    n, k = len(right), int(right.sum())
    low, high = wilson_interval(k, n)
    return ArmMetric(
        variant, version, n_rows, n, "accuracy", k / n if n else None, low if n else None, high if n else None
    )


def _regression_metric(variant, version, n_rows, errors: np.ndarray) -> ArmMetric:
    n = len(errors)
    low, high = mean_interval(errors)
    return ArmMetric(
        variant,
        version,
        n_rows,
        n,
        "MAE",
        float(errors.mean()) if n else None,
        low if n > 1 else None,
        high if n > 1 else None,
    )


def _shadow_section(*, model_name, task, version, production_version, since) -> Section:
    output = "predicted_value" if task == "regression" else "predicted_label"
    actual = "actual_value" if task == "regression" else "actual_label"
    rows = Prediction.objects.filter(model_name=model_name, variant=Variant.SHADOW, model_version=version)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    pairs = list(
        rows.order_by("-created_at").values_list(output, f"shadow_of__{output}", f"shadow_of__{actual}")[:MAX_ROWS]
    )
    pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
    section = Section(n_production=len(pairs), n_challenger=len(pairs))
    if not pairs:
        return section
    challenger = [p[0] for p in pairs]
    production = [p[1] for p in pairs]
    section.challenger_outputs, section.production_outputs = challenger, production
    section.drift = distribution_drift(production, challenger, task=task)
    labelled = [p for p in pairs if p[2] is not None]
    if task == "regression":
        a, b = np.asarray(production, dtype=float), np.asarray(challenger, dtype=float)
        tolerance = AGREEMENT_SD_SHARE * max(float(a.std()), 1e-9)
        section.agreement = float((np.abs(a - b) <= tolerance).mean())
        section.agreement_note = f"answers within {tolerance:.3g} (a tenth of production's standard deviation)"
        section.mean_abs_difference = float(np.abs(a - b).mean())
        truth = np.asarray([p[2] for p in labelled], dtype=float)
        errors_c = np.abs(np.asarray([p[0] for p in labelled], dtype=float) - truth)
        errors_p = np.abs(np.asarray([p[1] for p in labelled], dtype=float) - truth)
        section.metrics = [
            _regression_metric(Variant.PRODUCTION, production_version, len(pairs), errors_p),
            _regression_metric(Variant.SHADOW, version, len(pairs), errors_c),
        ]
        section.verdict = shadow_regression_verdict(errors_production=errors_p, errors_challenger=errors_c)
    else:
        section.agreement = float(np.mean([p[0] == p[1] for p in pairs]))
        section.agreement_note = "same label"
        right_c = np.asarray([p[0] == p[2] for p in labelled], dtype=bool)
        right_p = np.asarray([p[1] == p[2] for p in labelled], dtype=bool)
        section.metrics = [
            _classification_metric(Variant.PRODUCTION, production_version, len(pairs), right_p),
            _classification_metric(Variant.SHADOW, version, len(pairs), right_c),
        ]
        section.verdict = shadow_classification_verdict(production_right=right_p, challenger_right=right_c)
    return section


def _arm_rows(*, model_name, variant, version, since, task):
    output = "predicted_value" if task == "regression" else "predicted_label"
    actual = "actual_value" if task == "regression" else "actual_label"
    rows = Prediction.objects.filter(model_name=model_name, variant=variant, model_version=version)
    rows = rows.filter(source__in=[Source.API, Source.WEB])  # batch and scheduled rows are never routed
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    return list(rows.order_by("-created_at").values_list(output, actual)[:MAX_ROWS])


def _ab_section(*, model_name, task, production_version, challenger_version, since) -> Section:
    challenger_rows = _arm_rows(
        model_name=model_name, variant=Variant.CHALLENGER, version=challenger_version, since=since, task=task
    )
    section = Section(n_challenger=len(challenger_rows))
    if not challenger_rows:
        return section
    production_rows = _arm_rows(
        model_name=model_name, variant=Variant.PRODUCTION, version=production_version, since=since, task=task
    )
    section.n_production = len(production_rows)
    section.production_outputs = [r[0] for r in production_rows if r[0] is not None]
    section.challenger_outputs = [r[0] for r in challenger_rows if r[0] is not None]
    section.drift = distribution_drift(section.production_outputs, section.challenger_outputs, task=task)
    labelled_p = [r for r in production_rows if r[1] is not None and r[0] is not None]
    labelled_c = [r for r in challenger_rows if r[1] is not None and r[0] is not None]
    if task == "regression":
        errors_p = np.abs(np.asarray([r[0] - r[1] for r in labelled_p], dtype=float))
        errors_c = np.abs(np.asarray([r[0] - r[1] for r in labelled_c], dtype=float))
        section.metrics = [
            _regression_metric(Variant.PRODUCTION, production_version, len(production_rows), errors_p),
            _regression_metric(Variant.CHALLENGER, challenger_version, len(challenger_rows), errors_c),
        ]
        section.verdict = ab_regression_verdict(errors_production=errors_p, errors_challenger=errors_c)
    else:
        right_p = np.asarray([r[0] == r[1] for r in labelled_p], dtype=bool)
        right_c = np.asarray([r[0] == r[1] for r in labelled_c], dtype=bool)
        section.metrics = [
            _classification_metric(Variant.PRODUCTION, production_version, len(production_rows), right_p),
            _classification_metric(Variant.CHALLENGER, challenger_version, len(challenger_rows), right_c),
        ]
        section.verdict = ab_classification_verdict(
            k_production=int(right_p.sum()),
            n_production=len(right_p),
            k_challenger=int(right_c.sum()),
            n_challenger=len(right_c),
        )
    return section


def challenger_since(*, model_name: str, version: int):
    """When the challenger alias last moved to `version` (its experiment's start), or None."""
    move = (
        AliasChange.objects.filter(model_name=model_name, alias=CHALLENGER, to_version=version)
        .exclude(action=AliasChange.Action.OUTSIDE_REFUSED)
        .order_by("-created_at", "-id")
        .first()
    )
    return move.created_at if move else None


def experiment_summary(*, model_name: str) -> ExperimentSummary:
    """The model's traffic policy and what its current challenger did beside production."""
    policy = TrafficPolicy.objects.filter(model_name=model_name).first()
    production_version = served_version_get(name=model_name, alias=mlflow_access.PRODUCTION)
    challenger_version = served_version_get(name=model_name, alias=CHALLENGER)
    task = None
    for version in (production_version, challenger_version):
        record = model_version_get(name=model_name, version=version) if version else None
        if record is not None:
            task = record.task
            break
    since = challenger_since(model_name=model_name, version=challenger_version) if challenger_version else None
    shadow, ab = Section(), Section()
    if challenger_version is not None and task is not None:
        shadow = _shadow_section(
            model_name=model_name,
            task=task,
            version=challenger_version,
            production_version=production_version,
            since=since,
        )
        ab = _ab_section(
            model_name=model_name,
            task=task,
            production_version=production_version,
            challenger_version=challenger_version,
            since=since,
        )
    return ExperimentSummary(
        model_name=model_name,
        task=task,
        mode=policy.mode if policy else TrafficMode.PRODUCTION,
        challenger_percent=policy.challenger_percent if policy else 10.0,
        auto_promote=policy.auto_promote if policy else False,
        shadow_dropped=policy.shadow_dropped if policy else 0,
        production_version=production_version,
        challenger_version=challenger_version,
        since=since,
        shadow=shadow,
        ab=ab,
    )


# --------------------------------------------------------------------------- acting on a clear verdict


def ab_auto_promote() -> list[str]:
    """Promote each A/B challenger whose policy allows it and whose verdict is clearly better
    (p at most ``MLAPP_AB_AUTO_PROMOTE_P``, ``MLAPP_AB_MIN_ROWS`` labelled rows per arm), through
    the registry's one promotion path; its traffic policy then goes back to production only."""
    lines = []
    for policy in TrafficPolicy.objects.filter(mode=TrafficMode.AB, auto_promote=True):
        summary = experiment_summary(model_name=policy.model_name)
        verdict = summary.ab.verdict
        labelled = min((m.n_labelled for m in summary.ab.metrics), default=0)
        if (
            verdict is None
            or verdict.outcome != BETTER
            or verdict.p_value is None
            or verdict.p_value > settings.MLAPP_AB_AUTO_PROMOTE_P
            or labelled < settings.MLAPP_AB_MIN_ROWS
        ):
            continue
        reason = f"A/B verdict: {verdict.text} ({verdict.test})"
        try:
            model_version_promote(
                name=policy.model_name,
                version=summary.challenger_version,
                actor_label="A/B auto-promote",
                reason=reason,
            )
        except PromotionError as exc:
            logger.warning("A/B auto-promote of %s v%s refused: %s", policy.model_name, summary.challenger_version, exc)
            lines.append(f"{policy.model_name}: not promoted: {exc}")
            continue
        traffic_policy_set(
            model_name=policy.model_name,
            mode=TrafficMode.PRODUCTION,
            actor_label="A/B auto-promote",
            reason=f"challenger version {summary.challenger_version} promoted: {verdict.text}",
        )
        lines.append(f"{policy.model_name}: promoted version {summary.challenger_version}: {verdict.text}")
    return lines
