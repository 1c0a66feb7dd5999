"""A new version that answers another question or takes other inputs than production is
registered only when someone confirms it: from code, the command and the training page."""

import mlflow
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.template.defaultfilters import filesizeformat, floatformat

from models_registry import mlflow_access, selectors, services
from models_registry.comparison import ModelSchema, model_artifact_bytes, schema_differences
from models_registry.models import AliasChange, ModelVersion, TrainingJob
from models_registry.training import SchemaChangeNotConfirmed, model_train

pytestmark = pytest.mark.django_db


def _registered(name):
    return sorted(int(v.version) for v in mlflow_access.client().search_model_versions(f"name = '{name}'"))


def _runs(name):
    return mlflow.search_runs(
        experiment_ids=[mlflow_access.experiment_id_get()],
        filter_string=f"attributes.run_name = '{name}-train'",
        output_format="list",
    )


def _churn_variant(churn_csv, tmp_path, change) -> str:
    frame = pd.read_csv(churn_csv)
    path = tmp_path / "variant.csv"
    change(frame).to_csv(path, index=False)
    return str(path)


def test_schema_differences_name_each_change():
    features = {"age": "numeric", "plan": "categorical"}
    production = ModelSchema(task="classification", target="churned", features=features)
    candidate = ModelSchema(task="regression", target="price", features={"age": "categorical", "area": "numeric"})

    assert schema_differences(production, production, current_label="v1", candidate_label="v2") == []
    assert schema_differences(production, candidate, current_label="v1", candidate_label="v2") == [
        "task: v1 is classification, v2 regression",
        "target: v1 predicts 'churned', v2 'price'",
        "features v1 takes and v2 does not: plan",
        "features new in v2: area",
        "feature 'age': numeric in v1, categorical in v2",
    ]


def test_a_regressor_under_a_classifiers_name_is_refused_and_nothing_is_written(classifier_in_production, housing_csv):
    name = classifier_in_production.name
    runs_before = len(_runs(name))

    with pytest.raises(SchemaChangeNotConfirmed) as refused:
        model_train(csv=housing_csv, target="price", name=name)

    message = str(refused.value)
    assert "production version 1" in message and "Nothing was registered" in message
    assert "task: production (v1) is classification, the new version regression" in refused.value.differences
    assert "target: production (v1) predicts 'churned', the new version 'price'" in refused.value.differences
    assert any(d.startswith("features new in the new version: area_m2") for d in refused.value.differences)
    assert _registered(name) == [1]
    assert list(ModelVersion.objects.filter(name=name)) == [classifier_in_production]
    assert len(_runs(name)) == runs_before  # refused before fitting: no run either


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        (lambda f: f.drop(columns=["region"]), "features production (v1) takes and the new version does not: region"),
        (
            lambda f: f.assign(support_calls=f["support_calls"].map(lambda n: f"{n} calls")),
            "feature 'support_calls': numeric in production (v1), categorical in the new version",
        ),
    ],
    ids=["feature-dropped", "kind-changed"],
)
def test_a_changed_feature_set_is_refused(classifier_in_production, churn_csv, tmp_path, change, difference):
    csv = _churn_variant(churn_csv, tmp_path, change)

    with pytest.raises(SchemaChangeNotConfirmed) as refused:
        model_train(csv=csv, target="churned", name=classifier_in_production.name)

    assert refused.value.differences == [difference]
    assert _registered(classifier_in_production.name) == [1]


def test_same_schema_on_new_data_needs_no_confirmation(classifier_in_production, churn_csv, tmp_path):
    csv = _churn_variant(churn_csv, tmp_path, lambda f: f.sample(frac=0.7, random_state=3))

    v2 = model_train(csv=csv, target="churned", name=classifier_in_production.name).model_version

    assert v2.version == 2
    assert "mlapp.schema_change_confirmed" not in mlflow_access.client().get_run(v2.run_id).data.tags


def test_a_confirmed_schema_change_is_registered_and_says_so(classifier_in_production, housing_csv):
    name = classifier_in_production.name

    v2 = model_train(csv=housing_csv, target="price", name=name, allow_schema_change=True).model_version

    assert (v2.version, v2.task, v2.target) == (2, "regression", "price")
    assert _registered(name) == [1, 2]
    tag = mlflow_access.client().get_run(v2.run_id).data.tags["mlapp.schema_change_confirmed"]
    assert tag.startswith("task: production (v1) is classification, the new version regression")


def test_the_command_refuses_a_schema_change_unless_allowed(classifier_in_production, housing_csv):
    name = classifier_in_production.name
    args = ["train", "--csv", str(housing_csv), "--target", "price", "--name", name]

    with pytest.raises(CommandError, match=r"task: production \(v1\) is classification.*--allow-schema-change"):
        call_command(*args)
    assert _registered(name) == [1]

    call_command(*args, "--allow-schema-change", "--promote")
    assert _registered(name) == [1, 2]
    assert selectors.production_version_get(name).task == "regression"
    assert ModelVersion.objects.get(name=name, version=2).task == "regression"


def _upload(path):
    return SimpleUploadedFile("houses.csv", path.read_bytes(), content_type="text/csv")


def test_the_training_page_shows_the_differences_and_registers_only_when_confirmed(
    classifier_in_production, housing_csv, staff_client, django_capture_on_commit_callbacks
):
    name = classifier_in_production.name
    form = {"target": "price", "model_name": name, "task": ""}

    refused = staff_client.post("/models/train/", {**form, "csv_file": _upload(housing_csv)})

    page = refused.content.decode()
    assert refused.status_code == 200
    assert f"Not a drop-in replacement for {name} in production" in page
    assert "<li>task: production (v1) is classification, the new version regression</li>" in page
    assert 'name="allow_schema_change"' in page and "Register anyway" in page
    assert not TrainingJob.objects.exists() and _registered(name) == [1]

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = staff_client.post(
            "/models/train/", {**form, "csv_file": _upload(housing_csv), "allow_schema_change": "on"}
        )

    job = TrainingJob.objects.get(model_name=name)
    assert confirmed.status_code == 302 and job.allow_schema_change
    assert job.status == TrainingJob.Status.SUCCEEDED and job.model_version.task == "regression"
    assert _registered(name) == [1, 2]


def test_a_queued_training_is_checked_again_when_it_runs(classifier_in_production, housing_csv):
    """Queued unconfirmed (e.g. before production moved): the worker checks again and registers nothing."""
    job = services.training_job_create(
        upload=_upload(housing_csv), target="price", task="", model_name=classifier_in_production.name, actor=None
    )
    job = services.training_job_run(job_id=job.pk)

    assert job.status == TrainingJob.Status.FAILED and "task: production (v1) is classification" in job.error
    assert _registered(classifier_in_production.name) == [1]


@pytest.fixture
def regressor_candidate(classifier_in_production, housing_csv):
    """Version 2 of the classifier's name: a regressor, registered with the change confirmed."""
    name = classifier_in_production.name
    return model_train(csv=housing_csv, target="price", name=name, allow_schema_change=True).model_version


def _production(name):
    return int(mlflow_access.client().get_model_version_by_alias(name, mlflow_access.PRODUCTION).version)


def test_an_incompatible_promotion_is_refused_unless_confirmed(regressor_candidate, staff_user):
    name = regressor_candidate.name

    with pytest.raises(services.IncompatiblePromotion) as refused:
        services.model_version_promote(name=name, version=2, actor=staff_user, reason="looks good")

    message = str(refused.value)
    assert message.startswith(f"{name} version 2 is not a drop-in replacement for production version 1: ")
    assert "task: production (v1) is classification, v2 regression" in refused.value.differences
    assert "Metrics: production (v1) accuracy " in message and "; v2 mae " in message and " rmse " in message
    assert _production(name) == 1 and AliasChange.objects.filter(model_name=name).count() == 1

    change = services.model_version_promote(
        name=name, version=2, actor=staff_user, reason="new use", confirm_schema_change=True
    )

    assert _production(name) == 2
    assert change.reason.startswith("new use (schema change confirmed: task: production (v1) is classification")


def test_a_blank_reason_is_refused_even_when_the_change_is_confirmed(regressor_candidate, staff_user):
    with pytest.raises(services.PromotionError, match="A reason is required"):
        services.model_version_promote(
            name=regressor_candidate.name, version=2, actor=staff_user, reason=" ", confirm_schema_change=True
        )
    assert _production(regressor_candidate.name) == 1


def test_the_model_page_marks_versions_with_another_schema(regressor_candidate, staff_client):
    page = staff_client.get(f"/models/{regressor_candidate.name}/").content.decode()

    v2_row, v1_row = page.split("<tr>")[2:4]
    assert "other schema</span>" in v2_row and "other schema</span>" not in v1_row


def test_the_promote_page_shows_both_versions_and_the_differences(regressor_candidate, staff_client):
    name = regressor_candidate.name
    production = ModelVersion.objects.get(name=name, version=1)

    response = staff_client.get(f"/models/{name}/versions/2/promote/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Not a drop-in replacement for v1" in page
    assert "<li>task: production (v1) is classification, v2 regression</li>" in page
    # Metrics of both, side by side; different metrics are not compared.
    assert floatformat(production.metrics["accuracy"], 4) in page
    assert floatformat(regressor_candidate.metrics["rmse"], 4) in page
    assert "not comparable" in page
    # Features of both: the classifier's are dropped, the regressor's are new, each with its profile.
    features = page[page.index('id="features"') :]
    assert '<code>contract</code> <span class="badge bad">dropped</span>' in features
    assert '<code>area_m2</code> <span class="badge bad">new</span>' in features
    assert "month-to-month" in features and "centre" in features
    # Training data and size.
    assert "churn.csv" in page and "housing.csv" in page
    assert production.training_data_sha256[:16] in page and regressor_candidate.training_data_sha256[:16] in page
    sizes = [model_artifact_bytes(name=name, version=version) for version in (1, 2)]
    assert all(size > 10_000 for size in sizes)  # the model files, listed from the artifact store
    sizes_row = page[page.index("Model files") :].split("</tr>", 1)[0]
    assert all(filesizeformat(size) in sizes_row for size in sizes)
    assert 'name="confirm_schema_change"' in page and "Promote anyway" in page


def test_the_promote_page_refuses_an_unconfirmed_schema_change_and_asks_again(regressor_candidate, staff_client):
    name = regressor_candidate.name
    url = f"/models/{name}/versions/2/promote/"

    refused = staff_client.post(url, {"reason": "one click"})

    assert refused.status_code == 200
    page = refused.content.decode()
    assert "Not a drop-in replacement for v1" in page and 'name="confirm_schema_change"' in page
    assert "Not promoted: confirm the differences listed above" in page
    assert _production(name) == 1

    confirmed = staff_client.post(url, {"reason": "new use", "confirm_schema_change": "on"})

    assert confirmed.status_code == 302 and confirmed.url == f"/models/{name}/"
    assert _production(name) == 2


def test_the_promote_api_refuses_an_unconfirmed_schema_change(regressor_candidate, staff_client):
    name = regressor_candidate.name
    url = f"/api/v1/models/{name}/versions/2/promote/"

    refused = staff_client.post(url, {"reason": "api"}, content_type="application/json")

    assert refused.status_code == 409
    body = refused.json()
    assert "is not a drop-in replacement for production version 1" in body["detail"]
    assert {"field": "schema", "problem": "task: production (v1) is classification, v2 regression"} in body["errors"]
    assert _production(name) == 1

    confirmed = staff_client.post(
        url, {"reason": "api", "confirm_schema_change": True}, content_type="application/json"
    )

    assert confirmed.status_code == 201 and confirmed.json()["to_version"] == 2
    assert _production(name) == 2


def test_the_promote_page_is_for_staff(regressor_candidate, user_client):
    name = regressor_candidate.name

    assert user_client.get(f"/models/{name}/versions/2/promote/").status_code == 403
    assert user_client.post(f"/models/{name}/versions/2/promote/", {"reason": "x"}).status_code == 403
    assert _production(name) == 1


def test_the_promote_page_of_a_version_that_does_not_exist_is_not_found(classifier_in_production, staff_client):
    assert staff_client.get(f"/models/{classifier_in_production.name}/versions/9/promote/").status_code == 404
