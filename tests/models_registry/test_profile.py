"""Reading a stored training profile: one typed class, its schema_version checked."""

import pytest

from models_registry.models import ModelVersion
from models_registry.profile import ProfileSchemaError, TrainingProfile, feature_specs
from models_registry.serving import ModelUnavailable, served_model_load

FEATURES = [
    {"name": "age", "kind": "numeric", "dtype": "integer", "min": 18.0, "max": 90.0, "missing_share": 0.0},
    {"name": "plan", "kind": "categorical", "categories": {"basic": 0.6, "premium": 0.4}, "missing_share": 0.1},
]


def test_feature_specs_list_categories_most_frequent_first_whatever_the_stored_order():
    # PostgreSQL's jsonb keeps keys in its own order (shortest first), not by share.
    stored = {"features": [{"name": "plan", "kind": "categorical", "categories": {"b": 0.2, "a": 0.2, "c": 0.6}}]}
    assert feature_specs(stored)[0].categories == ("c", "a", "b")


def test_a_stored_profile_is_read_typed():
    profile = TrainingProfile.read(
        {"schema_version": 1, "task": "classification", "classes": [0, 1], "features": FEATURES}
    )

    assert (profile.schema_version, profile.task, profile.classes) == (1, "classification", ("0", "1"))
    assert profile.feature_names == ["age", "plan"] and profile.numeric_names == ["age"]
    assert profile.specs["age"].is_integer and profile.specs["plan"].category_shares == {"basic": 0.6, "premium": 0.4}
    assert TrainingProfile.read(profile) is profile  # already typed: as it is
    assert profile.to_dict()["features"] == FEATURES  # the stored JSON is kept unchanged


def test_a_profile_without_schema_version_predates_the_key_and_reads_as_version_1():
    assert TrainingProfile.read({"features": FEATURES}).schema_version == 1


@pytest.mark.parametrize("version", [2, 0, "1", None, True])
def test_an_unknown_schema_version_is_refused_naming_it(version):
    with pytest.raises(
        ProfileSchemaError, match=rf"schema_version {version!r} is not supported: this mlapp reads version 1"
    ):
        TrainingProfile.read({"schema_version": version, "features": FEATURES})


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"features": []}, "no 'features' list"),
        ({"features": [{"kind": "numeric"}]}, "feature #0: expected an object with a non-empty text 'name'"),
        ({"features": [{"name": "age", "kind": "date"}]}, "feature 'age': unknown kind 'date'"),
        ({"features": [{"name": "age", "kind": "numeric", "min": "low"}]}, "feature 'age': 'min' is 'low'"),
        ({"features": [FEATURES[0], FEATURES[0]]}, "names a feature twice"),
        ({"task": "ranking", "features": FEATURES}, "task 'ranking' is unknown"),
        ([1, 2], "a training profile is a JSON object, got list"),
    ],
)
def test_a_malformed_profile_is_refused_whole(stored, message):
    with pytest.raises(ProfileSchemaError, match=message):
        TrainingProfile.read(stored)


@pytest.mark.django_db
def test_a_version_whose_profile_is_too_new_is_not_served(churn_model):
    ModelVersion.objects.filter(pk=churn_model.pk).update(profile={**churn_model.profile, "schema_version": 9})

    with pytest.raises(
        ModelUnavailable, match=rf"{churn_model.name} version {churn_model.version}: .*schema_version 9"
    ):
        served_model_load(churn_model.name, churn_model.version)
