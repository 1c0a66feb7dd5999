"""The one job lifecycle: claim, heartbeat, succeed, fail, and the reclaim of stale jobs.

Every job table (an abstract `jobs.models.Job` or `Claimable`) goes through
these functions; states and fencing are described in `jobs/models.py`. Times:

- ``MLAPP_JOB_STALE_SECONDS``: a running job whose heartbeat is older than this
  lost its worker (killed, or stalled) and may be claimed again;
- ``MLAPP_JOB_MAX_ATTEMPTS``: a job whose worker was lost this many times fails
  instead of being claimed again (a file that kills every worker stops there);
- ``MLAPP_JOB_RECLAIM_EVERY_SECONDS``: how often beat runs `jobs_reclaim_stale`;
- ``MLAPP_JOB_QUEUED_RESEND_SECONDS``: a job queued this long without a worker taking
  it has its task sent again (its message may be lost).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Model, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.task_queue import TaskQueueUnavailable, task_send, task_send_by_name

from .models import Claimable

logger = logging.getLogger(__name__)


class JobLost(RuntimeError):
    """This worker's claim was taken back (its heartbeat went stale): stop, write nothing more."""


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one job; `attempt` is the fencing token every write checks."""

    model: type[Claimable]
    pk: int
    attempt: int

    @classmethod
    def held(cls, job: Claimable) -> Claim:
        """The claim on `job` as just read after claiming it."""
        return cls(model=type(job), pk=job.pk, attempt=job.attempts)

    def rows(self) -> QuerySet:
        """The job's row while this claim holds it (empty once it was taken back)."""
        return self.model.objects.filter(pk=self.pk, attempts=self.attempt, status=self.model.states.running)


def job_stale_after() -> timedelta:
    return timedelta(seconds=settings.MLAPP_JOB_STALE_SECONDS)


def _optional(model: type[Model], **values) -> dict:
    """Only the lifecycle fields this table has (older job tables lack some)."""
    names = {field.name for field in model._meta.concrete_fields}
    return {name: value for name, value in values.items() if name in names}


def _stale_q(model: type[Claimable], now: datetime) -> Q:
    return Q(status=model.states.running, heartbeat_at__lt=now - job_stale_after())


def _claimable_q(model: type[Claimable], now: datetime) -> Q:
    """Queued; or running with a stale heartbeat (and attempts left); or failed, where failures are retried."""
    stale = _stale_q(model, now)
    if model.states.bounded_attempts:
        stale &= Q(attempts__lt=settings.MLAPP_JOB_MAX_ATTEMPTS)
    claimable = Q(status=model.states.queued) | stale
    if model.states.retry_failed:
        claimable |= Q(status=model.states.failed)
    return claimable


def _claim_values(model: type[Claimable], *, attempt: int, now: datetime, fields: dict | None) -> dict:
    values = {
        "status": model.states.running,
        "attempts": attempt,
        "heartbeat_at": now,
        **_optional(
            model,
            claimed_at=now,
            started_at=Coalesce("started_at", Value(now)),
            finished_at=None,
            **{model.states.error_field: ""},
        ),
    }
    values.update(fields or {})
    return values


def job_claim(*, model: type[Claimable], pk: int, fields: dict | None = None) -> Claim | None:
    """Take job `pk` if it is claimable now; None if it is not (done, or another worker holds it).

    A conditional UPDATE on the attempt number read just before: when several
    workers race for the same job, exactly one UPDATE matches. `fields` are
    written with the claim (e.g. counters reset on a retry).
    """
    now = timezone.now()
    current = model.objects.filter(_claimable_q(model, now), pk=pk).values_list("attempts", flat=True).first()
    if current is None:
        return None
    won = model.objects.filter(_claimable_q(model, now), pk=pk, attempts=current).update(
        **_claim_values(model, attempt=current + 1, now=now, fields=fields)
    )
    return Claim(model=model, pk=pk, attempt=current + 1) if won else None


def job_create_claimed(*, model: type[Claimable], **fields) -> tuple[Claimable, Claim]:
    """Insert a job already claimed by its creator (a unique key decides which worker's insert wins)."""
    now = timezone.now()
    values = {
        "status": model.states.running,
        "attempts": 1,
        "heartbeat_at": now,
        **_optional(model, claimed_at=now, started_at=now),
        **fields,
    }
    job = model.objects.create(**values)
    return job, Claim.held(job)


def job_claim_next(*, queryset: QuerySet, order_by: tuple[str, ...] = ("pk",)) -> Claim | None:
    """Take the first claimable job of `queryset` (a work queue): rows other workers are
    claiming right now are skipped (SELECT ... FOR UPDATE SKIP LOCKED), not waited for."""
    model = queryset.model
    now = timezone.now()
    with transaction.atomic():
        row = (
            queryset.select_for_update(skip_locked=True)
            .filter(_claimable_q(model, now))
            .order_by(*order_by)
            .values("pk", "attempts")
            .first()
        )
        if row is None:
            return None
        model.objects.filter(pk=row["pk"]).update(
            **_claim_values(model, attempt=row["attempts"] + 1, now=now, fields=None)
        )
    return Claim(model=model, pk=row["pk"], attempt=row["attempts"] + 1)


def job_heartbeat(claim: Claim, **fields) -> None:
    """A sign of life (with progress `fields`, written only while the claim holds); raises `JobLost`."""
    if not claim.rows().update(heartbeat_at=timezone.now(), **fields):
        raise JobLost(f"{claim.model.__name__} #{claim.pk}: attempt {claim.attempt} was taken back")


def job_succeed(claim: Claim, **fields) -> None:
    """Done (`fields` may name another final status, e.g. quarantined); raises `JobLost`, writing
    nothing, if the claim was taken back meanwhile."""
    now = timezone.now()
    values = {"status": claim.model.states.succeeded, "heartbeat_at": now, **_optional(claim.model, finished_at=now)}
    if not claim.rows().update(**{**values, **fields}):
        raise JobLost(f"{claim.model.__name__} #{claim.pk}: attempt {claim.attempt} was taken back")


def job_fail(claim: Claim, *, error: str, **fields) -> bool:
    """Failed, saying why; False (nothing written) if the claim was taken back meanwhile."""
    now = timezone.now()
    values = {
        "status": claim.model.states.failed,
        "heartbeat_at": now,
        **_optional(claim.model, finished_at=now, **{claim.model.states.error_field: error[:5000]}),
    }
    written = bool(claim.rows().update(**{**values, **fields}))
    if not written:
        logger.warning(
            "%s #%s: not marked failed, attempt %s was taken back", claim.model.__name__, claim.pk, claim.attempt
        )
    return written


@contextmanager
def job_heartbeats(claim: Claim, *, every: float | None = None) -> Iterator[None]:
    """Beat from a thread while a long step runs (one training fit can outlast the stale timeout).

    It stops at the first beat that finds the claim taken back; the worker learns
    it at its next own `job_heartbeat`. A killed process beats no more.
    """
    every = every if every is not None else settings.MLAPP_JOB_STALE_SECONDS / 3
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(every):
                try:
                    job_heartbeat(claim)
                except JobLost:
                    return
                except DatabaseError as exc:  # the database is away: try again at the next beat
                    logger.warning("Heartbeat of %s #%s failed: %s", claim.model.__name__, claim.pk, exc)
        finally:
            connection.close()  # the thread's own connection

    thread = threading.Thread(target=beat, name=f"job-heartbeat-{claim.model.__name__}-{claim.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def job_enqueue_on_commit(task, job) -> None:
    """Send `job` to the worker once the transaction commits.

    If the task queue cannot be reached, the job fails saying so, instead of staying
    queued forever behind a progress bar that never moves.
    """
    job_model, job_id = type(job), job.pk

    def send():
        try:
            task_send(task, job_id)
        except TaskQueueUnavailable as exc:
            logger.error("Could not queue %s #%s: %s", job_model.__name__, job_id, exc)
            job_model.objects.filter(pk=job_id, status=job_model.states.queued).update(
                status=job_model.states.failed,
                **_optional(
                    job_model,
                    finished_at=timezone.now(),
                    **{job_model.states.error_field: f"{exc} (the job was not started)"[:2000]},
                ),
            )

    transaction.on_commit(send)


def _job_models() -> list[type[Claimable]]:
    return [model for model in apps.get_models() if issubclass(model, Claimable)]


def runnable_job_models() -> list[type[Claimable]]:
    """Job tables with a task that runs one job by id: the ones the reclaim step can restart."""
    return [model for model in _job_models() if model.run_task_name]


@dataclass
class ReclaimResult:
    requeued: list[str]
    failed: list[str]
    resent: list[str] = field(default_factory=list)


def _waiting_since(model: type[Claimable]):
    """When a queued job was last sent: its heartbeat (the reclaim step stamps it when it sends the
    task again), else its creation (the first send, after commit)."""
    names = {f.name for f in model._meta.concrete_fields}
    return Coalesce("heartbeat_at", "created_at") if "created_at" in names else F("heartbeat_at")


def _queued_jobs_resend(model: type[Claimable], now: datetime, result: ReclaimResult) -> None:
    """Send the task again for jobs queued longer than ``MLAPP_JOB_QUEUED_RESEND_SECONDS``: their
    message may be lost (a broker restarted without persistence, a queue purged, a send that was
    acknowledged and dropped). A duplicate is harmless: the claim lets one delivery run the job."""
    cutoff = now - timedelta(seconds=settings.MLAPP_JOB_QUEUED_RESEND_SECONDS)
    waiting = (
        model.objects.filter(status=model.states.queued)
        .annotate(waiting_since=_waiting_since(model))
        .filter(waiting_since__lt=cutoff)
    )
    for pk, since in waiting.values_list("pk", "waiting_since"):
        try:
            task_send_by_name(model.run_task_name, pk)
        except TaskQueueUnavailable as exc:
            logger.error("Could not send %s #%s again: %s", model.__name__, pk, exc)
            continue
        # Stamped only if still queued and not stamped meanwhile (another reclaim pass).
        model.objects.filter(pk=pk, status=model.states.queued).annotate(waiting_since=_waiting_since(model)).filter(
            waiting_since=since
        ).update(heartbeat_at=timezone.now())
        logger.warning("%s #%s: queued since %s with no worker taking it; sent again", model.__name__, pk, since)
        result.resent.append(f"{model.__name__} #{pk}")


def jobs_reclaim_stale() -> ReclaimResult:
    """Restart every running job whose worker was lost; fail those lost too often.

    The run task is sent again and the job goes back to queued, so a killed job
    finishes even when its message is not redelivered (a whole worker killed:
    Redis gives its message back only after the visibility timeout). The next
    pass does not send it again unless it goes stale again.
    """
    now = timezone.now()
    result = ReclaimResult(requeued=[], failed=[])
    for model in _job_models():
        if model.abandon_when_stale:
            for pk, attempts in model.objects.filter(_stale_q(model, now)).values_list("pk", "attempts"):
                error = "Stopped: the worker running it was lost (no heartbeat); later passes take over its work"
                if job_fail(Claim(model=model, pk=pk, attempt=attempts), error=error):
                    result.failed.append(f"{model.__name__} #{pk}")
    for model in runnable_job_models():
        stale = model.objects.filter(_stale_q(model, now))
        if model.states.bounded_attempts:
            limit = settings.MLAPP_JOB_MAX_ATTEMPTS
            for pk, attempts in stale.filter(attempts__gte=limit).values_list("pk", "attempts"):
                error = (
                    f"Gave up after {attempts} attempts: the worker running it was lost each time "
                    f"(killed, out of memory, or past its time limit). Set MLAPP_JOB_MAX_ATTEMPTS to retry more."
                )
                if job_fail(Claim(model=model, pk=pk, attempt=attempts), error=error):
                    result.failed.append(f"{model.__name__} #{pk}")
            stale = stale.filter(attempts__lt=limit)
        for pk, attempts in stale.values_list("pk", "attempts"):
            try:
                task_send_by_name(model.run_task_name, pk)
            except TaskQueueUnavailable as exc:
                logger.error("Could not restart %s #%s: %s", model.__name__, pk, exc)
                continue  # still stale: the next pass tries again
            # Back to queued unless a worker took it meanwhile (then attempts moved on); the heartbeat
            # now says when it was sent again (for the resend of queued jobs, below).
            model.objects.filter(_stale_q(model, timezone.now()), pk=pk, attempts=attempts).update(
                status=model.states.queued, heartbeat_at=timezone.now()
            )
            logger.warning("%s #%s: its worker was lost (no heartbeat); restarted", model.__name__, pk)
            result.requeued.append(f"{model.__name__} #{pk}")
        _queued_jobs_resend(model, now, result)
    return result
