"""Shared fixtures: a real MLflow store in the test database, tiny real models.

The MLflow backend store lives in the same database as Django's test tables
(PostgreSQL in CI, a SQLite file otherwise), initialised once per session.
Models are trained once per session on small generated data; per-test fixtures
make sure our `ModelVersion` row and the `production` alias are in place, since
transactional tests flush Django's tables between tests.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from core.throttles import throttle_leases_forget
from mlapp.settings import _mlflow_uri_for
from models_registry import mlflow_access
from models_registry.demo_data import churn_frame, housing_frame
from models_registry.deployments import watch_stop
from models_registry.models import AliasChange, ModelVersion, RulePolicyOverride
from models_registry.policies import rule_policy_forget
from models_registry.selectors import served_version_get
from models_registry.serving import loader
from models_registry.training import model_train

CHURN = "test-churn"
HOUSING = "test-housing"
# The suite trains many small models: with one candidate the trainer does no cross-validation
# (models_registry/selection.py). Processes the tests start inherit it; tests/models_registry/
# test_selection.py turns the real selection back on (the `all_candidates` fixture).
ONE_CANDIDATE = ("hist_gradient_boosting",)
os.environ["MLAPP_TRAIN_CANDIDATES"] = ",".join(ONE_CANDIDATE)
settings.MLAPP_TRAIN_CANDIDATES = ONE_CANDIDATE


def _requires_env(name: str, marker: str):
    """Tests that need a real server say so when skipped; CI sets the variable and runs them."""
    return pytest.mark.skipif(not os.environ.get(name), reason=f"needs {name} ({marker} server)")


requires_postgres = pytest.mark.skipif(
    "postgresql" not in os.environ.get("DATABASE_URL", "") and "postgres:" not in os.environ.get("DATABASE_URL", ""),
    reason="needs DATABASE_URL pointing at PostgreSQL",
)
requires_redis = _requires_env("MLAPP_TEST_REDIS_URL", "Redis")


@pytest.fixture(scope="session")
def mlflow_store(django_db_setup, django_db_blocker, tmp_path_factory):
    """Point MLflow at the test database (the same one Django's tables are in)."""
    with django_db_blocker.unblock():
        database = dict(connection.settings_dict)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.sqlite3'}"
    else:
        uri = _mlflow_uri_for(database)
    settings.MLFLOW_TRACKING_URI = uri
    settings.MLFLOW_ARTIFACT_ROOT = tmp_path_factory.mktemp("mlartifacts").as_uri()
    mlflow_access._experiment_id.cache_clear()
    mlflow_access.tracking_configure()
    yield uri


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def churn_csv(data_dir) -> Path:
    path = data_dir / "churn.csv"
    churn_frame(n_rows=800, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def housing_csv(data_dir) -> Path:
    path = data_dir / "housing.csv"
    housing_frame(n_rows=600, seed=2).to_csv(path, index=False)
    return path


def _train_once(django_db_blocker, *, csv, target, name):
    with django_db_blocker.unblock():
        result = model_train(csv=csv, target=target, name=name, actor_label="tests")
        mlflow_access.client().set_registered_model_alias(
            name, mlflow_access.PRODUCTION, str(result.model_version.version)
        )
        fields = {f.attname: getattr(result.model_version, f.attname) for f in result.model_version._meta.fields}
    fields.pop("id")
    fields.pop("created_by_id")
    return fields


@pytest.fixture(scope="session")
def _churn_version_fields(mlflow_store, django_db_blocker, churn_csv):
    return _train_once(django_db_blocker, csv=churn_csv, target="churned", name=CHURN)


@pytest.fixture(scope="session")
def _housing_version_fields(mlflow_store, django_db_blocker, housing_csv):
    return _train_once(django_db_blocker, csv=housing_csv, target="price", name=HOUSING)


def _ensure_served(fields: dict):
    """Our row exists, `production` points at the session's version in MLflow, and our alias
    history says it serves (as after a promotion through mlapp)."""
    record, _ = ModelVersion.objects.get_or_create(
        name=fields["name"],
        version=fields["version"],
        defaults={k: v for k, v in fields.items() if k not in ("name", "version")},
    )
    mlflow_access.client().set_registered_model_alias(record.name, mlflow_access.PRODUCTION, str(record.version))
    if served_version_get(name=record.name) != record.version:
        AliasChange.objects.create(
            model_name=record.name,
            alias=mlflow_access.PRODUCTION,
            action=AliasChange.Action.BOOTSTRAP,
            to_version=record.version,
            actor_label="tests",
            reason="the session's version",
        )
    loader().invalidate(record.name)
    return record


@pytest.fixture(autouse=True)
def _throttle_counts_start_at_zero():
    """Each test process has its own in-memory cache (mlapp/settings_test.py): empty per test, and no
    counts leased from it left over (core/throttles.py)."""
    cache.clear()
    throttle_leases_forget()


@pytest.fixture(autouse=True)
def _rule_policies_read_afresh():
    """Each process caches rule policies; a test starts and ends with none cached."""
    rule_policy_forget()
    yield
    rule_policy_forget()


@pytest.fixture
def strict_ingestion(churn_model):
    """The churn model's policy quarantines unseen categories at ingestion (the default accepts them)."""
    return RulePolicyOverride.objects.create(
        model_name=churn_model.name, overrides={"rules": {"unknown_category": {"ingestion": "quarantine"}}}
    )


@pytest.fixture(autouse=True)
def _background_alias_checks_end_with_their_test():
    """The loader checks aliases on daemon threads; one that outlived its test would
    run against the next test's settings and database (and log into closed streams)."""
    yield
    watch_stop()
    for thread in threading.enumerate():
        if thread.name.startswith("alias-refresh-"):
            thread.join(timeout=60)
    loader().registry_checked(None)  # what one test did to the registry says nothing about the next


@pytest.fixture
def churn_model(_churn_version_fields, db):
    """A classification model in production (named test-churn)."""
    return _ensure_served(_churn_version_fields)


@pytest.fixture
def housing_model(_housing_version_fields, db):
    """A regression model in production (named test-housing), of other columns than churn."""
    return _ensure_served(_housing_version_fields)


@pytest.fixture
def all_candidates(settings):
    """The trainer's real model selection: every candidate, cross-validated."""
    settings.MLAPP_TRAIN_CANDIDATES = settings.TRAIN_CANDIDATE_NAMES


@pytest.fixture
def unique_model_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", "staff@example.com", "pw-staff-123", is_staff=True)


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def user_client(client, plain_user):
    client.force_login(plain_user)
    return client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With MLAPP_FORBID_SKIPS set (CI), a skipped test is a failure: CI runs everything."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("MLAPP_FORBID_SKIPS") and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {report.longrepr}"
