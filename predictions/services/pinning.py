"""Which version a caller may name (the Open Inference Protocol's `/versions/{v}` URLs).

Everyone may call the versions a model serves (its `production` and, when it has one, `challenger`
alias); staff may also call any other version mlapp registered (to compare, or to check an old one
before a rollback). Any other number is a 404 naming the versions the caller may use: a version a
caller may not call is not shown to exist.
"""

from __future__ import annotations

from core.errors import NotFoundError
from models_registry import mlflow_access
from models_registry.selectors import model_version_get, model_version_numbers
from models_registry.serving import ModelNotDeployed, ServedModel, loader

from .predict import served_model_get

SERVING_ALIASES = (mlflow_access.PRODUCTION, mlflow_access.CHALLENGER)


def _aliased_version(model_name: str, alias: str) -> int | None:
    try:
        return loader().version_resolve(model_name, alias)
    except ModelNotDeployed:
        return None


def versions_callable(*, model_name: str, user) -> list[int]:
    """The versions of ``model_name`` that ``user`` may name, oldest first."""
    versions = {_aliased_version(model_name, alias) for alias in SERVING_ALIASES} - {None}
    if getattr(user, "is_staff", False):
        versions |= set(model_version_numbers(model_name))
    return sorted(versions)


def served_model_for_caller(*, model_name: str, version: int | None, user) -> ServedModel:
    """The version to answer with: the production version when none is named, else the named one when
    ``user`` may call it (`NotFoundError` otherwise). `ModelNotDeployed` (404) when the model serves nothing."""
    if version is None:
        return served_model_get(model_name)
    served = served_model_get(model_name)  # a model that serves nothing has no version to call either
    if version == served.version:
        return served
    if version == _aliased_version(model_name, mlflow_access.CHALLENGER) or (
        getattr(user, "is_staff", False) and model_version_get(name=model_name, version=version) is not None
    ):
        return loader().get_version(model_name, version)
    callable_ = ", ".join(str(v) for v in versions_callable(model_name=model_name, user=user))
    raise NotFoundError(f"{model_name} has no version {version} you may call (versions: {callable_})")
