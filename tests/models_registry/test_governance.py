"""Promotion and rollback: the MLflow alias moves, the audit trail records it, staff only."""

import pytest
from django.template.defaultfilters import floatformat

from models_registry import mlflow_access, services
from models_registry.demo_data import churn_frame
from models_registry.models import AliasChange
from models_registry.serving import loader
from models_registry.training import model_train

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_versions(mlflow_store, churn_csv, housing_csv, unique_model_name, tmp_path):
    """A model with v1 in production (bootstrap-like) and a trained v2."""
    other = tmp_path / "churn-other.csv"
    churn_frame(n_rows=500, seed=7).to_csv(other, index=False)
    v1 = model_train(csv=churn_csv, target="churned", name=unique_model_name).model_version
    v2 = model_train(csv=other, target="churned", name=unique_model_name).model_version
    services.alias_move(
        name=unique_model_name,
        version=v1.version,
        action=AliasChange.Action.BOOTSTRAP,
        actor_label="bootstrap",
        reason="first version",
    )
    return unique_model_name, v1, v2


def _production(name):
    return int(mlflow_access.client().get_model_version_by_alias(name, mlflow_access.PRODUCTION).version)


def test_promote_moves_alias_records_audit_and_reloads(two_versions, staff_user):
    name, v1, v2 = two_versions
    assert loader().get(name).version == v1.version

    change = services.model_version_promote(name=name, version=v2.version, actor=staff_user, reason="better f1")

    assert _production(name) == v2.version
    assert (change.from_version, change.to_version, change.actor, change.reason) == (1, 2, staff_user, "better f1")
    assert loader().get(name).version == v2.version  # the next request serves the new version


def test_rollback_returns_to_previous_production_version(two_versions, staff_user):
    name, v1, v2 = two_versions
    services.model_version_promote(name=name, version=v2.version, actor=staff_user, reason="try v2")

    change = services.model_version_rollback(name=name, actor=staff_user, reason="v2 misbehaves")

    assert _production(name) == v1.version
    assert change.action == AliasChange.Action.ROLLBACK
    assert (change.from_version, change.to_version) == (2, 1)
    assert list(AliasChange.objects.filter(model_name=name).values_list("action", flat=True)) == [
        "rollback",
        "promote",
        "bootstrap",
    ]


def test_rollback_without_history_is_refused(two_versions, staff_user):
    name, _, _ = two_versions
    with pytest.raises(services.PromotionError, match="No earlier production version"):
        services.model_version_rollback(name=name, actor=staff_user, reason="nothing before")
    assert AliasChange.objects.filter(model_name=name).count() == 1


@pytest.mark.parametrize(
    ("version", "reason", "message"),
    [(99, "why not", "has no version 99"), (1, "again", "already has the alias"), (2, "  ", "reason is required")],
)
def test_bad_promotions_are_refused_and_write_nothing(two_versions, staff_user, version, reason, message):
    name, _, _ = two_versions
    with pytest.raises(services.PromotionError, match=message):
        services.model_version_promote(name=name, version=version, actor=staff_user, reason=reason)
    assert _production(name) == 1
    assert AliasChange.objects.filter(model_name=name).count() == 1


def test_registry_pages_show_versions_aliases_and_profile(two_versions, staff_client):
    name, v1, v2 = two_versions

    listing = staff_client.get("/models/")
    detail = staff_client.get(f"/models/{name}/")
    version = staff_client.get(f"/models/{name}/versions/2/")

    assert listing.status_code == detail.status_code == version.status_code == 200
    assert name in listing.content.decode()
    body = detail.content.decode()
    assert v1.training_data_sha256[:12] in body and v2.run_id[:8] in body and "production" in body
    assert f'href="/models/{name}/versions/1/promote/"' not in body  # in production already
    assert "Compare &amp; promote" in body and "Roll back" in body
    page = version.content.decode()
    assert "monthly_charges" in page and "month-to-month" in page and v2.test_data_sha256 in page
    # Categories most frequent first, whatever order the stored (jsonb) profile keeps.
    shares = next(f for f in v2.profile["features"] if f["name"] == "contract")["categories"]
    by_share = sorted(shares, key=shares.get, reverse=True)
    assert [page.index(f"{category} <span") for category in by_share] == sorted(
        page.index(f"{category} <span") for category in by_share
    )


def test_the_promote_page_puts_the_candidate_beside_production(two_versions, staff_client):
    name, v1, v2 = two_versions

    page = staff_client.get(f"/models/{name}/versions/2/promote/").content.decode()

    assert "Production v1" in page and "Candidate v2" in page
    assert floatformat(v1.metrics["accuracy"], 4) in page and floatformat(v2.metrics["accuracy"], 4) in page
    assert v1.training_data_sha256[:16] in page and v2.training_data_sha256[:16] in page
    assert f"{v1.n_train_rows:,} / {v1.n_test_rows:,}" in page and f"{v2.n_train_rows:,} / {v2.n_test_rows:,}" in page
    assert "Not a drop-in replacement" not in page and 'name="confirm_schema_change"' not in page
    assert "Promote to production" in page


def test_promote_and_rollback_from_the_web_page(two_versions, staff_client):
    name, _, _ = two_versions

    promoted = staff_client.post(f"/models/{name}/versions/2/promote/", {"reason": "from the page"})
    assert promoted.status_code == 302 and _production(name) == 2
    rolled = staff_client.post(f"/models/{name}/rollback/", {"reason": "undo"})
    assert rolled.status_code == 302 and _production(name) == 1
    assert AliasChange.objects.filter(model_name=name, actor__username="staff").count() == 2


def test_non_staff_cannot_promote_or_roll_back(two_versions, user_client, client):
    name, _, _ = two_versions

    assert user_client.post(f"/models/{name}/versions/2/promote/", {"reason": "x"}).status_code == 403
    assert user_client.post(f"/models/{name}/rollback/", {"reason": "x"}).status_code == 403
    assert user_client.post(f"/api/v1/models/{name}/versions/2/promote/", {"reason": "x"}).status_code == 403
    assert user_client.get("/models/train/").status_code == 403
    client.logout()
    assert client.post(f"/api/v1/models/{name}/rollback/", {"reason": "x"}).status_code == 401
    assert _production(name) == 1
    assert AliasChange.objects.filter(model_name=name).count() == 1


def test_promote_through_the_api(two_versions, staff_client):
    name, _, _ = two_versions

    response = staff_client.post(f"/api/v1/models/{name}/versions/2/promote/", {"reason": "api"})
    missing_reason = staff_client.post(f"/api/v1/models/{name}/rollback/", {})

    assert response.status_code == 201 and response.json()["to_version"] == 2
    assert missing_reason.status_code == 400
    assert missing_reason.json() == {
        "detail": "Invalid input",
        "errors": [{"field": "reason", "problem": "This field is required."}],
    }
    versions = staff_client.get(f"/api/v1/models/{name}/versions/").json()
    assert [(v["version"], v["aliases"]) for v in versions] == [(2, ["production"]), (1, [])]
