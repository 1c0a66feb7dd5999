import json

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from models_registry import mlflow_access, selectors
from models_registry.models import AliasChange, ModelVersion
from models_registry.training import model_train
from monitoring.services.bootstrap import platform_bootstrap
from monitoring.services.schedules import default_periodic_tasks, model_periodic_tasks, periodic_tasks_setup

pytestmark = pytest.mark.django_db


def test_periodic_tasks_are_created_once_per_model_and_admin_edits_are_kept():
    periodic_tasks_setup(model_names=["a", "b"])
    names = {spec["name"] for spec in default_periodic_tasks()} | {
        spec["name"] for model in ("a", "b") for spec in model_periodic_tasks(model)
    }
    assert set(PeriodicTask.objects.values_list("name", flat=True)) == names
    ingest = PeriodicTask.objects.get(name="ingest raw files · a")
    assert ingest.task == "monitoring.ingest_raw_files" and ingest.interval.every == 60
    assert json.loads(ingest.kwargs) == {"model_name": "a"}
    assert json.loads(PeriodicTask.objects.get(name="check drift · b").kwargs) == {"model_name": "b"}
    assert 0 < ingest.expire_seconds < 60
    # A person changes the interval in the admin; set-up runs again (next start).
    ingest.interval = IntervalSchedule.objects.create(every=300, period=IntervalSchedule.SECONDS)
    ingest.save()

    lines = periodic_tasks_setup(model_names=["a", "b"])

    ingest.refresh_from_db()
    assert ingest.interval.every == 300
    assert PeriodicTask.objects.filter(name__in=names).count() == len(names)
    assert any(line.startswith("kept ingest raw files · a") for line in lines)


def test_the_single_model_schedules_are_retired():
    interval = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="ingest raw files", task="monitoring.ingest_raw_files", interval=interval)

    lines = periodic_tasks_setup()

    assert not PeriodicTask.objects.filter(name="ingest raw files").exists()
    assert "removed ingest raw files: now one schedule per model" in lines


def test_bootstrap_trains_promotes_once_and_creates_the_admin(
    mlflow_store, settings, tmp_path, unique_model_name, housing_csv
):
    settings.VAR_DIR = tmp_path
    settings.MLAPP_DATA_DIR = tmp_path / "data"

    first = platform_bootstrap(dataset="housing", demo_name=unique_model_name)
    second = platform_bootstrap(dataset="housing", demo_name=unique_model_name)

    assert "password" in first[0] and (tmp_path / "admin-password.txt").exists()
    assert f"trained {unique_model_name} version 1" in first[1]
    assert second[1] == f"{unique_model_name} already has a production version: kept"
    assert ModelVersion.objects.filter(name=unique_model_name).count() == 1
    production = mlflow_access.client().get_model_version_by_alias(unique_model_name, "production")
    assert int(production.version) == 1
    assert AliasChange.objects.get(model_name=unique_model_name).action == "bootstrap"
    assert all((tmp_path / "data" / d / unique_model_name).is_dir() for d in ("raw", "good", "bad", "archive"))
    assert PeriodicTask.objects.filter(name=f"ingest raw files · {unique_model_name}").exists()
    # Someone trains a version of their own under the demo's name: the next start leaves it all alone.
    model_train(csv=housing_csv, target="price", name=unique_model_name, actor_label="alice")
    third = platform_bootstrap(dataset="housing", demo_name=unique_model_name)
    assert third[1] == f"{unique_model_name} holds versions trained since the bootstrap (v2): left as it is"
    assert int(mlflow_access.client().get_model_version_by_alias(unique_model_name, "production").version) == 1


def test_bootstrap_never_writes_into_a_model_it_did_not_make(
    mlflow_store, settings, tmp_path, unique_model_name, churn_csv
):
    """Someone's classifier holds the demo's name, with no production version: the housing
    demo (a regressor) is not trained into it, nor promoted over it."""
    settings.VAR_DIR = tmp_path
    settings.MLAPP_DATA_DIR = tmp_path / "data"
    demo_name = unique_model_name
    theirs = model_train(csv=churn_csv, target="churned", name=demo_name, actor_label="alice").model_version

    lines = platform_bootstrap(dataset="housing", demo_name=demo_name)

    assert lines[1] == (
        f"{demo_name} already exists and is not the demo model (v1 not trained by the bootstrap): left as it is"
    )
    assert [int(v.version) for v in mlflow_access.client().search_model_versions(f"name = '{demo_name}'")] == [1]
    assert list(ModelVersion.objects.filter(name=demo_name)) == [theirs]
    assert selectors.model_aliases(demo_name) == {}
    assert not AliasChange.objects.filter(model_name=demo_name).exists()
    assert not (tmp_path / "demo").exists()  # not even the demo data was generated
