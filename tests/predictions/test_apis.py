import json
import re
import threading
import time

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.db.backends.utils import CursorWrapper
from rest_framework.test import APIClient

from models_registry import deployments, serving
from models_registry import services as registry_services
from models_registry.demo_data import churn_frame
from models_registry.training import model_train
from predictions import services
from predictions.models import Prediction, ScheduledRun
from tests.conftest import CHURN, HOUSING

from .factories import CHURN_ROW, HOUSE_ROW

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(plain_user):
    client = APIClient()
    client.force_authenticate(plain_user)
    return client


def _post(api, body, raw=False, model=CHURN):
    data = body if raw else json.dumps(body)
    return api.post(f"/api/v1/models/{model}/predict/", data=data, content_type="application/json")


def test_one_row_is_answered_and_stored(api, churn_model):
    response = _post(api, {"features": CHURN_ROW})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["model_name"], body["model_version"]) == (churn_model.name, churn_model.version)
    (row,) = body["predictions"]
    assert row["prediction"] in ("yes", "no")
    assert set(row["probabilities"]) == {"no", "yes"} and sum(row["probabilities"].values()) == pytest.approx(1)
    stored = Prediction.objects.get(pk=row["id"])
    assert stored.source == "api" and stored.run_id == churn_model.run_id and stored.features == CHURN_ROW
    assert stored.predicted_label == row["prediction"] and stored.latency_ms > 0
    assert stored.request_id == body["request_id"]
    assert body["warnings"] == []


def test_a_category_unseen_in_training_is_scored_with_a_warning(api, churn_model):
    response = _post(api, {"rows": [CHURN_ROW, {**CHURN_ROW, "region": "atlantis"}]})

    assert response.status_code == 200
    assert response.json()["warnings"] == [
        {"row": 1, "field": "region", "problem": "category 'atlantis' was not seen in training; treated as unknown"}
    ]
    assert Prediction.objects.count() == 2


def test_many_rows_for_a_regression_model(api, housing_model):
    response = _post(api, {"rows": [HOUSE_ROW, {**HOUSE_ROW, "area_m2": 200.0, "district": "centre"}]}, model=HOUSING)

    assert response.status_code == 200, response.content
    values = [row["prediction"] for row in response.json()["predictions"]]
    assert len(values) == 2 and values[1] > values[0] > 0
    assert list(Prediction.objects.values_list("predicted_value", flat=True).order_by("id")) == pytest.approx(values)


def test_two_models_are_served_side_by_side_each_at_its_own_url(api, churn_model, housing_model):
    one = _post(api, {"features": HOUSE_ROW}, model=HOUSING)
    assert one.status_code == 200 and one.json()["model_name"] == housing_model.name
    (row,) = one.json()["predictions"]
    assert isinstance(row["prediction"], float) and row["probabilities"] is None

    many = _post(api, {"rows": [CHURN_ROW, {**CHURN_ROW, "contract": "two-year", "tenure_months": 60}]})
    crossed = _post(api, {"features": CHURN_ROW}, model=HOUSING)  # churn's columns sent to the housing model

    assert many.status_code == 200, many.content
    rows = many.json()["predictions"]
    assert len(rows) == 2 and all(sum(r["probabilities"].values()) == pytest.approx(1) for r in rows)
    stored = Prediction.objects.filter(model_name=churn_model.name).order_by("id")
    assert [p.predicted_label for p in stored] == [r["prediction"] for r in rows]
    assert {p.request_id for p in stored} == {many.json()["request_id"]}
    assert crossed.status_code == 400 and "area_m2" in json.dumps(crossed.json()["errors"])
    assert Prediction.objects.filter(model_name=housing_model.name).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_models_answer_concurrently(api, churn_model, housing_model):
    """Threads scoring both models at once each get their own model's answer."""
    answers, failures = [], []

    def score(model, row):
        try:
            for _ in range(10):
                response = _post(api, {"features": row}, model=model)
                answers.append((model, response.status_code, response.json()["model_name"]))
        except Exception as exc:  # surfaced below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=score, args=args) for args in [(CHURN, CHURN_ROW), (HOUSING, HOUSE_ROW)] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures and len(answers) == 40
    assert all(code == 200 and answered == model for model, code, answered in answers)
    assert Prediction.objects.filter(model_name=CHURN).count() == Prediction.objects.filter(model_name=HOUSING).count()


def test_a_model_without_production_version_answers_404_naming_the_served_ones(api, churn_model, unique_model_name):
    response = _post(api, {"features": CHURN_ROW}, model=unique_model_name)

    assert response.status_code == 404
    assert unique_model_name in response.json()["detail"] and churn_model.name in response.json()["detail"]
    assert Prediction.objects.count() == 0


def test_the_unscoped_predict_url_says_where_predictions_went(api, churn_model):
    response = api.post("/api/v1/predict/", {"features": CHURN_ROW}, format="json")

    assert response.status_code == 410
    assert "/api/v1/models/{name}/predict/" in response.json()["detail"] and CHURN in response.json()["models"]
    assert Prediction.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"features": {k: v for k, v in CHURN_ROW.items() if k != "age"}},
            {"row": 0, "field": "age", "problem": "missing feature"},
        ),
        ({"features": {**CHURN_ROW, "shoe_size": 44}}, {"row": 0, "field": "shoe_size", "problem": "unknown feature"}),
        (
            {"rows": [CHURN_ROW, {**CHURN_ROW, "age": "forty"}]},
            {"row": 1, "field": "age", "problem": "wrong type: expected a number, got str 'forty'"},
        ),
        (
            {"features": {**CHURN_ROW, "contract": ["one-year"]}},
            {"row": 0, "field": "contract", "problem": "wrong type: expected a category (text), got list"},
        ),
        (
            {"features": {**CHURN_ROW, "age": None}},
            {"row": 0, "field": "age", "problem": "missing value: this feature was never missing in training"},
        ),
        (
            {"features": {**CHURN_ROW, "region": "no\x00rth"}},
            {"row": 0, "field": "region", "problem": "text contains a NUL character (\\u0000)"},
        ),
        (
            {"features": {**CHURN_ROW, "region": "\ud800"}},
            {"row": 0, "field": "region", "problem": "text is not valid Unicode (a lone surrogate such as \\ud800)"},
        ),
        ({"features": {**CHURN_ROW, "\ud800": 1}}, {"row": 0, "field": "\\ud800", "problem": "unknown feature"}),
        ({"rows": []}, {"row": None, "field": None, "problem": "empty batch: send at least one row"}),
        ({"rows": "all of them"}, {"row": None, "field": None, "problem": "expected a list of rows (objects)"}),
        ({"rows": [CHURN_ROW, 7]}, {"row": 1, "field": None, "problem": "expected an object of feature values"}),
        (
            [CHURN_ROW],
            {"row": None, "field": None, "problem": 'send an object with "rows" (a list) or "features" (one row)'},
        ),
    ],
)
def test_bad_input_is_refused_naming_row_and_field_and_stores_nothing(api, churn_model, body, expected):
    response = _post(api, body)

    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid input"
    assert expected in response.json()["errors"]
    assert Prediction.objects.count() == 0


def test_a_row_with_missing_features_still_gets_its_present_values_judged(api, churn_model):
    """One answer names every problem: the absent features and the bad values the rows do carry."""
    partial = {"age": "forty", "region": "north"}
    body = {"rows": [partial, 7, {**CHURN_ROW, "tenure_months": "long"}, partial]}

    errors = _post(api, body).json()["errors"]

    assert {"row": 0, "field": "age", "problem": "wrong type: expected a number, got str 'forty'"} in errors
    assert {"row": 0, "field": "contract", "problem": "missing feature"} in errors
    assert not [e for e in errors if e["row"] == 0 and e["field"] == "region"]  # a fine value: no finding
    assert not [e for e in errors if e["field"] == "contract" and "missing value" in e["problem"]]  # said once
    assert [e for e in errors if e["row"] == 1] == [
        {"row": 1, "field": None, "problem": "expected an object of feature values"}
    ]
    assert {"row": 2, "field": "tenure_months", "problem": "wrong type: expected a number, got str 'long'"} in errors
    assert not [e for e in errors if e["field"] is None and e["row"] in (0, 3)]  # incomplete rows: no duplicate
    assert Prediction.objects.count() == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(api, churn_model, literal):
    raw = json.dumps({"features": CHURN_ROW}).replace('"monthly_charges": 80.5', f'"monthly_charges": {literal}')

    response = _post(api, raw, raw=True)

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["row"], error["field"]) == (0, "monthly_charges") and error["problem"].startswith("non-finite")
    assert Prediction.objects.count() == 0


def test_a_number_beyond_float_range_is_refused(api, churn_model):
    raw = json.dumps({"features": CHURN_ROW}).replace('"age": 40', '"age": 1' + "0" * 400)

    response = _post(api, raw, raw=True)

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["row"], error["field"]) == (0, "age") and error["problem"].startswith("non-finite number")
    assert Prediction.objects.count() == 0


def test_json_nested_past_the_recursion_limit_is_a_400(api, churn_model):
    response = _post(api, '{"rows": ' + "[" * 5000, raw=True)

    assert response.status_code == 400
    assert response.json()["errors"][0]["problem"] == "malformed JSON: JSON parse error - nested too deeply"
    assert Prediction.objects.count() == 0


def test_malformed_json_and_oversized_batches_are_refused(api, churn_model, settings):
    settings.MLAPP_PREDICT_MAX_ROWS = 2

    malformed = _post(api, '{"features": {"age": 4', raw=True)
    oversized = _post(api, {"rows": [CHURN_ROW] * 3})

    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["errors"][0]["problem"]
    assert oversized.json()["errors"] == [
        {"row": None, "field": None, "problem": "batch of 3 rows is over the limit of 2"}
    ]
    assert Prediction.objects.count() == 0


def test_promotion_is_served_by_the_next_request(api, churn_model, tmp_path, staff_user):
    other = tmp_path / "churn-v2.csv"
    churn_frame(n_rows=500, seed=11).to_csv(other, index=False)
    new_version = model_train(csv=other, target="churned", name=churn_model.name).model_version
    assert _post(api, {"features": CHURN_ROW}).json()["model_version"] == churn_model.version

    registry_services.model_version_promote(
        name=churn_model.name, version=new_version.version, actor=staff_user, reason="test"
    )
    answered = _post(api, {"features": CHURN_ROW}).json()

    assert answered["model_version"] == new_version.version
    assert Prediction.objects.get(pk=answered["predictions"][0]["id"]).model_version == new_version.version


def test_predictions_continue_when_the_registry_is_unreachable(api, churn_model, settings, client):
    assert _post(api, {"features": CHURN_ROW}).status_code == 200
    settings.MLFLOW_TRACKING_URI = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"

    started = time.monotonic()
    response = _post(api, {"features": CHURN_ROW})
    answered_in = time.monotonic() - started
    deployments.deployments_refresh()  # the watcher's pass: MLflow cannot be reached, health says so
    health = api.get("/api/v1/health/").json()
    anonymous = client.get("/api/v1/health/").json()

    assert response.status_code == 200 and response.json()["model_version"] == churn_model.version
    assert answered_in < 2  # the request did not wait for the registry
    assert health["status"] == "degraded" and "registry_error" not in health["model"]  # details: staff only
    assert anonymous["status"] == "degraded" and anonymous["model"]["registry_ok"] is False
    assert _post(api, {"features": CHURN_ROW}).status_code == 200
    assert Prediction.objects.count() == 3


def test_a_background_alias_check_never_raises_and_closes_its_connections(churn_model, settings, monkeypatch):
    """The alias was forgotten (a promotion in this process) while the registry is down:
    the background check logs it, raises nothing, and leaves no database connection open."""
    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    closed_in = []
    monkeypatch.setattr(serving.connections, "close_all", lambda: closed_in.append(threading.get_ident()))
    settings.MLFLOW_TRACKING_URI = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    loader = serving.loader()
    key = (churn_model.name, "production")
    loader.invalidate(churn_model.name)

    thread = loader._alias_refresh_in_background(key)
    thread.join(timeout=60)

    assert not thread.is_alive() and thread_errors == []
    assert thread.ident in closed_in


def _lost_connection(*args, **kwargs):
    raise OperationalError("server closed the connection unexpectedly")


def _one_row_insert_loses_the_database(monkeypatch):
    """One row is one precompiled INSERT (predictions/services/store.py): through psycopg's own cursor
    on PostgreSQL, Django's elsewhere. Either loses the database on that INSERT."""
    table = Prediction._meta.db_table

    def losing(execute, error):
        def call(self, query, *args, **kwargs):
            if str(query).lstrip().upper().startswith("INSERT") and table in str(query):
                raise error("server closed the connection unexpectedly")
            return execute(self, query, *args, **kwargs)

        return call

    # psycopg's own exception on its cursor: Django's wrapper must turn it into Django's.
    monkeypatch.setattr(CursorWrapper, "execute", losing(CursorWrapper.execute, OperationalError))
    monkeypatch.setattr(psycopg.Cursor, "execute", losing(psycopg.Cursor.execute, psycopg.OperationalError))


def _bulk_create_loses_the_database(monkeypatch):
    # Raised before bulk_create's own transaction opens (inside it, the test's transaction would be
    # left unusable for the check below; a real server rolls such a transaction back).
    monkeypatch.setattr(Prediction.objects, "bulk_create", _lost_connection)


@pytest.mark.parametrize(
    ("body", "outage"),
    [
        ({"features": CHURN_ROW}, _one_row_insert_loses_the_database),
        ({"rows": [CHURN_ROW, CHURN_ROW]}, _bulk_create_loses_the_database),
    ],
    ids=["one-row", "rows"],
)
def test_a_database_outage_while_storing_is_a_503_and_stores_nothing(api, churn_model, monkeypatch, body, outage):
    outage(monkeypatch)
    response = _post(api, body)
    monkeypatch.undo()

    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {"detail": "The database is unavailable: nothing was stored. Retry later."}
    assert Prediction.objects.count() == 0


def test_health_is_ok_with_a_served_model(client, churn_model):
    body = client.get("/api/v1/health/").json()
    assert body["status"] == "ok" and body["model"]["served"] == [f"{churn_model.name} v{churn_model.version}"]
    loaded = {(m["model"], m["version"]): m for m in body["model"]["loaded"]}
    assert (churn_model.name, churn_model.version) in loaded and body["model"]["max_loaded_versions"] >= 1
    assert loaded[(churn_model.name, churn_model.version)]["memory_bytes"] >= 0


def test_prediction_list_filters_and_paginates(api, churn_model):
    _post(api, {"rows": [CHURN_ROW] * 3})
    Prediction.objects.filter(pk=Prediction.objects.order_by("id").first().pk).update(source="web")

    first = api.get("/api/v1/predictions/", {"source": "api", "page_size": 1}).json()
    second = api.get(first["next"]).json()
    bad = api.get("/api/v1/predictions/", {"since": "yesterday"})

    assert len(first["results"]) == 1 and first["results"][0]["source"] == "api"
    assert len(second["results"]) == 1 and second["results"][0]["id"] < first["results"][0]["id"]
    assert bad.status_code == 400 and [e["field"] for e in bad.json()["errors"]] == ["since"]


def test_feedback_is_stored_beside_the_prediction(api, churn_model):
    prediction_id = _post(api, {"features": CHURN_ROW}).json()["predictions"][0]["id"]

    ok = api.post(f"/api/v1/predictions/{prediction_id}/feedback/", {"actual": "yes"}, format="json")
    wrong = api.post(f"/api/v1/predictions/{prediction_id}/feedback/", {"actual": 3.5}, format="json")
    missing = api.post("/api/v1/predictions/999999/feedback/", {"actual": "yes"}, format="json")
    unknown_class = api.post(f"/api/v1/predictions/{prediction_id}/feedback/", {"actual": "maybe"}, format="json")

    assert ok.status_code == 200 and ok.json()["actual_label"] == "yes" and ok.json()["feedback_at"]
    assert wrong.status_code == 400 and "class label" in wrong.json()["detail"]
    assert missing.status_code == 404
    assert unknown_class.status_code == 400
    assert (
        unknown_class.json()["detail"]
        == f"actual: 'maybe' is not a class of {churn_model.name} v{churn_model.version} (no, yes)"
    )
    assert Prediction.objects.get(pk=prediction_id).actual_label == "yes"  # the refused outcome changed nothing


def test_anonymous_requests_get_401_and_tokens_work(churn_model, plain_user, capsys):
    anonymous = APIClient()
    assert anonymous.post(f"/api/v1/models/{CHURN}/predict/", {"features": CHURN_ROW}, format="json").status_code == 401
    assert anonymous.get("/api/v1/predictions/").status_code == 401

    call_command("create_api_token", plain_user.username)
    token = capsys.readouterr().out.strip()
    program = APIClient(HTTP_AUTHORIZATION=f"Token {token}")

    assert program.post(f"/api/v1/models/{CHURN}/predict/", {"features": CHURN_ROW}, format="json").status_code == 200
    assert Prediction.objects.filter(source="api").count() == 1


def test_openapi_schema_documents_predict(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "/api/v1/models/{model_name}/predict/" in schema["paths"] and "/api/v1/predictions/" in schema["paths"]
    assert "/api/v1/predict/" not in schema["paths"]  # the 410 of the single-model days is not documented


def test_the_openapi_schema_generates_without_warnings(tmp_path):
    """A warning there means a wrong schema (e.g. two views' OutputSerializers merged into one component)."""
    call_command("spectacular", "--file", str(tmp_path / "schema.yml"), "--validate", "--fail-on-warn")
    schema = (tmp_path / "schema.yml").read_text()
    assert "PredictOutputRow:" in schema and "PredictionFeedbackInput:" in schema


def test_the_docs_page_loads_nothing_from_the_internet(api, client):
    """Swagger UI comes from the installed sidecar package: the platform runs offline."""
    page = api.get("/api/v1/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r'"(/static/[^"]+)"', page)

    assert any("swagger-ui" in asset for asset in assets)
    assert not [asset for asset in assets if asset.startswith(("http:", "https:", "//"))]
    for asset in {a for a in assets if a.startswith("/static/")}:
        response = client.get(asset)
        assert response.status_code == 200, asset


def test_feedback_for_a_regression_model(api, housing_model):
    prediction_id = _post(api, {"features": HOUSE_ROW}, model=HOUSING).json()["predictions"][0]["id"]

    ok = api.post(f"/api/v1/predictions/{prediction_id}/feedback/", {"actual": 123456.5}, format="json")
    wrong = api.post(f"/api/v1/predictions/{prediction_id}/feedback/", {"actual": "a lot"}, format="json")

    assert ok.status_code == 200 and ok.json()["actual_value"] == 123456.5
    assert wrong.status_code == 400 and "finite number" in wrong.json()["detail"]
    assert Prediction.objects.get(pk=prediction_id).actual_value == 123456.5


def test_scheduled_runs_are_listed_newest_first(api):
    older = ScheduledRun.objects.create(model_name="m", model_version=1, status="succeeded", rows_scored=5)
    newer = ScheduledRun.objects.create(model_name="m", model_version=2, status="failed", error="boom")

    body = api.get("/api/v1/scheduled-runs/").json()

    assert [r["id"] for r in body["results"]] == [newer.pk, older.pk]
    assert body["results"][0]["error"] == "boom" and body["results"][1]["rows_scored"] == 5
    assert APIClient().get("/api/v1/scheduled-runs/").status_code == 401


def test_create_api_token_returns_the_same_key_and_names_unknown_users(plain_user, capsys):
    call_command("create_api_token", plain_user.username)
    call_command("create_api_token", plain_user.username)
    first, second = capsys.readouterr().out.split()

    assert first == second
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_token", "nobody")


def test_the_loader_serves_two_versions_at_once_and_each_row_records_its_own(churn_model, tmp_path):
    """The ground for challenger and shadow routing: production and another version
    loaded side by side; a prediction records the version that actually answered."""
    other = tmp_path / "churn-challenger.csv"
    churn_frame(n_rows=500, seed=13).to_csv(other, index=False)
    challenger = model_train(csv=other, target="churned", name=churn_model.name).model_version
    loader = serving.loader()

    by_production = services.predictions_make(model_name=CHURN, records=[CHURN_ROW], source="api")
    by_challenger = services.predictions_make(
        model_name=CHURN,
        records=[CHURN_ROW],
        source="api",
        served=loader.get_version(churn_model.name, challenger.version),
    )

    assert (by_production.model_version, by_challenger.model_version) == (churn_model.version, challenger.version)
    stored = {p.model_version: p.run_id for p in Prediction.objects.all()}
    assert stored == {churn_model.version: churn_model.run_id, challenger.version: challenger.run_id}
    loaded = loader.health()["loaded_versions"]
    assert {f"{churn_model.name} v{churn_model.version}", f"{churn_model.name} v{challenger.version}"} <= set(loaded)
    assert loader.get(churn_model.name).version == churn_model.version  # production did not move
