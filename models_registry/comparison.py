"""How one version of a model differs from another: the question it answers and the inputs it takes.

A model's *schema* is its task, its target and its features (name and kind). Every
path that serves a model reads its production version's profile (the form, the API,
ingestion, the drift reference), so a version with another schema under the same
name changes what all of them accept: a regressor promoted over a classifier
quarantines every file the classifier's clients send. Such a version is registered,
and promoted, only when someone confirms the change (`SchemaChangeRefusal`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from django.template.defaultfilters import filesizeformat
from mlflow.exceptions import MlflowException

from . import mlflow_access, selectors
from .models import ModelVersion
from .profile import NUMERIC, categories_by_share
from .serving import model_version_profile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSchema:
    task: str
    target: str
    features: dict[str, str]  # name -> kind (numeric, categorical), in the profile's order

    @classmethod
    def of_profile(cls, profile: dict) -> ModelSchema:
        return cls(
            task=profile["task"],
            target=profile["target"],
            features={f["name"]: f["kind"] for f in profile["features"]},
        )


def schema_differences(
    current: ModelSchema, candidate: ModelSchema, *, current_label: str, candidate_label: str
) -> list[str]:
    """Each way `candidate` differs from `current`, as one sentence; empty when they agree."""
    differences = []
    if candidate.task != current.task:
        differences.append(f"task: {current_label} is {current.task}, {candidate_label} {candidate.task}")
    if candidate.target != current.target:
        differences.append(
            f"target: {current_label} predicts {current.target!r}, {candidate_label} {candidate.target!r}"
        )
    missing = [name for name in current.features if name not in candidate.features]
    if missing:
        differences.append(f"features {current_label} takes and {candidate_label} does not: {', '.join(missing)}")
    added = [name for name in candidate.features if name not in current.features]
    if added:
        differences.append(f"features new in {candidate_label}: {', '.join(added)}")
    for name, kind in current.features.items():
        if name in candidate.features and candidate.features[name] != kind:
            differences.append(
                f"feature {name!r}: {kind} in {current_label}, {candidate.features[name]} in {candidate_label}"
            )
    return differences


def versions_with_other_schema(records: list[ModelVersion], production: ModelVersion | None) -> set[int]:
    """The versions among `records` whose task, target or features differ from `production`'s."""
    if production is None:
        return set()
    schema = ModelSchema.of_profile(production.profile)
    return {record.version for record in records if ModelSchema.of_profile(record.profile) != schema}


class SchemaChangeRefusal(Exception):
    """Mixed into the training and promotion errors: refused because the schema changes and
    no one confirmed it. `differences` lists each change, for a page or an API error body."""

    def __init__(self, message: str, *, differences: list[str]):
        super().__init__(message)
        self.differences = differences


# Metrics training logs where a lower value is better (the regression errors); higher is better for the rest.
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
# Categories shown per feature on the comparison page; the rest are counted.
CATEGORIES_SHOWN = 6


@dataclass(frozen=True)
class VersionFacts:
    """One side of a comparison: what mlapp recorded (None if registered outside mlapp) and the profile."""

    version: int
    record: ModelVersion | None
    profile: dict
    artifact_bytes: int | None  # the model's files in the artifact store; None when they cannot be listed

    @property
    def schema(self) -> ModelSchema:
        return ModelSchema.of_profile(self.profile)

    @property
    def metrics(self) -> dict[str, float]:
        """By name (a profile stored in PostgreSQL's jsonb does not keep the order training wrote)."""
        return dict(sorted(self.record.metrics.items())) if self.record else {}


@dataclass(frozen=True)
class MetricRow:
    name: str
    production: float | None
    candidate: float | None

    @property
    def delta(self) -> float | None:
        if self.production is None or self.candidate is None:
            return None
        return self.candidate - self.production

    @property
    def better(self) -> bool | None:
        """Whether the candidate does better on this metric (None: not comparable, or equal)."""
        if not self.delta:
            return None
        return (self.delta < 0) if self.name in LOWER_IS_BETTER else (self.delta > 0)


@dataclass(frozen=True)
class FeatureRow:
    name: str
    production: dict | None  # the profile's entry, categories most frequent first; None: not a feature there
    candidate: dict | None
    notes: list[str]  # how the candidate's view of the feature differs (kind, range, categories)

    @property
    def change(self) -> str:
        if self.production is None:
            return "new"
        if self.candidate is None:
            return "dropped"
        return "kind changed" if self.production["kind"] != self.candidate["kind"] else ""


@dataclass(frozen=True)
class VersionComparison:
    name: str
    candidate: VersionFacts
    production: VersionFacts | None  # None: nothing else in production
    candidate_is_production: bool
    schema_changes: list[str]
    metrics: list[MetricRow]
    features: list[FeatureRow]

    def data_rows(self) -> list[DataRow]:
        """What each side was trained on and what it weighs, one fact a row."""
        sides = [self.production, self.candidate]
        facts = [_data_facts(side) if side else {} for side in sides]
        return [
            DataRow(label=label, production=facts[0].get(label, ""), candidate=facts[1].get(label, ""))
            for label in facts[1]
        ]

    def metrics_summary(self) -> str:
        def listed(facts: VersionFacts) -> str:
            return ", ".join(f"{k} {v:.3f}" for k, v in facts.metrics.items()) or "none recorded"

        production = f"production (v{self.production.version}) {listed(self.production)}" if self.production else ""
        return "; ".join(filter(None, [production, f"v{self.candidate.version} {listed(self.candidate)}"]))


@dataclass(frozen=True)
class DataRow:
    label: str
    production: str
    candidate: str

    @property
    def differs(self) -> bool:
        return bool(self.production) and self.production != self.candidate


def _data_facts(facts: VersionFacts) -> dict[str, str]:
    record, profile = facts.record, facts.profile
    size = filesizeformat(facts.artifact_bytes) if facts.artifact_bytes is not None else "unknown"
    if record is None:
        recorded = dict.fromkeys(("Trained on", "Rows (train / test)", "Training data sha256"), "—")
        recorded["Trained"] = "registered outside mlapp"
    else:
        recorded = {
            "Trained on": record.source_name or "—",
            "Rows (train / test)": f"{record.n_train_rows:,} / {record.n_test_rows:,}",
            "Training data sha256": record.training_data_sha256[:16] + "…",
            "Trained": f"{record.created_at:%Y-%m-%d %H:%M} by {record.created_by_label or '—'}",
        }
    return {
        "Task · target": f"{profile['task']} · {profile['target']}",
        **recorded,
        "Estimator": record.estimator if record else "—",
        "Features": str(len(profile["features"])),
        "Model files": size,
    }


def _feature_display(feature: dict) -> dict:
    categories = categories_by_share(feature)
    return {
        **feature,
        "median": (feature.get("quantiles") or {}).get("0.5"),
        "top_categories": categories[:CATEGORIES_SHOWN],
        "more_categories": max(len(categories) - CATEGORIES_SHOWN, 0),
    }


def _feature_notes(production: dict, candidate: dict) -> list[str]:
    if production["kind"] != candidate["kind"]:
        return [f"{production['kind']} in production, {candidate['kind']} here"]
    notes = []
    if production["kind"] == NUMERIC:
        if (production.get("min"), production.get("max")) != (candidate.get("min"), candidate.get("max")):
            notes.append(
                f"range {_number(production.get('min'))}–{_number(production.get('max'))} in production, "
                f"{_number(candidate.get('min'))}–{_number(candidate.get('max'))} here"
            )
        return notes
    old, new = set(production.get("categories", {})), set(candidate.get("categories", {}))
    if new - old:
        notes.append(f"categories production never saw: {', '.join(sorted(new - old))}")
    if old - new:
        notes.append(f"categories this version never saw: {', '.join(sorted(old - new))}")
    return notes


def _number(value) -> str:
    """As the page shows numbers: at most two decimals, no trailing zeros."""
    return "?" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _feature_rows(production: dict | None, candidate: dict) -> list[FeatureRow]:
    before = {f["name"]: f for f in production["features"]} if production else {}
    after = {f["name"]: f for f in candidate["features"]}
    rows = []
    for name in [*before, *(n for n in after if n not in before)]:
        old, new = before.get(name), after.get(name)
        rows.append(
            FeatureRow(
                name=name,
                production=_feature_display(old) if old else None,
                candidate=_feature_display(new) if new else None,
                notes=_feature_notes(old, new) if old and new else [],
            )
        )
    return rows


def model_artifact_bytes(*, name: str, version: int) -> int | None:
    """Total size of a version's model files, listed from the artifact store (None if it cannot be listed)."""
    mlflow_access.tracking_configure()
    uri = f"models:/{name}/{version}"

    def total(path: str | None) -> int:
        return sum(
            total(entry.path) if entry.is_dir else (entry.file_size or 0)
            for entry in mlflow.artifacts.list_artifacts(artifact_uri=uri, artifact_path=path)
        )

    try:
        return total(None)
    except Exception:  # an unreachable or unlisted store: the page says "unknown", the promotion is not blocked
        logger.warning("Could not list the artifacts of %s version %s", name, version, exc_info=True)
        return None


def _version_facts(*, name: str, version: int, with_size: bool) -> VersionFacts:
    record = selectors.model_version_get(name=name, version=version)
    profile = record.profile if record else model_version_profile(name, version)[2].data
    size = model_artifact_bytes(name=name, version=version) if with_size else None
    return VersionFacts(version=version, record=record, profile=profile, artifact_bytes=size)


def version_comparison(*, name: str, version: int, with_sizes: bool = True) -> VersionComparison | None:
    """`version` of `name` beside the production version: schema, metrics, features, data, size.

    None when `name` has no such version. `with_sizes=False` skips listing the artifact store.
    """
    try:
        mlflow_access.client().get_model_version(name, str(version))
    except MlflowException:
        return None
    candidate = _version_facts(name=name, version=version, with_size=with_sizes)
    production_record = selectors.production_version_get(name)
    production = (
        _version_facts(name=name, version=production_record.version, with_size=with_sizes)
        if production_record is not None and production_record.version != version
        else None
    )
    schema_changes = (
        schema_differences(
            production.schema,
            candidate.schema,
            current_label=f"production (v{production.version})",
            candidate_label=f"v{version}",
        )
        if production
        else []
    )
    metric_names = [*(production.metrics if production else {}), *candidate.metrics]
    metrics = [
        MetricRow(
            name=metric,
            production=production.metrics.get(metric) if production else None,
            candidate=candidate.metrics.get(metric),
        )
        for metric in dict.fromkeys(metric_names)
    ]
    return VersionComparison(
        name=name,
        candidate=candidate,
        production=production,
        candidate_is_production=production_record is not None and production_record.version == version,
        schema_changes=schema_changes,
        metrics=metrics,
        features=_feature_rows(production.profile if production else None, candidate.profile),
    )
