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
        if not k.startswith(("MLFLOW_", "MLAPP_", "CELERY_")) and k not in ("DATABASE_URL", "SECRET_KEY", "DEBUG")
    }


def _settings_import(env_overrides):
    env = _clean_env()
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "mlapp.settings"
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DEBUG": "maybe"}, "Setting DEBUG='maybe' is malformed"),
        ({"DEBUG": "1", "MLAPP_PREDICT_MAX_ROWS": "lots"}, "Setting MLAPP_PREDICT_MAX_ROWS='lots' is malformed"),
        ({"DEBUG": "1", "MLAPP_SCORE_EVERY_MINUTES": "0"}, "MLAPP_SCORE_EVERY_MINUTES='0' must be at least 1"),
        ({"DEBUG": "0"}, "SECRET_KEY must be set when DEBUG is off"),
        ({"DEBUG": "1", "DATABASE_URL": "nonsense://x"}, "DATABASE_URL"),
    ],
)
def test_malformed_settings_fail_at_start(tmp_path, overrides, message):
    result = _settings_import({"MLAPP_VAR_DIR": str(tmp_path), **overrides})
    assert result.returncode != 0
    assert message in result.stderr


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
