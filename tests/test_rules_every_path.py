"""The same rows through every path (API, form, batch, ingestion, drift reader) get the same verdicts.

Each case is a row breaking one rule (or none), sent after a good row, so the
duplicate case is the good row sent twice. Every path's verdict for the second
row must be what the model's policy says for that rule on that path: refused
(API, form), quarantined (batch, ingestion, drift), accepted with a warning, or
accepted. Then the same with a per-model policy override.
"""

from __future__ import annotations

import csv
import json
import math

import pandas as pd
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from models_registry.models import RulePolicyOverride
from models_registry.policies import rule_policy_get
from models_registry.rules import Action, PolicyError, RulePath, RulePolicy
from monitoring.services.drift import drift_window_load
from monitoring.validation import file_validate_and_split
from predictions.models import BatchJob, Prediction
from predictions.services.batch import batch_job_run
from predictions.services.predict import served_model_get
from tests.conftest import CHURN

from .predictions.factories import CHURN_ROW

pytestmark = pytest.mark.django_db
OK = "ok"


def _cases(profile) -> dict[str, tuple[str | None, dict]]:
    """case -> (the rule it breaks, the row's changes)."""
    never_missing = next(s.name for s in profile.features if s.is_numeric and not s.missing_in_training)
    integer = next(s.name for s in profile.features if s.is_integer)
    number = next(s.name for s in profile.features if s.is_numeric and s.name not in (never_missing, integer))
    category = next(s.name for s in profile.features if not s.is_numeric)
    return {
        "good": (None, {}),
        "out of range": ("out_of_range", {never_missing: -999}),
        "integer given 3.5": ("not_integer", {integer: 3.5}),
        "missing": ("missing_value", {never_missing: None}),
        "wrong type": ("wrong_type", {number: "lots"}),
        "unseen category": ("unknown_category", {category: "atlantis"}),
        "non-finite": ("wrong_type", {number: math.inf}),
        "duplicate": ("duplicate_row", {}),
    }


def _rows(profile, changes: dict, case: str) -> list[dict]:
    """A good row, then the case's row (the good row again for the duplicate)."""
    first = {**CHURN_ROW, next(iter(profile.specs)): CHURN_ROW[next(iter(profile.specs))] + 1}
    second = dict(first) if case == "duplicate" else {**CHURN_ROW, **changes}
    return [first, second]


def _text(value) -> str:
    if value is None:
        return ""
    return "inf" if value == math.inf else str(value)


def _csv(path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: _text(v) for k, v in row.items()} for row in rows)


# --------------------------------------------------------------------------- one verdict per path


def _api(client, rows) -> str:
    response = client.post(
        f"/api/v1/models/{CHURN}/predict/", data=json.dumps({"rows": rows}), content_type="application/json"
    )
    if response.status_code == 400:
        assert {e["row"] for e in response.json()["errors"]} == {1}, response.json()
        return Action.REFUSE
    assert response.status_code == 200, response.content
    warnings = response.json()["warnings"]
    assert {w["row"] for w in warnings} <= {1}
    return Action.WARN if warnings else OK


def _form(client, rows) -> str:
    before = Prediction.objects.count()
    response = client.post(f"/models/{CHURN}/predict/", {k: _text(v) for k, v in rows[1].items()})
    page = response.content.decode()
    if 'class="errorlist' in page:
        assert Prediction.objects.count() == before
        return Action.REFUSE
    assert Prediction.objects.count() == before + 1, page
    return Action.WARN if 'id="warnings"' in page else OK


def _batch(tmp_path, model_name, rows) -> str:
    path = tmp_path / "batch.csv"
    _csv(path, rows)
    job = BatchJob.objects.create(model_name=model_name, input_path=str(path), original_filename="batch.csv")
    job = batch_job_run(job_id=job.pk)
    assert job.status == "succeeded", job.error
    with open(job.output_path, newline="") as handle:
        first, second = csv.DictReader(handle)
    assert first["error"] == first["warnings"] == ""
    if second["error"]:
        assert second["prediction"] == ""
        return Action.QUARANTINE
    return Action.WARN if second["warnings"] else OK


def _ingestion(tmp_path, served, rows, rule) -> str:
    raw = tmp_path / "raw.csv"
    _csv(raw, rows)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    for path in (good, bad):
        path.unlink(missing_ok=True)
    result = file_validate_and_split(
        raw_path=raw,
        profile=served.profile,
        good_path=good,
        bad_path=bad,
        policy=rule_policy_get(model_name=served.name),
    )
    if result.rows_bad:
        (quarantined,) = pd.read_csv(bad, dtype=str, keep_default_na=False).to_dict("records")
        assert quarantined["row_number"] == "2" and quarantined["reason"].startswith(rule)
        return Action.QUARANTINE
    warned = [i for i in result.issues if i.severity == "warning" and i.rule == rule]
    return Action.WARN if warned else OK


def _drift(served, rows, rule) -> str:
    Prediction.objects.filter(model_name=served.name).delete()
    for row in rows:  # as an older version or another client may have logged them
        Prediction.objects.create(
            created_at=timezone.now(),
            model_name=served.name,
            model_version=served.version,
            run_id=served.run_id,
            source="api",
            request_id="every-path",
            features=row,
            predicted_label="no",
        )
    window = drift_window_load(model_name=served.name, profile=served.profile, version=served.version, last_n=10)
    if len(window.features) == 1:
        return Action.QUARANTINE
    assert len(window.features) == 2
    return Action(window.rules[rule]["action"]) if rule in window.rules else OK


def _verdicts(api, user_client, tmp_path, served, case, rule, changes) -> dict[str, str]:
    rows = _rows(served.profile, changes, case)
    verdicts = {
        RulePath.API: _api(api, rows),
        RulePath.BATCH: _batch(tmp_path, served.name, rows),
        RulePath.INGESTION: _ingestion(tmp_path, served, rows, rule or ""),
    }
    if case != "duplicate":  # one row a submission
        verdicts[RulePath.FORM] = _form(user_client, rows)
    if case != "non-finite":  # the inference log cannot hold one (JSON has no infinity)
        verdicts[RulePath.DRIFT] = _drift(served, rows, rule)
    return verdicts


def _expected(policy: RulePolicy, rule: str | None, paths) -> dict[str, str]:
    return {path: OK if rule is None else policy.action(rule, path) for path in paths}


@pytest.fixture
def api(plain_user):
    client = APIClient()
    client.force_authenticate(plain_user)
    return client


@pytest.fixture
def served(churn_model):
    return served_model_get(churn_model.name)


def test_the_same_rows_get_the_same_verdicts_on_every_path(api, user_client, tmp_path, served):
    policy = RulePolicy.default()
    seen = {}
    for case, (rule, changes) in _cases(served.profile).items():
        verdicts = _verdicts(api, user_client, tmp_path, served, case, rule, changes)
        assert verdicts == _expected(policy, rule, verdicts), case
        seen[case] = {path: str(verdict) for path, verdict in verdicts.items()}

    # The defaults in words: what cannot be scored (or was never seen) stops the row everywhere;
    # real data past the training range and unseen categories reach scoring and drift with a warning.
    stop = {"api": "refuse", "form": "refuse", "batch": "quarantine", "ingestion": "quarantine", "drift": "quarantine"}
    for case in ("integer given 3.5", "missing", "wrong type"):
        assert seen[case] == stop, case
    for case in ("out of range", "unseen category"):
        assert set(seen[case].values()) == {"warn"}, case
    assert seen["duplicate"] == {"api": "warn", "batch": "warn", "ingestion": "quarantine", "drift": "warn"}


def test_a_per_model_policy_override_changes_the_verdicts_on_every_path(api, user_client, tmp_path, served):
    overrides = {"rules": {"out_of_range": "refuse", "unknown_category": {"ingestion": "quarantine"}}}
    RulePolicyOverride.objects.create(model_name=served.name, overrides=overrides)
    policy = rule_policy_get(model_name=served.name)

    for case in ("out of range", "unseen category", "integer given 3.5"):
        rule, changes = _cases(served.profile)[case]
        verdicts = _verdicts(api, user_client, tmp_path, served, case, rule, changes)
        assert verdicts == _expected(policy, rule, verdicts), case
    assert policy.action("out_of_range", RulePath.INGESTION) == Action.QUARANTINE  # "refuse" means stop
    assert policy.action("unknown_category", RulePath.API) == Action.WARN  # only ingestion was overridden


def test_an_api_answer_names_the_field_and_problem_of_every_refused_value(api, served):
    _rule, changes = _cases(served.profile)["integer given 3.5"]
    (field,) = changes
    response = api.post(
        f"/api/v1/models/{CHURN}/predict/",
        data=json.dumps({"features": {**CHURN_ROW, **changes}}),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"row": 0, "field": field, "problem": "expected a whole number (whole in training), got 3.5"}
    ]
    assert not Prediction.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rules": {"shoe_size": "warn"}}, "unknown rule 'shoe_size'"),
        ({"rules": {"wrong_type": "warn"}}, "wrong_type: such a value cannot be scored"),
        ({"rules": {"out_of_range": {"api": "quarantine"}}}, "out_of_range.api: api cannot quarantine a row"),
        ({"rules": {"out_of_range": {"ingestion": "refuse"}}}, "ingestion cannot refuse a row; choose quarantine"),
        ({"rules": {"out_of_range": {"kiosk": "warn"}}}, "unknown path 'kiosk'"),
        ({"rules": {"out_of_range": "ignore"}}, "unknown action 'ignore'"),
        ({"range_tolerance": -1}, "range_tolerance must be a number >= 0"),
        ({"thresholds": {}}, "unknown key"),
    ],
)
def test_a_policy_that_cannot_be_applied_is_refused_naming_the_entry(overrides, message):
    with pytest.raises(PolicyError, match=message):
        RulePolicy.from_overrides(overrides)
    with pytest.raises(Exception, match=message):  # the admin's model validation says the same
        RulePolicyOverride(model_name="m", overrides=overrides).full_clean()


def test_the_admin_edits_a_model_policy_and_refuses_one_that_cannot_be_applied(admin_client, served):
    url = "/admin/models_registry/rulepolicyoverride/add/"
    refused = admin_client.post(url, {"model_name": served.name, "overrides": '{"rules": {"wrong_type": "warn"}}'})
    assert refused.status_code == 200 and "such a value cannot be scored" in refused.content.decode()
    assert not RulePolicyOverride.objects.exists()

    saved = admin_client.post(url, {"model_name": served.name, "overrides": '{"rules": {"out_of_range": "refuse"}}'})
    assert saved.status_code == 302
    assert rule_policy_get(model_name=served.name).action("out_of_range", RulePath.API) == Action.REFUSE
    page = admin_client.get(f"/admin/models_registry/rulepolicyoverride/{RulePolicyOverride.objects.get().pk}/change/")
    assert "out_of_range: api refuse, form refuse, batch quarantine" in page.content.decode()
