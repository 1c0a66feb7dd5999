"""The scheduled prediction job, one per model: score its good files not yet scored, exactly once.

Files are claimed one at a time through the jobs lifecycle (`job_claim_next`:
SELECT ... FOR UPDATE SKIP LOCKED), so overlapping runs and several workers share
the work; the claim beats once per chunk. Rows are written with `skip_existing`:
the unique key (good file, row, model version) makes a re-run after a crash, or a
duplicate delivery, write each row once. A file left `scoring` by a killed worker
is claimed again once its heartbeat is older than MLAPP_JOB_STALE_SECONDS; the
run itself beats per file, and the reclaim step marks a run whose worker was
lost failed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.utils import timezone

from jobs.services import Claim, JobLost, job_claim_next, job_create_claimed, job_fail, job_heartbeat, job_succeed
from models_registry.csv_reader import CsvReadError, csv_chunks_typed, csv_header
from models_registry.serving import ModelUnavailable

from ..models import GoodFile, Prediction, ScheduledRun, Source
from .predict import served_model_get
from .store import RowContext, prediction_rows_write

logger = logging.getLogger(__name__)
CHUNK_ROWS = 50_000


def _claim_next_file(model_name: str) -> tuple[GoodFile, Claim] | None:
    claim = job_claim_next(queryset=GoodFile.objects.filter(model_name=model_name), order_by=("created_at", "id"))
    return None if claim is None else (GoodFile.objects.get(pk=claim.pk), claim)


def _score_file(good_file: GoodFile, claim: Claim, served, run: ScheduledRun, chunk_rows: int) -> int:
    written = 0
    context = RowContext(source=Source.SCHEDULED, request_id=f"scheduled:{run.pk}", good_file_id=good_file.pk)
    header = csv_header(good_file.path)
    missing = [name for name in [*served.feature_names, "row_number"] if name not in header]
    if missing:
        raise ValueError(f"{good_file.path} lacks column(s): {', '.join(missing)}")
    for chunk in csv_chunks_typed(good_file.path, profile=served.profile, chunk_rows=chunk_rows, keep=("row_number",)):
        features = chunk[served.feature_names]
        written += prediction_rows_write(
            served=served,
            features=features,
            outputs=served.predict_model_input(features),
            context=context,
            row_numbers=chunk["row_number"].astype("int64").to_numpy(),
            skip_existing=True,
        )
        job_heartbeat(claim)  # JobLost: another run took the file over (what is written stays, once)
    return written


def scheduled_scoring_run(*, model_name: str, chunk_rows: int = CHUNK_ROWS) -> ScheduledRun:
    """One pass for `model_name`: claim and score its good files until none is left; returns the run's record."""
    run, run_claim = job_create_claimed(model=ScheduledRun, model_name=model_name)
    try:
        served = served_model_get(model_name)
    except ModelUnavailable as exc:
        job_fail(run_claim, error=str(exc))
        return ScheduledRun.objects.get(pk=run.pk)
    job_heartbeat(run_claim, model_name=served.name, model_version=served.version)
    files = rows = 0
    errors = []
    try:
        while (claimed := _claim_next_file(model_name)) is not None:
            good_file, claim = claimed
            try:
                rows += _score_file(good_file, claim, served, run, chunk_rows)
                scored = Prediction.objects.filter(
                    good_file=good_file, model_name=served.name, model_version=served.version
                ).count()
                job_succeed(claim, rows_scored=scored, scored_at=timezone.now(), error="")
            except JobLost:  # stalled past the stale timeout: another run has the file now
                logger.warning("Scheduled scoring of %s was taken over by another run", good_file.path)
                continue
            except (OSError, ValueError, CsvReadError) as exc:  # the file's fault: not retried
                logger.warning("Scheduled scoring of %s failed: %s", good_file.path, exc)
                errors.append(f"{Path(good_file.path).name}: {exc}")
                job_fail(claim, error=str(exc)[:2000])
                continue
            files += 1
            job_heartbeat(run_claim, files_scored=files, rows_scored=rows)
    except Exception as exc:
        # Not the file's fault (database, model): the claim stays and goes stale, so a later run retakes
        # the file; the run says what happened instead of staying `running`.
        job_fail(
            run_claim,
            error="\n".join([*errors, f"{type(exc).__name__}: {exc}"]),
            files_scored=files,
            rows_scored=rows,
        )
        raise
    outcome = {"files_scored": files, "rows_scored": rows, "error": "\n".join(errors)[:5000]}
    if errors and not files:
        job_fail(run_claim, **outcome)
    else:
        job_succeed(run_claim, **outcome)
    return ScheduledRun.objects.get(pk=run.pk)
