"""Fuzzing POST predict: whatever the body, the answer is a 200 that stored every row
or a 4xx that stored nothing, never a 500."""

import json
import random

import pytest
from rest_framework.test import APIClient

from predictions.models import Prediction

from .factories import CHURN_ROW as ROW

pytestmark = pytest.mark.django_db

ODD_VALUES = [
    None, True, False, 0, -1, 1e308, -1e308, 10**400, 1.5, "", " ", "40", "NaN", "Infinity", "north",
    "\x00", "a\x00b", "\ud800", "é" * 10_000, "x" * 300, "\u202e", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", [], {}, [1], {"a": 1},
]  # fmt: skip
ODD_KEYS = [*ROW, "extra", "", "\x00", "\ud800", "a" * 200]


def _bodies(rng: random.Random, n: int) -> list:
    bodies = []
    for _ in range(n):
        row = dict(ROW)
        for _ in range(rng.randint(1, 3)):
            row[rng.choice(ODD_KEYS)] = rng.choice(ODD_VALUES)
        shape = rng.randrange(5)
        bodies.append(
            [{"features": row}, {"rows": [row, ROW]}, {"rows": row}, {"features": [row]}, {"rows": [row] * shape}][
                shape
            ]
        )
    return bodies + [[], None, "x", 1, {"rows": None}, {"features": None}, {"rows": [None]}, {"rows": [[1, 2]]}]


RAW_BODIES = [
    b"\xff\xfe",
    b"{",
    b'{"features": {"age": 1e999}}',
    b'{"rows": [' * 5000,  # nested past Python's recursion limit
    b'{"features": {"region": "\\u0000"}}',
    b'{"features": {"region": "\\ud800"}}',
]


def test_any_body_gets_a_stored_200_or_a_4xx_that_stores_nothing(plain_user, churn_model):
    api = APIClient()
    api.force_authenticate(plain_user)
    payloads = [json.dumps(body).encode() for body in _bodies(random.Random(0), 300)] + RAW_BODIES
    unexpected = []
    for payload in payloads:
        before = Prediction.objects.count()
        url = f"/api/v1/models/{churn_model.name}/predict/"
        response = api.post(url, data=payload, content_type="application/json")
        stored = Prediction.objects.count() - before
        if response.status_code == 200:
            ok = stored == len(response.json()["predictions"])
        else:
            ok = 400 <= response.status_code < 500 and stored == 0 and "detail" in response.json()
        if not ok:
            unexpected.append((response.status_code, stored, payload[:120]))
    assert unexpected == []
