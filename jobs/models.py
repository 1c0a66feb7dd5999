"""The job lifecycle's fields, as an abstract model every job table inherits.

    queued ──claim──► running ──succeed──► succeeded
                        │  ▲ └────fail────► failed
                        │  └─claim again (a redelivered task), once the heartbeat is stale
                        └─reclaim step (heartbeat stale): back to queued, the run task sent again

A claim is a conditional UPDATE that bumps `attempts`; the attempt number is the
claim's fencing token: a heartbeat, a chunk commit, a success or a failure
written by a worker that lost its claim (it was taken back while the worker
stalled) matches no row and changes nothing.
"""

from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class JobStates:
    """What a job table calls the lifecycle's states (tables older than it keep their words)."""

    queued: str = "queued"
    running: str = "running"
    succeeded: str = "succeeded"
    failed: str = "failed"
    # A failed job is claimed again by the next pass (ingestion: our error, not the file's).
    retry_failed: bool = False
    # Give up on a job whose worker was lost MLAPP_JOB_MAX_ATTEMPTS times (False: a later pass always retakes it).
    bounded_attempts: bool = True
    # The field that says why it failed.
    error_field: str = "error"


class Claimable(models.Model):
    """The least a table needs to be claimed through the lifecycle: its own `status`
    field (named by `states`), plus the claim's token and heartbeat."""

    # What the reclaim step does with a job whose heartbeat went stale: send this Celery task
    # (it runs one job given its id) again; or, for the record of a pass that is not
    # restarted (its work items are retaken by the next pass), mark it failed. Neither: a
    # later pass claims it again itself (a file in a work queue).
    run_task_name = ""
    abandon_when_stale = False
    states = JobStates()

    attempts = models.PositiveIntegerField(default=0, help_text="Claims so far; the current claim's token")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the claiming worker")

    class Meta:
        abstract = True


class Job(Claimable):
    """A job table: the lifecycle's states and times, and why it failed."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    claimed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in (self.states.succeeded, self.states.failed)
