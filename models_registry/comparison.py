"""How one version of a model differs from another: the question it answers and the inputs it takes.

A model's *schema* is its task, its target and its features (name and kind). Every
path that serves a model reads its production version's profile (the form, the API,
ingestion, the drift reference), so a version with another schema under the same
name changes what all of them accept: a regressor promoted over a classifier
quarantines every file the classifier's clients send. Such a version is registered,
and promoted, only when someone confirms the change (`SchemaChangeRefusal`).
"""

from __future__ import annotations

from dataclasses import dataclass


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


class SchemaChangeRefusal(Exception):
    """Mixed into the training and promotion errors: refused because the schema changes and
    no one confirmed it. `differences` lists each change, for a page or an API error body."""

    def __init__(self, message: str, *, differences: list[str]):
        super().__init__(message)
        self.differences = differences
