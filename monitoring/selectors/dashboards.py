"""Reads behind the dashboards and the series API.

Nothing here scans the prediction log per request: time series come from the
hourly `PredictionRollup` (kept up to date by a task), per-minute series from
the log itself but only over a short, index-bounded interval, and served
feature distributions from the latest stored drift report.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, F, Max, Min, Sum, TextField, Value
from django.db.models.functions import Cast, Coalesce, TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from core.errors import ApplicationError
from models_registry.models import ModelVersion
from models_registry.selectors import deployment_list
from models_registry.serving import ModelUnavailable, loader
from predictions.models import ScheduledRun
from predictions.selectors import predictions_served

from ..models import Alert, DataQualityIssue, DriftReport, FeatureDrift, IngestedFile, IngestionRun, PredictionRollup
from ..services.drift import PREDICTION_FEATURE
from ..services.rollups import rollups_position

MINUTE, HOUR, DAY = "minute", "hour", "day"
GRANULARITIES = (MINUTE, HOUR, DAY)
# Per-minute series read the prediction log directly, so their span is capped.
MAX_MINUTE_SPAN = timedelta(hours=12)
DEFAULT_SPAN = {MINUTE: timedelta(hours=3), HOUR: timedelta(days=7), DAY: timedelta(days=90)}
MAX_POINTS = 5000


class SeriesError(ApplicationError, ValueError):
    """A series request that cannot be answered as asked; the message names the field."""


# --------------------------------------------------------------------------- overview


@dataclass(frozen=True)
class ProductionSummary:
    name: str
    version: int | None
    record: ModelVersion | None
    error: str | None


def production_summary(*, model_name: str) -> ProductionSummary:
    """The model's production version, resolved through the per-process loader cache."""
    name = model_name
    try:
        version = loader().version_resolve(name)
    except ModelUnavailable as exc:
        return ProductionSummary(name=name, version=None, record=None, error=str(exc))
    record = ModelVersion.objects.defer("profile", "params").filter(name=name, version=version).first()
    return ProductionSummary(name=name, version=version, record=record, error=None)


def model_task(*, model_name: str, version: int | None = None) -> str | None:
    """ "classification" or "regression" of a version (the newest recorded one without a version)."""
    versions = ModelVersion.objects.filter(name=model_name)
    if version is not None:
        versions = versions.filter(version=version)
    return versions.order_by("-version").values_list("task", flat=True).first()


def ingestion_latest(*, model_name: str) -> dict:
    return {
        "file": IngestedFile.objects.filter(model_name=model_name)
        .only("id", "original_name", "status", "rows_in", "rows_good", "rows_bad", "started_at", "finished_at")
        .first(),
        "run": IngestionRun.objects.filter(model_name=model_name).first(),
    }


def scheduled_run_latest(*, model_name: str) -> ScheduledRun | None:
    return ScheduledRun.objects.filter(model_name=model_name).first()


def alerts_open(*, model_name: str | None = None, limit: int = 5) -> dict:
    """Open alerts about the model (None: every alert)."""
    open_alerts = Alert.objects.filter(acknowledged_at__isnull=True)
    if model_name is not None:
        open_alerts = open_alerts.filter(model_name=model_name)
    return {"count": open_alerts.count(), "latest": list(open_alerts.order_by("-created_at")[:limit])}


def drift_report_latest(*, model_name: str) -> DriftReport | None:
    """The model's newest report of any kind (the drift pages show it, hand-run or scheduled)."""
    return DriftReport.objects.filter(model_name=model_name).order_by("-created_at", "-id").first()


def drift_status_report(*, model_name: str) -> DriftReport | None:
    """The model's drift status: its newest scheduled report (hand-run checks never become it)."""
    reports = DriftReport.objects.filter(model_name=model_name, scheduled=True)
    return reports.order_by("-created_at", "-id").first()


def drift_report_get(*, report_id: int, model_name: str | None = None) -> DriftReport | None:
    """A report by number; with `model_name`, only if it is that model's (a page's URL names both)."""
    reports = DriftReport.objects.filter(pk=report_id)
    return (reports.filter(model_name=model_name) if model_name is not None else reports).first()


def drift_report_list(*, model_name: str, limit: int = 50):
    reports = DriftReport.objects.filter(model_name=model_name)
    return reports.order_by("-created_at", "-id").prefetch_related("alerts")[:limit]


def drift_report_features(*, report: DriftReport, with_distribution: bool = False) -> list[FeatureDrift]:
    rows = report.features.all()
    if not with_distribution:
        rows = rows.defer("distribution")
    ordered = sorted(rows, key=lambda r: (r.feature == PREDICTION_FEATURE, not r.drifted, r.feature))
    return ordered


def feature_drift_get(*, report: DriftReport, feature: str) -> FeatureDrift | None:
    return report.features.filter(feature=feature).first()


# --------------------------------------------------------------------------- drift history


def _effect_threshold(config: dict, feature: str) -> float | None:
    drift = (config or {}).get("drift") or {}
    override = (
        drift.get("prediction") if feature == PREDICTION_FEATURE else (drift.get("per_feature") or {}).get(feature)
    )
    return (override or {}).get("effect_threshold", drift.get("effect_threshold"))


def _p_threshold(config: dict, feature: str) -> float | None:
    drift = (config or {}).get("drift") or {}
    override = (
        drift.get("prediction") if feature == PREDICTION_FEATURE else (drift.get("per_feature") or {}).get(feature)
    )
    return (override or {}).get("stattest_threshold", drift.get("stattest_threshold"))


def _report_configs(report_ids) -> dict[int, dict]:
    """Each report's config, parsed once per distinct text (checks in a row share one config)."""
    parsed: dict[str, dict] = {}
    configs = {}
    texts = DriftReport.objects.filter(pk__in=report_ids).annotate(text=Cast("config", TextField()))
    for report_id, text in texts.values_list("id", "text"):
        if text not in parsed:
            parsed[text] = json.loads(text) if text else {}
        configs[report_id] = parsed[text]
    return configs


def drift_history(*, model_name: str, feature: str | None = None, limit: int = 500) -> list[dict]:
    """Per report (oldest first): statistic, p-value, effect size, PSI, the thresholds and the verdict.

    ``feature=None``: every feature of the newest ``limit // 20`` reports (the drift page's chart).
    """
    fields = (
        "report_id",
        "report__created_at",
        "report__model_version",
        "feature",
        "test",
        "statistic",
        "p_value",
        "effect_name",
        "effect_size",
        "psi",
        "method_used",
        "threshold",
        "drifted",
        "verdict",
        "n_window",
    )
    rows = FeatureDrift.objects.filter(report__model_name=model_name)
    if feature is not None:
        rows = rows.filter(feature=feature).order_by("-created_at", "-id").values(*fields)[:limit]
    else:
        report_ids = list(
            DriftReport.objects.filter(model_name=model_name)
            .order_by("-created_at", "-id")
            .values_list("id", flat=True)[: max(limit // 20, 1)]
        )
        rows = rows.filter(report_id__in=report_ids).order_by("-created_at", "feature").values(*fields)
    rows = list(rows)
    configs = _report_configs({r["report_id"] for r in rows})
    history = []
    for row in rows:
        config = configs.get(row["report_id"])
        row["created_at"] = row.pop("report__created_at")
        row["model_version"] = row.pop("report__model_version")
        row["effect_threshold"] = _effect_threshold(config, row["feature"])
        row["p_threshold"] = _p_threshold(config, row["feature"])
        history.append(row)
    history.reverse()
    return history


def drift_share_history(*, model_name: str, limit: int = 500) -> list[dict]:
    reports = (
        DriftReport.objects.filter(model_name=model_name)
        .order_by("-created_at", "-id")
        .values("id", "created_at", "model_version", "drifted_share", "dataset_drift", "n_rows", "config")[:limit]
    )
    points = [
        {
            "report_id": r["id"],
            "created_at": r["created_at"],
            "model_version": r["model_version"],
            "drifted_share": r["drifted_share"],
            "dataset_drift": r["dataset_drift"],
            "n_rows": r["n_rows"],
            "drift_share_threshold": ((r["config"] or {}).get("drift") or {}).get("drift_share"),
        }
        for r in reports
    ]
    points.reverse()
    return points


# --------------------------------------------------------------------------- prediction series


def series_window(
    *, granularity: str, since: datetime | None = None, until: datetime | None = None
) -> tuple[datetime, datetime]:
    if granularity not in GRANULARITIES:
        raise SeriesError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    until = until or timezone.now()
    since = since or until - DEFAULT_SPAN[granularity]
    if since >= until:
        raise SeriesError("since must be before until")
    if granularity == MINUTE and until - since > MAX_MINUTE_SPAN:
        raise SeriesError(
            f"a per-minute series spans at most {MAX_MINUTE_SPAN.total_seconds() / 3600:.0f} hours; "
            "use granularity=hour for longer intervals"
        )
    return since, until


def _grouped(*, model_name, granularity, since, until, model_version=None, source=None):
    """Rows of (bucket, model_version, predicted, actual) with n, feedback and value sums, in the database."""
    if granularity == MINUTE:
        rows = predictions_served().filter(model_name=model_name, created_at__gte=since, created_at__lt=until)
        rows = rows.annotate(
            bucket=TruncMinute("created_at"),
            predicted=Coalesce("predicted_label", Value("")),
            actual=Coalesce("actual_label", Value("")),
        )
        value = F("predicted_value")
        aggregates = {
            "n": Count("id"),
            "value_sum": Sum(value),
            "value_sumsq": Sum(value * value),
            "value_min": Min(value),
            "value_max": Max(value),
        }
    else:
        # Rollup rows start on the hour: keep the hours that overlap [since, until).
        rows = PredictionRollup.objects.filter(
            model_name=model_name, hour__gt=since - timedelta(hours=1), hour__lt=until
        )
        rows = rows.annotate(
            bucket=TruncHour("hour") if granularity == HOUR else TruncDay("hour"),
            predicted=F("predicted_label"),
            actual=F("actual_label"),
        )
        aggregates = {
            "n": Sum("n"),
            "n_feedback": Sum("n_feedback"),
            "value_sum": Sum("value_sum"),
            "value_sumsq": Sum("value_sumsq"),
            "value_min": Min("value_min"),
            "value_max": Max("value_max"),
            "abs_error_sum": Sum("abs_error_sum"),
            "sq_error_sum": Sum("sq_error_sum"),
        }
    if model_version is not None:
        rows = rows.filter(model_version=model_version)
    if source:
        rows = rows.filter(source=source)
    return list(
        rows.order_by()
        .values("bucket", "model_version", "predicted", "actual")
        .annotate(**aggregates)
        .order_by("bucket", "model_version")[: MAX_POINTS * 20]
    )


@dataclass
class SeriesPoint:
    bucket: datetime
    model_version: int
    n: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    value_sum: float = 0.0
    value_sumsq: float = 0.0
    value_min: float | None = None
    value_max: float | None = None
    n_values: int = 0

    def as_dict(self) -> dict:
        mean = self.value_sum / self.n_values if self.n_values else None
        std = None
        if mean is not None:
            std = math.sqrt(max(self.value_sumsq / self.n_values - mean * mean, 0.0))
        return {
            "time": self.bucket,
            "model_version": self.model_version,
            "n": self.n,
            "labels": dict(sorted(self.labels.items())) if self.labels else None,
            "value_mean": mean,
            "value_std": std,
            "value_min": self.value_min,
            "value_max": self.value_max,
        }


def prediction_series(
    *,
    model_name: str,
    granularity: str = HOUR,
    since: datetime | None = None,
    until: datetime | None = None,
    model_version: int | None = None,
    source: str | None = None,
) -> dict:
    """Predictions per bucket and model version: count, label counts (classification), value stats (regression)."""
    since, until = series_window(granularity=granularity, since=since, until=until)
    points: dict[tuple, SeriesPoint] = {}
    for row in _grouped(
        model_name=model_name,
        granularity=granularity,
        since=since,
        until=until,
        model_version=model_version,
        source=source,
    ):
        key = (row["bucket"], row["model_version"])
        point = points.get(key) or points.setdefault(key, SeriesPoint(bucket=row["bucket"], model_version=key[1]))
        point.n += row["n"]
        if row["predicted"]:
            point.labels[row["predicted"]] = point.labels.get(row["predicted"], 0) + row["n"]
        if row["value_sum"] is not None:
            point.n_values += row["n"]
            point.value_sum += row["value_sum"]
            point.value_sumsq += row["value_sumsq"] or 0.0
            point.value_min = row["value_min"] if point.value_min is None else min(point.value_min, row["value_min"])
            point.value_max = row["value_max"] if point.value_max is None else max(point.value_max, row["value_max"])
    return {
        "model_name": model_name,
        "granularity": granularity,
        "since": since,
        "until": until,
        "rollups_position": rollups_position() if granularity != MINUTE else until,
        "points": [p.as_dict() for p in sorted(points.values(), key=lambda p: (p.bucket, p.model_version))],
    }


def model_versions_seen(*, model_name: str) -> list[int]:
    return sorted(
        PredictionRollup.objects.filter(model_name=model_name).values_list("model_version", flat=True).distinct()
    )


# --------------------------------------------------------------------------- online performance


def _f1_macro(confusion: dict[tuple[str, str], int]) -> float | None:
    labels = {a for a, _ in confusion} | {p for _, p in confusion}
    if not labels:
        return None
    scores = []
    for label in labels:
        tp = confusion.get((label, label), 0)
        fp = sum(n for (a, p), n in confusion.items() if p == label and a != label)
        fn = sum(n for (a, p), n in confusion.items() if a == label and p != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / len(scores)


def performance_series(
    *,
    model_name: str,
    granularity: str = DAY,
    since: datetime | None = None,
    until: datetime | None = None,
    model_version: int | None = None,
) -> dict:
    """Online metrics on the predictions that got feedback, per bucket and model version.

    Classification: accuracy and macro F1; regression: MAE and RMSE. Buckets are
    by prediction time (when the model answered), from the hourly rollups.
    """
    if granularity == MINUTE:
        raise SeriesError("online performance is available per hour or per day")
    since, until = series_window(granularity=granularity, since=since, until=until)
    task = model_task(model_name=model_name, version=model_version)
    confusion: dict[tuple, dict[tuple[str, str], int]] = defaultdict(dict)
    errors: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for row in _grouped(
        model_name=model_name, granularity=granularity, since=since, until=until, model_version=model_version
    ):
        if not row["n_feedback"]:
            continue
        key = (row["bucket"], row["model_version"])
        if row["actual"]:
            pair = (row["actual"], row["predicted"])
            confusion[key][pair] = confusion[key].get(pair, 0) + row["n_feedback"]
        elif row["abs_error_sum"] is not None:
            errors[key][0] += row["n_feedback"]
            errors[key][1] += row["abs_error_sum"]
            errors[key][2] += row["sq_error_sum"] or 0.0
    points = []
    for key in sorted(set(confusion) | set(errors)):
        point = {"time": key[0], "model_version": key[1]}
        if key in confusion:
            cells = confusion[key]
            n = sum(cells.values())
            point.update(
                n_feedback=n,
                accuracy=sum(v for (a, p), v in cells.items() if a == p) / n,
                f1_macro=_f1_macro(cells),
            )
        else:
            n, abs_sum, sq_sum = errors[key]
            point.update(n_feedback=n, mae=abs_sum / n, rmse=math.sqrt(sq_sum / n))
        points.append(point)
    return {
        "model_name": model_name,
        "task": task,
        "granularity": granularity,
        "since": since,
        "until": until,
        "rollups_position": rollups_position(),
        "points": points,
    }


# --------------------------------------------------------------------------- data quality


def data_quality_series(
    *, model_name: str, since: datetime | None = None, until: datetime | None = None, limit: int = 2000
) -> dict:
    """Bad-row share per file ingested for the model, and issue counts per day and rule."""
    until = until or timezone.now()
    since = since or until - timedelta(days=30)
    if since >= until:
        raise SeriesError("since must be before until")
    files = list(
        IngestedFile.objects.filter(model_name=model_name, started_at__gte=since, started_at__lt=until)
        .exclude(status__in=[IngestedFile.Status.PROCESSING, IngestedFile.Status.FAILED])
        .order_by("-started_at")
        .values("id", "original_name", "status", "rows_in", "rows_good", "rows_bad", "started_at", "finished_at")[
            :limit
        ]
    )
    files.reverse()
    for item in files:
        item["bad_share"] = item["rows_bad"] / item["rows_in"] if item["rows_in"] else None
        item["time"] = item["started_at"]
    issues = list(
        DataQualityIssue.objects.filter(
            ingested_file__model_name=model_name, created_at__gte=since, created_at__lt=until
        )
        .annotate(day=TruncDay("created_at"))
        .values("day", "rule")
        .annotate(rows=Sum("count"), files=Count("ingested_file", distinct=True))
        .order_by("day", "rule")
    )
    return {
        "since": since,
        "until": until,
        "files": files,
        "issues_by_rule": [
            {"time": i["day"], "rule": i["rule"], "rows": i["rows"], "files": i["files"]} for i in issues
        ],
    }


# --------------------------------------------------------------------------- every deployment


@dataclass(frozen=True)
class DeploymentState:
    """One served model's line on the overview."""

    name: str
    version: int
    task: str
    since: datetime
    last_file: IngestedFile | None
    last_scheduled_run: ScheduledRun | None
    drift: DriftReport | None
    open_alerts: int
    predictions_24h: int


def deployment_states() -> list[DeploymentState]:
    """Every served model with its latest ingestion, scoring, drift verdict, alerts and volume.

    A handful of queries per model, each on an index led by the model's name.
    """
    since = timezone.now() - timedelta(hours=24)
    states = []
    for deployment in deployment_list():
        name = deployment.name
        volume = PredictionRollup.objects.filter(model_name=name, hour__gte=since.replace(minute=0, second=0))
        states.append(
            DeploymentState(
                name=name,
                version=deployment.version,
                task=deployment.task,
                since=deployment.since,
                last_file=IngestedFile.objects.filter(model_name=name).order_by("-started_at", "-id").first(),
                last_scheduled_run=ScheduledRun.objects.filter(model_name=name).first(),
                drift=drift_status_report(model_name=name),
                open_alerts=Alert.objects.filter(model_name=name, acknowledged_at__isnull=True).count(),
                predictions_24h=volume.aggregate(n=Sum("n"))["n"] or 0,
            )
        )
    return states
