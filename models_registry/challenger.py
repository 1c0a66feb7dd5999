"""Champion vs challenger: both versions on the same held-out rows, a per-model policy decides.

`challenger_evaluate` loads the challenger (a version that fails to load or to answer
the smoke prediction is never promoted), scores the production version and the
challenger on the same rows, measures each one's single-row latency p99 (calls
interleaved, same process, same run) and loaded size, applies the `PromotionPolicy`
and stores one `ChallengerEvaluation` with every check. When the policy says promote
and allows it, the promotion goes through `services.model_version_promote` — the path
and alias history a staff promotion takes — recorded as ``auto_promote``.

The policy (`promotion_decide`, pure):

- primary metric (``roc_auc`` for a classifier, else ``accuracy``; ``rmse`` for a
  regressor, unless the policy names one) better than production's by at least
  ``primary_margin`` of production's value;
- no guard metric (the task's other metrics) worse than production's by more than
  ``guard_tolerance`` of production's value;
- latency p99 at most ``latency_p99_max_ratio`` x production's + ``latency_slack_ms``;
- loaded size at most ``size_max_ratio`` x production's.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from . import services
from .models import AliasChange, ChallengerEvaluation
from .serving import loader

logger = logging.getLogger(__name__)

LOWER_IS_BETTER = frozenset({"rmse", "mae"})
METRICS = {"classification": ("roc_auc", "accuracy", "f1"), "regression": ("rmse", "mae", "r2")}
AUTO_PROMOTER = "retrain-policy"
WARM_UP_CALLS = 10


@dataclass(frozen=True)
class PromotionPolicy:
    primary_metric: str = ""  # "": roc_auc (classifier; accuracy when it cannot be computed) or rmse
    primary_margin: float = 0.005  # share of production's value the challenger must beat it by
    guard_tolerance: float = 0.02  # share of production's value a guard metric may lose
    latency_p99_max_ratio: float = 1.5
    latency_slack_ms: float = 1.0
    size_max_ratio: float = 2.0
    latency_calls: int = 200
    auto_promote: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measured:
    """One side of the comparison."""

    version: int | None
    metrics: dict = field(default_factory=dict)
    latency_p99_ms: float | None = None
    loaded_bytes: int | None = None


@dataclass(frozen=True)
class Check:
    check: str
    passed: bool
    detail: str


def evaluation_metrics(*, task: str, classes: list[str] | None, y_true: pd.Series, outputs) -> dict:
    """The trainer's metrics, on any rows: accuracy, F1 and ROC AUC, or RMSE, MAE and R²."""
    if task == "regression":
        predicted = np.asarray(outputs.values, dtype=float)
        truth = y_true.to_numpy(dtype=float)
        return {
            "rmse": float(root_mean_squared_error(truth, predicted)),
            "mae": float(mean_absolute_error(truth, predicted)),
            "r2": float(r2_score(truth, predicted)) if len(truth) > 1 else float("nan"),
        }
    truth = y_true.astype(str).to_numpy()
    predicted = np.asarray(outputs.labels).astype(str)
    classes = list(classes or sorted(set(truth)))
    binary = len(classes) == 2
    metrics = {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1": float(
            f1_score(truth, predicted, average="binary" if binary else "macro", pos_label=classes[-1] if binary else 1)
        ),
    }
    if outputs.probabilities is not None and len(set(truth)) == len(classes):
        probabilities = np.asarray(outputs.probabilities, dtype=float)
        order = [list(outputs.classes).index(c) for c in classes]
        probabilities = probabilities[:, order]
        if binary:
            metrics["roc_auc"] = float(roc_auc_score(truth == classes[1], probabilities[:, 1]))
        else:
            metrics["roc_auc"] = float(roc_auc_score(truth, probabilities, multi_class="ovr", labels=classes))
    return metrics


def primary_metric_name(*, task: str, policy: PromotionPolicy, metrics: dict) -> str:
    if policy.primary_metric:
        return policy.primary_metric
    if task == "regression":
        return "rmse"
    return "roc_auc" if "roc_auc" in metrics else "accuracy"


def _better_by(name: str, production: float, challenger: float) -> float:
    """How much better the challenger is, as a share of production's value (negative: worse)."""
    scale = abs(production) if production else 1.0
    gain = (production - challenger) if name in LOWER_IS_BETTER else (challenger - production)
    return gain / scale


def promotion_decide(
    *, task: str, policy: PromotionPolicy, production: Measured, challenger: Measured
) -> tuple[bool, list[Check]]:
    """Whether the policy promotes the challenger, and every check it made (pure: numbers in, verdict out)."""
    checks: list[Check] = []
    primary = primary_metric_name(task=task, policy=policy, metrics=production.metrics)
    p, c = production.metrics.get(primary), challenger.metrics.get(primary)
    if p is None or c is None or not (math.isfinite(p) and math.isfinite(c)):
        checks.append(Check("primary metric", False, f"{primary} could not be computed on these rows"))
    else:
        gain = _better_by(primary, p, c)
        checks.append(
            Check(
                "primary metric",
                gain > 0 and gain >= policy.primary_margin,
                f"{primary} {c:.4f} vs production {p:.4f} ({gain:+.2%}; needs at least "
                f"{policy.primary_margin:+.2%} and better)",
            )
        )
    for name in METRICS[task]:
        if name == primary or name not in production.metrics or name not in challenger.metrics:
            continue
        p, c = production.metrics[name], challenger.metrics[name]
        if not (math.isfinite(p) and math.isfinite(c)):
            continue
        gain = _better_by(name, p, c)
        checks.append(
            Check(
                f"guard: {name}",
                gain >= -policy.guard_tolerance,
                f"{name} {c:.4f} vs production {p:.4f} ({gain:+.2%}; may lose at most {policy.guard_tolerance:.2%})",
            )
        )
    if production.latency_p99_ms is None or challenger.latency_p99_ms is None:
        checks.append(Check("latency p99", False, "latency could not be measured"))
    else:
        bound = production.latency_p99_ms * policy.latency_p99_max_ratio + policy.latency_slack_ms
        checks.append(
            Check(
                "latency p99",
                challenger.latency_p99_ms <= bound,
                f"{challenger.latency_p99_ms:.2f} ms vs production {production.latency_p99_ms:.2f} ms "
                f"(bound {bound:.2f} ms = {policy.latency_p99_max_ratio:g} x production + "
                f"{policy.latency_slack_ms:g} ms)",
            )
        )
    if production.loaded_bytes and challenger.loaded_bytes:
        bound = production.loaded_bytes * policy.size_max_ratio
        checks.append(
            Check(
                "loaded size",
                challenger.loaded_bytes <= bound,
                f"{challenger.loaded_bytes / 1e6:.2f} MB vs production {production.loaded_bytes / 1e6:.2f} MB "
                f"(bound {policy.size_max_ratio:g} x production)",
            )
        )
    else:
        checks.append(Check("loaded size", False, "the loaded size could not be measured"))
    return all(check.passed for check in checks), checks


def _latency_p99(served_models: list, rows: pd.DataFrame, calls: int) -> list[float]:
    """Single-row latency p99 of each model, calls interleaved so both see the same machine."""
    if rows.empty:
        return [None for _ in served_models]
    singles = [rows.iloc[[i % len(rows)]] for i in range(calls + WARM_UP_CALLS)]
    timings: list[list[float]] = [[] for _ in served_models]
    for number, single in enumerate(singles):
        for position, served in enumerate(served_models):
            started = time.perf_counter()
            served.predict_frame(single)
            if number >= WARM_UP_CALLS:
                timings[position].append((time.perf_counter() - started) * 1000)
    return [float(np.percentile(t, 99)) for t in timings]


def _record(**fields) -> ChallengerEvaluation:
    checks = fields.pop("checks")
    fields["checks"] = [asdict(c) for c in checks]
    return ChallengerEvaluation.objects.create(**fields)


def challenger_evaluate(
    *,
    name: str,
    production_version: int,
    challenger_version: int,
    rows: pd.DataFrame,
    target: str,
    eval_data: str,
    eval_note: str,
    eval_sha256: str = "",
    policy: PromotionPolicy,
) -> ChallengerEvaluation:
    """Score both versions on `rows` (features + target), decide, store; promote when the policy says so."""
    common = {
        "model_name": name,
        "production_version": production_version,
        "challenger_version": challenger_version,
        "eval_data": eval_data,
        "eval_note": eval_note,
        "eval_rows": len(rows),
        "eval_sha256": eval_sha256,
        "policy": policy.to_dict(),
    }
    try:
        services.model_version_smoke_test(name=name, version=challenger_version)
        challenger_model = loader().get_version(name, challenger_version)
    except services.PromotionError as exc:
        message = f"not promoted: {exc}"
        return _record(
            **common,
            decision=ChallengerEvaluation.Decision.KEEP,
            checks=[Check("loads", False, str(exc))],
            summary=message,
        )
    production_model = loader().get_version(name, production_version)
    if rows.empty:
        return _record(
            **common,
            decision=ChallengerEvaluation.Decision.KEEP,
            checks=[
                Check("loads", True, "loaded and answered the smoke prediction"),
                Check("held-out rows", False, eval_note),
            ],
            summary="not promoted: no held-out rows to compare on",
        )
    features = rows[production_model.feature_names]
    truth = rows[target]
    task = production_model.task
    sides = []
    for served in (production_model, challenger_model):
        outputs = served.predict_frame(features[served.feature_names])
        sides.append(evaluation_metrics(task=task, classes=served.classes, y_true=truth, outputs=outputs))
    latencies = _latency_p99([production_model, challenger_model], features, policy.latency_calls)
    production = Measured(production_version, sides[0], latencies[0], production_model.memory_bytes)
    challenger = Measured(challenger_version, sides[1], latencies[1], challenger_model.memory_bytes)
    promote, checks = promotion_decide(task=task, policy=policy, production=production, challenger=challenger)
    checks = [Check("loads", True, "loaded and answered the smoke prediction"), *checks]
    failed = [c for c in checks if not c.passed]
    if promote:
        summary = f"promote: v{challenger_version} beat v{production_version} on every check"
    else:
        summary = "not promoted: " + "; ".join(f"{c.check} ({c.detail})" for c in failed)
    evaluation = _record(
        **common,
        production_metrics=sides[0],
        challenger_metrics=sides[1],
        production_latency_p99_ms=production.latency_p99_ms,
        challenger_latency_p99_ms=challenger.latency_p99_ms,
        production_bytes=production.loaded_bytes,
        challenger_bytes=challenger.loaded_bytes,
        decision=ChallengerEvaluation.Decision.PROMOTE if promote else ChallengerEvaluation.Decision.KEEP,
        checks=checks,
        summary=summary,
    )
    if promote and policy.auto_promote:
        challenger_promote(evaluation=evaluation)
    return evaluation


def challenger_promote(*, evaluation: ChallengerEvaluation) -> AliasChange | None:
    """Promote the evaluated challenger through the staff path; a refusal is stored on the evaluation."""
    primary = next((c for c in evaluation.checks if c["check"] == "primary metric"), None)
    reason = (
        f"automatic promotion by the retraining policy: {primary['detail'] if primary else evaluation.summary}; "
        f"compared on {evaluation.eval_rows:,} rows of {evaluation.get_eval_data_display()} "
        f"(evaluation #{evaluation.pk})"
    )
    try:
        change = services.model_version_promote(
            name=evaluation.model_name,
            version=evaluation.challenger_version,
            actor_label=AUTO_PROMOTER,
            reason=reason,
            action=AliasChange.Action.AUTO_PROMOTE,
        )
    except services.PromotionError as exc:
        evaluation.summary = f"the policy said promote, the promotion was refused: {exc}"
        evaluation.save(update_fields=["summary"])
        logger.warning("%s v%s: promotion refused: %s", evaluation.model_name, evaluation.challenger_version, exc)
        return None
    evaluation.promoted = True
    evaluation.alias_change = change
    evaluation.save(update_fields=["promoted", "alias_change"])
    return change
