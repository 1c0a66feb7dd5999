"""Settings of the floor server (bench/serving.py only): mlapp's database settings (the same
persistent connections and health checks), no middleware, no authentication, DRF's JSON parser and
renderer. It answers one URL, `POST /floor/`: parse the predict body, insert one jsonb row, answer."""

# The same database and connection options, and the settings mlapp's database backend reads (stall probe).
from mlapp.settings import (  # noqa: F401
    DATABASES,
    MLAPP_DB_PROBE_SECONDS,
    MLAPP_DB_STALL_SECONDS,
    MLAPP_DB_STATEMENT_TIMEOUT_SECONDS,
    SECRET_KEY,
)

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"]
MIDDLEWARE = []
ROOT_URLCONF = "bench.floor.urls"
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
