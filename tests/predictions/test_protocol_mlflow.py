"""MLflow's scoring protocol under /serving/<name>/: MLflow's own payloads and MLflow's own answers.

The payloads come from MLflow (the `serving_input_example.json` it logs with each model, and
`convert_input_example_to_serving_input`); the expected predictions from `mlflow.pyfunc.load_model`;
the expected error bodies from MLflow's scoring server function (`invocations`) run on the same bytes.
"""

import json

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import convert_input_example_to_serving_input
from mlflow.pyfunc import scoring_server
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.models import Prediction
from tests.conftest import CHURN, HOUSING

from .factories import CHURN_ROW, HOUSE_ROW

pytestmark = pytest.mark.django_db
JSON = "application/json"


@pytest.fixture
def token(plain_user):
    return Token.objects.create(user=plain_user).key


@pytest.fixture
def api(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _invoke(api, body, model=CHURN, content_type=JSON):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return api.generic("POST", f"/serving/{model}/invocations", data, content_type=content_type)


_PYFUNC = {}


def _pyfunc(model):
    """MLflow's own loader, as `mlflow models serve` would use it. The platform turns MLflow's
    deserialization off (models_registry/trust.py); this test's reference load of a model it just
    trained is the one place it is allowed back on, for the call only."""
    if (model.name, model.version) not in _PYFUNC:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
            _PYFUNC[(model.name, model.version)] = mlflow.pyfunc.load_model(f"models:/{model.name}/{model.version}")
    return _PYFUNC[(model.name, model.version)]


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as the signature types them (numbers as float64, as training logged them): what
    `pyfunc.predict` takes; an int64 column it refuses ("Can not safely convert int64 to float64")."""
    frame = pd.DataFrame(rows)
    return frame.astype({name: float for name in frame.columns if pd.api.types.is_numeric_dtype(frame[name])})


def _predict(model, rows: list[dict]) -> list:
    return _pyfunc(model).predict(_frame(rows)).tolist()


def _logged_serving_example(model) -> str:
    path = mlflow.artifacts.download_artifacts(f"models:/{model.name}/{model.version}/serving_input_example.json")
    with open(path) as file:
        return file.read()


def _mlflow_answer(model, body: bytes, content_type=JSON):
    """What `mlflow models serve` answers for these bytes: (status, parsed JSON or text)."""
    pyfunc = _pyfunc(model)
    try:
        result = scoring_server.invocations(body, content_type, pyfunc, pyfunc.metadata.get_input_schema())
    except MlflowException as exc:
        return exc.get_http_status_code(), json.loads(exc.serialize_as_json())
    return result.status, json.loads(result.response) if result.mimetype == JSON else result.response


def _same(answered: list, expected: list) -> bool:
    """Labels equal; values equal to 1e-9 (the fast row scorer sums the trees in scikit-learn's order)."""
    if expected and isinstance(expected[0], str):
        return answered == expected
    return answered == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("fixture", ["churn_model", "housing_model"])
def test_the_serving_input_example_mlflow_logged_is_answered_as_mlflow_would(request, api, fixture):
    model = request.getfixturevalue(fixture)
    example = _logged_serving_example(model)

    response = _invoke(api, example, model=model.name)

    assert response.status_code == 200, response.content
    status, expected = _mlflow_answer(model, example.encode())
    assert status == 200
    assert _same(response.json()["predictions"], expected["predictions"])
    stored = Prediction.objects.filter(model_name=model.name)
    assert stored.count() == len(expected["predictions"]) and {p.source for p in stored} == {"mlflow"}
    assert response["X-Model-Version"] == str(model.version)
    assert {p.request_id for p in stored} == {response["X-Request-Id"]}


@pytest.mark.parametrize(("fixture", "row"), [("churn_model", CHURN_ROW), ("housing_model", HOUSE_ROW)])
def test_convert_input_example_to_serving_input_payloads_match_pyfunc_predict(request, api, fixture, row):
    model = request.getfixturevalue(fixture)
    frame = _frame([row, row | {next(iter(row)): row[next(iter(row))] + 7}])
    payload = convert_input_example_to_serving_input(frame)

    response = _invoke(api, payload, model=model.name)

    assert response.status_code == 200, response.content
    expected = _pyfunc(model).predict(frame).tolist()
    assert _same(response.json()["predictions"], expected)


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_records": [CHURN_ROW]},
        {"dataframe_split": {"columns": list(CHURN_ROW), "data": [list(CHURN_ROW.values())], "index": [7]}},
        {"instances": [CHURN_ROW]},
        {"inputs": {name: [value] for name, value in CHURN_ROW.items()}},
        {"inputs": CHURN_ROW},
        {"dataframe_records": [CHURN_ROW], "params": {"ignored": 1}},
    ],
    ids=["records", "split", "instances", "inputs-columns", "inputs-one-row", "params"],
)
def test_every_input_format_answers_what_mlflow_answers(api, churn_model, payload):
    response = _invoke(api, payload)

    assert response.status_code == 200, response.content
    assert response.json() == {"predictions": _predict(churn_model, [CHURN_ROW])}
    assert Prediction.objects.get().features == CHURN_ROW


@pytest.mark.parametrize("index", [True, False])
def test_text_csv_is_answered_as_mlflow_would(api, churn_model, index):
    rows = [CHURN_ROW, {**CHURN_ROW, "age": 61, "contract": "two-year"}]
    body = pd.DataFrame(rows).to_csv(index=index)

    response = _invoke(api, body, content_type="text/csv; charset=utf-8")

    assert response.status_code == 200, response.content
    assert response.json()["predictions"] == _predict(churn_model, rows)
    assert [p.features["age"] for p in Prediction.objects.order_by("id")] == [40, 61]


@pytest.mark.parametrize(
    "body",
    [
        [CHURN_ROW],
        {},
        {"params": {}},
        {"unknown": 1},
        {"dataframe_records": [CHURN_ROW], "instances": [CHURN_ROW]},
        {"dataframe_records": CHURN_ROW},
        {"dataframe_records": "rows"},
        {"dataframe_split": [list(CHURN_ROW.values())]},
        {"dataframe_split": {"columns": list(CHURN_ROW)}},
        {"dataframe_split": {"columns": list(CHURN_ROW), "data": [], "extra": 1}},
        42,
    ],
    ids=[
        "a-list",
        "no-key",
        "only-params",
        "unknown-key",
        "two-keys",
        "records-as-a-dict",
        "records-as-text",
        "split-as-a-list",
        "split-without-data",
        "split-extra-key",
        "a-number",
    ],
)
def test_a_body_outside_the_protocol_gets_mlflows_own_error(api, churn_model, body):
    raw = json.dumps(body)

    response = _invoke(api, raw)

    expected_status, expected = _mlflow_answer(churn_model, raw.encode())
    assert (response.status_code, response.json()) == (expected_status, expected) == (400, response.json())
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert not Prediction.objects.exists()


def test_malformed_json_is_mlflows_bad_request(api, churn_model):
    response = _invoke(api, b'{"dataframe_records": [')

    _, expected = _mlflow_answer(churn_model, b'{"dataframe_records": [')
    assert response.status_code == 400
    assert response.json()["error_code"] == expected["error_code"] == "BAD_REQUEST"
    prefix = "Invalid input. Ensure that input is a valid JSON formatted string. Error: 'JSONDecodeError("
    assert response.json()["message"].startswith(prefix) and expected["message"].startswith(prefix)
    assert not Prediction.objects.exists()


@pytest.mark.parametrize("content_type", ["application/json; charset=latin-1", "application/json; format=pandas-split"])
def test_charset_and_content_type_parameters_get_mlflows_415(api, churn_model, content_type):
    body = json.dumps({"dataframe_records": [CHURN_ROW]})

    response = _invoke(api, body, content_type=content_type)

    expected_status, expected = _mlflow_answer(churn_model, body.encode(), content_type)
    assert (response.status_code, response.content.decode()) == (expected_status, expected)
    assert response.status_code == 415 and response["Content-Type"].startswith("text/plain")
    assert not Prediction.objects.exists()


@pytest.mark.parametrize("content_type", ["application/xml", "application/vnd.apache.parquet", ""])
def test_another_content_type_is_a_415_naming_the_types_taken(api, churn_model, content_type):
    response = _invoke(api, "<rows/>", content_type=content_type)

    assert response.status_code == 415 and response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == (
        "This predictor only supports the following content types: Types: ['text/csv', 'application/json']. "
        f"Got '{content_type}'."
    )
    assert not Prediction.objects.exists()


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({**CHURN_ROW, "age": "old"}, "age", "wrong type: expected a number, got str 'old'"),
        ({**CHURN_ROW, "age": True}, "age", "wrong type: expected a number, got bool True"),
        ({**CHURN_ROW, "support_calls": 2.5}, "support_calls", None),
        ({k: v for k, v in CHURN_ROW.items() if k != "region"}, "region", "missing feature"),
        ({**CHURN_ROW, "colour": "red"}, "colour", "unknown feature"),
    ],
    ids=["text-for-a-number", "truthy-boolean", "fraction-for-a-count", "missing", "unknown"],
)
def test_a_value_mlflow_would_coerce_is_refused_by_name(api, churn_model, row, field, problem):
    response = _invoke(api, {"dataframe_records": [CHURN_ROW, row]})

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST"
    (error,) = body["errors"]
    assert (error["row"], error["field"]) == (1, field)
    if problem:
        assert error["problem"] == problem
    assert body["message"] == f"Invalid input. row 1, field {field!r}: {error['problem']}"
    assert not Prediction.objects.exists()


def test_a_csv_cell_that_is_not_a_number_is_refused_by_name(api, churn_model):
    frame = pd.DataFrame([{**CHURN_ROW, "tenure_months": "soon"}])

    response = _invoke(api, frame.to_csv(index=False), content_type="text/csv")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"row": 0, "field": "tenure_months", "problem": "wrong type: expected a number, got str 'soon'"}
    ]
    assert not Prediction.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Error: 'No columns to parse from file'"),
        (b"age,region\n40\n", "Error: 'Expected 2 fields in line 2, saw 1'"),
        ("age\n4\xe9".encode("latin-1"), "Ensure that input is a valid UTF-8 encoded string."),
    ],
    ids=["empty", "ragged", "not-utf8"],
)
def test_csv_that_cannot_be_read_is_a_bad_request(api, churn_model, body, message):
    response = _invoke(api, body, content_type="text/csv")

    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST" and message in response.json()["message"]
    assert not Prediction.objects.exists()


def test_a_model_that_serves_nothing_is_a_404_in_mlflows_shape(api, churn_model):
    response = _invoke(api, {"dataframe_records": [CHURN_ROW]}, model="no-such-model")

    assert response.status_code == 404
    body = response.json()
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST" and "no-such-model" in body["message"]
    assert CHURN in body["message"]  # the served models are named
    assert not Prediction.objects.exists()


def test_invocations_need_a_token_and_take_it_as_bearer_too(churn_model, token):
    anonymous = _invoke(APIClient(), {"dataframe_records": [CHURN_ROW]})
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "error_code": "UNAUTHENTICATED",
        "message": "Authentication credentials were not provided.",
    }
    assert anonymous["WWW-Authenticate"] == "Token"
    assert _invoke(wrong, {"dataframe_records": [CHURN_ROW]}).json()["error_code"] == "UNAUTHENTICATED"
    assert not Prediction.objects.exists()
    assert _invoke(bearer, {"dataframe_records": [CHURN_ROW]}).status_code == 200


def test_ping_health_and_version_answer_as_mlflows_server(churn_model):
    client = APIClient()  # probes carry no token

    for path in ("ping", "health"):
        response = client.get(f"/serving/{CHURN}/{path}")
        assert (response.status_code, response.content) == (200, b"\n")
        missing = client.get(f"/serving/no-such-model/{path}")
        assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    version = client.get(f"/serving/{CHURN}/version")
    assert (version.status_code, version.content.decode()) == (200, mlflow.__version__)


def test_the_regressor_answers_values(api, housing_model):
    response = _invoke(
        api, {"dataframe_split": {"columns": list(HOUSE_ROW), "data": [list(HOUSE_ROW.values())]}}, HOUSING
    )

    assert response.status_code == 200
    (value,) = response.json()["predictions"]
    assert isinstance(value, float)
    assert value == pytest.approx(_predict(housing_model, [HOUSE_ROW])[0], rel=1e-9)
    assert Prediction.objects.get().predicted_value == pytest.approx(value)


def test_a_body_over_the_limit_is_a_413_in_mlflows_shape(api, churn_model, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

    response = _invoke(api, b"{" + b" " * (1024 * 1024) + b"}")

    assert response.status_code == 413
    assert response.json()["error_code"] == "BAD_REQUEST" and "the limit is 1 MiB" in response.json()["message"]
    assert not Prediction.objects.exists()
    missing = api.get(f"/serving/{CHURN}/nothing-here")
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
