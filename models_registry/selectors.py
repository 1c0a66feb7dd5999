"""Reads on the model registry: MLflow for what exists and where aliases point,
our tables for metrics, profiles and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from . import mlflow_access
from .models import AliasChange, ChallengerEvaluation, ModelVersion, TrainingSnapshot


@dataclass(frozen=True)
class RegisteredModelSummary:
    name: str
    description: str
    n_versions: int
    latest_version: int | None
    aliases: dict[str, int]
    production: ModelVersion | None


@dataclass(frozen=True)
class VersionRow:
    record: ModelVersion | None  # None: registered outside mlapp
    version: int
    run_id: str
    aliases: list[str]
    created_at_ms: int
    run_url: str


def registered_model_list() -> list[RegisteredModelSummary]:
    summaries = []
    for registered in mlflow_access.client().search_registered_models(order_by=["name ASC"]):
        aliases = {alias: int(version) for alias, version in (registered.aliases or {}).items()}
        latest = max((int(v.version) for v in registered.latest_versions or []), default=None)
        production_version = aliases.get(mlflow_access.PRODUCTION)
        production = (
            ModelVersion.objects.filter(name=registered.name, version=production_version).first()
            if production_version
            else None
        )
        summaries.append(
            RegisteredModelSummary(
                name=registered.name,
                description=registered.description or "",
                n_versions=ModelVersion.objects.filter(name=registered.name).count(),
                latest_version=latest,
                aliases=aliases,
                production=production,
            )
        )
    return summaries


def registered_model_names() -> list[str]:
    return [registered.name for registered in mlflow_access.client().search_registered_models(order_by=["name ASC"])]


def model_aliases(name: str) -> dict[str, int]:
    try:
        registered = mlflow_access.client().get_registered_model(name)
    except MlflowException:
        return {}
    return {alias: int(version) for alias, version in (registered.aliases or {}).items()}


def model_version_rows(name: str) -> list[VersionRow]:
    aliases_by_version: dict[int, list[str]] = {}
    for alias, version in model_aliases(name).items():
        aliases_by_version.setdefault(version, []).append(alias)
    records = {mv.version: mv for mv in ModelVersion.objects.filter(name=name).select_related("created_by")}
    rows = []
    for mlflow_version in mlflow_access.client().search_model_versions(f"name = '{name}'"):
        version = int(mlflow_version.version)
        rows.append(
            VersionRow(
                record=records.get(version),
                version=version,
                run_id=mlflow_version.run_id,
                aliases=sorted(aliases_by_version.get(version, [])),
                created_at_ms=mlflow_version.creation_timestamp,
                run_url=mlflow_access.run_url(mlflow_version.run_id),
            )
        )
    return sorted(rows, key=lambda row: row.version, reverse=True)


def model_version_numbers(name: str) -> list[int]:
    """The versions of ``name`` that mlapp registered or imported, oldest first (one query, no MLflow)."""
    return list(ModelVersion.objects.filter(name=name).order_by("version").values_list("version", flat=True))


def model_version_get(*, name: str, version: int) -> ModelVersion | None:
    return ModelVersion.objects.filter(name=name, version=version).select_related("created_by").first()


def alias_history(*, name: str, limit: int = 50):
    return AliasChange.objects.filter(model_name=name).select_related("actor")[:limit]


def production_version_get(name: str) -> ModelVersion | None:
    version = served_version_get(name=name)
    return model_version_get(name=name, version=version) if version else None


def _served_moves():
    """Alias moves that decide what serves: a refused outside move changes nothing."""
    return AliasChange.objects.exclude(action=AliasChange.Action.OUTSIDE_REFUSED)


def served_version_get(*, name: str, alias: str = mlflow_access.PRODUCTION) -> int | None:
    """The version `alias` serves: the newest move mlapp made or smoke-tested (None: none, or removed)."""
    latest = _served_moves().filter(model_name=name, alias=alias).order_by("-created_at", "-id").first()
    return latest.to_version if latest else None


@dataclass(frozen=True)
class Deployment:
    """A model with a production version: served, ingested, scored and monitored."""

    name: str
    version: int
    since: object  # when that version started serving
    task: str  # "" when registered outside mlapp and not described by a profile we hold


def deployment_list() -> list[Deployment]:
    """Every served model, by name (one query for the moves, one for the tasks)."""
    newest: dict[str, AliasChange] = {}
    moves = _served_moves().filter(alias=mlflow_access.PRODUCTION).order_by("model_name", "-created_at", "-id")
    for move in moves.only("model_name", "to_version", "created_at"):
        newest.setdefault(move.model_name, move)
    served = {name: move for name, move in newest.items() if move.to_version is not None}
    tasks = {
        (record.name, record.version): record.task
        for record in ModelVersion.objects.filter(name__in=list(served)).only("name", "version", "task")
    }
    return [
        Deployment(
            name=name, version=move.to_version, since=move.created_at, task=tasks.get((name, move.to_version), "")
        )
        for name, move in sorted(served.items())
    ]


def deployment_get(name: str) -> Deployment | None:
    return next((d for d in deployment_list() if d.name == name), None)


def training_snapshot_get(record: ModelVersion):
    return TrainingSnapshot.objects.filter(model_version=record).first()


def challenger_evaluation_latest(*, name: str, version: int):
    """The newest champion-vs-challenger evaluation of `version` (None if it was never a challenger)."""
    return (
        ChallengerEvaluation.objects.filter(model_name=name, challenger_version=version)
        .select_related("alias_change")
        .first()
    )


@dataclass(frozen=True)
class ProductionPeriod:
    version: int | None
    since: object
    until: object  # None: still production
    action: str
    actor_label: str
    reason: str


def production_periods(*, name: str, limit: int = 100) -> list[ProductionPeriod]:
    """Which version was production when, and why: one period per recorded move of the alias (newest first)."""
    moves = list(
        AliasChange.objects.filter(model_name=name, alias=mlflow_access.PRODUCTION)
        .exclude(action=AliasChange.Action.OUTSIDE_REFUSED)
        .order_by("created_at", "id")
    )[-limit:]
    periods = []
    for position, move in enumerate(moves):
        following = moves[position + 1] if position + 1 < len(moves) else None
        periods.append(
            ProductionPeriod(
                version=move.to_version,
                since=move.created_at,
                until=following.created_at if following else None,
                action=move.get_action_display(),
                actor_label=move.actor_label,
                reason=move.reason,
            )
        )
    return list(reversed(periods))
