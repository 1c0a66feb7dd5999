from django.apps import AppConfig


class RetrainingConfig(AppConfig):
    """Continuous training: triggers, training data from labels, snapshots, champion vs challenger.

    An app of its own because it is the one place that reads across the others: drift verdicts and
    labelled files (monitoring), feedback (predictions), training and promotion (models_registry). It
    sits above them all (below mlapp), so none of them learns about retraining.
    """

    name = "retraining"
    verbose_name = "Retraining"

    def ready(self):
        from monitoring import signals  # noqa: PLC0415 (models are importable only once apps are ready)

        from . import receivers  # noqa: PLC0415 (same)

        signals.scheduled_drift_checked.connect(receivers.on_scheduled_drift_checked, dispatch_uid="retrain-drift")
