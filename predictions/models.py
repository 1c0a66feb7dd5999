from django.conf import settings
from django.db import models

from jobs.models import Claimable, Job, JobStates


class Source(models.TextChoices):
    """Where a prediction was asked for; the labels are what the filters offer."""

    WEB = "web", "web form"
    API = "api", "REST API"
    BATCH = "batch", "batch file (CSV)"
    SCHEDULED = "scheduled", "scheduled scoring"
    MLFLOW = "mlflow", "MLflow scoring protocol"  # /serving/{name}/invocations
    V2 = "v2", "Open Inference Protocol"  # /v2/models/{name}/infer


class Variant(models.TextChoices):
    """Which arm of the model's traffic policy answered (see predictions/routing.py)."""

    PRODUCTION = "production"  # the production version answered (every batch and scheduled row)
    CHALLENGER = "challenger"  # A/B: the challenger version answered the request
    SHADOW = "shadow"  # the challenger scored the request off the response path; never returned


class BatchJob(Job):
    """A CSV uploaded for batch scoring, scored by a Celery worker in chunks.

    Its lifecycle (claim, heartbeat per chunk, reclaim, fail, succeed) is `jobs`';
    `cursor` is the last committed chunk, so a job taken again resumes after it.
    """

    run_task_name = "predictions.batch_job_run"

    model_name = models.CharField(max_length=255)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    input_path = models.CharField(max_length=1024)
    original_filename = models.CharField(max_length=255)
    output_path = models.CharField(max_length=1024, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    # Written with each chunk's rows, in one transaction: chunk size, chunks done, bytes of the
    # scored CSV so far, running counts (see predictions/services/batch.py).
    cursor = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"batch #{self.pk} {self.original_filename} ({self.status})"


class GoodFile(Claimable):
    """A validated file handed over for scheduled scoring.

    Ingestion (in `monitoring`) registers good files through
    `predictions.services`; the scheduled job finds work here, by its own
    records, never by asking `monitoring`.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SCORING = "scoring"
        SCORED = "scored"
        FAILED = "failed"

    # The model whose raw folder the file came in by, and that scores it.
    model_name = models.CharField(max_length=255)
    # Claimed through the jobs lifecycle (heartbeat per chunk); the scheduled pass retakes a stale claim.
    states = JobStates(queued="pending", running="scoring", succeeded="scored", bounded_attempts=False)
    path = models.CharField(max_length=1024)
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    rows_scored = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["model_name", "status", "created_at"], name="good_file_model_status")]
        constraints = [
            # The same content sent to two models is two files to score; to one model, one.
            models.UniqueConstraint(fields=["model_name", "sha256"], name="good_file_once_per_model"),
        ]

    def __str__(self):
        return self.path


class ScheduledRun(Claimable):
    """One run of the scheduled prediction job (a heartbeat per file; the reclaim step marks
    a run whose worker was lost failed, and later runs retake its files)."""

    abandon_when_stale = True

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    model_name = models.CharField(max_length=255)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    files_scored = models.PositiveIntegerField(default=0)
    rows_scored = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"scheduled run #{self.pk} ({self.status})"

    @property
    def duration_seconds(self):
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Prediction(models.Model):
    """The inference log: one row per scored input row."""

    created_at = models.DateTimeField(db_index=True)
    model_name = models.CharField(max_length=255)
    model_version = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64)
    source = models.CharField(max_length=16, choices=Source.choices)
    # What made it: an API/web request id, "batch:<id>", "scheduled:<run id>".
    request_id = models.CharField(max_length=64)
    features = models.JSONField()
    # Classification answers a label, regression a value.
    predicted_label = models.CharField(max_length=255, null=True, blank=True)
    predicted_value = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    # Which arm answered; the database default covers the COPY paths (batch and scheduled: production).
    variant = models.CharField(
        max_length=16, choices=Variant.choices, default=Variant.PRODUCTION, db_default=Variant.PRODUCTION
    )
    # A shadow row: the production prediction it shadows (same request and row), whose feedback it shares.
    shadow_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="shadows",
        db_constraint=False,
        db_index=False,
    )
    # No database-level foreign keys on the log: a constraint costs a lookup per
    # logged row at commit (millions per batch file). Django still applies
    # on_delete (SET_NULL, PROTECT) when a job or file is deleted through it.
    # Looked up through the leading column of prediction_batch_row_once; no index of its own.
    batch_job = models.ForeignKey(
        BatchJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="predictions",
        db_constraint=False,
        db_index=False,
    )
    # Looked up through the leading column of prediction_file_row_once; no index of its own.
    good_file = models.ForeignKey(
        GoodFile,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="predictions",
        db_constraint=False,
        db_index=False,
    )
    row_number = models.PositiveIntegerField(null=True, blank=True)
    # Who asked for it on the web form or the API (a batch row's maker is its job's; scheduled rows
    # have none): who may see the row and give feedback on it follows (predictions/access.py).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    # Ground truth, when it comes back (feedback).
    actual_label = models.CharField(max_length=255, null=True, blank=True)
    actual_value = models.FloatField(null=True, blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["source", "-created_at"], name="prediction_source_time"),
            # Exact lookups only: no varchar_pattern_ops twin (db_index=True would add one).
            models.Index(fields=["request_id"], name="prediction_request"),
            models.Index(fields=["model_name", "model_version", "-created_at"], name="prediction_version_time"),
            # Shadow rows of a production prediction (its feedback is copied to them).
            models.Index(
                fields=["shadow_of"], condition=models.Q(shadow_of__isnull=False), name="prediction_shadow_of"
            ),
            # The comparison page reads one model's rows of a variant and version since the experiment began.
            models.Index(
                fields=["model_name", "variant", "model_version", "-created_at"],
                condition=~models.Q(variant="production"),
                name="prediction_variant_time",
            ),
            # The dashboards' rollups look for feedback that arrived since their last pass.
            models.Index(
                fields=["feedback_at"], condition=models.Q(feedback_at__isnull=False), name="prediction_feedback_time"
            ),
            # A user's own predictions, newest first (what a non-staff user's list and export read).
            models.Index(
                fields=["created_by", "-created_at"],
                condition=models.Q(created_by__isnull=False),
                name="prediction_maker_time",
            ),
        ]
        constraints = [
            # A scheduled file row is scored once per model version, however often the job runs.
            models.UniqueConstraint(
                fields=["good_file", "row_number", "model_name", "model_version"],
                condition=models.Q(good_file__isnull=False),
                name="prediction_file_row_once",
            ),
            # A batch file row is stored once however often its job is taken again (row: 1 = first data row).
            models.UniqueConstraint(
                fields=["batch_job", "row_number"],
                condition=models.Q(batch_job__isnull=False),
                name="prediction_batch_row_once",
            ),
        ]

    def __str__(self):
        return f"prediction #{self.pk} {self.model_name} v{self.model_version}"

    @property
    def output(self):
        return self.predicted_label if self.predicted_label is not None else self.predicted_value


class TrafficMode(models.TextChoices):
    PRODUCTION = "production", "production only"
    SHADOW = "shadow", "shadow: the challenger scores every request off the response path"
    AB = "ab", "A/B: a share of requests is answered by the challenger"


class TrafficPolicy(models.Model):
    """How a model's API and form requests are routed between its production and challenger versions.

    No row: production only. Read through `predictions.routing.traffic_policy_get` (cached per
    process for ``MLAPP_MODEL_POLL_SECONDS``); changed through `routing.traffic_policy_set`,
    which records each change in `TrafficPolicyChange`. Batch and scheduled scoring always use
    production.
    """

    model_name = models.CharField(max_length=255, unique=True)
    mode = models.CharField(max_length=16, choices=TrafficMode.choices, default=TrafficMode.PRODUCTION)
    challenger_percent = models.FloatField(
        default=10.0,
        help_text="A/B: the share of requests (in %) the challenger answers, deterministic per request key",
    )
    auto_promote = models.BooleanField(
        default=False, help_text="A/B: promote the challenger when the online verdict is clearly better"
    )
    # Shadow requests dropped because this model's shadow queue was full (added up from every process).
    shadow_dropped = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "traffic policies"

    def __str__(self):
        return f"traffic policy of {self.model_name}: {self.mode}"


class TrafficPolicyChange(models.Model):
    """Who changed a model's traffic policy, when, why, and from what to what."""

    model_name = models.CharField(max_length=255)
    mode = models.CharField(max_length=16, choices=TrafficMode.choices)
    challenger_percent = models.FloatField()
    auto_promote = models.BooleanField()
    previous = models.JSONField(default=dict, blank=True, help_text="The policy before the change")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model_name", "-created_at"], name="traffic_change_model_time")]

    def __str__(self):
        return f"{self.model_name}: {self.mode} ({self.created_at:%Y-%m-%d %H:%M})"
