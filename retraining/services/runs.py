"""A retraining pass, one job on the shared lifecycle: data, snapshot, challenger, comparison, decision.

`retrain_job_request` queues a pass (the command, the page, the schedule and the drift trigger all
call it); `retrain_job_run` runs it in a worker:

1. the training set (`data.training_set_assemble`): production's data plus the new labelled rows;
   no row labelled since production was trained → outcome ``no_new_data``, no version;
2. `models_registry.training.model_train` (the trainer's one entry point) on those rows; the same
   data as an existing version → outcome ``reused``, no version;
3. the exact rows trained on kept as the version's snapshot (`models_registry.snapshots`);
4. the new version gets the ``challenger`` alias (smoke-tested, recorded) and is compared with
   production on the held-out rows (`models_registry.challenger`); the policy promotes it through
   `model_version_promote` (outcome ``promoted``) or keeps production (``kept``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError
from jobs.services import (
    JobLost,
    job_claim,
    job_enqueue_on_commit,
    job_fail,
    job_heartbeat,
    job_heartbeats,
    job_succeed,
)
from models_registry import services
from models_registry.challenger import AUTO_PROMOTER, challenger_evaluate
from models_registry.models import AliasChange, ModelVersion, TrainingSnapshot
from models_registry.selectors import production_version_get
from models_registry.snapshots import frame_csv_buffer, training_snapshot_record
from models_registry.training import TrainingInputError, frame_sha256, model_train
from monitoring.models import DriftReport

from ..models import RetrainJob, RetrainPolicy
from .data import training_set_assemble
from .policies import retrain_policy_get

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
RETRAIN_ACTOR = "retrain"
# model_train's progress from which it writes to MLflow: past it a lost claim finishes the registration.
TRAINING_WRITES_REGISTRY_AT = 70


class RetrainError(ApplicationError, ValueError):
    """The model cannot be retrained; the message says why."""


def _open_job(model_name: str) -> RetrainJob | None:
    return RetrainJob.objects.filter(
        model_name=model_name, status__in=(RetrainJob.Status.QUEUED, RetrainJob.Status.RUNNING)
    ).first()


def retrain_job_request(
    *, model_name: str, trigger: str, actor=None, drift_report_id: int | None = None, enqueue: bool = True
) -> RetrainJob | None:
    """Queue one retraining pass of the model; None when one is already queued or running."""
    if production_version_get(model_name) is None:
        raise RetrainError(f"{model_name} has no production version recorded by mlapp: nothing to retrain")
    with transaction.atomic():
        policy = RetrainPolicy.objects.select_for_update().filter(model_name=model_name).first()
        if _open_job(model_name) is not None:
            logger.info("%s: a retraining pass is already queued or running", model_name)
            return None
        job = RetrainJob.objects.create(
            model_name=model_name, trigger=trigger, drift_report_id=drift_report_id, created_by=actor
        )
        del policy  # held only to serialise requests of one model
        if enqueue:
            from ..tasks import retrain_job_run_task  # noqa: PLC0415 (tasks import this module)

            job_enqueue_on_commit(retrain_job_run_task, job)
    return job


def retrain_on_drift(*, report_id: int) -> RetrainJob | None:
    """The drift trigger: a scheduled report with dataset drift retrains the model when its policy says so,
    at most once per ``drift_min_interval_minutes``."""
    report = DriftReport.objects.filter(pk=report_id, scheduled=True).first()
    if report is None or not report.dataset_drift:
        return None
    policy = retrain_policy_get(model_name=report.model_name)
    if policy.pk is None or not policy.drift_trigger:
        return None
    last = (
        RetrainJob.objects.filter(model_name=report.model_name, trigger=RetrainJob.Trigger.DRIFT)
        .order_by("-created_at")
        .first()
    )
    if last is not None and timezone.now() - last.created_at < timedelta(minutes=policy.drift_min_interval_minutes):
        logger.info(
            "%s: drift in report #%s, last drift-triggered retrain #%s less than %s min ago: not again",
            report.model_name,
            report.pk,
            last.pk,
            policy.drift_min_interval_minutes,
        )
        return None
    try:
        return retrain_job_request(
            model_name=report.model_name, trigger=RetrainJob.Trigger.DRIFT, drift_report_id=report.pk
        )
    except RetrainError as exc:
        logger.info("Drift trigger: %s", exc)
        return None


def _outcome(claim, job: RetrainJob, *, outcome: str, text: str, **fields) -> None:
    job_succeed(claim, outcome=outcome, outcome_text=text[:10000], progress=100, stage=text[:255], **fields)
    logger.info("Retrain #%s of %s: %s", job.pk, job.model_name, text)


def retrain_job_run(*, job_id: int) -> RetrainJob:
    """Run one pass; a duplicate delivery, or one for a job another worker holds, does nothing."""
    claim = job_claim(model=RetrainJob, pk=job_id)
    job = RetrainJob.objects.get(pk=job_id)
    if claim is None:
        return job
    with job_heartbeats(claim):
        try:
            _run(claim, job)
        except JobLost:
            logger.warning("Retrain job %s was taken back from this worker; it stops here", job.pk)
        except (TrainingInputError, RetrainError) as exc:
            job_fail(claim, error=str(exc))
        except SoftTimeLimitExceeded:
            job_fail(claim, error=f"Stopped after its time limit ({settings.MLAPP_JOB_TIME_LIMIT_SECONDS} s)")
        except Exception as exc:
            logger.exception("Retrain job %s failed", job.pk)
            job_fail(claim, error=f"Internal error: {exc}")
            raise
    job.refresh_from_db()
    return job


def _run(claim, job: RetrainJob) -> None:
    def stage(percent: int, text: str) -> None:
        job_heartbeat(claim, progress=percent, stage=text[:255])

    production = production_version_get(job.model_name)
    if production is None:
        raise RetrainError(f"{job.model_name} has no production version recorded by mlapp: nothing to retrain")
    policy = retrain_policy_get(model_name=job.model_name)
    stage(5, f"gathering labelled rows since version {production.version} was trained")
    data = training_set_assemble(
        record=production, window_days=policy.data_window_days, min_eval_rows=policy.min_eval_rows
    )
    job_heartbeat(claim, base_version=production.version, rows_by_source=data.rows_by_source)
    if data.n_new == 0:
        _outcome(
            claim,
            job,
            outcome=RetrainJob.Outcome.NO_NEW_DATA,
            text=f"no rows labelled since version {production.version} was trained "
            f"(window: {policy.data_window_days} days): no new version. " + " ".join(data.notes),
        )
        return
    stage(15, f"training on {len(data.train):,} rows ({data.n_new:,} newly labelled)")

    def progress(percent: int, text: str) -> None:
        try:
            job_heartbeat(claim, progress=15 + percent * 60 // 100, stage=f"training: {text}"[:255])
        except JobLost:
            if percent < TRAINING_WRITES_REGISTRY_AT:
                raise

    result = model_train(
        csv=frame_csv_buffer(data.train),
        target=production.target,
        name=job.model_name,
        task=production.task,
        actor_label=RETRAIN_ACTOR,
        source_name=f"retrain-{job.pk}.csv",
        progress=progress,
    )
    version = result.model_version
    if result.reused_existing:
        _outcome(
            claim,
            job,
            outcome=RetrainJob.Outcome.REUSED,
            text=f"the same rows as version {version.version} were trained on before: no new version",
            model_version=version,
        )
        return
    stage(78, f"keeping the training snapshot of version {version.version}")
    if not TrainingSnapshot.objects.filter(model_version=version).exists():
        training_snapshot_record(
            model_version=version,
            frame=data.train,
            rows_by_source=data.rows_by_source,
            time_range=data.time_range,
            notes=data.notes,
        )
    stage(85, f"version {version.version} becomes the challenger")
    try:
        services.alias_move(
            name=job.model_name,
            version=version.version,
            alias=CHALLENGER,
            action=AliasChange.Action.AUTO_PROMOTE,
            actor_label=AUTO_PROMOTER,
            reason=f"retrained by job #{job.pk} ({job.get_trigger_display()}) on {len(data.train):,} rows",
        )
    except services.PromotionError as exc:  # it fails its smoke test: the evaluation records it, never promoted
        logger.warning("%s v%s cannot be the challenger: %s", job.model_name, version.version, exc)
    stage(90, f"comparing version {version.version} with production version {production.version}")
    evaluation = challenger_evaluate(
        name=job.model_name,
        production_version=production.version,
        challenger_version=version.version,
        rows=data.held_out,
        target=production.target,
        eval_data=data.eval_data,
        eval_note=data.eval_note,
        eval_sha256=frame_sha256(data.held_out) if len(data.held_out) else "",
        policy=policy.promotion_policy(),
    )
    outcome = RetrainJob.Outcome.PROMOTED if evaluation.promoted else RetrainJob.Outcome.KEPT
    _outcome(
        claim,
        job,
        outcome=outcome,
        text=f"version {version.version} trained on {len(data.train):,} rows; {evaluation.summary}",
        model_version=version,
        evaluation=evaluation,
    )


def retrain_jobs_of(*, model_name: str, limit: int = 20):
    return RetrainJob.objects.filter(model_name=model_name).select_related("model_version", "evaluation")[:limit]


def version_is_retrained(record: ModelVersion) -> bool:
    return record.created_by_label == RETRAIN_ACTOR
