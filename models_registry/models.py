from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from jobs.models import Job


class ModelVersion(models.Model):
    """Our record of a registered MLflow model version.

    Written once, when the version is registered, and never changed: the MLflow
    registry stays the source of truth for which versions exist and where the
    aliases point; this row keeps what pages, validation and drift need without
    a round trip to MLflow (and keeps serving when MLflow is unreachable).
    """

    class Task(models.TextChoices):
        CLASSIFICATION = "classification"
        REGRESSION = "regression"

    name = models.CharField(max_length=255)
    version = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64)
    task = models.CharField(max_length=32, choices=Task.choices)
    target = models.CharField(max_length=255)
    estimator = models.CharField(max_length=255, blank=True)
    metrics = models.JSONField(default=dict)
    params = models.JSONField(default=dict)
    training_data_sha256 = models.CharField(max_length=64)
    test_data_sha256 = models.CharField(max_length=64)
    # Hash of (training data, target, task, training config): same hash, same model.
    fingerprint = models.CharField(max_length=64, db_index=True)
    source_name = models.CharField(max_length=255, blank=True, help_text="CSV the model was trained on")
    n_train_rows = models.PositiveIntegerField(default=0)
    n_test_rows = models.PositiveIntegerField(default=0)
    profile = models.JSONField(help_text="Training profile: see models_registry/profile.py")
    # What mlapp recorded of the version's model files when it registered or imported it
    # (models_registry/trust.py): a version is loaded only if its files still hash to this.
    artifact_uri = models.CharField(max_length=1024, blank=True, help_text="Where the model's files are stored")
    artifact_sha256 = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 over the manifest of every file of the model directory"
    )
    artifact_manifest = models.JSONField(
        default=dict, blank=True, help_text='{"algorithm": "sha256", "files": {"MLmodel": "<sha256>", ...}}'
    )
    # How it came to mlapp: trained here, or an existing MLflow model imported with `register_model`.
    origin = models.CharField(max_length=16, default="trained", help_text="trained or imported")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_unique"),
        ]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def training_profile(self):
        """The stored profile read through `profile.TrainingProfile` (its schema_version checked)."""
        from .profile import TrainingProfile  # noqa: PLC0415 (keeps pandas out of app loading)

        return TrainingProfile.read(self.profile)


class AliasChange(models.Model):
    """Audit trail of registry alias moves: MLflow keeps no history of them."""

    class Action(models.TextChoices):
        PROMOTE = "promote"
        ROLLBACK = "rollback"
        BOOTSTRAP = "bootstrap"
        AUTO_PROMOTE = "auto_promote"
        REMOVE = "remove"
        # Moved in MLflow directly (its UI, a client): recorded once the version passed the smoke test,
        # or refused (and not served) when it did not.
        OUTSIDE = "outside"
        OUTSIDE_REFUSED = "outside_refused"

    model_name = models.CharField(max_length=255)
    alias = models.CharField(max_length=64)
    action = models.CharField(max_length=32, choices=Action.choices)
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who or what moved it when no user did ("bootstrap", "retrain-policy", ...).
    actor_label = models.CharField(max_length=150)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model_name", "alias", "-created_at"])]

    def __str__(self):
        return f"{self.model_name}@{self.alias}: {self.from_version} -> {self.to_version}"


class TrainingJob(Job):
    """A training request made from the web page, run by a Celery worker (lifecycle: `jobs`)."""

    run_task_name = "models_registry.training_job_run"

    model_name = models.CharField(max_length=255)
    csv_path = models.CharField(max_length=1024)
    original_filename = models.CharField(max_length=255)
    target = models.CharField(max_length=255)
    task = models.CharField(max_length=32, blank=True, help_text="Blank: inferred")
    allow_schema_change = models.BooleanField(
        default=False, help_text="Register even if the task or features differ from the production version"
    )
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=255, blank=True)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reused_existing = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"training #{self.pk} {self.model_name} ({self.status})"


def _policy_check(value) -> None:
    from .rules import PolicyError, RulePolicy  # noqa: PLC0415 (keeps pyarrow out of app loading)

    try:
        RulePolicy.from_overrides(value)
    except PolicyError as exc:
        raise ValidationError(str(exc)) from exc


class RulePolicyOverride(models.Model):
    """A model's overrides of the default row-rule policy (`models_registry.rules.RulePolicy`).

    Defaults live in code; a row here changes what a rule's finding does on a path
    for one model, e.g. ``{"rules": {"out_of_range": {"ingestion": "quarantine"}}}``.
    Read through `models_registry.policies.rule_policy_get` (cached per process for
    ``MLAPP_MODEL_POLL_SECONDS``).
    """

    model_name = models.CharField(max_length=255, unique=True)
    overrides = models.JSONField(
        default=dict,
        blank=True,
        validators=[_policy_check],
        help_text='e.g. {"rules": {"out_of_range": {"ingestion": "quarantine"}, "unknown_category": "refuse"},'
        ' "range_tolerance": 0.2}. Actions: refuse, quarantine, warn. See docs/validation.md.',
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "rule policy override"

    def __str__(self):
        return f"rule policy of {self.model_name}"

    def save(self, *args, **kwargs):
        _policy_check(self.overrides)
        super().save(*args, **kwargs)
        from .policies import rule_policy_forget  # noqa: PLC0415 (policies import this module)

        rule_policy_forget(self.model_name)

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        from .policies import rule_policy_forget  # noqa: PLC0415 (policies import this module)

        rule_policy_forget(self.model_name)
        return result


# Continuous training's records (a module of their own, so this file stays the registry's core tables).
from .continuous_models import ChallengerEvaluation, TrainingSnapshot  # noqa: E402

__all__ = [
    "AliasChange",
    "ChallengerEvaluation",
    "ModelVersion",
    "RulePolicyOverride",
    "TrainingJob",
    "TrainingSnapshot",
]
