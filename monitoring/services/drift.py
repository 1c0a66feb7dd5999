"""Drift reports: a window of served rows against the production model's training profile.

`drift_report_create` loads the window from the prediction log (on PostgreSQL
only the profile's keys are extracted from the JSON column, ``features ->> 'k'``,
and the window is bounded: the last ``window_rows`` rows, or an interval capped
at ``MAX_WINDOW_ROWS``), reads it through the model's rule table (path ``drift``:
the same typing and findings as every other path; a row the policy quarantines is
left out of the window, and the report's config counts each rule's findings), runs
the statistics of `monitoring.drift_stats`, and stores one `DriftReport` with a `FeatureDrift` row per feature plus
``'__prediction__'`` for the model's output. Each row also keeps the served and
training distributions on shared bins, so the feature pages draw them without
touching the prediction log. When the dataset drifted an alert is raised, at
most once per model version and day.

Thresholds come from the model's `DriftSettings` row (editable in the admin),
defaults otherwise. `drift_latest_verdict` is the signal other parts (the
continuous-training trigger) read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from django.db import transaction
from django.db.models.fields.json import KeyTextTransform
from django.urls import reverse

from core.errors import ApplicationError
from models_registry.policies import rule_policy_get
from models_registry.profile import NUMERIC, FeatureSpec, ProfileSchemaError, TrainingProfile
from models_registry.rules import TEXT_MISSING, Action, Duplicates, RulePath, RuleTable
from models_registry.serving import ModelUnavailable, loader, model_version_profile
from predictions.selectors import predictions_served

from ..drift_stats import DriftConfig, drift_compute
from ..models import Alert, DriftReport, DriftSettings, FeatureDrift, Severity
from ..signals import scheduled_drift_checked
from .alerts import alert_raise

logger = logging.getLogger(__name__)

PREDICTION_FEATURE = "__prediction__"
DEFAULT_WINDOW_ROWS = 5000
# A scheduled check judges the rows since the previous one, extended back to this many when fewer.
DEFAULT_SCHEDULED_MIN_ROWS = 500
MAX_WINDOW_ROWS = 100_000
HISTOGRAM_BINS = 30
MAX_CATEGORIES_SHOWN = 25
OTHER = "(other)"


class DriftCheckError(ApplicationError):
    """A drift check could not run; the message says why (not a bug: nothing to retry)."""


@dataclass(frozen=True)
class ModelDriftSettings:
    config: DriftConfig
    window_rows: int
    min_rows: int
    scheduled_min_rows: int = DEFAULT_SCHEDULED_MIN_ROWS


@dataclass(frozen=True)
class DriftVerdict:
    report_id: int
    model_name: str
    model_version: int
    dataset_drift: bool
    drifted_share: float
    drifted_features: list[str]
    prediction_drift: bool
    n_rows: int
    created_at: datetime


def drift_settings_get(*, model_name: str) -> ModelDriftSettings:
    record = DriftSettings.objects.filter(model_name=model_name).first()
    if record is None:
        return ModelDriftSettings(config=DriftConfig(), window_rows=DEFAULT_WINDOW_ROWS, min_rows=50)
    try:
        config = DriftConfig.from_dict(record.config)
    except (TypeError, ValueError) as exc:
        raise DriftCheckError(f"Drift settings of {model_name} are invalid: {exc}") from exc
    return ModelDriftSettings(
        config=config,
        window_rows=max(record.window_rows, 1),
        min_rows=record.min_rows,
        scheduled_min_rows=max(record.scheduled_min_rows, 1),
    )


def production_profile_get(*, model_name: str) -> tuple[int, TrainingProfile]:
    """(version, typed training profile) of the model's production version; no estimator is loaded."""
    try:
        version = loader().version_resolve(model_name)
    except ModelUnavailable as exc:
        raise DriftCheckError(f"{model_name} has no production version to compare with: {exc}") from exc
    try:
        _run_id, _task, profile = model_version_profile(model_name, version)
    except ProfileSchemaError as exc:
        raise DriftCheckError(str(exc)) from exc
    return version, profile


@dataclass(frozen=True)
class DriftWindow:
    features: pd.DataFrame
    predictions: pd.Series  # rows scored by the production version only
    versions: pd.Series
    start: datetime | None
    end: datetime | None
    rules: dict = field(default_factory=dict)  # rule -> {"rows": n, "action": ...}: the rule table's findings


def _window_read(raw: pd.DataFrame, keys: list[str], table: RuleTable) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The stored feature values (text, or JSON scalars on SQLite) through the rule table, path ``drift``:
    (typed features, rows kept, findings per rule)."""
    columns = {
        spec.name: pa.array([None if v is None else str(v) for v in raw[key].tolist()], type=pa.string())
        for key, spec in zip(keys, table.profile.features, strict=True)
    }
    check = table.chunk_check(columns, path=RulePath.DRIFT, duplicates=Duplicates(), missing_tokens=TEXT_MISSING)
    counts: dict[str, dict] = {}
    for rule, _name, positions, _values, action in check.findings:
        entry = counts.setdefault(rule, {"rows": 0, "action": str(action)})
        entry["rows"] += len(positions)
    kept = ~check.stopped if any(a != Action.WARN for *_, a in check.findings) else np.ones(len(raw), dtype=bool)
    return check.model_input(table, index=raw.index), kept, counts


def drift_window_load(
    *,
    model_name: str,
    profile: TrainingProfile,
    version: int,
    since: datetime | None = None,
    until: datetime | None = None,
    last_n: int = DEFAULT_WINDOW_ROWS,
    source: str | None = None,
) -> DriftWindow:
    """The newest ``last_n`` rows of the model (in [since, until) when given), read through the model's rule
    table: features typed by the profile, rows its drift policy quarantines left out."""
    rows = predictions_served().filter(model_name=model_name)
    if source:
        rows = rows.filter(source=source)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    keys = {f"f{i}": KeyTextTransform(name, "features") for i, name in enumerate(profile.feature_names)}
    output = "predicted_value" if profile.task == "regression" else "predicted_label"
    values = list(
        rows.annotate(**keys)
        .order_by("-created_at")
        .values_list("created_at", "model_version", output, *keys)[: min(last_n, MAX_WINDOW_ROWS)]
    )
    raw = pd.DataFrame(values, columns=["created_at", "model_version", "output", *keys])
    table = RuleTable(profile, policy=rule_policy_get(model_name=model_name))
    frame, kept, rules = _window_read(raw, list(keys), table)
    if not kept.all():
        raw, frame = raw[kept].reset_index(drop=True), frame[kept].reset_index(drop=True)
    predictions = raw.loc[raw["model_version"] == version, "output"]
    if output == "predicted_value":
        predictions = pd.to_numeric(predictions, errors="coerce").astype("float64")
    return DriftWindow(
        features=frame,
        predictions=predictions.reset_index(drop=True),
        versions=raw["model_version"],
        start=raw["created_at"].min() if len(raw) else None,
        end=raw["created_at"].max() if len(raw) else None,
        rules=rules,
    )


# --------------------------------------------------------------------------- distributions for the pages


def _finite_array(values) -> np.ndarray:
    array = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return array[np.isfinite(array)]


def _numeric_edges(reference: np.ndarray, window: np.ndarray, *, integer: bool) -> np.ndarray:
    both = np.concatenate([reference, window])
    low, high = np.quantile(both, [0.001, 0.999])
    if integer:  # whole numbers per bin, so no bin holds one value more than its neighbours
        low, high = math.floor(low), math.ceil(high)
        width = max(1, math.ceil((high - low + 1) / HISTOGRAM_BINS))
        return np.arange(low - 0.5, high + 0.5 + width, width)[: HISTOGRAM_BINS + 2]
    if high <= low:
        return np.array([low - 0.5, high + 0.5])
    return np.linspace(low, high, HISTOGRAM_BINS + 1)


def _shares(values: np.ndarray, edges: np.ndarray) -> list[float]:
    if values.size == 0:
        return [0.0] * (len(edges) - 1)
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return [round(float(c) / values.size, 6) for c in counts]


def numeric_distribution(reference_values, window_values, *, integer: bool = False) -> dict:
    reference = _finite_array(reference_values)
    window = _finite_array(window_values)
    if reference.size == 0 and window.size == 0:
        return {}
    edges = _numeric_edges(reference, window, integer=integer)
    return {
        "kind": NUMERIC,
        "edges": [round(float(e), 6) for e in edges],
        "reference": _shares(reference, edges),
        "window": _shares(window, edges),
        "n_reference": int(reference.size),
        "n_window": int(window.size),
    }


def categorical_distribution(reference_shares: dict, window_values: pd.Series) -> dict:
    counts = window_values.dropna().astype(str).value_counts()
    n_window = int(counts.sum())
    categories = list(reference_shares)
    unseen = [c for c in counts.index if c not in reference_shares]
    categories = (categories + unseen)[:MAX_CATEGORIES_SHOWN]
    window = [round(float(counts.get(c, 0)) / n_window, 6) if n_window else 0.0 for c in categories]
    reference = [round(float(reference_shares.get(c, 0.0)), 6) for c in categories]
    rest_window = round(1.0 - sum(window), 6) if n_window else 0.0
    rest_reference = round(1.0 - sum(reference), 6)
    if rest_window > 1e-6 or rest_reference > 1e-6:
        categories.append(OTHER)
        window.append(max(rest_window, 0.0))
        reference.append(max(rest_reference, 0.0))
    return {
        "kind": "categorical",
        "categories": categories,
        "reference": reference,
        "window": window,
        "n_window": n_window,
    }


def _feature_distribution(feature: FeatureSpec, profile: TrainingProfile, column: pd.Series) -> dict:
    if feature.kind == NUMERIC:
        sample = profile.reference_sample.get(feature.name) or []
        return numeric_distribution(sample, column, integer=feature.is_integer)
    return categorical_distribution(feature.category_shares, column)


def _prediction_distribution(profile: TrainingProfile, predictions: pd.Series) -> dict:
    reference = profile.prediction_reference
    if reference.get("kind") == NUMERIC:
        return numeric_distribution(reference.get("sample") or [], predictions)
    return categorical_distribution(reference.get("categories") or {}, predictions)


# --------------------------------------------------------------------------- the report


def _feature_row(report: DriftReport, result, *, name: str, distribution: dict) -> FeatureDrift:
    return FeatureDrift(
        report=report,
        feature=name,
        kind=result.kind,
        test=result.test,
        statistic=result.statistic,
        p_value=result.p_value,
        p_value_adjusted=result.p_value_adjusted,
        effect_name=result.effect_name,
        effect_size=result.effect_size,
        psi=result.psi,
        method_used=result.method_used or "",
        threshold=result.threshold,
        drifted=result.drifted,
        verdict=result.verdict,
        n_window=result.n_window,
        n_reference=result.n_reference or 0,
        missing_share_window=result.missing_share_window,
        distribution=distribution,
    )


def _alert_for(report: DriftReport, *, drifted: list[str], critical: list[str]) -> Alert | None:
    listed = ", ".join(drifted[:10]) + (" ..." if len(drifted) > 10 else "")
    message = (
        f"{report.n_drifted} of {report.n_features} features drifted ({report.drifted_share:.0%}) in the last "
        f"{report.n_rows} served rows ({report.window_start:%Y-%m-%d %H:%M} to {report.window_end:%Y-%m-%d %H:%M} "
        f"UTC) of {report.model_name} version {report.model_version}: {listed}."
    )
    if critical:
        message += f" Critical features drifted: {', '.join(critical)}."
    if report.prediction_drift:
        message += " The predictions drifted too."
    message += f"\nReport: {reverse('monitoring:drift_report', args=[report.model_name, report.pk])}"
    return alert_raise(
        kind=Alert.Kind.DRIFT,
        severity=Severity.ERROR if critical else Severity.WARNING,
        model_name=report.model_name,
        title=f"Data drift on {report.model_name} v{report.model_version}: {report.n_drifted}/{report.n_features} "
        "features",
        message=message,
        # One alert per model version and day while the drift lasts.
        dedup_key=f"drift:{report.model_name}:v{report.model_version}:{report.created_at:%Y-%m-%d}",
        drift_report=report,
    )


def drift_report_create(
    *,
    model_name: str,
    since: datetime | None = None,
    until: datetime | None = None,
    last_n: int | None = None,
    source: str | None = None,
    raise_alert: bool = True,
    scheduled: bool = False,
) -> DriftReport:
    """Check the served window of ``model_name`` and store the report.

    Without ``since``/``until`` the window is the newest ``last_n`` rows (default:
    the model's ``window_rows``, 5,000); with an interval, its newest rows up to
    ``last_n`` or ``MAX_WINDOW_ROWS``. ``scheduled`` (the model's beat entry) takes no
    window: it judges the rows since the previous scheduled check (see
    `scheduled_window_choose`), and only its reports make the model's drift status.
    Raises `DriftCheckError` when there is no production version, the settings are
    invalid, or the window is too small.
    """
    if last_n is not None and last_n < 1:
        raise DriftCheckError(f"last_n must be at least 1, got {last_n}")
    if since is not None and until is not None and since >= until:
        raise DriftCheckError(f"The window is empty: since ({since}) is not before until ({until})")
    if scheduled and (since is not None or until is not None or last_n is not None or source):
        raise DriftCheckError("A scheduled check chooses its own window: give no since, until, last_n or source")
    model_settings = drift_settings_get(model_name=model_name)
    window_choice: dict = {}
    if scheduled:
        window_choice = scheduled_window_choose(model_name=model_name, model_settings=model_settings)
        since, last_n = window_choice.pop("since"), window_choice.pop("last_n")
    if last_n is None:
        last_n = MAX_WINDOW_ROWS if since is not None or until is not None else model_settings.window_rows
    version, profile = production_profile_get(model_name=model_name)
    window = drift_window_load(
        model_name=model_name, profile=profile, version=version, since=since, until=until, last_n=last_n, source=source
    )
    n_rows = len(window.features)
    if n_rows < max(model_settings.min_rows, 1):
        raise DriftCheckError(
            f"{model_name}: {n_rows} served rows in the window, at least {max(model_settings.min_rows, 1)} needed"
        )
    try:
        result = drift_compute(
            profile=profile,
            window=window.features,
            predictions=window.predictions if len(window.predictions) else None,
            config=model_settings.config,
        )
    except ValueError as exc:  # the settings name features the production profile does not have
        raise DriftCheckError(f"Drift settings of {model_name} do not fit version {version}: {exc}") from exc

    by_name = profile.specs
    with transaction.atomic():
        report = DriftReport.objects.create(
            model_name=model_name,
            model_version=version,
            window_start=window.start,
            window_end=window.end,
            n_rows=n_rows,
            dataset_drift=result.dataset_drift,
            drifted_share=result.drifted_share or 0.0,
            n_drifted=result.n_drifted,
            n_features=result.n_features,
            prediction_drift=bool(result.prediction and result.prediction.drifted),
            scheduled=scheduled,
            config={
                "drift": model_settings.config.to_dict(),
                "window": {
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                    "last_n": last_n,
                    "source": source,
                    "versions": sorted(int(v) for v in window.versions.unique()),
                    **window_choice,
                },
                "critical_drifted": result.critical_drifted,
                "rules": window.rules,
                "n_no_data": result.n_no_data,
            },
        )
        rows = [
            _feature_row(
                report,
                item,
                name=item.feature,
                distribution=_feature_distribution(by_name[item.feature], profile, window.features[item.feature]),
            )
            for item in result.features
        ]
        if result.prediction is not None:
            rows.append(
                _feature_row(
                    report,
                    result.prediction,
                    name=PREDICTION_FEATURE,
                    distribution=_prediction_distribution(profile, window.predictions),
                )
            )
        FeatureDrift.objects.bulk_create(rows)
        if raise_alert and result.dataset_drift:
            _alert_for(report, drifted=result.drifted_features, critical=result.critical_drifted)
        if scheduled:
            transaction.on_commit(lambda: scheduled_drift_checked.send(sender=DriftReport, report=report))
    logger.info(
        "Drift report #%s for %s v%s: %s/%s features drifted, dataset drift %s",
        report.pk,
        model_name,
        version,
        result.n_drifted,
        result.n_features,
        result.dataset_drift,
    )
    return report


def scheduled_window_choose(*, model_name: str, model_settings: ModelDriftSettings) -> dict:
    """Where a scheduled check's window starts: the rows since the previous scheduled check's window, so a
    shift is judged on its own rows at the first check after it starts; extended back to the newest
    ``scheduled_min_rows`` when fewer came in. The first check takes the newest ``window_rows``.

    Returns ``since`` and ``last_n`` for the window reader, and what the report records about the choice.
    Raises `DriftCheckError` when no row came in since the previous check (judging the same rows again
    would say nothing new, and repeat its alert and retraining trigger).
    """
    previous = (
        DriftReport.objects.filter(model_name=model_name, scheduled=True, window_end__isnull=False)
        .order_by("-created_at", "-id")
        .first()
    )
    if previous is None:
        return {"since": None, "last_n": model_settings.window_rows, "mode": "newest", "previous_report": None}
    floor = max(model_settings.scheduled_min_rows, model_settings.min_rows, 1)
    newer = predictions_served().filter(model_name=model_name, created_at__gt=previous.window_end)
    n_new = newer[:floor].count()
    if n_new == 0:
        raise DriftCheckError(
            f"{model_name}: no served rows since the previous scheduled check (report #{previous.pk}, window "
            f"up to {previous.window_end:%Y-%m-%d %H:%M:%S} UTC)"
        )
    common = {"previous_report": previous.pk, "previous_window_end": previous.window_end.isoformat()}
    if n_new >= floor:
        # created_at__gte in the reader: one microsecond on, so no row of the previous window counts twice.
        return {
            "since": previous.window_end + timedelta(microseconds=1),
            "last_n": MAX_WINDOW_ROWS,
            "mode": "since_previous",
            **common,
        }
    return {"since": None, "last_n": floor, "mode": "extended", "new_rows": n_new, **common}


def drift_latest_verdict(model_name: str, *, model_version: int | None = None) -> DriftVerdict | None:
    """The newest scheduled report's verdict for the model (and version), or None before the first one.

    Hand-run checks (command, API, a custom window) are stored beside it and never become the status."""
    reports = DriftReport.objects.filter(model_name=model_name, scheduled=True)
    if model_version is not None:
        reports = reports.filter(model_version=model_version)
    report = reports.order_by("-created_at", "-id").first()
    if report is None:
        return None
    drifted = list(
        report.features.filter(drifted=True).exclude(feature=PREDICTION_FEATURE).values_list("feature", flat=True)
    )
    return DriftVerdict(
        report_id=report.pk,
        model_name=report.model_name,
        model_version=report.model_version,
        dataset_drift=report.dataset_drift,
        drifted_share=report.drifted_share,
        drifted_features=drifted,
        prediction_drift=report.prediction_drift,
        n_rows=report.n_rows,
        created_at=report.created_at,
    )
