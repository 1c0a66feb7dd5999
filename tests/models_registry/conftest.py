import pytest

from models_registry import services
from models_registry.models import AliasChange
from models_registry.training import model_train


@pytest.fixture
def classifier_in_production(mlflow_store, churn_csv, unique_model_name):
    """A churn classifier registered as `unique_model_name` version 1 and promoted."""
    v1 = model_train(csv=churn_csv, target="churned", name=unique_model_name, actor_label="tests").model_version
    services.alias_move(
        name=v1.name,
        version=v1.version,
        action=AliasChange.Action.BOOTSTRAP,
        actor_label="tests",
        reason="first version",
    )
    return v1
