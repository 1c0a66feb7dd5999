"""Hourly rollups of the prediction log, so dashboards never scan it per request.

`prediction_rollups_refresh` recomputes whole hours from `Prediction` in the
database (GROUP BY hour, model version, source, predicted and actual label) and
replaces those hours' `PredictionRollup` rows in one transaction. Which hours:

- new predictions: every hour from ``ROLLUP_LOOKBACK`` before the last refresh
  until now (rows committed a little after their ``created_at`` are still
  counted: a writer may stamp a batch at its start and commit minutes later);
- feedback: the hours of predictions whose ``feedback_at`` is later than the
  latest feedback already rolled up (minus the same lookback).

It is idempotent (same predictions, same rows) and serialised through the
cursor row, so overlapping runs do not double count. The first run, or
``full=True``, rebuilds everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, Sum, Value
from django.db.models.functions import Abs, Coalesce, TruncHour
from django.utils import timezone

from predictions.models import Prediction
from predictions.selectors import predictions_served

from ..models import PredictionRollup, RollupCursor

logger = logging.getLogger(__name__)

CURSOR_NAME = "prediction_hourly"
ROLLUP_LOOKBACK = timedelta(hours=2)


@dataclass(frozen=True)
class RollupRefreshResult:
    refreshed: bool  # False: another refresh holds the cursor
    since: datetime | None  # first hour recomputed (None: everything)
    rows_written: int
    position: datetime | None


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _aggregate(predictions):
    value = F("predicted_value")
    error = F("predicted_value") - F("actual_value")
    has_feedback = Q(actual_label__isnull=False) | Q(actual_value__isnull=False)
    return (
        predictions.order_by()
        .annotate(
            bucket=TruncHour("created_at"),
            predicted=Coalesce("predicted_label", Value("")),
            actual=Coalesce("actual_label", Value("")),
        )
        .values("bucket", "model_name", "model_version", "source", "predicted", "actual")
        .annotate(
            n=Count("id"),
            n_feedback=Count("id", filter=has_feedback),
            value_sum=Sum(value),
            value_sumsq=Sum(value * value),
            value_min=Min(value),
            value_max=Max(value),
            abs_error_sum=Sum(Abs(error)),
            sq_error_sum=Sum(error * error),
        )
    )


def prediction_rollups_refresh(*, full: bool = False, now: datetime | None = None) -> RollupRefreshResult:
    """Bring the hourly rollups up to date (see the module docstring)."""
    now = now or timezone.now()
    with transaction.atomic():
        RollupCursor.objects.get_or_create(name=CURSOR_NAME)
        cursor = RollupCursor.objects.select_for_update(skip_locked=True).filter(name=CURSOR_NAME).first()
        if cursor is None:
            return RollupRefreshResult(refreshed=False, since=None, rows_written=0, position=None)

        since = None if full or cursor.position is None else _hour_floor(cursor.position - ROLLUP_LOOKBACK)
        feedback_since = cursor.feedback_position
        new_feedback_position = feedback_since
        if since is not None:
            feedback = Prediction.objects.filter(feedback_at__isnull=False)
            if feedback_since is not None:
                feedback = feedback.filter(feedback_at__gt=feedback_since - ROLLUP_LOOKBACK)
            stats = feedback.aggregate(first_hour=Min("created_at"), last_feedback=Max("feedback_at"))
            if stats["first_hour"] is not None:
                since = min(since, _hour_floor(stats["first_hour"]))
                new_feedback_position = max(filter(None, [feedback_since, stats["last_feedback"]]))
        else:
            new_feedback_position = Prediction.objects.aggregate(last=Max("feedback_at"))["last"]

        predictions = predictions_served()
        stale = PredictionRollup.objects.all()
        if since is not None:
            predictions = predictions.filter(created_at__gte=since)
            stale = stale.filter(hour__gte=since)
        stale.delete()
        rows = [
            PredictionRollup(
                hour=group["bucket"],
                model_name=group["model_name"],
                model_version=group["model_version"],
                source=group["source"],
                predicted_label=group["predicted"],
                actual_label=group["actual"],
                n=group["n"],
                n_feedback=group["n_feedback"],
                value_sum=group["value_sum"],
                value_sumsq=group["value_sumsq"],
                value_min=group["value_min"],
                value_max=group["value_max"],
                abs_error_sum=group["abs_error_sum"],
                sq_error_sum=group["sq_error_sum"],
            )
            for group in _aggregate(predictions).iterator(chunk_size=5000)
        ]
        PredictionRollup.objects.bulk_create(rows, batch_size=2000)
        cursor.position = now
        cursor.feedback_position = new_feedback_position
        cursor.save(update_fields=["position", "feedback_position", "updated_at"])
    logger.info("Prediction rollups: %s rows written from %s", len(rows), since or "the beginning")
    return RollupRefreshResult(refreshed=True, since=since, rows_written=len(rows), position=now)


def rollups_position() -> datetime | None:
    """When the rollups were last brought up to date (None: never)."""
    return RollupCursor.objects.filter(name=CURSOR_NAME).values_list("position", flat=True).first()
