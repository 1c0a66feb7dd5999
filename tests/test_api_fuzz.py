"""Fuzzing every API endpoint's query parameters and bodies: odd input is a 4xx, never a 500."""

import json
import random

import pytest
from rest_framework.test import APIClient

from tests.predictions.factories import CHURN_ROW

pytestmark = pytest.mark.django_db

ODD_VALUES = [
    None, True, 0, -1, 10**400, 1e308, "", "\x00", "x" * 5000, [], {}, "2026-13-45", "yesterday", "-1",
    "999999999999999999999", "NaN", "batch", "v1", "' OR 1=1 --",
]  # fmt: skip
QUERY_NAMES = [
    "since", "until", "source", "model_name", "model_version", "page_size", "cursor", "granularity", "feature",
    "status", "model", "last_n", "limit",
]  # fmt: skip
BODY_NAMES = ["actual", "reason", "model", "last_n", "source", "x"]


def _query_value(value) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def test_odd_query_parameters_and_bodies_never_give_a_500(staff_user, churn_model):
    api = APIClient()
    api.force_authenticate(staff_user)
    name = churn_model.name
    answer = api.post(f"/api/v1/models/{name}/predict/", {"features": CHURN_ROW}, format="json").json()
    prediction = answer["predictions"][0]["id"]
    model = f"/api/v1/models/{name}"
    gets = [
        "/api/v1/predictions/", f"{model}/predictions/", "/api/v1/scheduled-runs/", "/api/v1/models/",
        f"{model}/versions/", f"{model}/drift/reports/", f"{model}/drift/history/", f"{model}/drift/verdict/",
        f"{model}/series/predictions/", f"{model}/series/performance/", f"{model}/series/data-quality/",
        "/api/v1/ingestion/files/", "/api/v1/ingestion/runs/", "/api/v1/alerts/", "/api/v1/health/",
    ]  # fmt: skip
    posts = [
        f"/api/v1/predictions/{prediction}/feedback/", f"{model}/versions/1/promote/",
        f"{model}/rollback/", f"{model}/drift/reports/", "/api/v1/alerts/1/acknowledge/", f"{model}/predict/",
    ]  # fmt: skip
    rng = random.Random(1)
    server_errors = []
    for path in gets:
        for _ in range(25):
            query = {rng.choice(QUERY_NAMES): _query_value(rng.choice(ODD_VALUES)) for _ in range(rng.randint(1, 3))}
            if api.get(path, query).status_code >= 500:
                server_errors.append((path, query))
    for path in posts:
        for _ in range(25):
            body = {rng.choice(BODY_NAMES): rng.choice(ODD_VALUES) for _ in range(rng.randint(0, 2))}
            if api.post(path, data=json.dumps(body), content_type="application/json").status_code >= 500:
                server_errors.append((path, body))
    assert server_errors == []


@pytest.mark.parametrize("path", ["/monitoring/alerts/", "/api/v1/alerts/", "/api/v1/ingestion/files/"])
def test_a_model_name_no_model_can_have_is_a_400(staff_client, path):
    parameter = "model" if path.startswith("/monitoring/") else "model_name"
    assert staff_client.get(path, {parameter: "churn\x00demo"}).status_code == 400
    assert staff_client.get(path, {parameter: "m" * 256}).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/models/a%00b/",
        "/models/a%00b/versions/1/",
        "/api/v1/models/a%00b/versions/",
        "/models/a%00b/predict/",
        "/models/a%00b/monitoring/",
        "/api/v1/models/a%00b/predict/",
        "/models/test-churn/drift/features/a%00b/",
        "/monitoring/ingestion/files/99999999999999999999/",
        "/models/test-churn/drift/reports/99999999999999999999/",
        "/predictions/batch/99999999999999999999/",
    ],
)
def test_odd_paths_are_not_found_not_a_500(staff_client, churn_model, path):
    assert staff_client.get(path).status_code == 404


def test_feedback_for_an_id_beyond_the_table_range_is_not_found(staff_client, churn_model):
    path = "/api/v1/predictions/99999999999999999999/feedback/"
    assert staff_client.post(path, {"actual": "yes"}, content_type="application/json").status_code == 404
