"""Shadow and A/B routing of the challenger (predictions/routing.py), through the API and the form."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pandas as pd
import pytest
from rest_framework.test import APIClient
from scipy import stats

from models_registry.serving import loader
from predictions import routing
from predictions.models import Prediction, TrafficPolicy, TrafficPolicyChange, Variant
from predictions.routing import ShadowRunner, ShadowWork
from predictions.services import RowContext, prediction_rows_write

from .conftest import ROUTED
from .factories import CHURN_ROW

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(plain_user):
    client = APIClient()
    client.force_authenticate(plain_user)
    return client


def _predict(api, *, key=None, body_key=None, model=ROUTED):
    body = {"features": CHURN_ROW}
    if body_key is not None:
        body["request_key"] = body_key
    headers = {"HTTP_X_REQUEST_KEY": key} if key is not None else {}
    response = api.post(
        f"/api/v1/models/{model}/predict/", data=json.dumps(body), content_type="application/json", **headers
    )
    assert response.status_code == 200, response.content
    return response.json()


def _policy(mode, percent=10.0, **extra):
    return routing.traffic_policy_set(
        model_name=ROUTED, mode=mode, challenger_percent=percent, actor_label="tests", reason="test", **extra
    )


def _binomial_bounds(n, share, confidence=0.999):
    low, high = stats.binom.interval(confidence, n, share)
    return int(low), int(high)


def test_the_hash_split_is_deterministic_and_near_its_share():
    keys = [f"customer-{i}" for i in range(10_000)]
    picks = [routing.variant_pick(model_name=ROUTED, request_key=k, challenger_share=0.1) for k in keys]
    low, high = _binomial_bounds(len(keys), 0.1)
    assert low <= picks.count(Variant.CHALLENGER) <= high
    again = [routing.variant_pick(model_name=ROUTED, request_key=k, challenger_share=0.1) for k in keys]
    assert again == picks
    # Another model splits the same keys independently (its name is hashed with the key).
    other = [routing.variant_pick(model_name="another", request_key=k, challenger_share=0.1) for k in keys]
    assert other != picks


def test_a_90_10_split_of_1000_keyed_api_requests_holds_and_each_row_records_its_variant(api, routed_model):
    name, production, challenger = routed_model
    _policy("ab", 10.0)
    answers = [_predict(api, key=uuid.uuid4().hex) for _ in range(1000)]

    by_variant = {v: [a for a in answers if a["variant"] == v] for v in (Variant.PRODUCTION, Variant.CHALLENGER)}
    low, high = _binomial_bounds(1000, 0.1)
    assert low <= len(by_variant[Variant.CHALLENGER]) <= high, len(by_variant[Variant.CHALLENGER])
    assert {a["model_version"] for a in by_variant[Variant.CHALLENGER]} == {challenger}
    assert {a["model_version"] for a in by_variant[Variant.PRODUCTION]} == {production}
    stored = dict(Prediction.objects.filter(model_name=name).values_list("id", "variant"))
    assert len(stored) == 1000
    for answer in answers:
        assert stored[answer["predictions"][0]["id"]] == answer["variant"]
    assert not Prediction.objects.filter(variant=Variant.SHADOW).exists()


def test_a_repeated_key_always_gets_the_same_variant(api, routed_model):
    _policy("ab", 50.0)
    for key in ("alice", "bob", "carol", "dave"):
        variants = {_predict(api, key=key)["variant"] for _ in range(15)}
        assert len(variants) == 1, (key, variants)
        # The body field is the same key as the header.
        assert _predict(api, body_key=key)["variant"] in variants


def test_requests_without_a_key_are_split_per_request(api, routed_model):
    _policy("ab", 50.0)
    variants = [_predict(api)["variant"] for _ in range(60)]
    assert set(variants) == {Variant.PRODUCTION, Variant.CHALLENGER}  # fails with probability 2**-59


def test_a_bad_request_key_is_refused_naming_it(api, routed_model):
    _policy("ab", 50.0)
    response = api.post(
        f"/api/v1/models/{ROUTED}/predict/",
        data=json.dumps({"features": CHURN_ROW, "request_key": 42}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "request_key"
    assert not Prediction.objects.exists()


def test_without_a_challenger_everything_is_production(api, churn_model):
    routing.traffic_policy_set(model_name=churn_model.name, mode="ab", challenger_percent=90, reason="t")
    answers = [_predict(api, key=str(i), model=churn_model.name) for i in range(20)]
    assert {a["variant"] for a in answers} == {Variant.PRODUCTION}
    assert {a["model_version"] for a in answers} == {churn_model.version}


@pytest.mark.django_db(transaction=True)
def test_in_shadow_mode_answers_come_from_production_and_both_predictions_are_stored(api, routed_model):
    name, production, challenger = routed_model
    _policy("shadow")
    answers = [_predict(api, key=str(i)) for i in range(25)]
    assert routing.shadow_runner().drain(timeout=60)

    assert {a["variant"] for a in answers} == {Variant.PRODUCTION}
    assert {a["model_version"] for a in answers} == {production}
    production_ids = {a["predictions"][0]["id"] for a in answers}
    rows = Prediction.objects.filter(model_name=name)
    assert set(rows.filter(variant=Variant.PRODUCTION).values_list("id", flat=True)) == production_ids
    shadows = list(rows.filter(variant=Variant.SHADOW))
    assert len(shadows) == 25
    assert {s.model_version for s in shadows} == {challenger}
    assert {s.shadow_of_id for s in shadows} == production_ids
    for shadow in shadows:
        original = Prediction.objects.get(pk=shadow.shadow_of_id)
        assert (shadow.request_id, shadow.features, shadow.created_at) == (
            original.request_id,
            original.features,
            original.created_at,
        )
        assert set(shadow.probabilities) == {"no", "yes"}

    # The inference log's list leaves shadow rows out unless asked for them.
    listed = api.get(f"/api/v1/models/{name}/predictions/").json()["results"]
    assert {row["variant"] for row in listed} == {Variant.PRODUCTION}
    listed = api.get(f"/api/v1/models/{name}/predictions/?variant=shadow").json()["results"]
    assert len(listed) == 25 and {row["shadow_of"] for row in listed} == production_ids


@pytest.mark.django_db(transaction=True)
def test_the_web_form_follows_the_policy_too(user_client, routed_model):
    name, production, challenger = routed_model
    _policy("shadow")
    response = user_client.post(f"/models/{name}/predict/", CHURN_ROW)
    assert response.status_code == 200
    assert routing.shadow_runner().drain(timeout=60)
    assert Prediction.objects.get(variant=Variant.PRODUCTION).model_version == production
    shadow = Prediction.objects.get(variant=Variant.SHADOW)
    assert (shadow.model_version, shadow.source) == (challenger, "web")


@pytest.mark.django_db(transaction=True)
def test_a_full_shadow_queue_drops_shadow_work_and_counts_it_without_waiting(routed_model, monkeypatch):
    name, production, challenger = routed_model
    TrafficPolicy.objects.create(model_name=name, mode="shadow")
    release = threading.Event()
    real = routing.shadow_rows_score

    def slow_challenger(works):  # a challenger far slower than the traffic
        release.wait(30)
        return real(works)

    monkeypatch.setattr(routing, "shadow_rows_score", slow_challenger)
    runner = ShadowRunner(max_queue=3, batch_max=1)
    work = ShadowWork(name, challenger, [], [], "r", "api", "api", "2026-01-01T00:00:00+00:00")
    accepted = [runner.submit(work)]
    time.sleep(0.2)  # the worker holds the first one
    started = time.perf_counter()
    accepted += [runner.submit(work) for _ in range(10)]
    elapsed = time.perf_counter() - started

    assert accepted == [True] * 4 + [False] * 7
    assert elapsed < 0.05  # a full queue never makes the caller wait
    assert runner.stats.dropped == 7
    release.set()
    assert runner.drain(timeout=30)
    assert TrafficPolicy.objects.get(model_name=name).shadow_dropped == 7
    runner.stop()


def test_the_shadow_checks_rows_with_the_challengers_own_rules(housing_model):
    # A challenger that takes other inputs refuses the rows (logged); nothing is stored for it.
    work = ShadowWork(housing_model.name, housing_model.version, [CHURN_ROW], [1], "r", "api", "api", "2026-01-01")
    assert routing.shadow_rows_score([work]) == 0
    assert not Prediction.objects.exists()


def test_batch_and_scheduled_rows_are_production(churn_model):
    served = loader().get(churn_model.name)
    frame = pd.DataFrame([CHURN_ROW] * 3)
    outputs = served.predict_frame(frame)
    prediction_rows_write(
        served=served, features=frame, outputs=outputs, context=RowContext(source="batch", request_id="b")
    )
    assert set(Prediction.objects.values_list("variant", flat=True)) == {Variant.PRODUCTION}


def test_a_policy_change_is_recorded_with_who_when_why(staff_user):
    change = routing.traffic_policy_set(
        model_name="m", mode="ab", challenger_percent=20, actor=staff_user, reason="try v2 on a fifth"
    )
    routing.traffic_policy_set(model_name="m", mode="shadow", actor=staff_user, reason="back to shadow")
    assert (change.actor_label, change.reason, change.previous) == ("staff", "try v2 on a fifth", {})
    latest = TrafficPolicyChange.objects.filter(model_name="m").first()
    assert latest.previous == {"mode": "ab", "challenger_percent": 20.0, "auto_promote": False}
    assert latest.mode == "shadow" and latest.challenger_percent == 20.0
    assert routing.traffic_policy_get(model_name="m").mode == "shadow"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "canary", "reason": "x"}, "mode: 'canary' is not one of"),
        ({"mode": "ab", "challenger_percent": 0, "reason": "x"}, "challenger_percent: 0 is not a share"),
        ({"mode": "ab", "challenger_percent": 100, "reason": "x"}, "challenger_percent: 100 is not a share"),
        ({"mode": "ab", "reason": "  "}, "reason: a reason is required"),
    ],
)
def test_bad_policy_changes_are_refused_and_write_nothing(fields, message):
    with pytest.raises(routing.TrafficPolicyError, match=message):
        routing.traffic_policy_set(model_name="m", **fields)
    assert not TrafficPolicy.objects.exists()
    assert not TrafficPolicyChange.objects.exists()


def test_staff_change_the_policy_in_the_admin_and_it_is_recorded(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    response = client.post(
        "/admin/predictions/trafficpolicy/add/",
        {"model_name": "m", "mode": "shadow", "challenger_percent": "10", "reason": "see v2 on live traffic"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    change = TrafficPolicyChange.objects.get(model_name="m")
    assert (change.mode, change.actor_label, change.reason) == ("shadow", "root", "see v2 on live traffic")
    response = client.post(
        "/admin/predictions/trafficpolicy/add/", {"model_name": "n", "mode": "ab", "challenger_percent": "10"}
    )
    assert response.status_code == 200 and not TrafficPolicy.objects.filter(model_name="n").exists()
