from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        # Connecting receivers only: models_registry announces served-version changes without importing us.
        from models_registry import signals

        from .services import deployments

        signals.served_version_changed.connect(deployments.on_served_version_changed, dispatch_uid="mon-deploy")
        signals.outside_move_refused.connect(deployments.on_outside_move_refused, dispatch_uid="mon-refused")
