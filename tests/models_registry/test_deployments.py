"""Every process follows each model's served version; moves made in MLflow directly are checked first."""

import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from models_registry import deployments, mlflow_access, services
from models_registry.demo_data import churn_frame
from models_registry.models import AliasChange
from models_registry.selectors import deployment_list, served_version_get
from models_registry.serving import loader
from models_registry.training import model_train
from monitoring.models import Alert

# Background threads read what the test wrote: it must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served_v1_and_v2(mlflow_store, churn_csv, unique_model_name, tmp_path):
    """v1 served (promoted through mlapp), v2 trained and not promoted."""
    other = tmp_path / "churn-other.csv"
    churn_frame(n_rows=400, seed=21).to_csv(other, index=False)
    v1 = model_train(csv=churn_csv, target="churned", name=unique_model_name).model_version
    v2 = model_train(csv=other, target="churned", name=unique_model_name).model_version
    services.alias_move(
        name=unique_model_name, version=v1.version, action=AliasChange.Action.BOOTSTRAP, reason="first version"
    )
    assert loader().get(unique_model_name).version == v1.version
    return unique_model_name, v1.version, v2.version


def _wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_an_idle_process_follows_a_promotion_made_by_another_within_the_interval(served_v1_and_v2):
    name, v1, v2 = served_v1_and_v2
    deployments.watch_start(interval=0.2)
    # Another process promotes v2: its record and the MLflow alias; nothing here is told, no request comes.
    AliasChange.objects.create(
        model_name=name, alias="production", action="promote", from_version=v1, to_version=v2, actor_label="other"
    )
    mlflow_access.client().set_registered_model_alias(name, "production", str(v2))
    moved_at = time.monotonic()

    followed = _wait_for(
        lambda: (
            loader().health()["aliases"].get(f"{name}@production") == v2
            and f"{name} v{v2}" in loader().health()["loaded_versions"]
        )
    )

    assert followed, loader().health()
    assert time.monotonic() - moved_at < 10  # a few watcher passes, loading included
    assert loader().get(name).version == v2  # and the next request finds it loaded


def test_a_move_made_in_mlflow_is_recorded_and_smoke_tested_before_it_serves(served_v1_and_v2):
    name, v1, v2 = served_v1_and_v2
    mlflow_access.client().set_registered_model_alias(name, "production", str(v2))
    assert served_version_get(name=name) == v1  # not served on MLflow's word alone

    deployments.deployments_refresh()

    move = AliasChange.objects.filter(model_name=name).order_by("-created_at", "-id").first()
    assert (move.action, move.from_version, move.to_version) == ("outside", v1, v2)
    assert "passed the smoke test" in move.reason and move.actor_label == "outside mlapp (MLflow)"
    assert served_version_get(name=name) == v2 and loader().get(name).version == v2
    deployments.deployments_refresh()  # decided once
    assert AliasChange.objects.filter(model_name=name, action="outside").count() == 1


def test_a_move_in_mlflow_to_a_version_that_fails_is_refused_alerted_and_not_served(served_v1_and_v2):
    name, v1, v2 = served_v1_and_v2
    uri = mlflow_access.client().get_model_version_download_uri(name, str(v2))
    shutil.rmtree(Path(unquote(urlparse(uri).path)))  # the version's files are gone
    mlflow_access.client().set_registered_model_alias(name, "production", str(v2))

    deployments.deployments_refresh()
    deployments.deployments_refresh()

    (refused,) = AliasChange.objects.filter(model_name=name, action="outside_refused")
    assert (refused.from_version, refused.to_version) == (v1, v2) and "smoke test" in refused.reason
    assert served_version_get(name=name) == v1 and loader().get(name).version == v1
    alert = Alert.objects.get(model_name=name)
    assert alert.severity == "critical" and f"v{v2}" in alert.title and "refused" in alert.title
    assert [d.version for d in deployment_list() if d.name == name] == [v1]


def test_a_move_in_mlflow_to_a_version_of_another_schema_is_refused(served_v1_and_v2, housing_csv):
    name, v1, _ = served_v1_and_v2
    regressor = model_train(csv=housing_csv, target="price", name=name, allow_schema_change=True).model_version
    mlflow_access.client().set_registered_model_alias(name, "production", str(regressor.version))

    deployments.deployments_refresh()

    (refused,) = AliasChange.objects.filter(model_name=name, action="outside_refused")
    assert refused.to_version == regressor.version and "not a drop-in replacement" in refused.reason
    assert "task:" in refused.reason  # the difference is named
    assert served_version_get(name=name) == v1 and loader().get(name).version == v1
