from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        # Connecting receivers only: models_registry announces served-version changes without importing us.
        from models_registry import signals  # noqa: PLC0415 (models are importable only once apps are ready)

        from . import receivers  # noqa: PLC0415 (same)

        signals.served_version_changed.connect(receivers.on_served_version_changed, dispatch_uid="mon-deploy")
        signals.outside_move_refused.connect(receivers.on_outside_move_refused, dispatch_uid="mon-refused")
        signals.model_refused.connect(receivers.on_model_refused, dispatch_uid="mon-model-refused")
