"""What continuous training records about model versions (imported into `models_registry.models`).

`TrainingSnapshot`: the exact rows a version was trained on, kept as a compressed
parquet artifact of its MLflow run, with its full-content hash, row counts per
source and time range. `ChallengerEvaluation`: a challenger and the production
version scored on the same held-out rows, the promotion policy applied, and the
decision. Both are written by the retraining app (`retraining/`) through
`models_registry.snapshots` and `models_registry.challenger`; the registry's pages
show them.
"""

from django.db import models


class TrainingSnapshot(models.Model):
    model_version = models.OneToOneField(
        "models_registry.ModelVersion", on_delete=models.CASCADE, related_name="snapshot"
    )
    # frame_sha256 of the rows as stored (and as read back from the artifact): the training set itself.
    sha256 = models.CharField(max_length=64)
    n_rows = models.PositiveIntegerField()
    # {"base": n, "feedback": n, "files": n}: where the rows came from, after deduplication.
    rows_by_source = models.JSONField(default=dict)
    # {"feedback": {"from": iso, "to": iso}, "files": {...}, "base": {"version": n, "trained_at": iso}}
    time_range = models.JSONField(default=dict)
    columns = models.JSONField(default=list)
    artifact_path = models.CharField(max_length=255, help_text="Inside the version's MLflow run")
    artifact_bytes = models.BigIntegerField(default=0)
    notes = models.JSONField(default=list, blank=True, help_text="What was left out, and why")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"training snapshot of {self.model_version}"


class ChallengerEvaluation(models.Model):
    class EvalData(models.TextChoices):
        RECENT = "recent", "recent labelled rows"
        TEST_SPLIT = "test_split", "the production version's test split"
        NONE = "none", "none"

    class Decision(models.TextChoices):
        PROMOTE = "promote"
        KEEP = "keep"

    model_name = models.CharField(max_length=255)
    production_version = models.PositiveIntegerField(null=True, blank=True)
    challenger_version = models.PositiveIntegerField()
    eval_data = models.CharField(max_length=16, choices=EvalData.choices)
    eval_note = models.TextField(blank=True, help_text="Which rows, and why those")
    eval_rows = models.PositiveIntegerField(default=0)
    eval_sha256 = models.CharField(max_length=64, blank=True)
    production_metrics = models.JSONField(default=dict)
    challenger_metrics = models.JSONField(default=dict)
    production_latency_p99_ms = models.FloatField(null=True, blank=True)
    challenger_latency_p99_ms = models.FloatField(null=True, blank=True)
    production_bytes = models.BigIntegerField(null=True, blank=True)
    challenger_bytes = models.BigIntegerField(null=True, blank=True)
    policy = models.JSONField(default=dict)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    # [{"check": "primary metric", "passed": bool, "detail": "..."}]: every check the policy made.
    checks = models.JSONField(default=list)
    summary = models.TextField()
    promoted = models.BooleanField(default=False)
    alias_change = models.ForeignKey(
        "models_registry.AliasChange", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model_name", "challenger_version"], name="challenger_eval_version")]

    def __str__(self):
        return f"{self.model_name} v{self.challenger_version} vs v{self.production_version}: {self.decision}"
