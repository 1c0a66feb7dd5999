"""Malformed settings stop the process at start, naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent


def _clean_env() -> dict:
    """The environment without our settings (MLflow itself exports MLFLOW_TRACKING_URI in tests)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MLAPP_", "CELERY_", "CACHE_", "SECURE_"))
        and k not in ("DATABASE_URL", "SECRET_KEY", "DEBUG")
    }


def _settings_import(env_overrides, code="import django; django.setup()"):
    env = _clean_env()
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "mlapp.settings"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DEBUG": "maybe"}, "Setting DEBUG='maybe' is malformed"),
        ({"DEBUG": "1", "MLAPP_PREDICT_MAX_ROWS": "lots"}, "Setting MLAPP_PREDICT_MAX_ROWS='lots' is malformed"),
        ({"DEBUG": "1", "MLAPP_SCORE_EVERY_MINUTES": "0"}, "MLAPP_SCORE_EVERY_MINUTES='0' must be at least 1"),
        ({"DEBUG": "0"}, "SECRET_KEY must be set when DEBUG is off"),
        ({"DEBUG": "1", "DATABASE_URL": "nonsense://x"}, "DATABASE_URL"),
        ({"DEBUG": "1", "MLFLOW_PORT": "five"}, "Setting MLFLOW_PORT='five' is malformed"),
        ({"DEBUG": "1", "MLAPP_THROTTLE_USER": "lots"}, "Setting MLAPP_THROTTLE_USER='lots' is malformed"),
        ({"DEBUG": "1", "MLAPP_THROTTLE_PREDICT": "10/fortnight"}, "MLAPP_THROTTLE_PREDICT='10/fortnight'"),
        ({"DEBUG": "1", "CACHE_URL": "memcached://x"}, "Setting CACHE_URL='memcached://x' is malformed"),
        ({"DEBUG": "1", "MLAPP_LOGIN_LOCKOUT_BY": "ip"}, "Setting MLAPP_LOGIN_LOCKOUT_BY='ip' is malformed"),
        ({"DEBUG": "1", "MLAPP_PROXY_SSL_HEADER": "X Fwd"}, "Setting MLAPP_PROXY_SSL_HEADER='X Fwd' is malformed"),
        ({"DEBUG": "1", "MLAPP_HTTPS": "sometimes"}, "Setting MLAPP_HTTPS='sometimes' is malformed"),
        ({"DEBUG": "1", "MLAPP_MAX_BODY_MB": "0"}, "MLAPP_MAX_BODY_MB='0' must be at least 1"),
        ({"DEBUG": "1", "MLAPP_CSV_MAX_HEADER_BYTES": "100000"}, "must be at most 65536"),
        ({"DEBUG": "1", "MLAPP_CSV_MAX_COLUMNS": "0"}, "MLAPP_CSV_MAX_COLUMNS='0' must be at least 1"),
        (
            {"DEBUG": "1", "DATABASE_URL": "postgres://u@h/db", "MLAPP_DB_CONNECT_TIMEOUT_SECONDS": "1"},
            "MLAPP_DB_CONNECT_TIMEOUT_SECONDS='1' must be at least 2",
        ),
    ],
)
def test_malformed_settings_fail_at_start(tmp_path, overrides, message):
    result = _settings_import({"MLAPP_VAR_DIR": str(tmp_path), **overrides})
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("overrides", "ui_url"),
    [
        ({}, "http://127.0.0.1:5000"),
        ({"MLFLOW_PORT": "5110"}, "http://127.0.0.1:5110"),  # the port scripts/run starts the UI on
        ({"MLFLOW_PORT": "5110", "MLFLOW_UI_URL": "https://mlflow.example.com"}, "https://mlflow.example.com"),
    ],
)
def test_mlflow_run_links_follow_the_mlflow_port(tmp_path, overrides, ui_url):
    result = _settings_import(
        {"DEBUG": "1", "MLAPP_VAR_DIR": str(tmp_path), **overrides},
        code="from django.conf import settings; print(settings.MLFLOW_UI_URL)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ui_url


def test_embedded_defaults_need_no_server(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "platform_info"],
        cwd=ROOT,
        env={
            **_clean_env(),
            "DJANGO_SETTINGS_MODULE": "mlapp.settings",
            "DEBUG": "1",
            "MLAPP_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"sqlite:///{tmp_path}/mlflow.sqlite3" in result.stdout
    assert "sqlite3" in result.stdout and "celery-broker.sqlite3" in result.stdout


def test_postgresql_connections_have_timeouts_and_the_stall_guard_and_redis_a_long_visibility(tmp_path):
    """Read from the settings a PostgreSQL + Redis deployment starts with (no server is contacted)."""
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['ENGINE'], d['OPTIONS']['connect_timeout'], d['OPTIONS']['options'], "
        "s.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'], s.MLAPP_JOB_TIME_LIMIT_SECONDS, "
        "s.MLAPP_JOB_STALE_SECONDS, s.MLAPP_JOB_RECLAIM_EVERY_SECONDS, s.MLFLOW_TRACKING_URI, sep='|')"
    )
    env = {
        "DEBUG": "1",
        "MLAPP_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://u@db.example:5432/mlapp",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "MLAPP_DB_STATEMENT_TIMEOUT_SECONDS": "15",
    }
    result = _settings_import(env, code=code)
    assert result.returncode == 0, result.stderr
    engine, connect, options, visibility, limit, stale, reclaim, mlflow_uri = result.stdout.strip().split("|")
    assert engine == "core.postgresql" and connect == "2" and options == "-c statement_timeout=15000"
    # MLflow's store (the same database) gets the same connect and statement timeouts.
    assert make_url(mlflow_uri).query == {"connect_timeout": "2", "options": "-c statement_timeout=15000"}
    # Longer than a job task may run (hard limit: soft + 60 s), or Redis would hand it to a second worker.
    assert int(visibility) > int(limit) + 60
    # A lost worker's job is taken back in tens of seconds, by heartbeat and reclaim, not at the visibility timeout.
    assert float(stale) + float(reclaim) <= 30
