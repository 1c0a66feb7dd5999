"""Settings of the floor server (bench/serving.py only): mlapp's database settings (the same
persistent connections and health checks), no middleware, no authentication, DRF's JSON parser and
renderer. It answers one URL, `POST /floor/`: parse the predict body, insert one jsonb row, answer."""

from mlapp.settings import DATABASES, SECRET_KEY  # noqa: F401  (the same database, the same connection options)

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
