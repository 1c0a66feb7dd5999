from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from jobs.models import Job

DEFAULT_DRIFT_MIN_INTERVAL_MINUTES = 60


class RetrainPolicy(models.Model):
    """When a model retrains, on what data, and when its challenger is promoted. One row per model;
    a model without one never retrains by itself (the demo model gets one at bootstrap)."""

    model_name = models.CharField(max_length=255, unique=True)
    schedule_every_minutes = models.PositiveIntegerField(
        default=0, help_text="Retrain every n minutes (0: no schedule). The beat entry 'retrain · <model>' follows it."
    )
    drift_trigger = models.BooleanField(default=False, help_text="Retrain when a scheduled drift check finds drift")
    drift_min_interval_minutes = models.PositiveIntegerField(
        default=DEFAULT_DRIFT_MIN_INTERVAL_MINUTES,
        help_text="At least this long between drift-triggered retrains (a lasting drift retrains once)",
    )
    data_window_days = models.PositiveIntegerField(
        default=30, help_text="Labelled rows (feedback, labelled files) newer than this join the training data"
    )
    min_eval_rows = models.PositiveIntegerField(
        default=200,
        help_text="Held-out rows: the newest labelled rows when at least twice this many are new, "
        "else the production version's test split",
    )
    primary_metric = models.CharField(
        max_length=32, blank=True, help_text="Blank: roc_auc (classifier) or rmse (regressor)"
    )
    primary_margin = models.FloatField(default=0.005, help_text="Share of production's value to beat it by")
    guard_tolerance = models.FloatField(default=0.02, help_text="Share of production's value a guard metric may lose")
    latency_p99_max_ratio = models.FloatField(default=1.5, help_text="Single-row latency p99 bound, x production's")
    latency_slack_ms = models.FloatField(default=1.0, help_text="Added to the latency bound (timer noise)")
    size_max_ratio = models.FloatField(default=2.0, help_text="Loaded-size bound, x production's")
    auto_promote = models.BooleanField(default=True, help_text="Promote a challenger the policy accepts")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retrain policies"

    def __str__(self):
        return f"retrain policy of {self.model_name}"

    def clean(self):
        from models_registry.challenger import METRICS  # noqa: PLC0415 (keeps scikit-learn out of app loading)

        known = sorted({m for names in METRICS.values() for m in names})
        if self.primary_metric and self.primary_metric not in known:
            raise ValidationError({"primary_metric": f"unknown metric; choose one of {', '.join(known)}"})
        for name in ("primary_margin", "guard_tolerance", "latency_slack_ms"):
            if getattr(self, name) < 0:
                raise ValidationError({name: "must be 0 or more"})
        for name in ("latency_p99_max_ratio", "size_max_ratio"):
            if getattr(self, name) <= 0:
                raise ValidationError({name: "must be more than 0"})
        if self.min_eval_rows < 1:
            raise ValidationError({"min_eval_rows": "must be at least 1"})

    def promotion_policy(self):
        from models_registry.challenger import PromotionPolicy  # noqa: PLC0415 (same)

        return PromotionPolicy(
            primary_metric=self.primary_metric,
            primary_margin=self.primary_margin,
            guard_tolerance=self.guard_tolerance,
            latency_p99_max_ratio=self.latency_p99_max_ratio,
            latency_slack_ms=self.latency_slack_ms,
            size_max_ratio=self.size_max_ratio,
            auto_promote=self.auto_promote,
        )


class RetrainJob(Job):
    """One retraining pass of a model (lifecycle: `jobs`)."""

    run_task_name = "retraining.retrain_job_run"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        SCHEDULE = "schedule"
        DRIFT = "drift"

    class Outcome(models.TextChoices):
        PENDING = "", "—"
        PROMOTED = "promoted", "challenger promoted"
        KEPT = "kept", "challenger registered, production kept"
        NO_NEW_DATA = "no_new_data", "no new labelled data: no new version"
        REUSED = "reused", "same data as an existing version: no new version"

    model_name = models.CharField(max_length=255)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    drift_report_id = models.PositiveIntegerField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    outcome_text = models.TextField(blank=True)
    base_version = models.PositiveIntegerField(null=True, blank=True)
    rows_by_source = models.JSONField(default=dict, blank=True)
    model_version = models.ForeignKey(
        "models_registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evaluation = models.ForeignKey(
        "models_registry.ChallengerEvaluation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model_name", "trigger", "-created_at"], name="retrain_job_trigger")]

    def __str__(self):
        return f"retrain #{self.pk} {self.model_name} ({self.status})"
