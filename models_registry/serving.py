"""Loading the served versions of every model, and hot reload when an alias moves.

One `ModelLoader` per process, made on first use (never at import time, in
`AppConfig.ready()` or in `wsgi.py`). Versions are cached by **(model, version)**,
least recently used first out, at most `MLAPP_MAX_LOADED_VERSIONS` across all
models. An alias is resolved to a version first, at most every
`MLAPP_MODEL_POLL_SECONDS`, from **our** alias history (`AliasChange`): only a move
that mlapp made or smoke-tested serves (see `models_registry.deployments` for
moves made in MLflow directly). A promotion changes the key, and the next request
after the poll serves the new version; the background watcher
(`deployments.watch_start`) also refreshes and preloads every deployment's
version, so an idle process is up to date too. The swap is a dict assignment:
requests in flight keep the `ServedModel` they already hold.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connections
from django.utils import timezone

from core.errors import UnavailableError

from . import mlflow_access, trust
from .features import frame_for_model
from .models import ModelVersion
from .policies import rule_policy_get
from .profile import FeatureSpec, ProfileSchemaError, TrainingProfile
from .row_scorer import MAX_ROWS as ROW_SCORER_MAX_ROWS
from .row_scorer import RowScorer, row_scorer_build
from .rules import RulePolicy, RuleTable
from .selectors import served_version_get

logger = logging.getLogger(__name__)


def _held_bytes(root) -> int:
    """Bytes of the arrays and text a loaded model holds (numpy arrays, lists, dicts, objects walked once).

    A process's resident memory does not grow by what a load allocates when freed pages are
    reused, so the model's own data is counted instead: what the health endpoint reports per version.
    """
    seen, stack, total = set(), [root], 0
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, (bool, int, float, type)):
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            total += item.nbytes
            if item.dtype == object:
                stack.extend(item.ravel().tolist())
        elif isinstance(item, (str, bytes)):
            total += sys.getsizeof(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += sys.getsizeof(item)
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    return total


class ModelUnavailable(UnavailableError):
    """No version can be served now: it cannot be resolved or loaded (a 503: retry later)."""


class ModelNotDeployed(ModelUnavailable):
    """The model has no version under the alias: nothing to retry (a 404)."""

    status_code = 404


class ModelUntrusted(ModelUnavailable, trust.UntrustedModel):
    """The version may not be loaded (`trust.py`): another version may serve; the message says why."""


@dataclass(frozen=True)
class ModelOutputs:
    """What a model answered for a batch of rows, aligned with the input rows.

    Arrays, not per-row objects: batch paths write millions of rows from them.
    """

    labels: np.ndarray | None  # classification: predicted class per row (str)
    values: np.ndarray | None  # regression: predicted value per row
    probabilities: np.ndarray | None = field(default=None, repr=False)  # classification: rows x classes
    classes: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels if self.labels is not None else self.values)

    def outputs(self) -> list:
        return (self.labels if self.labels is not None else self.values).tolist()

    def probability_dicts(self) -> list[dict[str, float]] | None:
        if self.probabilities is None:
            return None
        rounded = np.round(self.probabilities, 6).tolist()
        return [dict(zip(self.classes, row, strict=True)) for row in rounded]


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: int
    run_id: str
    task: str
    profile: TrainingProfile
    pipeline: Any = field(repr=False)
    loaded_at: Any = None
    row_scorer: RowScorer | None = field(default=None, repr=False)  # fast path for a few rows
    # What the loaded version holds in memory (its arrays and text, see `_held_bytes`).
    memory_bytes: int | None = None

    def __post_init__(self):
        if not isinstance(self.profile, TrainingProfile):  # a stored dict: read (and checked) once
            object.__setattr__(self, "profile", TrainingProfile.read(self.profile))

    @property
    def classes(self) -> list[str] | None:
        return list(self.profile.classes) if self.profile.classes else None

    @property
    def feature_names(self) -> list[str]:
        return self.profile.feature_names

    @property
    def specs(self) -> dict[str, FeatureSpec]:
        """Feature specs by name (read once per loaded version by `TrainingProfile`)."""
        return self.profile.specs

    @cached_property
    def _rule_tables(self) -> dict[RulePolicy, RuleTable]:
        return {}

    def rule_table(self, policy: RulePolicy | None = None) -> RuleTable:
        """The row rules of this version under the model's policy (default: `policies.rule_policy_get`),
        built once per policy."""
        if policy is None:
            policy = rule_policy_get(model_name=self.name)
        table = self._rule_tables.get(policy)
        if table is None:
            table = self._rule_tables.setdefault(policy, RuleTable(self.profile, policy=policy))
        return table

    def predict_records(self, records: list[dict]) -> ModelOutputs:
        """Score validated rows given as dicts: the fast path for a few rows when the
        version has one (see `row_scorer`), else scikit-learn."""
        if self.row_scorer is None or len(records) > ROW_SCORER_MAX_ROWS:
            return self.predict_frame(pd.DataFrame.from_records(records, columns=self.feature_names))
        probabilities, outputs = self.row_scorer.predict(records)
        if probabilities is None:
            return ModelOutputs(labels=None, values=outputs)
        return ModelOutputs(labels=outputs, values=None, probabilities=probabilities, classes=self.row_scorer.classes)

    def predict_frame(self, frame: pd.DataFrame) -> ModelOutputs:
        """Score rows that already passed validation (columns by profile name)."""
        return self.predict_model_input(frame_for_model(frame, self.profile))

    def predict_model_input(self, model_input: pd.DataFrame) -> ModelOutputs:
        """Score rows already typed by `features.frame_for_model`."""
        if self.task == "regression":
            return ModelOutputs(labels=None, values=np.asarray(self.pipeline.predict(model_input), dtype=float))
        probabilities = self.pipeline.predict_proba(model_input)
        classes = tuple(str(c) for c in self.pipeline.classes_)
        labels = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]
        return ModelOutputs(labels=labels, values=None, probabilities=probabilities, classes=classes)


def model_version_profile(name: str, version: int) -> tuple[str, str, TrainingProfile]:
    """(run_id, task, typed profile) of a version: from our table, else from MLflow (JSON, for pages).

    Raises `ProfileSchemaError` (naming the version) for a profile this code cannot read.
    """
    record = ModelVersion.objects.filter(name=name, version=version).only("run_id", "task", "profile").first()
    if record is not None:
        run_id, task, stored = record.run_id, record.task, record.profile
    else:  # Registered outside mlapp (never served: see trust.py): read what training logged with the run.
        model_version = mlflow_access.client().get_model_version(name, str(version))
        stored = mlflow.artifacts.load_dict(f"runs:/{model_version.run_id}/profile.json")
        run_id, task = model_version.run_id, None
    try:
        profile = TrainingProfile.read(stored)
    except ProfileSchemaError as exc:
        raise ProfileSchemaError(f"{name} version {version}: {exc}") from exc
    return run_id, task or profile.task, profile


def served_model_load(name: str, version: int) -> ServedModel:
    """Load a version, only after `trust.trusted_pipeline_load` checked its files against mlapp's record."""
    mlflow_access.tracking_configure()
    record = ModelVersion.objects.filter(name=name, version=version).first()
    started = time.perf_counter()
    try:
        pipeline = trust.trusted_pipeline_load(name=name, version=version, record=record)
    except trust.UntrustedModel as exc:
        raise ModelUntrusted(str(exc)) from exc
    try:
        run_id, task, profile = model_version_profile(name, version)
    except ProfileSchemaError as exc:
        raise ModelUnavailable(f"Cannot serve {exc}") from exc
    fast = row_scorer_build(pipeline, profile)
    memory = _held_bytes((pipeline, fast))
    logger.info(
        "Loaded %s version %s in %.2f s (fast row scoring %s, %s MB)",
        name,
        version,
        time.perf_counter() - started,
        "on" if fast else "off",
        f"{memory / 1e6:.1f}",
    )
    return ServedModel(
        name=name,
        version=version,
        run_id=run_id,
        task=task,
        profile=profile,
        pipeline=pipeline,
        loaded_at=timezone.now(),
        row_scorer=fast,
        memory_bytes=memory,
    )


@dataclass
class _AliasState:
    version: int
    checked_at: float


class ModelLoader:
    def __init__(self, *, poll_seconds: float, max_loaded: int):
        self.poll_seconds = poll_seconds
        self.max_loaded = max_loaded
        self._lock = threading.RLock()
        self._models: OrderedDict[tuple[str, int], ServedModel] = OrderedDict()  # least recently used first
        self._aliases: dict[tuple[str, str], _AliasState] = {}
        self._refreshing: set[tuple[str, str]] = set()
        # Versions this process refused to load (trust.py), with why: reported by health.
        self.refused: dict[tuple[str, int], str] = {}
        self.registry_error: str | None = None
        self.registry_error_at = None
        self.registry_ok_at = None

    def version_resolve(self, name: str, alias: str = mlflow_access.PRODUCTION) -> int:
        """The version the alias points at in our alias history, as last seen.

        Only the first resolution of an alias waits; after that a stale answer is
        refreshed in the background (loading the new version before switching), so a
        request never waits for a load or on an unreachable database.
        """
        key = (name, alias)
        state = self._aliases.get(key)
        if state is None:
            return self.alias_refresh(name, alias)
        if time.monotonic() - state.checked_at >= self.poll_seconds:
            self._alias_refresh_in_background(key)
        return state.version

    def alias_refresh(self, name: str, alias: str = mlflow_access.PRODUCTION, *, preload: bool = False) -> int:
        """Read where the alias points now; with `preload`, load a new version before switching to it."""
        key = (name, alias)
        state = self._aliases.get(key)
        try:
            version = served_version_get(name=name, alias=alias)
        except Exception as exc:  # the database's failures come in many types
            self.registry_error = f"{type(exc).__name__}: {exc}"[:500]
            self.registry_error_at = timezone.now()
            if state is None:
                raise ModelUnavailable(f"Cannot resolve {name}@{alias}: {self.registry_error}") from exc
            logger.warning("Cannot check %s@%s, still serving version %s: %s", name, alias, state.version, exc)
            state.checked_at = time.monotonic()  # ask again after the next interval
            return state.version
        if version is None:
            self._aliases.pop(key, None)
            raise ModelNotDeployed(f"{name} has no {alias} version")
        if state is not None and state.version != version:
            logger.info("%s@%s moved from version %s to %s", name, alias, state.version, version)
            if preload:
                # Load before switching, so no request waits for the new version; if
                # it cannot be loaded, keep serving the old one and try next time.
                try:
                    self.get_version(name, version)
                except Exception:
                    logger.exception("Cannot load %s version %s; still serving %s", name, version, state.version)
                    state.checked_at = time.monotonic()
                    return state.version
        self._aliases[key] = _AliasState(version=version, checked_at=time.monotonic())
        return version

    def _alias_refresh_in_background(self, key: tuple[str, str]) -> threading.Thread | None:
        with self._lock:
            if key in self._refreshing:
                return None
            self._refreshing.add(key)

        def refresh():
            try:
                self.alias_refresh(*key, preload=True)
            except ModelUnavailable as exc:  # the alias was removed: the next request says so
                logger.warning("Background alias check: %s", exc)
            finally:
                self._refreshing.discard(key)
                connections.close_all()  # this thread's own database connections

        thread = threading.Thread(target=refresh, name=f"alias-refresh-{key[0]}@{key[1]}", daemon=True)
        thread.start()
        return thread

    def get(self, name: str, alias: str = mlflow_access.PRODUCTION) -> ServedModel:
        """The version of `name` that `alias` points at (the model is always named)."""
        return self.get_version(name, self.version_resolve(name, alias))

    def get_version(self, name: str, version: int) -> ServedModel:
        key = (name, int(version))
        served = self._models.get(key)
        if served is not None:
            with contextlib.suppress(KeyError):  # evicted by another thread meanwhile; the caller still holds it
                self._models.move_to_end(key)
            return served
        with self._lock:  # one load at a time, however many threads ask
            served = self._models.get(key)
            if served is None:
                try:
                    served = served_model_load(name, int(version))
                except ModelUntrusted as exc:
                    self.refused[key] = str(exc)  # health says so; the last good version keeps serving
                    raise
                self.refused.pop(key, None)
                self._models[key] = served
                while len(self._models) > self.max_loaded:
                    evicted, _ = self._models.popitem(last=False)
                    logger.info("Unloaded %s version %s (least recently used of %s)", *evicted, self.max_loaded)
        return served

    def is_loaded(self, name: str, version: int) -> bool:
        """Whether this process holds the version loaded (no load is started)."""
        return (name, int(version)) in self._models

    def served_version_known(self, name: str, alias: str = mlflow_access.PRODUCTION) -> int | None:
        """The version this process last resolved the alias to (no database read), None if never."""
        state = self._aliases.get((name, alias))
        return state.version if state is not None else None

    def invalidate(self, name: str | None = None) -> None:
        """Forget resolved aliases so the next request reads them again (after a promotion)."""
        for key in list(self._aliases):
            if name is None or key[0] == name:
                self._aliases.pop(key, None)

    def health(self) -> dict:
        loaded = list(self._models.values())
        return {
            "loaded_versions": [f"{m.name} v{m.version}" for m in loaded],
            "loaded": [
                {
                    "model": m.name,
                    "version": m.version,
                    "loaded_at": m.loaded_at.isoformat() if m.loaded_at else None,
                    "memory_bytes": m.memory_bytes,
                    "fast_path": m.row_scorer is not None,
                }
                for m in loaded
            ],
            "refused": [{"model": n, "version": v, "reason": reason} for (n, v), reason in self.refused.items()],
            "max_loaded_versions": self.max_loaded,
            "aliases": {f"{n}@{a}": s.version for (n, a), s in self._aliases.items()},
            "registry_ok": self.registry_error is None,
            "registry_error": self.registry_error,
            "registry_error_at": self.registry_error_at.isoformat() if self.registry_error_at else None,
            "registry_ok_at": self.registry_ok_at.isoformat() if self.registry_ok_at else None,
            "poll_seconds": self.poll_seconds,
        }

    def registry_checked(self, error: Exception | None) -> None:
        """What the last look at the MLflow registry found (the watcher reports it here, for health)."""
        if error is None:
            self.registry_error, self.registry_ok_at = None, timezone.now()
        else:
            self.registry_error = f"{type(error).__name__}: {error}"[:500]
            self.registry_error_at = timezone.now()


@cache
def loader() -> ModelLoader:
    """This process's loader, made on first use."""
    return ModelLoader(poll_seconds=settings.MLAPP_MODEL_POLL_SECONDS, max_loaded=settings.MLAPP_MAX_LOADED_VERSIONS)
