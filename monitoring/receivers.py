"""What monitoring does when models_registry announces something (connected in MonitoringConfig.ready).

The services are imported when a signal arrives, not when Django starts: they pull in
MLflow, pandas and scikit-learn, which every `manage.py` command, the beat and each
worker would otherwise load at start-up (~1 s became ~10 s on a busy machine).
"""


def on_served_version_changed(sender, change, **kwargs) -> None:
    """A model's served version changed: make sure it has its folders and schedules."""
    from .services.deployments import deployment_setup  # noqa: PLC0415 (kept out of start-up, see above)

    if change.to_version is not None:
        deployment_setup(model_name=change.model_name)


def on_outside_move_refused(sender, change, **kwargs) -> None:
    """A move made in MLflow failed its smoke test: raise the model's alert."""
    from .services.deployments import outside_move_refused_alert  # noqa: PLC0415 (kept out of start-up)

    outside_move_refused_alert(change=change)


def on_model_refused(sender, name, version, reason, **kwargs) -> None:
    """A process refused to load a model version it does not trust: raise the model's critical alert."""
    from .services.deployments import model_refused_alert  # noqa: PLC0415 (kept out of start-up)

    model_refused_alert(name=name, version=version, reason=reason)
