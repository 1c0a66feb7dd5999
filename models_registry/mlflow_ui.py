"""The MLflow UI and tracking server that `scripts/run` starts: never a side door into the registry.

It listens on 127.0.0.1 only and runs MLflow's own basic-auth app (`mlflow server --app-name
basic-auth`): every request but `/health` and static files needs a user and password, users other
than the admin get no permission by default (`default_permission = NO_PERMISSIONS`), and the admin's
password is made at first start and kept in `var/mlflow-admin-password.txt` (mode 0600), like the
platform's own admin password. mlapp itself never goes through this server: it reads and writes the
SQL store directly. See docs/security.md ("MLflow UI").
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings

HOST = "127.0.0.1"
ADMIN_USERNAME = "admin"


def _secret_file(path: Path) -> str:
    """A random secret kept in `path` (created once, readable by this user only)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def admin_password_path() -> Path:
    return Path(settings.VAR_DIR) / "mlflow-admin-password.txt"


def mlflow_ui_command(*, port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of the MLflow server: basic-auth app, 127.0.0.1, mlapp's store."""
    auth_dir = Path(settings.VAR_DIR) / "mlflow-auth"
    auth_dir.mkdir(parents=True, exist_ok=True)
    config = auth_dir / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{auth_dir / 'basic_auth.sqlite3'}\n"
        f"admin_username = {ADMIN_USERNAME}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    environment = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": _secret_file(admin_password_path()),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret_file(auth_dir / "flask-secret-key.txt"),
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        # MLflow's server-side job runner (GenAI evaluation jobs: seven huey consumers) is not needed to
        # browse runs and models, and on a small machine it triples the start-up time.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    argv = [
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        settings.MLFLOW_TRACKING_URI,
        "--default-artifact-root",
        settings.MLFLOW_ARTIFACT_ROOT,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    return argv, environment
