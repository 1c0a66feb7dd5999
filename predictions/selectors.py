"""Reads of the predictions app."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from .access import prediction_visible_q
from .models import GoodFile, Prediction, ScheduledRun, Variant


def predictions_served() -> QuerySet[Prediction]:
    """The inference log without shadow rows: what answered a request, a file or a job.

    Monitoring (rollups, drift windows, dashboards) reads this; a challenger's shadow answers
    are compared with production's on their own page (`predictions.experiments`).
    """
    return Prediction.objects.exclude(variant=Variant.SHADOW)


def prediction_list(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    model_name: str | None = None,
    model_version: int | None = None,
    variant: str | None = None,
    visible_to=None,
) -> QuerySet[Prediction]:
    """Past predictions, newest first (indexed on time, source and version); shadow rows only when
    `variant` asks for them; with ``visible_to`` (a user), only those that user may see
    (predictions/access.py)."""
    queryset = Prediction.objects.filter(variant=variant) if variant else predictions_served()
    visible = prediction_visible_q(visible_to) if visible_to is not None else None
    if visible is not None:
        queryset = queryset.filter(visible)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    if source:
        queryset = queryset.filter(source=source)
    if model_name:
        queryset = queryset.filter(model_name=model_name)
    if model_version is not None:
        queryset = queryset.filter(model_version=model_version)
    return queryset.order_by("-created_at", "-id")


def scheduled_run_list(*, model_name: str | None = None) -> QuerySet[ScheduledRun]:
    runs = ScheduledRun.objects.order_by("-started_at", "-id")
    return runs.filter(model_name=model_name) if model_name else runs


def good_files_waiting(*, model_name: str | None = None) -> QuerySet[GoodFile]:
    files = GoodFile.objects.exclude(status=GoodFile.Status.SCORED).order_by("created_at")
    return files.filter(model_name=model_name) if model_name else files
