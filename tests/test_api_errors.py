"""One error shape for every REST API error (core/api_errors.py):
{"detail": "<sentence>"} and, when particular input is wrong, "errors": [{"field", "problem", ...}]."""

import pytest
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from core.api_errors import api_exception_handler
from core.errors import ApplicationError
from tests.predictions.factories import CHURN_ROW

pytestmark = pytest.mark.django_db


def _assert_one_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert set(body) <= {"detail", "errors"}
    for error in body.get("errors", []):
        assert {"field", "problem"} <= set(error) and isinstance(error["problem"], str)
    return body


@pytest.fixture
def api(plain_user):
    client = APIClient()
    client.force_authenticate(plain_user)
    return client


def test_every_kind_of_api_error_has_the_one_shape(api, churn_model, unique_model_name, settings):
    # DRF's own: not signed in, not allowed, no such route parameter, wrong method.
    _assert_one_shape(APIClient().get("/api/v1/predictions/"), 401)
    _assert_one_shape(api.post(f"/api/v1/models/{churn_model.name}/rollback/", {"reason": "x"}), 403)
    predict = f"/api/v1/models/{churn_model.name}/predict/"
    _assert_one_shape(api.get(predict), 405)
    # Validation by a serializer: every field named.
    invalid = _assert_one_shape(api.get("/api/v1/predictions/", {"since": "yesterday", "model_version": 0}), 400)
    assert invalid["detail"] == "Invalid input"
    assert {e["field"] for e in invalid["errors"]} == {"since", "model_version"}
    # A service's ApplicationError: its message, and its rows and fields when it names some.
    rows = _assert_one_shape(api.post(predict, {"rows": [{**CHURN_ROW, "age": "old"}]}, format="json"), 400)
    assert rows["errors"][0]["row"] == 0 and rows["errors"][0]["field"] == "age"
    malformed = _assert_one_shape(api.post(predict, "{", content_type="application/json"), 400)
    assert malformed["errors"][0]["problem"].startswith("malformed JSON")
    missing = _assert_one_shape(api.post("/api/v1/predictions/999999/feedback/", {"actual": "yes"}, format="json"), 404)
    assert missing["detail"] == "No prediction 999999"
    _assert_one_shape(api.get("/api/v1/ingestion/files/999999/"), 404)
    _assert_one_shape(api.get("/api/v1/ingestion/files/", {"run": "x"}), 400)
    # A model with no production version: 404 naming the models that are served.
    absent = api.post(f"/api/v1/models/{unique_model_name}/predict/", {"features": CHURN_ROW}, format="json")
    assert unique_model_name in _assert_one_shape(absent, 404)["detail"] and churn_model.name in absent.json()["detail"]


def test_nested_validation_errors_are_flattened_to_named_fields():
    detail = {
        "non_field_errors": ["send one of a or b"],
        "rows": [{"age": ["not a number"]}, {}],
        "window": {"since": ["required"], "until": ["required", "after since"]},
    }

    response = api_exception_handler(ValidationError(detail), {})

    assert response.status_code == 400
    assert response.data == {
        "detail": "Invalid input",
        "errors": [
            {"field": None, "problem": "send one of a or b"},
            {"field": "rows[0].age", "problem": "not a number"},
            {"field": "window.since", "problem": "required"},
            {"field": "window.until", "problem": "required"},
            {"field": "window.until", "problem": "after since"},
        ],
    }


def test_an_application_error_keeps_its_status_message_and_errors():
    class Conflict(ApplicationError):
        status_code = 409

    response = api_exception_handler(Conflict("already running", errors=[{"field": "job", "problem": "busy"}]), {})

    assert (response.status_code, response.data) == (
        409,
        {"detail": "already running", "errors": [{"field": "job", "problem": "busy"}]},
    )
