"""The MLflow UI that scripts/run starts (Procfile: `manage.py mlflow_ui`) is not a side door.

A real `mlflow server --app-name basic-auth` on mlapp's store: anonymous requests and wrong
passwords cannot read or change the registry; the admin (password in var/) can; it listens on
127.0.0.1 only.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from models_registry import mlflow_access

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(url, *, body=None, method="GET", password=None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if password is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"admin:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def mlflow_ui(churn_model, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "MLAPP_VAR_DIR": str(tmp_path / "var"),
        "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
        "MLFLOW_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
    }
    server = subprocess.Popen(
        [sys.executable, "manage.py", "mlflow_ui", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # ~15 s on an idle machine; minutes on a loaded 2-core one
    while time.monotonic() < deadline:
        try:
            if _request(f"{base}/health")[0] == 200:
                break
        except OSError:
            pass
        if server.poll() is not None:
            pytest.fail(f"mlflow_ui exited: {server.stdout.read().decode()[-3000:]}")
        time.sleep(0.5)
    else:
        os.killpg(server.pid, signal.SIGKILL)
        pytest.fail("the MLflow UI did not start within 600 s")
    yield base, (tmp_path / "var" / "mlflow-admin-password.txt").read_text().strip(), port
    os.killpg(server.pid, signal.SIGTERM)  # the server and the uvicorn worker it started
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


@pytest.mark.django_db
def test_an_anonymous_request_cannot_change_the_registry_through_the_mlflow_ui(mlflow_ui, churn_model):
    base, password, port = mlflow_ui
    name, version = churn_model.name, str(churn_model.version)
    set_alias = f"{base}/api/2.0/mlflow/registered-models/alias"
    move = {"name": name, "alias": "production", "version": version}

    anonymous = _request(set_alias, body=move, method="POST")
    wrong_password = _request(set_alias, body=move, method="POST", password="not-it")
    anonymous_delete = _request(f"{base}/api/2.0/mlflow/registered-models/delete", body={"name": name}, method="DELETE")
    anonymous_read = _request(f"{base}/api/2.0/mlflow/registered-models/search")
    ui_page = _request(f"{base}/")

    assert (anonymous[0], wrong_password[0], anonymous_delete[0], anonymous_read[0], ui_page[0]) == (401,) * 5
    assert mlflow_access.client().get_registered_model(name).name == name
    assert str(mlflow_access.client().get_model_version_by_alias(name, "production").version) == version

    # The admin can (so the refusals above are the server's, not a broken request).
    status, _ = _request(set_alias, body={**move, "alias": "ui-check"}, method="POST", password=password)
    assert status == 200
    assert str(mlflow_access.client().get_model_version_by_alias(name, "ui-check").version) == version
    mlflow_access.client().delete_registered_model_alias(name, "ui-check")

    # Bound to the loopback interface only.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outward interface
        outward = probe.getsockname()[0]
    if outward != "127.0.0.1":
        with socket.socket() as attempt:
            attempt.settimeout(2)
            assert attempt.connect_ex((outward, port)) != 0, f"the MLflow UI answers on {outward}"


def test_the_procfile_starts_the_mlflow_ui_through_the_command_tested_here():
    procfile = (ROOT / "Procfile").read_text()
    (line,) = [line for line in procfile.splitlines() if line.startswith("mlflow:")]
    assert "manage.py mlflow_ui" in line and "mlflow server" not in line
