"""Dashboard pages: overview, drift (reports, features), predictions over time, data quality, online performance.

Each view parses its filters, calls selectors and builds figures from what they
return; every series comes aggregated from the database or from the stored drift
reports (see monitoring/selectors/dashboards.py).
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from predictions.models import Source

from .. import charts
from ..selectors import dashboards as selectors
from ..services.drift import PREDICTION_FEATURE
from ..services.rollups import rollups_position


def _volume_chart(series: dict | None) -> str | None:
    """Predictions per bucket over the window the series covers; None without data."""
    if not series or not series["points"]:
        return None
    return charts.predictions_volume(
        series["points"], bucket=series["granularity"], window=(series["since"], series["until"])
    )


@login_required
def overview_all(request):
    """Every served model with its state: the home page."""
    return render(
        request,
        "monitoring/dashboards/overview_all.html",
        {"nav": "overview", "deployments": selectors.deployment_states(), "alerts": selectors.alerts_open(limit=5)},
    )


@login_required
def overview(request, model_name: str):
    production = selectors.production_summary(model_name=model_name)
    report = selectors.drift_status_report(model_name=model_name)
    now = timezone.now()
    series = selectors.prediction_series(
        model_name=model_name, granularity=selectors.HOUR, since=now - timedelta(hours=48), until=now
    )
    points = series["points"]
    return render(
        request,
        "monitoring/dashboards/overview.html",
        {
            "nav": "model_overview",
            "model_name": model_name,
            "production": production,
            "ingestion": selectors.ingestion_latest(model_name=model_name),
            "scheduled_run": selectors.scheduled_run_latest(model_name=model_name),
            "report": report,
            "drifted_features": [f for f in selectors.drift_report_features(report=report) if f.drifted]
            if report
            else [],
            "alerts": selectors.alerts_open(model_name=model_name, limit=5),
            "drift_every": settings.MLAPP_DRIFT_EVERY_MINUTES,
            "predictions_48h": sum(p["n"] for p in points),
            "rollups_position": series["rollups_position"],
            "volume_chart": _volume_chart(series),
        },
    )


def _drift_page(request, model_name: str, report):
    history = selectors.drift_history(model_name=model_name, limit=2000) if report else []
    share_history = selectors.drift_share_history(model_name=model_name, limit=100) if report else []
    return render(
        request,
        "monitoring/dashboards/drift.html",
        {
            "nav": "drift",
            "model_name": model_name,
            "report": report,
            "is_latest": report is not None and report == selectors.drift_report_latest(model_name=model_name),
            "features": selectors.drift_report_features(report=report) if report else [],
            "prediction_feature": PREDICTION_FEATURE,
            "history_chart": charts.drift_overview_history(history, share_history) if history else None,
            "reports": selectors.drift_report_list(model_name=model_name, limit=20),
        },
    )


@login_required
def drift(request, model_name: str):
    return _drift_page(request, model_name, selectors.drift_report_latest(model_name=model_name))


@login_required
def drift_report(request, model_name: str, pk: int):
    report = selectors.drift_report_get(report_id=pk, model_name=model_name)
    if report is None:
        raise Http404(f"{model_name} has no drift report #{pk}")
    return _drift_page(request, model_name, report)


@login_required
def drift_feature(request, model_name: str, feature: str):
    report_id = request.GET.get("report")
    if report_id:
        if not report_id.isdigit():
            raise Http404("report must be a report number")
        report = selectors.drift_report_get(report_id=int(report_id), model_name=model_name)
    else:
        report = selectors.drift_report_latest(model_name=model_name)
    if report is None:
        raise Http404("No drift report yet: run a drift check first")
    row = selectors.feature_drift_get(report=report, feature=feature)
    if row is None:
        raise Http404(f"Drift report #{report.pk} has no feature {feature!r}")
    label = "predictions" if feature == PREDICTION_FEATURE else feature
    history = selectors.drift_history(model_name=report.model_name, feature=feature, limit=500)
    return render(
        request,
        "monitoring/dashboards/feature.html",
        {
            "nav": "drift",
            "model_name": model_name,
            "report": report,
            "row": row,
            "label": label,
            "features": selectors.drift_report_features(report=report),
            "distribution_chart": charts.distribution(row.distribution, drifted=row.drifted)
            if row.distribution
            else None,
            "history_chart": charts.feature_history(history) if history else None,
        },
    )


class PredictionSeriesForm(forms.Form):
    granularity = forms.ChoiceField(choices=[(g, g) for g in selectors.GRANULARITIES], initial=selectors.HOUR)
    model_version = forms.IntegerField(required=False, min_value=1)
    source = forms.ChoiceField(choices=[("", "all"), *Source.choices], required=False)


@login_required
def prediction_series(request, model_name: str):
    data = request.GET.copy()
    data.setdefault("granularity", selectors.HOUR)
    form = PredictionSeriesForm(data)
    series, error, version = None, None, None
    if form.is_valid():
        version = form.cleaned_data["model_version"]
        try:
            series = selectors.prediction_series(
                model_name=model_name,
                granularity=form.cleaned_data["granularity"],
                model_version=version,
                source=form.cleaned_data["source"] or None,
            )
        except selectors.SeriesError as exc:
            error = str(exc)
    task = selectors.model_task(model_name=model_name, version=version)
    points = series["points"] if series else []
    return render(
        request,
        "monitoring/dashboards/predictions.html",
        {
            "nav": "model_overview",
            "tab": "predictions",
            "model_name": model_name,
            "form": form,
            "error": error,
            "series": series,
            "task": task,
            "versions": selectors.model_versions_seen(model_name=model_name),
            "total": sum(p["n"] for p in points),
            "volume_chart": _volume_chart(series),
            "distribution_chart": charts.predictions_distribution(points, task=task) if points else None,
        },
    )


@login_required
def data_quality(request, model_name: str):
    days = request.GET.get("days", "30")
    days = int(days) if days.isdigit() and 0 < int(days) <= 365 else 30
    now = timezone.now()
    series = selectors.data_quality_series(model_name=model_name, since=now - timedelta(days=days), until=now)
    return render(
        request,
        "monitoring/dashboards/quality.html",
        {
            "nav": "model_overview",
            "tab": "quality",
            "model_name": model_name,
            "days": days,
            "series": series,
            "n_files": len(series["files"]),
            "rows_in": sum(f["rows_in"] for f in series["files"]),
            "rows_bad": sum(f["rows_bad"] for f in series["files"]),
            "bad_share_chart": charts.bad_share(series["files"]) if series["files"] else None,
            "issues_chart": charts.issues_by_rule(series["issues_by_rule"]) if series["issues_by_rule"] else None,
        },
    )


@login_required
def performance(request, model_name: str):
    granularity = request.GET.get("granularity") or selectors.DAY
    if granularity not in (selectors.HOUR, selectors.DAY):
        granularity = selectors.DAY
    series = selectors.performance_series(model_name=model_name, granularity=granularity)
    points = series["points"]
    return render(
        request,
        "monitoring/dashboards/performance.html",
        {
            "nav": "model_overview",
            "tab": "performance",
            "model_name": model_name,
            "granularity": granularity,
            "series": series,
            "rows": list(reversed(points))[:60],
            "chart": charts.performance(points, task=series["task"]) if points else None,
            "rollups_position": rollups_position(),
        },
    )
