"""What retraining does when monitoring announces something (connected in RetrainingConfig.ready)."""


def on_scheduled_drift_checked(sender, report, **kwargs) -> None:
    """A scheduled drift check stored its report: the drift trigger decides whether to retrain."""
    from .services.runs import retrain_on_drift  # noqa: PLC0415 (kept out of start-up: pulls in pandas, MLflow)

    retrain_on_drift(report_id=report.pk)
