"""A model with two versions: v1 in production, v2 the challenger (routing and experiment tests)."""

from __future__ import annotations

import pytest

from models_registry import services as registry_services
from models_registry.demo_data import churn_frame
from models_registry.models import ModelVersion
from models_registry.training import model_train
from predictions import routing
from predictions.routing import CHALLENGER
from tests.conftest import _ensure_served

ROUTED = "test-churn-routed"


def _fields(model_version) -> dict:
    fields = {f.attname: getattr(model_version, f.attname) for f in model_version._meta.fields}
    fields.pop("id")
    fields.pop("created_by_id")
    return fields


@pytest.fixture(scope="session")
def _routed_versions(mlflow_store, django_db_blocker, churn_csv, tmp_path_factory):
    other = tmp_path_factory.mktemp("routed") / "churn-other.csv"
    churn_frame(n_rows=500, seed=7).to_csv(other, index=False)
    with django_db_blocker.unblock():
        v1 = model_train(csv=churn_csv, target="churned", name=ROUTED, actor_label="tests").model_version
        v2 = model_train(csv=other, target="churned", name=ROUTED, actor_label="tests").model_version
        return _fields(v1), _fields(v2)


@pytest.fixture
def routed_model(_routed_versions, db):
    """(name, production version, challenger version): v1 serves, v2 holds the `challenger` alias."""
    v1_fields, v2_fields = _routed_versions
    production = _ensure_served(v1_fields)
    challenger, _ = ModelVersion.objects.get_or_create(
        name=v2_fields["name"],
        version=v2_fields["version"],
        defaults={k: v for k, v in v2_fields.items() if k not in ("name", "version")},
    )
    registry_services.alias_move(
        name=ROUTED, version=challenger.version, alias=CHALLENGER, actor_label="tests", reason="the challenger"
    )
    routing.traffic_policy_forget()
    yield ROUTED, production.version, challenger.version
    routing.traffic_policy_forget()
    routing.shadow_runner().drain(timeout=30)
