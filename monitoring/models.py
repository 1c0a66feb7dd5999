from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from jobs.models import Claimable, JobStates


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class IngestionRun(models.Model):
    """One tick of a model's ingestion job (over raw/<model>/)."""

    model_name = models.CharField(max_length=255, db_index=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    files_seen = models.PositiveIntegerField(default=0)
    files_processed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"ingestion run #{self.pk}"


class IngestedFile(Claimable):
    """A raw file, claimed once by its content hash, and where its rows went.

    Its claim follows the jobs lifecycle: a heartbeat while it is processed; a stale
    PROCESSING claim, or a FAILED one (our error), is taken again by the next run.
    """

    class Status(models.TextChoices):
        PROCESSING = "processing"
        DONE = "done"  # split into good and bad rows
        QUARANTINED = "quarantined"  # rejected whole
        FAILED = "failed"  # our error, not the file's: retried

    states = JobStates(
        running="processing", succeeded="done", retry_failed=True, bounded_attempts=False, error_field="reason"
    )

    run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="files")
    original_name = models.CharField(max_length=512)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    # The model whose raw folder it came in by; the version it was validated against.
    model_name = models.CharField(max_length=255)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    rows_in = models.PositiveIntegerField(default=0)
    rows_good = models.PositiveIntegerField(default=0)
    rows_bad = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True, help_text="Why the whole file was quarantined")
    archived_path = models.CharField(max_length=1024, blank=True)
    good_path = models.CharField(max_length=1024, blank=True)
    bad_path = models.CharField(max_length=1024, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["model_name", "-started_at"], name="ingested_file_model_time")]
        constraints = [
            # Claimed once per model by content: the same file sent to two models is two files.
            models.UniqueConstraint(fields=["model_name", "sha256"], name="ingested_file_once_per_model"),
            models.CheckConstraint(
                condition=models.Q(status="processing")
                | models.Q(status="failed")
                | models.Q(rows_in=models.F("rows_good") + models.F("rows_bad")),
                name="ingested_rows_add_up",
            ),
        ]

    def __str__(self):
        return self.original_name

    @property
    def bad_share(self):
        return self.rows_bad / self.rows_in if self.rows_in else 0.0

    @property
    def is_regular_file(self) -> bool:
        """False for an entry of raw/ that was not a regular file (a link, a folder...): quarantined
        unread, its `sha256` is a key of the entry, not a content hash (see services.ingestion)."""
        return not self.sha256.startswith("not-a-file:")


class DataQualityIssue(models.Model):
    ingested_file = models.ForeignKey(IngestedFile, on_delete=models.CASCADE, related_name="issues")
    rule = models.CharField(max_length=64)
    column = models.CharField(max_length=255, blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    count = models.PositiveIntegerField(default=0)
    sample_values = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "rule"]
        indexes = [models.Index(fields=["rule", "-created_at"])]

    def __str__(self):
        return f"{self.rule} {self.column}: {self.count}"


class DriftReport(models.Model):
    model_name = models.CharField(max_length=255)
    model_version = models.PositiveIntegerField()
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    n_rows = models.PositiveIntegerField(default=0)
    dataset_drift = models.BooleanField(default=False)
    drifted_share = models.FloatField(default=0.0)
    n_drifted = models.PositiveIntegerField(default=0)
    n_features = models.PositiveIntegerField(default=0)
    prediction_drift = models.BooleanField(default=False)
    config = models.JSONField(default=dict, blank=True)
    # Made by the model's schedule (the rows since its previous scheduled check): only these make the
    # model's drift status and trigger retraining; a hand-run check (command, API) is kept beside them.
    scheduled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["model_name", "scheduled", "-created_at"], name="drift_report_status")]

    def __str__(self):
        return f"drift report #{self.pk} {self.model_name} v{self.model_version}"


class FeatureDrift(models.Model):
    """One feature's result in a drift report ('__prediction__' for the output)."""

    report = models.ForeignKey(DriftReport, on_delete=models.CASCADE, related_name="features")
    feature = models.CharField(max_length=255)
    kind = models.CharField(max_length=16)
    test = models.CharField(max_length=16)
    statistic = models.FloatField(null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True)
    effect_name = models.CharField(max_length=32, blank=True)
    effect_size = models.FloatField(null=True, blank=True)
    psi = models.FloatField(null=True, blank=True)
    method_used = models.CharField(max_length=16, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    drifted = models.BooleanField(default=False)
    n_window = models.PositiveIntegerField(default=0)
    n_reference = models.PositiveIntegerField(default=0)
    missing_share_window = models.FloatField(null=True, blank=True)
    # "drift" | "no_drift" | "no_data" (drift_stats), and the p-value after a configured correction.
    verdict = models.CharField(max_length=16, blank=True)
    p_value_adjusted = models.FloatField(null=True, blank=True)
    # Served vs training distribution on shared bins, for the feature page (no scan per request):
    # {"kind": "numeric", "edges": [...], "window": [shares], "reference": [shares]} or
    # {"kind": "categorical", "categories": [...], "window": [shares], "reference": [shares]}.
    distribution = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["report", "feature"]
        indexes = [models.Index(fields=["feature", "-created_at"])]

    def __str__(self):
        return f"{self.feature}: {'drift' if self.drifted else 'ok'}"


class Alert(models.Model):
    """Something a person should look at. Raised once per dedup key."""

    class Kind(models.TextChoices):
        DATA_QUALITY = "data_quality"
        DRIFT = "drift"
        SYSTEM = "system"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    # The model it is about ("" for the platform itself): a model's pages show only its alerts.
    model_name = models.CharField(max_length=255, blank=True, db_index=True)
    title = models.CharField(max_length=255)
    message = models.TextField()
    dedup_key = models.CharField(max_length=255, unique=True)
    ingested_file = models.ForeignKey(
        IngestedFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    drift_report = models.ForeignKey(
        DriftReport, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    email_sent_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_error = models.TextField(blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.title


class DriftSettings(models.Model):
    """Drift thresholds of one model, editable in the admin.

    ``config`` holds `monitoring.drift_stats.DriftConfig` as JSON: thresholds,
    ``per_feature`` overrides, ``drift_share``, ``critical_features``, ``correction``.
    A model without a row is checked with the defaults.
    """

    model_name = models.CharField(max_length=255, unique=True)
    config = models.JSONField(default=dict, blank=True)
    window_rows = models.PositiveIntegerField(default=5000, help_text="Rows checked when no interval is given")
    min_rows = models.PositiveIntegerField(default=50, help_text="No report on a window with fewer rows")
    scheduled_min_rows = models.PositiveIntegerField(
        default=500,
        help_text="A scheduled check judges the rows since the previous one, extended back to this many when fewer",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "drift settings"

    def __str__(self):
        return f"drift settings of {self.model_name}"

    def clean(self):
        from .drift_stats import DriftConfig  # noqa: PLC0415 (importing the models loads no scipy)

        try:
            DriftConfig.from_dict(self.config)
        except (TypeError, ValueError) as exc:
            raise ValidationError({"config": str(exc)}) from exc
        if self.window_rows < 1:
            raise ValidationError({"window_rows": "must be at least 1"})


class PredictionRollup(models.Model):
    """Predictions per hour, model version, source, predicted and actual label.

    Maintained by `monitoring.services.rollups.prediction_rollups_refresh` (a
    task every minute); the dashboards and the series API read it instead of
    scanning predictions. Labels are "" for regression and without feedback.
    """

    hour = models.DateTimeField()
    model_name = models.CharField(max_length=255)
    model_version = models.PositiveIntegerField()
    source = models.CharField(max_length=16)
    predicted_label = models.CharField(max_length=255, blank=True)
    actual_label = models.CharField(max_length=255, blank=True)
    n = models.PositiveIntegerField()
    n_feedback = models.PositiveIntegerField(default=0)
    value_sum = models.FloatField(null=True, blank=True)
    value_sumsq = models.FloatField(null=True, blank=True)
    value_min = models.FloatField(null=True, blank=True)
    value_max = models.FloatField(null=True, blank=True)
    abs_error_sum = models.FloatField(null=True, blank=True)
    sq_error_sum = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "hour", "model_version", "source", "predicted_label", "actual_label"],
                name="prediction_rollup_unique",
            ),
        ]

    def __str__(self):
        return f"{self.model_name} v{self.model_version} {self.hour:%Y-%m-%d %H}h {self.source}: {self.n}"


class RollupCursor(models.Model):
    """How far the rollups are up to date (one row per rollup kind)."""

    name = models.CharField(max_length=64, unique=True)
    position = models.DateTimeField(null=True, blank=True)
    feedback_position = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.name} @ {self.position}"
