"""The MLflow backend store lives in the same PostgreSQL database as Django's tables."""

import pytest
from django.apps import apps
from django.db import connection

from tests.conftest import requires_postgres

MLFLOW_TABLES = {
    "experiments",
    "runs",
    "metrics",
    "params",
    "registered_models",
    "model_versions",
    "registered_model_aliases",
    "alembic_version",
}


@requires_postgres
@pytest.mark.django_db
def test_django_and_mlflow_tables_share_one_database(churn_model):
    with connection.cursor() as cursor:
        cursor.execute("select table_name from information_schema.tables where table_schema = 'public'")
        tables = {row[0] for row in cursor.fetchall()}
        cursor.execute("select name from registered_models where name = %s", [churn_model.name])
        registered = cursor.fetchall()
        cursor.execute(
            "select v.version, a.alias from model_versions v join registered_model_aliases a "
            "on a.name = v.name and a.version = v.version where v.name = %s",
            [churn_model.name],
        )
        aliases = cursor.fetchall()

    assert tables >= MLFLOW_TABLES
    assert {"predictions_prediction", "models_registry_modelversion", "django_migrations"} <= tables
    assert registered == [(churn_model.name,)]
    assert aliases == [(churn_model.version, "production")]


def test_mlflow_and_django_table_names_do_not_collide():
    """Django's tables are all prefixed by their app; MLflow's alembic_version is MLflow's alone."""
    django_tables = {model._meta.db_table for model in apps.get_models()}
    assert not django_tables & MLFLOW_TABLES
