"""Every served model gets its folders and schedules; a refused outside move raises an alert.

A *deployment* is a model with a production version (`models_registry.selectors.deployment_list`).
`deployment_setup` is idempotent and runs when a model's served version changes
(`models_registry.signals.served_version_changed`, connected in `MonitoringConfig.ready`)
and every minute in `deployments_sync`, which also catches moves made in MLflow directly.
"""

from __future__ import annotations

import hashlib
import logging

from models_registry import selectors as registry_selectors
from models_registry import services as registry_services

from ..models import Alert, Severity
from .alerts import alert_raise
from .ingestion import data_folders
from .schedules import model_periodic_tasks_setup, periodic_tasks_setup

logger = logging.getLogger(__name__)


def deployment_setup(*, model_name: str) -> list[str]:
    """raw/<model>/ and the other folders, and the model's ingestion, scoring and drift schedules."""
    folders = data_folders(model_name)
    return [f"{model_name}: drop files in {folders['raw']}", *model_periodic_tasks_setup(model_name)]


def deployments_sync() -> list[str]:
    """Decide on outside moves, then set up the platform's schedules and every deployment
    (cheap when nothing changed). The deployment watchers decide on outside moves too; this
    pass does it where no watcher runs (beat and a worker only)."""
    registry_services.outside_alias_moves_check()
    lines = periodic_tasks_setup()
    for deployment in registry_selectors.deployment_list():
        lines.extend(deployment_setup(model_name=deployment.name))
    return lines


def outside_move_refused_alert(*, change) -> Alert | None:
    return alert_raise(
        kind=Alert.Kind.SYSTEM,
        severity=Severity.CRITICAL,
        model_name=change.model_name,
        title=f"{change.model_name}: production moved to v{change.to_version} in MLflow and was refused",
        message=f"{change.reason}\nPromote a version through mlapp to make the registry and serving agree again.",
        dedup_key=f"outside-move-refused:{change.model_name}:{change.pk}",
    )


def model_refused_alert(*, name: str, version: int, reason: str) -> Alert | None:
    """A process refused to load a version (not registered by mlapp, files changed, a format that runs code).

    One alert per version and reason, however many processes refuse it."""
    digest = hashlib.sha256(reason.encode()).hexdigest()[:16]
    return alert_raise(
        kind=Alert.Kind.SYSTEM,
        severity=Severity.CRITICAL,
        model_name=name,
        title=f"{name}: v{version} refused: its model files are not trusted",
        message=(
            f"{name} version {version} was not loaded: {reason}.\nNo code from its files ran; the last good "
            "version keeps serving where one is loaded. See docs/security.md (model trust)."
        ),
        dedup_key=f"model-refused:{name}:{version}:{digest}",
    )
