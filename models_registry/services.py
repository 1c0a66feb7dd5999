"""Writes on the model registry: promotion, rollback, training jobs.

Every alias move goes through `alias_move`, which checks the version loads and
answers a smoke prediction first, moves the MLflow alias, and records who/what
and why in `AliasChange` (MLflow keeps no history of alias moves).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from mlflow.exceptions import MlflowException

from core.errors import ApplicationError
from core.files import upload_save
from jobs.services import (
    JobLost,
    job_claim,
    job_enqueue_on_commit,
    job_fail,
    job_heartbeat,
    job_heartbeats,
    job_succeed,
)

from . import mlflow_access, signals
from .comparison import SchemaChangeRefusal, version_comparison
from .models import AliasChange, ModelVersion, TrainingJob
from .selectors import served_version_get
from .serving import loader
from .training import TrainingInputError, model_train

logger = logging.getLogger(__name__)
# model_train's progress from which it writes to MLflow (see training.py).
TRAINING_WRITES_REGISTRY_AT = 70


class PromotionError(ApplicationError, ValueError):
    """The alias cannot move; the message says why."""


class IncompatiblePromotion(SchemaChangeRefusal, PromotionError):
    """The version answers another question or takes other inputs than production, and no one confirmed it.

    A 409 whose `errors` list each schema change (the API's one error shape)."""

    status_code = 409

    def __init__(self, message: str, *, differences: list[str]):
        super().__init__(message, differences=differences)
        self.errors = [{"field": "schema", "problem": difference} for difference in differences]


def model_version_smoke_test(*, name: str, version: int) -> None:
    """Load the version and score a few rows of its own reference sample."""
    try:
        served = loader().get_version(name, version)
        sample = pd.DataFrame(served.profile.reference_sample).head(5)
        outputs = served.predict_frame(sample)
    except Exception as exc:  # any failure to load or score blocks the promotion
        raise PromotionError(f"{name} version {version} failed its smoke test: {exc}") from exc
    if len(outputs.outputs()) != len(sample):
        raise PromotionError(f"{name} version {version} answered {len(outputs.outputs())} rows for {len(sample)}")


def alias_move(
    *,
    name: str,
    version: int,
    alias: str = mlflow_access.PRODUCTION,
    action: str = AliasChange.Action.PROMOTE,
    actor=None,
    actor_label: str = "",
    reason: str,
) -> AliasChange:
    if not reason or not reason.strip():
        raise PromotionError("A reason is required for every alias move")
    mlflow_client = mlflow_access.client()
    try:
        mlflow_client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise PromotionError(f"{name} has no version {version}") from exc
    current = served_version_get(name=name, alias=alias)
    if current == version:
        raise PromotionError(f"{name} version {version} already has the alias {alias!r}")
    model_version_smoke_test(name=name, version=version)
    with transaction.atomic():
        _alias_moves_lock(name)
        change = _alias_change_record(
            model_name=name,
            alias=alias,
            action=action,
            from_version=current,
            to_version=version,
            actor=actor,
            actor_label=actor_label or getattr(actor, "username", "") or "system",
            reason=reason.strip(),
        )
        # Inside the transaction: if MLflow refuses, the audit row is rolled back too.
        mlflow_client.set_registered_model_alias(name, alias, str(version))
    loader().invalidate(name)
    logger.info("%s@%s: %s -> %s by %s (%s)", name, alias, current, version, change.actor_label, reason)
    return change


def _alias_moves_lock(name: str) -> None:
    """Serialize a model's alias moves until the current transaction ends (PostgreSQL advisory lock).

    Without it a process checking for outside moves could see MLflow's alias already moved by a
    promotion whose record is not committed yet, and record that promotion as an outside move.
    SQLite allows one writing transaction at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"mlapp.alias-moves:{name}"])


def _alias_change_record(**fields) -> AliasChange:
    """Write one alias move; apps that follow served versions hear of it once it commits."""
    change = AliasChange.objects.create(**fields)
    if change.action != AliasChange.Action.OUTSIDE_REFUSED:
        transaction.on_commit(lambda: signals.served_version_changed.send(sender=AliasChange, change=change))
    return change


def outside_alias_moves_check() -> list[AliasChange]:
    """Notice `production` moves made in MLflow directly (its UI, a client) and decide on each once.

    A moved-to version serves only after the smoke test a promotion gets; it is then
    recorded as an outside move. One that fails is recorded as refused, raises
    `signals.outside_move_refused` (monitoring alerts on it) and the last good version
    keeps serving. Returns the moves recorded by this call.
    """
    try:
        registered = list(mlflow_access.client().search_registered_models())
    except Exception as exc:  # the registry's failures come in many types (SQL, HTTP, MLflow)
        loader().registry_checked(exc)
        return []
    loader().registry_checked(None)
    changes = []
    for model in registered:
        moved_to = (model.aliases or {}).get(mlflow_access.PRODUCTION)
        if moved_to is not None and _outside_move_pending(model.name, int(moved_to)):
            changes.append(_outside_move_decide(name=model.name, version=int(moved_to)))
    return [change for change in changes if change is not None]


def _latest_production_move(name: str) -> AliasChange | None:
    return (
        AliasChange.objects.filter(model_name=name, alias=mlflow_access.PRODUCTION)
        .order_by("-created_at", "-id")
        .first()
    )


def _outside_move_pending(name: str, version: int) -> bool:
    if served_version_get(name=name) == version:
        return False
    latest = _latest_production_move(name)
    # Refused once: not tried again until the alias moves elsewhere (or staff promote it).
    return not (latest and latest.action == AliasChange.Action.OUTSIDE_REFUSED and latest.to_version == version)


def _outside_move_decide(*, name: str, version: int) -> AliasChange | None:
    served = served_version_get(name=name)
    try:
        model_version_smoke_test(name=name, version=version)
        failure = None
    except PromotionError as exc:
        failure = str(exc)
    if failure is None:
        # A move made outside mlapp cannot confirm a schema change: a version that answers another
        # question, or takes other inputs, than the one serving is refused (staff may promote it here).
        comparison = version_comparison(name=name, version=version, with_sizes=False)
        if comparison is not None and comparison.schema_changes:
            failure = f"it is not a drop-in replacement for version {served}: " + "; ".join(comparison.schema_changes)
    with transaction.atomic():
        # Taken again inside the transaction, after the model's alias lock: a promotion through mlapp
        # moves the MLflow alias just before it commits its own record (holding the lock until then),
        # and another process may have decided meanwhile.
        _alias_moves_lock(name)
        if not _outside_move_pending(name, version):
            return None
        change = _alias_change_record(
            model_name=name,
            alias=mlflow_access.PRODUCTION,
            action=AliasChange.Action.OUTSIDE_REFUSED if failure else AliasChange.Action.OUTSIDE,
            from_version=served,
            to_version=version,
            actor_label="outside mlapp (MLflow)",
            reason=(
                f"production moved to version {version} in MLflow, not through mlapp; "
                + (f"refused, version {served} keeps serving: {failure}" if failure else "it passed the smoke test")
            ),
        )
    if failure:
        logger.error("%s: outside move to version %s refused: %s", name, version, failure)
        signals.outside_move_refused.send(sender=AliasChange, change=change)
    else:
        loader().invalidate(name)
        logger.warning("%s: production moved to version %s outside mlapp; smoke-tested, now serving", name, version)
    return change


def model_version_promote(
    *,
    name: str,
    version: int,
    actor=None,
    actor_label: str = "",
    reason: str,
    confirm_schema_change: bool = False,
    action: str = AliasChange.Action.PROMOTE,
) -> AliasChange:
    """Give `version` the production alias. A version whose task, target or features differ
    from production's is promoted only with `confirm_schema_change`; the alias history then
    records the confirmed differences with the reason. `action` says who decided (a staff
    promotion, or ``auto_promote`` by the retraining policy): the path is the same."""
    # A version mlapp did not register has no record to compare: its smoke test refuses it (trust.py).
    known = ModelVersion.objects.filter(name=name, version=version).exists()
    comparison = version_comparison(name=name, version=version, with_sizes=False) if known else None
    changes = comparison.schema_changes if comparison is not None else []
    if changes and not confirm_schema_change:
        raise IncompatiblePromotion(
            f"{name} version {version} is not a drop-in replacement for production version "
            f"{comparison.production.version}: {'; '.join(changes)}. Metrics: {comparison.metrics_summary()}. "
            "Every page, API call, ingested file and drift check of this model would follow the new schema; "
            "confirm the schema change to promote it anyway.",
            differences=changes,
        )
    if changes and reason.strip():  # a blank reason stays blank: alias_move refuses it
        reason = f"{reason.strip()} (schema change confirmed: {'; '.join(changes)})"
    return alias_move(name=name, version=version, action=action, actor=actor, actor_label=actor_label, reason=reason)


def model_version_rollback(*, name: str, actor=None, actor_label: str = "", reason: str) -> AliasChange:
    """Move `production` back to the version it pointed at before its current one."""
    current = served_version_get(name=name)
    if current is None:
        raise PromotionError(f"{name} has no production version to roll back from")
    last_move = (
        AliasChange.objects.filter(model_name=name, alias=mlflow_access.PRODUCTION, to_version=current)
        .exclude(from_version=None)
        .exclude(action=AliasChange.Action.OUTSIDE_REFUSED)
        .first()
    )
    if last_move is None:
        raise PromotionError(f"No earlier production version of {name} is recorded: nothing to roll back to")
    return alias_move(
        name=name,
        version=last_move.from_version,
        action=AliasChange.Action.ROLLBACK,
        actor=actor,
        actor_label=actor_label,
        reason=reason,
    )


def training_job_create(
    *, upload, target: str, task: str, model_name: str, actor, allow_schema_change: bool = False
) -> TrainingJob:
    """Save an uploaded CSV and queue its training (the worker runs `training_job_run`)."""
    from .tasks import training_job_run_task  # noqa: PLC0415 (tasks import this module)

    upload_dir = Path(settings.MLAPP_UPLOAD_DIR) / "training"
    job = TrainingJob.objects.create(
        model_name=model_name,
        csv_path="",
        original_filename=Path(upload.name).name[:255],
        target=target,
        task=task,
        allow_schema_change=allow_schema_change,
        created_by=actor,
    )
    destination = upload_save(upload, upload_dir / f"{job.pk}-{Path(upload.name).name}")
    job.csv_path = str(destination)
    job.save(update_fields=["csv_path"])
    job_enqueue_on_commit(training_job_run_task, job)
    return job


def training_job_run(*, job_id: int) -> TrainingJob:
    """Train the job's CSV; a duplicate delivery, or one for a job another worker holds, does nothing.

    A job whose worker was lost is taken again and trains from the start (training is
    idempotent: the same data and settings reuse the version already registered).
    """
    claim = job_claim(model=TrainingJob, pk=job_id)
    job = TrainingJob.objects.get(pk=job_id)
    if claim is None:
        return job
    with job_heartbeats(claim):  # one fit can outlast the stale timeout: beat from a thread too

        def progress(percent: int, stage: str) -> None:
            try:
                job_heartbeat(claim, progress=percent, stage=stage[:255])
            except JobLost:
                if percent < TRAINING_WRITES_REGISTRY_AT:
                    raise
                # Writing to the registry already: finish it, so no half-registered version is left.

        try:
            result = model_train(
                csv=job.csv_path,
                target=job.target,
                name=job.model_name,
                task=job.task or None,
                actor=job.created_by,
                source_name=job.original_filename,
                progress=progress,
                allow_schema_change=job.allow_schema_change,
            )
            job_succeed(claim, model_version=result.model_version, reused_existing=result.reused_existing, progress=100)
        except JobLost:
            logger.warning("Training job %s was taken back from this worker; it stops here", job.pk)
        except TrainingInputError as exc:
            job_fail(claim, error=str(exc))
        except SoftTimeLimitExceeded:
            job_fail(claim, error=f"Stopped after its time limit ({settings.MLAPP_JOB_TIME_LIMIT_SECONDS} s)")
        except Exception as exc:
            logger.exception("Training job %s failed", job.pk)
            job_fail(claim, error=f"Internal error: {exc}")
            raise
    job.refresh_from_db()
    return job
