"""/health/live and /health/ready tell the truth: database, broker, MLflow store, and every served
model loaded and trusted in this very process (a fresh worker is not ready until it preloaded)."""

import socket
import time

import pytest

from mlapp import gunicorn_conf
from mlapp.celery import app as celery_app
from models_registry import deployments, serving

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fresh_process():
    """This process as a worker that has just started: nothing loaded."""
    serving.loader.cache_clear()
    yield
    serving.loader.cache_clear()


def test_live_answers_without_asking_anything(client):
    for path in ("/health/live", "/health/live/"):
        response = client.get(path)
        assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_a_fresh_worker_is_not_ready_until_its_production_models_are_loaded(
    churn_model, housing_model, fresh_process, client
):
    before = client.get("/health/ready")
    assert before.status_code == 503
    assert before.json()["models"][churn_model.name] == {"version": churn_model.version, "status": "not_loaded"}

    deployments.preload()  # what gunicorn's post_worker_init and Celery's worker_process_init run first

    after = client.get("/health/ready/")
    body = after.json()
    assert after.status_code == 200, body
    assert (body["status"], body["database"], body["broker"], body["mlflow_store"]) == ("ok",) * 4
    assert body["models"][churn_model.name] == {"version": churn_model.version, "status": "ok"}
    assert body["models"][housing_model.name]["status"] == "ok"


def test_the_gunicorn_hook_preloads_before_the_worker_takes_requests(churn_model, fresh_process, client):
    gunicorn_conf.post_worker_init(worker=None)

    assert serving.loader().is_loaded(churn_model.name, churn_model.version)
    assert client.get("/health/ready").status_code == 200


def test_not_ready_with_the_broker_down(churn_model, client, monkeypatch):
    deployments.deployments_refresh()
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")  # Celery reads it before its own settings
    assert celery_app.conf.broker_write_url == "redis://127.0.0.1:1/0"

    anonymous = client.get("/health/ready")
    assert anonymous.status_code == 503 and anonymous.json()["broker"] == "error"  # details: staff only
    assert anonymous.json()["database"] == "ok"
    legacy = client.get("/api/v1/health/").json()
    assert legacy["status"] == "degraded" and legacy["broker"] == "error"


def test_not_ready_with_the_mlflow_store_down(churn_model, staff_client, settings):
    deployments.deployments_refresh()
    settings.MLFLOW_TRACKING_URI = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"

    response = staff_client.get("/health/ready")

    assert response.status_code == 503
    assert "OperationalError" in response.json()["mlflow_store"] or "127.0.0.1" in response.json()["mlflow_store"]
    assert response.json()["models"][churn_model.name]["status"] == "ok"  # still serving what it loaded


def test_a_stalled_mlflow_store_is_reported_at_once(churn_model, staff_client, settings):
    """A server that takes the connection and says nothing: probed first (core/postgresql), not waited on."""
    deployments.deployments_refresh()
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the backlog), never answers
        settings.MLFLOW_TRACKING_URI = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/nothing"
        started = time.monotonic()
        response = staff_client.get("/health/ready")
        took = time.monotonic() - started

    assert response.status_code == 503 and "did not answer" in response.json()["mlflow_store"]
    assert took < settings.MLAPP_DB_PROBE_SECONDS + 1.5
    assert response.json()["database"] == "ok"  # the failure is remembered for that server only
