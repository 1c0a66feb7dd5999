"""The Open Inference Protocol (V2) over REST, driven by a client nobody here wrote: tritonclient's
`InferenceServerClient`, over HTTP, against a live server (pytest-django's `live_server`)."""

import json

import numpy as np
import pytest
import tritonclient.http as triton
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from tritonclient.utils import InferenceServerException

from models_registry import mlflow_access, trust
from models_registry.models import AliasChange, ModelVersion
from predictions import services
from predictions.models import Prediction
from tests.conftest import CHURN, HOUSING

from .factories import CHURN_ROW, HOUSE_ROW

DATATYPE = {float: "FP64", int: "INT64", str: "BYTES"}


@pytest.fixture
def token(plain_user):
    return Token.objects.create(user=plain_user).key


@pytest.fixture
def triton_client(live_server):
    client = triton.InferenceServerClient(live_server.url.removeprefix("http://"))
    yield client
    client.close()


def _inputs(rows: list[dict], specs, binary: bool = True) -> list:
    """One tensor per feature, typed as the model's metadata says (what a V2 client builds)."""
    tensors = []
    for name, spec in specs.items():
        datatype = "BYTES" if not spec.is_numeric else ("INT64" if spec.is_integer else "FP64")
        dtype = {"BYTES": np.object_, "INT64": np.int64, "FP64": np.float64}[datatype]
        tensor = triton.InferInput(name, [len(rows), 1], datatype)
        tensor.set_data_from_numpy(np.array([[row[name]] for row in rows], dtype=dtype), binary_data=binary)
        tensors.append(tensor)
    return tensors


def _native(model_name, rows):
    """The native predict service's answer on the same rows (not stored: rolled back by the caller's test)."""
    result = services.predictions_make(model_name=model_name, records=rows, source="api")
    Prediction.objects.filter(request_id=result.request_id).delete()
    return result.predictions


@pytest.mark.django_db(transaction=True)
def test_server_health_and_metadata_through_tritonclient(triton_client, churn_model, token):
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    server = triton_client.get_server_metadata()
    assert server["name"] == "mlapp" and "binary_tensor_data" in server["extensions"]

    headers = {"Authorization": f"Token {token}"}
    metadata = triton_client.get_model_metadata(CHURN, headers=headers)
    assert metadata["name"] == CHURN and metadata["versions"] == [str(churn_model.version)]
    specs = churn_model.training_profile.specs
    assert [(t["name"], t["shape"]) for t in metadata["inputs"]] == [(name, [-1, 1]) for name in specs]
    assert {t["name"]: t["datatype"] for t in metadata["inputs"]} == {
        **{n: ("FP64" if not s.is_integer else "INT64") for n, s in specs.items() if s.is_numeric},
        **{n: "BYTES" for n, s in specs.items() if not s.is_numeric},
    }
    assert [t["name"] for t in metadata["outputs"]] == ["predict", "probability_no", "probability_yes"]
    assert triton_client.is_model_ready(CHURN, headers=headers)
    assert triton_client.is_model_ready(CHURN, str(churn_model.version), headers=headers)
    assert not triton_client.is_model_ready("no-such-model", headers=headers)
    assert not triton_client.is_model_ready(CHURN)  # no token: a 401, not ready for this caller


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json-tensors"])
def test_infer_with_the_classifier_through_tritonclient(triton_client, churn_model, token, binary):
    rows = [CHURN_ROW, {**CHURN_ROW, "age": 61, "contract": "two-year", "region": "south"}]
    specs = churn_model.training_profile.specs

    result = triton_client.infer(
        CHURN, _inputs(rows, specs, binary), request_id="req-7", headers={"Authorization": f"Token {token}"}
    )

    expected = _native(CHURN, rows)
    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_version"] == str(churn_model.version)
    assert result.as_numpy("predict").reshape(-1).tolist() == [row.prediction for row in expected]
    for label in ("no", "yes"):
        assert result.as_numpy(f"probability_{label}").reshape(-1).tolist() == pytest.approx(
            [row.probabilities[label] for row in expected], abs=1e-6
        )
    stored = Prediction.objects.filter(model_name=CHURN).order_by("id")
    assert [(p.source, p.request_id, p.features["age"]) for p in stored] == [("v2", "req-7", 40), ("v2", "req-7", 61)]


@pytest.mark.django_db(transaction=True)
def test_infer_with_a_second_model_of_other_columns(triton_client, housing_model, token):
    specs = housing_model.training_profile.specs
    headers = {"Authorization": f"Token {token}"}
    metadata = triton_client.get_model_metadata(HOUSING, headers=headers)
    assert [t["name"] for t in metadata["inputs"]] == list(HOUSE_ROW) == list(specs)
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1, 1]}]

    result = triton_client.infer(
        HOUSING, _inputs([HOUSE_ROW], specs), outputs=[triton.InferRequestedOutput("predict")], headers=headers
    )

    (value,) = result.as_numpy("predict").reshape(-1).tolist()
    assert value == pytest.approx(_native(HOUSING, [HOUSE_ROW])[0].prediction, rel=1e-9)
    assert Prediction.objects.get(model_name=HOUSING).predicted_value == pytest.approx(value)


@pytest.mark.django_db(transaction=True)
def test_one_table_input_in_the_metadatas_column_order(triton_client, housing_model, token):
    table = triton.InferInput("table", [1, len(HOUSE_ROW)], "BYTES")
    table.set_data_from_numpy(np.array([[str(v) for v in HOUSE_ROW.values()]], dtype=np.object_))

    result = triton_client.infer(HOUSING, [table], headers={"Authorization": f"Token {token}"})

    assert result.as_numpy("predict").reshape(-1).tolist() == pytest.approx(
        [_native(HOUSING, [HOUSE_ROW])[0].prediction], rel=1e-9
    )
    assert Prediction.objects.get(model_name=HOUSING).features == HOUSE_ROW


@pytest.mark.django_db(transaction=True)
def test_a_bad_value_is_refused_by_name_through_tritonclient(triton_client, churn_model, token):
    rows = [{**CHURN_ROW, "monthly_charges": float("nan")}]
    with pytest.raises(InferenceServerException) as raised:
        triton_client.infer(
            CHURN, _inputs(rows, churn_model.training_profile.specs), headers={"Authorization": f"Token {token}"}
        )
    assert "row 0, field 'monthly_charges'" in raised.value.message() and raised.value.status() == "400"
    assert not Prediction.objects.exists()


# --------------------------------------------------------------------------- errors, with the test client


@pytest.fixture
def api(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _tensor(name, value, datatype=None, shape=None):
    datatype = datatype or DATATYPE[type(value)]
    return {"name": name, "datatype": datatype, "shape": shape or [1, 1], "data": [value]}


def _request(row=CHURN_ROW, **extra):
    return {"inputs": [_tensor(name, value) for name, value in row.items()], **extra}


def _infer(api, body, model=CHURN, version=None, **headers):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    data = body if isinstance(body, bytes) else json.dumps(body)
    return api.generic("POST", path, data, content_type="application/json", **headers)


@pytest.mark.django_db
def test_json_infer_answers_and_echoes_the_id(api, churn_model):
    response = _infer(api, _request(id="abc", outputs=[{"name": "probability_yes"}]))

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["model_name"], body["model_version"]) == ("abc", CHURN, str(churn_model.version))
    assert [o["name"] for o in body["outputs"]] == ["probability_yes"]
    assert Prediction.objects.get().request_id == "abc"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "the request must be a JSON object, got list"),
        ({"inputs": []}, "inputs must be a non-empty list of tensors"),
        (_request(id=7), "id must be a string of at most 64 characters"),
        (_request(id="x" * 65), "id must be a string of at most 64 characters"),
        (
            _request(outputs=[{"name": "predict_proba"}]),
            "unknown output 'predict_proba' (outputs: predict, probability_no, probability_yes)",
        ),
        (
            {"inputs": [_tensor("age", 40.0, shape=[2, 1]), *_request()["inputs"][1:]]},
            "input 'age': shape [2, 1] holds 2 values, data has 1",
        ),
        (
            {"inputs": [_tensor("age", 40.0, datatype="FP8"), *_request()["inputs"][1:]]},
            "input 'age': unsupported datatype 'FP8'",
        ),
        (
            {"inputs": [*_request()["inputs"][:-1], _tensor("region", 3.0)]},
            "input 'region': datatype FP64 for feature 'region', expected BYTES",
        ),
        (
            {"inputs": [_request()["inputs"][0], *_request()["inputs"]]},
            "input 'age' is given twice",
        ),
        (
            {"inputs": [{"name": "table", "datatype": "BYTES", "shape": [1, 2], "data": ["1", "2"]}]},
            "input 'table' is not a feature of the model; as one table it must have shape [rows, 9] (columns "
            "age, tenure_months, monthly_charges, total_charges, support_calls, contract, internet_service, "
            "payment_method, region), got [1, 2]",
        ),
    ],
    ids=[
        "not-an-object",
        "no-inputs",
        "id-not-text",
        "id-too-long",
        "unknown-output",
        "shape-and-data-disagree",
        "unknown-datatype",
        "number-for-a-category",
        "twice",
        "table-of-the-wrong-width",
    ],
)
def test_a_request_outside_the_protocol_is_a_400_with_an_error_body(api, churn_model, body, error):
    response = _infer(api, body)

    assert (response.status_code, response.json()) == (400, {"error": error})
    assert not Prediction.objects.exists()


@pytest.mark.django_db
def test_a_refused_value_names_row_and_field(api, churn_model):
    response = _infer(api, _request({**CHURN_ROW, "support_calls": 2.5, "colour": "red"}))

    assert response.status_code == 400
    body = response.json()
    # Every problem in one answer: the unknown input and the value the rules refuse.
    assert {(e["row"], e["field"]) for e in body["errors"]} == {(0, "colour"), (0, "support_calls")}
    assert body["error"].startswith("Invalid input. row 0, field 'colour': unknown feature")
    assert "field 'support_calls'" in body["error"]
    assert not Prediction.objects.exists()


@pytest.mark.django_db
def test_binary_data_that_runs_past_the_body_is_a_400(api, churn_model):
    header = json.dumps(
        {"inputs": [{"name": "age", "datatype": "FP64", "shape": [1, 1], "parameters": {"binary_data_size": 8}}]}
    ).encode()

    response = _infer(api, header + b"\x00\x01", HTTP_INFERENCE_HEADER_CONTENT_LENGTH=str(len(header)))

    assert response.status_code == 400
    assert response.json() == {"error": "input 'age': binary_data_size 8 runs past the binary data"}
    assert not Prediction.objects.exists()


@pytest.mark.django_db
def test_unknown_model_and_no_token(api, churn_model):
    missing = _infer(api, _request(), model="no-such-model")
    anonymous = _infer(APIClient(), _request())

    assert missing.status_code == 404 and "no-such-model" in missing.json()["error"]
    assert (anonymous.status_code, anonymous.json()) == (
        401,
        {"error": "Authentication credentials were not provided."},
    )
    assert APIClient().get(f"/v2/models/{CHURN}").status_code == 401
    assert not Prediction.objects.exists()


@pytest.fixture
def second_version(churn_model):
    """A second version of the churn model, registered in MLflow and mlapp (the same files), not serving."""
    client = mlflow_access.client()
    first = client.get_model_version(CHURN, str(churn_model.version))
    created = client.create_model_version(CHURN, first.source, first.run_id)
    fields = {f.attname: getattr(churn_model, f.attname) for f in ModelVersion._meta.fields}
    fields.pop("id")
    # Its own copy of the files in the registry, hashed as mlapp records a version it registers.
    files = trust.artifact_record_fields(
        artifact_uri=trust.version_artifact_uri(name=CHURN, version=int(created.version))
    )
    return ModelVersion.objects.create(**{**fields, **files, "version": int(created.version)}).version


@pytest.mark.django_db
def test_a_version_is_pinned_only_where_the_caller_may_call_it(api, staff_user, churn_model, second_version):
    served = _infer(api, _request(), version=churn_model.version)
    hidden = _infer(api, _request(), version=second_version)
    never = _infer(api, _request(), version=999)

    assert served.status_code == 200 and served.json()["model_version"] == str(churn_model.version)
    assert hidden.status_code == 404
    assert hidden.json() == {
        "error": f"{CHURN} has no version {second_version} you may call (versions: {churn_model.version})"
    }
    assert never.status_code == 404
    assert api.get(f"/v2/models/{CHURN}/versions/{second_version}/ready").status_code == 404
    assert Prediction.objects.count() == 1

    staff = APIClient()
    staff.force_authenticate(staff_user)
    assert staff.get(f"/v2/models/{CHURN}").json()["versions"] == [str(churn_model.version), str(second_version)]
    assert staff.get(f"/v2/models/{CHURN}/versions/{second_version}").json()["versions"] == [str(second_version)]


@pytest.mark.django_db
def test_the_challenger_may_be_pinned_by_anyone(api, churn_model, second_version):
    AliasChange.objects.create(
        model_name=CHURN,
        alias=mlflow_access.CHALLENGER,
        action=AliasChange.Action.BOOTSTRAP,
        to_version=second_version,
        actor_label="tests",
        reason="a challenger",
    )

    metadata = api.get(f"/v2/models/{CHURN}")

    assert metadata.json()["versions"] == [str(churn_model.version), str(second_version)]
    assert api.get(f"/v2/models/{CHURN}/versions/{second_version}/ready").status_code == 200


@pytest.mark.django_db
def test_an_address_no_url_matches_is_a_404_in_the_protocols_shape(api, churn_model):
    response = api.get(f"/v2/models/{CHURN}/versions/-1/ready")

    assert response.status_code == 404
    assert response.json() == {"error": f"No endpoint at /v2/models/{CHURN}/versions/-1/ready"}


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_413_in_the_protocols_shape(api, churn_model, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

    response = _infer(api, b"{" + b" " * (1024 * 1024) + b"}")

    assert response.status_code == 413
    assert "the limit is 1 MiB" in response.json()["error"]
    assert not Prediction.objects.exists()
