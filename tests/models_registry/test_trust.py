"""Models load only if trusted: mlapp recorded their files' hashes, the files still match, skops only.

Every path that loads a version is tried with a payload (a model file that writes a marker file
when it is unpickled): an outside alias move, a promotion through the API, a trained version
tampered with on disk. The payload never runs; the marker never appears.
"""

import os

import mlflow
import pytest
import skops.io
from django.core.management import call_command
from django.core.management.base import CommandError
from sklearn.preprocessing import FunctionTransformer

from models_registry import deployments, mlflow_access, serving, trust
from models_registry.demo_data import churn_frame
from models_registry.models import AliasChange, ModelVersion
from models_registry.selectors import served_version_get
from models_registry.serving import loader
from models_registry.training import model_train
from monitoring.models import Alert

from .payloads import payload_model_dir, payload_version_register, tamper_with_payload, version_files_dir

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "payload-ran.txt"
    yield path
    trust.refusals_forget()


@pytest.fixture
def v1_served_v2_trained(classifier_in_production, tmp_path):
    other = tmp_path / "churn-other.csv"
    churn_frame(n_rows=400, seed=23).to_csv(other, index=False)
    v2 = model_train(csv=other, target="churned", name=classifier_in_production.name).model_version
    loader().get(classifier_in_production.name)  # v1 loaded in this process
    return classifier_in_production.name, classifier_in_production.version, v2.version


@pytest.fixture
def fresh_process_loader():
    """A loader as a process that starts now has one: nothing loaded yet."""
    serving.loader.cache_clear()
    yield serving.loader
    serving.loader.cache_clear()


def test_the_platform_turns_mlflow_pickle_loading_off_and_the_payload_is_real(marker, tmp_path):
    directory = payload_model_dir(tmp_path / "payload", marker)

    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"  # set by mlapp/settings.py
    with pytest.raises(mlflow.exceptions.MlflowException, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        mlflow.sklearn.load_model(str(directory))
    assert not marker.exists()

    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"  # what MLflow does by default
    try:
        mlflow.sklearn.load_model(str(directory))
    finally:
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    assert marker.read_text() == "the payload ran"  # so the tests below would see it run


def test_a_trained_version_records_the_hash_of_every_file(classifier_in_production):
    record = ModelVersion.objects.get(pk=classifier_in_production.pk)
    files = record.artifact_manifest["files"]
    on_disk = version_files_dir(record.name, record.version)

    assert {"MLmodel", "model.skops"} <= set(files) and record.origin == "trained"
    assert files == trust.artifact_manifest(on_disk)
    assert record.artifact_sha256 == trust.manifest_sha256(files) and len(record.artifact_sha256) == 64
    assert record.artifact_uri


def test_an_outside_move_to_a_payload_version_never_runs_it(v1_served_v2_trained, marker, tmp_path, client):
    name, v1, _ = v1_served_v2_trained
    hostile = payload_version_register(name, payload_model_dir(tmp_path / "payload", marker))

    mlflow_access.client().set_registered_model_alias(name, mlflow_access.PRODUCTION, str(hostile))
    deployments.deployments_refresh()
    deployments.deployments_refresh()

    assert not marker.exists()
    (refused,) = AliasChange.objects.filter(model_name=name, action="outside_refused")
    assert refused.to_version == hostile and "did not register or import it" in refused.reason
    assert served_version_get(name=name) == v1 and loader().get(name).version == v1
    assert Alert.objects.filter(model_name=name, severity="critical", title__contains=f"v{hostile}").exists()
    refusal = next(r for r in loader().health()["refused"] if r["version"] == hostile)
    assert "did not register" in refusal["reason"]


def test_promoting_a_payload_version_through_the_api_is_refused(v1_served_v2_trained, marker, tmp_path, staff_client):
    name, v1, _ = v1_served_v2_trained
    hostile = payload_version_register(name, payload_model_dir(tmp_path / "payload", marker))

    response = staff_client.post(f"/api/v1/models/{name}/versions/{hostile}/promote/", {"reason": "looks fine"})

    assert response.status_code == 400, response.content
    assert "did not register or import it" in response.json()["detail"]
    assert not marker.exists()
    assert served_version_get(name=name) == v1 and not AliasChange.objects.filter(to_version=hostile).exists()
    assert Alert.objects.filter(model_name=name, severity="critical").exists()


def test_a_trained_version_tampered_on_disk_is_refused_on_promotion(v1_served_v2_trained, marker, staff_client):
    name, v1, v2 = v1_served_v2_trained
    tamper_with_payload(version_files_dir(name, v2), marker)

    response = staff_client.post(f"/api/v1/models/{name}/versions/{v2}/promote/", {"reason": "retrained"})

    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert "files changed since mlapp recorded them: MLmodel changed; model.pkl was added" in detail
    assert not marker.exists()
    assert served_version_get(name=name) == v1 and loader().get(name).version == v1


def test_a_tampered_version_moved_to_outside_mlapp_is_refused(v1_served_v2_trained, marker):
    name, v1, v2 = v1_served_v2_trained
    tamper_with_payload(version_files_dir(name, v2), marker)

    mlflow_access.client().set_registered_model_alias(name, mlflow_access.PRODUCTION, str(v2))
    deployments.deployments_refresh()

    assert not marker.exists()
    (refused,) = AliasChange.objects.filter(model_name=name, action="outside_refused")
    assert refused.to_version == v2 and "files changed" in refused.reason
    assert loader().get(name).version == v1


def test_a_served_version_tampered_on_disk_keeps_serving_where_loaded_and_a_fresh_process_refuses_it(
    v1_served_v2_trained, marker, fresh_process_loader, client
):
    name, v1, _ = v1_served_v2_trained
    running = loader()
    running.get(name)  # this process loaded v1 before the files changed
    skops_file = version_files_dir(name, v1) / "model.skops"
    skops_file.write_bytes(skops_file.read_bytes() + b"\0")

    assert running.get(name).version == v1  # what was checked and loaded keeps serving
    fresh_process_loader.cache_clear()  # a worker that starts now
    deployments.deployments_refresh()

    assert not fresh_process_loader().is_loaded(name, v1)
    (refusal,) = [r for r in fresh_process_loader().health()["refused"] if r["model"] == name]
    assert "model.skops changed" in refusal["reason"]
    alert = Alert.objects.get(model_name=name, severity="critical")
    assert f"v{v1}" in alert.title and "model.skops changed" in alert.message
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["models"][name]["status"] == "untrusted"


def test_a_skops_file_naming_an_untrusted_type_is_refused_before_anything_is_built(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    skops.io.dump(FunctionTransformer(func=os.system), directory / "model.skops")
    (directory / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
    )

    with pytest.raises(trust.ModelFormatRefused, match="not trusted: .*system"):
        trust.model_directory_check(directory)
    with pytest.raises(trust.ModelFormatRefused, match="not trusted"):
        trust.skops_load(directory / "model.skops")


def test_a_version_registered_before_hashes_is_refused_until_its_files_are_recorded(
    classifier_in_production, fresh_process_loader
):
    name, version = classifier_in_production.name, classifier_in_production.version
    ModelVersion.objects.filter(pk=classifier_in_production.pk).update(
        artifact_sha256="", artifact_manifest={}, artifact_uri=""
    )

    with pytest.raises(trust.UntrustedModel, match="model_hashes_record --model"):
        loader().get_version(name, version)
    call_command("model_hashes_record", "--model", name)

    assert loader().get_version(name, version).version == version
    assert ModelVersion.objects.get(pk=classifier_in_production.pk).artifact_sha256 == (
        classifier_in_production.artifact_sha256
    )


def test_the_hash_command_does_not_bless_a_pickled_model(classifier_in_production, marker):
    name, version = classifier_in_production.name, classifier_in_production.version
    ModelVersion.objects.filter(pk=classifier_in_production.pk).update(artifact_sha256="", artifact_manifest={})
    tamper_with_payload(version_files_dir(name, version), marker)

    with pytest.raises(CommandError, match="not recorded"):
        call_command("model_hashes_record", "--model", name)

    assert ModelVersion.objects.get(pk=classifier_in_production.pk).artifact_sha256 == ""
    assert not marker.exists()
