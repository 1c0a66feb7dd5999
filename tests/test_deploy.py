"""Production settings pass `check --deploy`; the demo never shows its URL conf (issue 12.6)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path, **overrides) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MLAPP_", "CELERY_", "SECURE_", "CACHE_"))
        and k not in ("DATABASE_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS")
    }
    env.update({"DJANGO_SETTINGS_MODULE": "mlapp.settings", "MLAPP_VAR_DIR": str(tmp_path), **overrides})
    return env


def _production(tmp_path, **overrides) -> dict:
    """What an operator sets: a real secret key and the host name; everything else is a default."""
    return _env(tmp_path, SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="mlapp.example.com", **overrides)


def _check_deploy(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_production_defaults(tmp_path):
    result = _check_deploy(_production(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_when_https_is_switched_off(tmp_path):
    """The check can fail: plain HTTP brings back the four warnings of the review."""
    result = _check_deploy(_production(tmp_path, MLAPP_HTTPS="0"))
    assert result.returncode != 0
    assert all(code in result.stderr for code in ("W004", "W008", "W012", "W016")), result.stderr


PAGES = """
import django
django.setup()
from django.test import Client
client = Client(SERVER_NAME="mlapp.example.com")
for path, secure in [("/models/", False), ("/api/v1/health/", False), ("/accounts/login/", True)]:
    response = client.get(path, secure=secure)
    cookies = "; ".join(f"{k} secure={bool(v['secure'])}" for k, v in response.cookies.items())
    print(path, response.status_code, response.get("Location", "-"), response.get("Strict-Transport-Security", "-"),
          cookies or "-", sep=" | ")
"""


def test_production_redirects_to_https_with_hsts_and_secure_cookies(tmp_path):
    env = _production(tmp_path)  # no tables: these answers need none (health says the database is not ready)
    result = subprocess.run([sys.executable, "-c", PAGES], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    models, health, login = result.stdout.splitlines()
    assert models.startswith("/models/ | 301 | https://mlapp.example.com/models/")
    assert health.split(" | ")[1] in ("200", "503")  # probes over plain HTTP are not redirected
    assert "max-age=31536000; includeSubDomains; preload" in login
    assert "csrftoken secure=True" in login


def _demo_env(tmp_path) -> dict:
    """The environment scripts/run gives the demo, from scripts/demo.env as scripts/run reads it."""
    pairs = {}
    for line in (ROOT / "scripts" / "demo.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return _env(tmp_path, **pairs)


def test_scripts_run_takes_the_demo_environment_and_sets_no_debug():
    script = (ROOT / "scripts" / "run").read_text()
    assert "done < scripts/demo.env" in script
    assert "DEBUG" not in "".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))


DEMO_PAGES = """
import django
django.setup()
from django.conf import settings
from django.test import Client
client = Client()
missing = client.get("/no-such-page/")
static = client.get("/static/plotly/plotly.min.js")
css = client.get("/static/css/mlapp.css")
print(settings.DEBUG, missing.status_code, static.status_code, css.status_code)
print(missing.content.decode())
"""


def test_an_anonymous_404_on_the_demo_lists_no_url_patterns(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", DEMO_PAGES], cwd=ROOT, env=_demo_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    status, page = result.stdout.split("\n", 1)
    assert status == "False 404 200 200"  # DEBUG off, and static files (plotly.js too) still served
    assert "Page not found" in page
    for leak in ("URLconf", "api/v1/", "admin/", "accounts/login", "DEBUG = True"):
        assert leak not in page


@pytest.mark.django_db
def test_an_anonymous_404_lists_no_url_patterns(client):
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and "Page not found" in page.content.decode()
    assert "URLconf" not in page.content.decode() and "api/v1/" not in page.content.decode()
