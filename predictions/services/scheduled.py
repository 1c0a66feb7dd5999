"""The scheduled prediction job, one per model: score its good files not yet scored, exactly once.

Files are claimed one at a time through the database (SELECT ... FOR UPDATE
SKIP LOCKED), so overlapping runs and several workers share the work. Rows are
written with `skip_existing`: the unique key (good file, row, model version)
makes a re-run after a crash, or a duplicate delivery, write each row once.
A file left `scoring` by a killed worker is claimed again once it is stale.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pandas as pd
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from models_registry.features import frame_for_model
from models_registry.serving import ModelUnavailable

from ..models import GoodFile, Prediction, ScheduledRun, Source
from .predict import served_model_get
from .store import RowContext, prediction_rows_write

logger = logging.getLogger(__name__)
STALE_CLAIM = timedelta(minutes=10)
CHUNK_ROWS = 50_000


def _claim_next_file(model_name: str) -> GoodFile | None:
    with transaction.atomic():
        good_file = (
            GoodFile.objects.select_for_update(skip_locked=True)
            .filter(model_name=model_name)
            .filter(
                Q(status=GoodFile.Status.PENDING)
                | Q(status=GoodFile.Status.SCORING, claimed_at__lt=timezone.now() - STALE_CLAIM)
            )
            .order_by("created_at", "id")
            .first()
        )
        if good_file is None:
            return None
        good_file.status = GoodFile.Status.SCORING
        good_file.claimed_at = timezone.now()
        good_file.save(update_fields=["status", "claimed_at"])
        return good_file


def _score_file(good_file: GoodFile, served, run: ScheduledRun, chunk_rows: int) -> int:
    written = 0
    context = RowContext(source=Source.SCHEDULED, request_id=f"scheduled:{run.pk}", good_file_id=good_file.pk)
    for chunk in pd.read_csv(good_file.path, chunksize=chunk_rows):
        missing = [name for name in served.feature_names if name not in chunk.columns]
        if missing or "row_number" not in chunk.columns:
            raise ValueError(f"{good_file.path} lacks column(s): {', '.join(missing or ['row_number'])}")
        features = frame_for_model(chunk[served.feature_names], served.profile)
        written += prediction_rows_write(
            served=served,
            features=features,
            outputs=served.predict_model_input(features),
            context=context,
            row_numbers=chunk["row_number"].to_numpy(),
            skip_existing=True,
        )
    return written


def scheduled_scoring_run(*, model_name: str, chunk_rows: int = CHUNK_ROWS) -> ScheduledRun:
    """One pass for `model_name`: claim and score its good files until none is left; returns the run's record."""
    run = ScheduledRun.objects.create(model_name=model_name)
    try:
        served = served_model_get(model_name)
    except ModelUnavailable as exc:
        ScheduledRun.objects.filter(pk=run.pk).update(
            status=ScheduledRun.Status.FAILED, error=str(exc), finished_at=timezone.now()
        )
        return ScheduledRun.objects.get(pk=run.pk)
    ScheduledRun.objects.filter(pk=run.pk).update(model_name=served.name, model_version=served.version)
    files = rows = 0
    errors = []
    try:
        while (good_file := _claim_next_file(model_name)) is not None:
            try:
                rows += _score_file(good_file, served, run, chunk_rows)
            except (OSError, ValueError, pd.errors.ParserError) as exc:  # the file's fault: not retried
                logger.warning("Scheduled scoring of %s failed: %s", good_file.path, exc)
                errors.append(f"{Path(good_file.path).name}: {exc}")
                GoodFile.objects.filter(pk=good_file.pk).update(status=GoodFile.Status.FAILED, error=str(exc)[:2000])
                continue
            scored = Prediction.objects.filter(
                good_file=good_file, model_name=served.name, model_version=served.version
            ).count()
            GoodFile.objects.filter(pk=good_file.pk).update(
                status=GoodFile.Status.SCORED, rows_scored=scored, scored_at=timezone.now(), error=""
            )
            files += 1
    except Exception as exc:
        # Not the file's fault (database, model): the claim stays and goes stale, so a later run retakes
        # the file; the run says what happened instead of staying `running`.
        ScheduledRun.objects.filter(pk=run.pk).update(
            status=ScheduledRun.Status.FAILED,
            files_scored=files,
            rows_scored=rows,
            error="\n".join([*errors, f"{type(exc).__name__}: {exc}"])[:5000],
            finished_at=timezone.now(),
        )
        raise
    ScheduledRun.objects.filter(pk=run.pk).update(
        status=ScheduledRun.Status.FAILED if errors and not files else ScheduledRun.Status.SUCCEEDED,
        files_scored=files,
        rows_scored=rows,
        error="\n".join(errors)[:5000],
        finished_at=timezone.now(),
    )
    return ScheduledRun.objects.get(pk=run.pk)
