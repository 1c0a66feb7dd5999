"""Malformed settings stop the process at start, naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
