"""The scoring lane (predictions/scoring_lane.py) answers as the whole stack does.

Each request goes twice, to a fresh database state each time: through the site's middleware (the lane
takes what it can) and through the same middleware without the lane. Status, headers, body and the
inference-log rows stored must be the same, up to what differs on every request (ids, request ids,
times). Each case also says which path must answer it, so a lane that gave up on everything, or took
what it must leave to the stack, fails here.
"""

import json

import pytest
from django.conf import settings as django_settings
from django.test import Client
from rest_framework.authtoken.models import Token

from predictions import scoring_lane
from predictions.models import Prediction
from tests.conftest import CHURN, HOUSING

from .factories import CHURN_ROW, HOUSE_ROW

pytestmark = pytest.mark.django_db
LANE = "predictions.scoring_lane.ScoringLaneMiddleware"
JSON = "application/json"
PREDICT = f"/api/v1/models/{CHURN}/predict/"
INVOCATIONS = f"/serving/{CHURN}/invocations"
INFER = f"/v2/models/{CHURN}/infer"
# Values that differ on every request, whichever path answers.
VARYING_KEYS = {"id", "request_id"}
VARYING_HEADERS = {"X-Request-Id", "Content-Length"}
VARYING_COLUMNS = {"id", "created_at", "request_id", "latency_ms"}


def _v2(row, **extra):
    datatype = {float: "FP64", int: "INT64", str: "BYTES"}
    inputs = [{"name": k, "datatype": datatype[type(v)], "shape": [1, 1], "data": [v]} for k, v in row.items()]
    return json.dumps({"inputs": inputs, **extra})


def _csv(row):
    return ",".join(row) + "\n" + ",".join(str(v) for v in row.values()) + "\n"


ONE = json.dumps({"features": CHURN_ROW})
RECORDS = json.dumps({"dataframe_records": [CHURN_ROW]})
INSTANCES = json.dumps({"instances": [CHURN_ROW]})
SPLIT = json.dumps({"dataframe_split": {"columns": list(CHURN_ROW), "data": [list(CHURN_ROW.values())]}})
EVIL_HOST = {"HTTP_HOST": "evil.example"}
WRONG_TOKEN = {"HTTP_AUTHORIZATION": "Token x"}
WRONG_BEARER = {"HTTP_AUTHORIZATION": "Bearer x"}
XML, HTML = {"HTTP_ACCEPT": "application/xml"}, {"HTTP_ACCEPT": "text/html"}

# (case, path, body, content type, extra headers, answered by the lane?)
CASES = [
    ("predict one row", PREDICT, ONE, JSON, {}, True),
    ("predict rows", PREDICT, json.dumps({"rows": [CHURN_ROW, CHURN_ROW]}), JSON, {}, True),
    ("predict, JSON with a charset", PREDICT, ONE, f"{JSON}; charset=utf-8", {}, True),
    ("predict, request key", PREDICT, json.dumps({"features": CHURN_ROW, "request_key": "k1"}), JSON, {}, True),
    ("predict, Accept JSON", PREDICT, ONE, JSON, {"HTTP_ACCEPT": JSON}, True),
    ("predict, refused value", PREDICT, json.dumps({"features": {**CHURN_ROW, "age": True}}), JSON, {}, True),
    ("predict, missing field", PREDICT, json.dumps({"features": {"age": 3}}), JSON, {}, True),
    ("predict, neither rows nor features", PREDICT, json.dumps({"x": 1}), JSON, {}, True),
    ("predict, NaN", PREDICT, '{"features": {"age": NaN}}', JSON, {}, True),
    ("predict, a model nobody serves", "/api/v1/models/nobody/predict/", json.dumps({"features": {}}), JSON, {}, True),
    ("predict, malformed JSON", PREDICT, '{"features": ', JSON, {}, False),
    ("predict, JSON null", PREDICT, "null", JSON, {}, False),
    ("predict, empty body", PREDICT, "", JSON, {}, False),
    ("predict, text/plain", PREDICT, ONE, "text/plain", {}, False),
    ("predict, form body", PREDICT, "features=1", "application/x-www-form-urlencoded", {}, False),
    ("predict, Accept HTML", PREDICT, ONE, JSON, HTML, False),
    ("predict, Accept XML", PREDICT, ONE, JSON, XML, False),
    ("predict, ?format=json", PREDICT + "?format=json", ONE, JSON, {}, True),
    ("predict, ?format=api", PREDICT + "?format=api", ONE, JSON, {}, False),
    ("predict, wrong token", PREDICT, ONE, JSON, WRONG_TOKEN, False),
    ("predict, no token", PREDICT, ONE, JSON, {"HTTP_AUTHORIZATION": None}, False),
    ("predict, Bearer (not its scheme)", PREDICT, ONE, JSON, {"bearer": True}, False),
    ("predict, a host not allowed", PREDICT, ONE, JSON, EVIL_HOST, False),
    ("mlflow records", INVOCATIONS, RECORDS, JSON, {}, True),
    ("mlflow split", INVOCATIONS, SPLIT, JSON, {}, True),
    ("mlflow CSV", INVOCATIONS, _csv(CHURN_ROW), "text/csv", {}, True),
    ("mlflow Bearer", INVOCATIONS, INSTANCES, JSON, {"bearer": True}, True),
    ("mlflow two input keys", INVOCATIONS, '{"instances": [], "inputs": []}', JSON, {}, True),
    ("mlflow not an object", INVOCATIONS, "[1]", JSON, {}, True),
    ("mlflow malformed JSON", INVOCATIONS, "{", JSON, {}, True),
    ("mlflow refused value", INVOCATIONS, json.dumps({"dataframe_records": [{"age": "x"}]}), JSON, {}, True),
    ("mlflow text/plain: 415", INVOCATIONS, "x", "text/plain", {}, True),
    ("mlflow latin-1: 415", INVOCATIONS, INSTANCES, f"{JSON}; charset=latin-1", {}, True),
    ("mlflow, Accept anything", INVOCATIONS, INSTANCES, JSON, HTML, True),
    ("mlflow wrong token", INVOCATIONS, INSTANCES, JSON, WRONG_BEARER, False),
    (
        "mlflow housing",
        f"/serving/{HOUSING}/invocations",
        json.dumps({"dataframe_records": [HOUSE_ROW]}),
        JSON,
        {},
        True,
    ),
    ("v2 infer", INFER, _v2(CHURN_ROW, id="r-1"), JSON, {}, True),
    ("v2 infer, outputs", INFER, _v2(CHURN_ROW, outputs=[{"name": "probability_yes"}]), JSON, {}, True),
    ("v2 infer pinned", f"/v2/models/{CHURN}/versions/1/infer", _v2(CHURN_ROW), JSON, {}, True),
    ("v2 infer, a version nobody may name", f"/v2/models/{CHURN}/versions/99/infer", _v2(CHURN_ROW), JSON, {}, True),
    ("v2 infer housing", f"/v2/models/{HOUSING}/infer", _v2(HOUSE_ROW), JSON, {}, True),
    ("v2 refused value", INFER, _v2({**CHURN_ROW, "age": "x"}), JSON, {}, True),
    ("v2 no inputs", INFER, json.dumps({"inputs": []}), JSON, {}, True),
    ("v2 malformed", INFER, "{", JSON, {}, True),
]


@pytest.fixture
def token(plain_user):
    return Token.objects.create(user=plain_user).key


@pytest.fixture
def lane_answers(monkeypatch):
    """The paths of the requests the lane answered itself."""
    answered = []
    original = scoring_lane.scoring_answer

    def recorded(request, match):
        response = original(request, match)
        if response is not None:
            answered.append(request.path)
        return response

    monkeypatch.setattr(scoring_lane, "scoring_answer", recorded)
    return answered


def _send(path, body, content_type, headers, token):
    headers = dict(headers)
    scheme = "Bearer" if headers.pop("bearer", False) else "Token"
    auth = headers.pop("HTTP_AUTHORIZATION", f"{scheme} {token}")
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = auth
    response = Client(raise_request_exception=False).generic("POST", path, body, content_type=content_type, **headers)
    rows = [
        {k: v for k, v in row.items() if k not in VARYING_COLUMNS} for row in Prediction.objects.order_by("id").values()
    ]
    return response, rows


def _same_on_every_request(value):
    if isinstance(value, dict):
        return {k: "*" if k in VARYING_KEYS else _same_on_every_request(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_on_every_request(v) for v in value]
    return value


def _answer(response):
    headers = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
    if response.headers["Content-Type"].startswith("text/html"):  # the browsable API: a CSRF token, the ids
        return response.status_code, headers, "a page"
    try:
        body = _same_on_every_request(json.loads(response.content))
    except ValueError:
        body = response.content
    return response.status_code, headers, body


@pytest.mark.parametrize(
    ("path", "body", "content_type", "headers", "by_lane"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_lane_answers_as_the_whole_stack(
    path, body, content_type, headers, by_lane, churn_model, housing_model, token, lane_answers, settings
):
    assert LANE in django_settings.MIDDLEWARE
    through_lane, rows_through_lane = _send(path, body, content_type, headers, token)
    assert lane_answers == ([path.split("?")[0]] if by_lane else []), "answered by the wrong path"
    Prediction.objects.all().delete()

    settings.MIDDLEWARE = [m for m in django_settings.MIDDLEWARE if m != LANE]
    through_stack, rows_through_stack = _send(path, body, content_type, headers, token)

    assert _answer(through_lane) == _answer(through_stack)
    assert rows_through_lane == rows_through_stack
    if through_lane.status_code != 200:
        assert rows_through_lane == [], "a refused request stored rows"


def test_a_throttled_request_is_refused_as_the_stack_refuses_it(churn_model, token, lane_answers, settings):
    settings.MLAPP_THROTTLE_RATES = {**settings.MLAPP_THROTTLE_RATES, "predict": "1/hour"}
    body = ONE
    first, _ = _send(PREDICT, body, JSON, {}, token)
    refused, rows = _send(PREDICT, body, JSON, {}, token)

    assert first.status_code == 200
    assert lane_answers == [PREDICT], "the lane answered the refused request itself"
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert refused.json()["detail"].startswith("Request was throttled")
    assert len(rows) == 1


def test_scoring_urls_are_the_sites_own(churn_model):
    """The lane resolves against the site's URLs: another view at a scoring-like path is not taken."""
    assert scoring_lane._scoring_match(django_settings.ROOT_URLCONF, PREDICT).func.view_class.__name__ == "PredictApi"
    assert scoring_lane._scoring_match(django_settings.ROOT_URLCONF, f"/api/v1/models/{CHURN}/") is None
    assert scoring_lane._scoring_match(django_settings.ROOT_URLCONF, f"/serving/{CHURN}/ping") is None
    assert scoring_lane._scoring_match(django_settings.ROOT_URLCONF, "/nowhere/") is None
