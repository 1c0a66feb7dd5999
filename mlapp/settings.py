"""Settings, all read from the environment (see docs/configuration.md).

With no environment set, everything runs on embedded defaults under ``var/``:
SQLite for Django and for the MLflow backend store, and a Celery broker kept in
a SQLite file. Malformed values stop the process at start with the variable's
name, never at first use.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import environ
from django.core.exceptions import ImproperlyConfigured

from core.rates import rate_parse

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()


def _read(name, cast, default, *, minimum=None):
    """Read one variable, naming it in the error when its value is malformed."""
    raw = env.str(name, default=None)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"Setting {name}={raw!r} is malformed: {exc}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"Setting {name}={raw!r} must be at least {minimum}")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _csv(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


VAR_DIR = Path(_read("MLAPP_VAR_DIR", str, str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = _read("DEBUG", _bool, False)
# The embedded demo (scripts/run): plain HTTP on 127.0.0.1 and a generated secret key, DEBUG off.
MLAPP_DEMO = _read("MLAPP_DEMO", _bool, False)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not (DEBUG or MLAPP_DEMO):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (outside the demo, MLAPP_DEMO)")
    # Embedded demo: one random key per checkout, kept so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = _read("ALLOWED_HOSTS", _csv, ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = _read("CSRF_TRUSTED_ORIGINS", _csv, [])

# --- HTTPS (`manage.py check --deploy` is clean with the defaults) -------------
# Production is served over HTTPS: redirect plain HTTP, secure cookies, HSTS. The demo and
# DEBUG run on plain http://127.0.0.1; MLAPP_HTTPS=0 says so elsewhere (e.g. a private bench).
MLAPP_HTTPS = _read("MLAPP_HTTPS", _bool, not (DEBUG or MLAPP_DEMO))
SECURE_SSL_REDIRECT = _read("SECURE_SSL_REDIRECT", _bool, MLAPP_HTTPS)
# Load balancers probe health over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/", r"^health/"]
SESSION_COOKIE_SECURE = _read("SESSION_COOKIE_SECURE", _bool, MLAPP_HTTPS)
CSRF_COOKIE_SECURE = _read("CSRF_COOKIE_SECURE", _bool, MLAPP_HTTPS)
SECURE_HSTS_SECONDS = _read("SECURE_HSTS_SECONDS", int, 31_536_000 if MLAPP_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _read("SECURE_HSTS_INCLUDE_SUBDOMAINS", _bool, True)
SECURE_HSTS_PRELOAD = _read("SECURE_HSTS_PRELOAD", _bool, True)


def _proxy_ssl_header(raw: str) -> tuple[str, str]:
    """ "X-Forwarded-Proto" -> ("HTTP_X_FORWARDED_PROTO", "https"): the TLS proxy's header."""
    name = raw.strip()
    if not name or not all(part.isalnum() for part in name.split("-")):
        raise ValueError("expected a header name such as X-Forwarded-Proto")
    return "HTTP_" + name.upper().replace("-", "_"), "https"


# Behind a proxy that terminates TLS: the header it sets to "https" (only if it always sets it).
SECURE_PROXY_SSL_HEADER = _read("MLAPP_PROXY_SSL_HEADER", _proxy_ssl_header, None)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "core",
    "jobs",
    "models_registry",
    "predictions",
    "monitoring",
    "retraining",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Above the scoring lane: every answer gets X-Frame-Options, and every body the size limit.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mlapp.middleware.RequestSizeMiddleware",
    # Token-authenticated scoring requests are answered here, by their DRF view (predictions/scoring_lane.py).
    "predictions.scoring_lane.ScoringLaneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "mlapp.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mlapp.urls"
WSGI_APPLICATION = "mlapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mlapp.context_processors.platform",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
try:
    DATABASES = {
        "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mlapp.sqlite3'}"),
    }
except Exception as exc:  # django-environ raises several types for a bad URL
    raise ImproperlyConfigured(f"Setting DATABASE_URL is malformed: {exc}") from exc
if DATABASES["default"]["ENGINE"] not in (
    "django.db.backends.sqlite3",
    "django.db.backends.postgresql",
):
    raise ImproperlyConfigured(
        f"Setting DATABASE_URL={env.str('DATABASE_URL')!r} is malformed: "
        "use postgres://user:password@host:port/name or sqlite:////absolute/path"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: WAL lets readers run beside a writer,
    # IMMEDIATE takes the write lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A database that stalls must not hang a request (docs/reliability.md): the server cancels a
    # statement after MLAPP_DB_STATEMENT_TIMEOUT_SECONDS (0: never); libpq gives up connecting after
    # MLAPP_DB_CONNECT_TIMEOUT_SECONDS (its floor is 2); and our backend (core/postgresql) probes a
    # server that has said nothing for MLAPP_DB_STALL_SECONDS, dropping the connection if the probe
    # gets no answer within MLAPP_DB_PROBE_SECONDS: an OperationalError, a 503 with Retry-After.
    MLAPP_DB_CONNECT_TIMEOUT_SECONDS = _read("MLAPP_DB_CONNECT_TIMEOUT_SECONDS", int, 2, minimum=2)
    MLAPP_DB_STATEMENT_TIMEOUT_SECONDS = _read("MLAPP_DB_STATEMENT_TIMEOUT_SECONDS", float, 60.0, minimum=0)
    DATABASES["default"]["ENGINE"] = "core.postgresql"
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"]["connect_timeout"] = MLAPP_DB_CONNECT_TIMEOUT_SECONDS
    DATABASES["default"]["OPTIONS"]["options"] = (
        f"-c statement_timeout={int(MLAPP_DB_STATEMENT_TIMEOUT_SECONDS * 1000)}"
    )
MLAPP_DB_STALL_SECONDS = _read("MLAPP_DB_STALL_SECONDS", float, 1.0, minimum=0)
MLAPP_DB_PROBE_SECONDS = _read("MLAPP_DB_PROBE_SECONDS", float, 0.5, minimum=0.05)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (plotly.js is served from the installed plotly package) ------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "mlapp.staticfiles.PlotlyJsFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "core.api_errors.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "core.api_parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.ContentNegotiation",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "mlapp.openapi.NestedSerializerAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Budgets per user (= per token) and per client address: core/throttles.py, MLAPP_THROTTLE_RATES.
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttles.AnonThrottle",
        "core.throttles.UserThrottle",
        "core.throttles.PredictThrottle",
    ],
    "NUM_PROXIES": None,  # set below with MLAPP_PROXY_COUNT
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mlapp API",
    "DESCRIPTION": "Predictions, model registry, ingestion and monitoring.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, not a CDN (no network at run time).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Django's `<int:...>` matches digits only: a negative number is no address (the fuzz test would send one).
    "PATH_CONVERTER_OVERRIDES": {"int": {"type": "integer", "minimum": 0}},
    # Every operation documents its error answers in the one error shape (mlapp/openapi.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mlapp.openapi.error_responses",
    ],
}

# --- Celery -------------------------------------------------------------------
# The project's Celery app (mlapp/celery.py), for the bottom layers that send tasks by name.
CELERY_APP_PATH = "mlapp.celery.app"
CELERY_BROKER_URL = _read("CELERY_BROKER_URL", str, f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}")
CELERY_RESULT_BACKEND = _read(
    "CELERY_RESULT_BACKEND",
    str,
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith("redis")
    else f"db+sqlite:///{VAR_DIR / 'celery-results.sqlite3'}",
)
CELERY_TASK_ALWAYS_EAGER = _read("CELERY_TASK_ALWAYS_EAGER", _bool, False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Every task has time limits (cookiecutter-django): the soft one raises inside the task, which
# fails its job saying so; the hard one kills the worker process (the job is then reclaimed).
# Tasks that run a job carry longer limits of their own (MLAPP_JOB_TIME_LIMIT_SECONDS).
CELERY_TASK_SOFT_TIME_LIMIT = _read("CELERY_TASK_SOFT_TIME_LIMIT", int, 300, minimum=1)
CELERY_TASK_TIME_LIMIT = _read("CELERY_TASK_TIME_LIMIT", int, CELERY_TASK_SOFT_TIME_LIMIT + 60, minimum=1)
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("Setting CELERY_TASK_TIME_LIMIT must be above CELERY_TASK_SOFT_TIME_LIMIT")
# Training and batch scoring: the soft limit; the hard one is a minute later.
MLAPP_JOB_TIME_LIMIT_SECONDS = _read("MLAPP_JOB_TIME_LIMIT_SECONDS", int, 3600, minimum=1)
# Model selection in training (models_registry/selection.py): candidates not finished after this
# many seconds of cross-validation are skipped; cross-validation runs on at most this many rows.
MLAPP_TRAIN_SELECTION_SECONDS = _read("MLAPP_TRAIN_SELECTION_SECONDS", float, 300.0, minimum=0)
MLAPP_TRAIN_SELECTION_MAX_ROWS = _read("MLAPP_TRAIN_SELECTION_MAX_ROWS", int, 50_000, minimum=100)
# The candidates it compares, in order (the first wins ties); one candidate: no cross-validation.
TRAIN_CANDIDATE_NAMES = ("hist_gradient_boosting", "linear", "random_forest")  # = selection.CANDIDATES
MLAPP_TRAIN_CANDIDATES = tuple(_read("MLAPP_TRAIN_CANDIDATES", _csv, list(TRAIN_CANDIDATE_NAMES)))
if not MLAPP_TRAIN_CANDIDATES or set(MLAPP_TRAIN_CANDIDATES) - set(TRAIN_CANDIDATE_NAMES):
    raise ImproperlyConfigured(
        f"Setting MLAPP_TRAIN_CANDIDATES={','.join(MLAPP_TRAIN_CANDIDATES)!r} names no candidate or an unknown one:"
        f" choose from {', '.join(TRAIN_CANDIDATE_NAMES)}"
    )
# The job lifecycle (jobs/services.py): a running job whose heartbeat is older than this
# lost its worker and is taken again; one lost this many times fails; beat's reclaim pass.
MLAPP_JOB_STALE_SECONDS = _read("MLAPP_JOB_STALE_SECONDS", float, 20.0, minimum=1)
MLAPP_JOB_MAX_ATTEMPTS = _read("MLAPP_JOB_MAX_ATTEMPTS", int, 3, minimum=1)
MLAPP_JOB_RECLAIM_EVERY_SECONDS = _read("MLAPP_JOB_RECLAIM_EVERY_SECONDS", int, 5, minimum=1)
# A job queued this long with no worker taking it has its task sent again (its message may be lost).
MLAPP_JOB_QUEUED_RESEND_SECONDS = _read("MLAPP_JOB_QUEUED_RESEND_SECONDS", float, 120.0, minimum=1)
if CELERY_BROKER_URL.startswith("redis"):
    # Redis hands an unacknowledged message (acks_late) to another worker after this long:
    # longer than the longest task may run, or a running job would be delivered twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": MLAPP_JOB_TIME_LIMIT_SECONDS + 600}
# Where tasks go unless routed: one queue per deployment (or per test) sharing one Redis.
CELERY_TASK_DEFAULT_QUEUE = _read("CELERY_TASK_DEFAULT_QUEUE", str, "celery")
# A pool process loads the served models before it reports up (mlapp/celery.py): give it time to.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = _read("CELERY_WORKER_PROC_ALIVE_TIMEOUT", float, 120.0, minimum=1)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- MLflow -------------------------------------------------------------------
# The platform must work air-gapped: MLflow sends no usage telemetry.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# No model file is ever unpickled: MLflow's own loaders refuse pickle, cloudpickle (and, in MLflow 3.17,
# every sklearn format) with this off; mlapp loads scikit-learn models itself through skops with its
# trusted-type list, after checking the files' hashes (models_registry/trust.py). Set by the platform,
# not the environment: an operator cannot turn it back on by accident.
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"


def _mlflow_uri_for(database: dict) -> str:
    """The MLflow backend store lives in the same database as Django's tables."""
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # A separate file: SQLite allows one writer at a time per file.
        return f"sqlite:///{VAR_DIR / 'mlflow.sqlite3'}"
    if "postgresql" in database["ENGINE"]:
        user = quote(database.get("USER") or "", safe="")
        password = quote(database.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = database.get("HOST") or "localhost"
        port = f":{database['PORT']}" if database.get("PORT") else ""
        # MLflow's own connections get the same libpq connect timeout and server statement timeout.
        options = {k: v for k, v in (database.get("OPTIONS") or {}).items() if k in ("connect_timeout", "options")}
        query = f"?{urlencode(options, quote_via=quote)}" if options else ""
        return f"postgresql+psycopg://{auth}{host}{port}/{database['NAME']}{query}"
    raise ImproperlyConfigured(f"Set MLFLOW_TRACKING_URI: no default for database engine {database['ENGINE']}")


MLFLOW_TRACKING_URI = _read("MLFLOW_TRACKING_URI", str, _mlflow_uri_for(DATABASES["default"]))
MLFLOW_ARTIFACT_ROOT = _read("MLFLOW_ARTIFACT_ROOT", str, (VAR_DIR / "mlartifacts").as_uri())
MLFLOW_EXPERIMENT_NAME = _read("MLFLOW_EXPERIMENT_NAME", str, "mlapp")
# The port scripts/run starts the MLflow UI on; pages link runs there unless MLFLOW_UI_URL says otherwise.
MLFLOW_PORT = _read("MLFLOW_PORT", int, 5000, minimum=1)
MLFLOW_UI_URL = _read("MLFLOW_UI_URL", str, f"http://127.0.0.1:{MLFLOW_PORT}")

# --- mlapp --------------------------------------------------------------------
MLAPP_DATA_DIR = Path(_read("MLAPP_DATA_DIR", str, str(VAR_DIR / "data"))).resolve()
MLAPP_UPLOAD_DIR = VAR_DIR / "uploads"
# Versions kept loaded per process, across all models (least recently used out first).
MLAPP_MAX_LOADED_VERSIONS = _read("MLAPP_MAX_LOADED_VERSIONS", int, 16, minimum=1)
# How often every process re-reads each model's served version (and checks MLflow for outside moves).
MLAPP_MODEL_POLL_SECONDS = _read("MLAPP_MODEL_POLL_SECONDS", float, 5.0, minimum=0)
# How long a process trusts a token it checked (core/authentication.py); 0: every request asks the database.
MLAPP_TOKEN_CACHE_SECONDS = _read("MLAPP_TOKEN_CACHE_SECONDS", float, 5.0, minimum=0)
MLAPP_PREDICT_MAX_ROWS = _read("MLAPP_PREDICT_MAX_ROWS", int, 1000, minimum=1)
# Shadow and A/B routing of the challenger (docs/serving.md, "Challenger traffic"). Shadow work waits in a
# bounded queue per process (full: the request's shadow scoring is dropped and counted, production never waits).
MLAPP_SHADOW_QUEUE_SIZE = _read("MLAPP_SHADOW_QUEUE_SIZE", int, 1000, minimum=1)
# The shadow worker gathers requests this long before scoring and storing them together (one insert per batch).
MLAPP_SHADOW_LINGER_MS = _read("MLAPP_SHADOW_LINGER_MS", float, 200.0, minimum=0)
# "thread": a worker thread in each serving process; "celery": a task per request (a broker round trip).
MLAPP_SHADOW_RUNNER = _read("MLAPP_SHADOW_RUNNER", str, "thread")
if MLAPP_SHADOW_RUNNER not in ("thread", "celery"):
    raise ImproperlyConfigured(
        f"Setting MLAPP_SHADOW_RUNNER={MLAPP_SHADOW_RUNNER!r} is malformed: use thread or celery"
    )
# A/B auto-promotion (when a model's policy allows it) needs p at most this and this many labelled rows per arm.
MLAPP_AB_AUTO_PROMOTE_P = _read("MLAPP_AB_AUTO_PROMOTE_P", float, 0.01, minimum=0)
MLAPP_AB_MIN_ROWS = _read("MLAPP_AB_MIN_ROWS", int, 100, minimum=2)
MLAPP_AB_CHECK_EVERY_MINUTES = _read("MLAPP_AB_CHECK_EVERY_MINUTES", int, 5, minimum=1)
MLAPP_MAX_UPLOAD_MB = _read("MLAPP_MAX_UPLOAD_MB", int, 200, minimum=1)
# Batch scoring commits (and can resume after) every this many rows.
MLAPP_BATCH_CHUNK_ROWS = _read("MLAPP_BATCH_CHUNK_ROWS", int, 50_000, minimum=1)
MLAPP_INGEST_EVERY_SECONDS = _read("MLAPP_INGEST_EVERY_SECONDS", int, 60, minimum=5)
MLAPP_SCORE_EVERY_MINUTES = _read("MLAPP_SCORE_EVERY_MINUTES", int, 2, minimum=1)
MLAPP_DRIFT_EVERY_MINUTES = _read("MLAPP_DRIFT_EVERY_MINUTES", int, 5, minimum=1)
MLAPP_ALERT_EMAILS = _read("MLAPP_ALERT_EMAILS", _csv, [])
MLAPP_ALERT_WEBHOOK_URL = _read("MLAPP_ALERT_WEBHOOK_URL", str, "")
# Ingestion: alert when a file's bad-row share reaches this; quarantined files always alert.
MLAPP_ALERT_BAD_SHARE = _read("MLAPP_ALERT_BAD_SHARE", float, 0.2, minimum=0)
# A raw file is picked up once unchanged for this long (files named *.part never).
MLAPP_INGEST_MIN_AGE_SECONDS = _read("MLAPP_INGEST_MIN_AGE_SECONDS", float, 5.0, minimum=0)
MLAPP_INGEST_RANGE_TOLERANCE = _read("MLAPP_INGEST_RANGE_TOLERANCE", float, 0.1, minimum=0)
MLAPP_INGEST_MAX_FILES_PER_RUN = _read("MLAPP_INGEST_MAX_FILES_PER_RUN", int, 100, minimum=1)
# Caps on a CSV's shape (ingestion and batch scoring; models_registry/csv_limits.py): a file past
# one is refused (quarantined whole) naming the limit, before any reader allocates for it.
MLAPP_CSV_MAX_COLUMNS = _read("MLAPP_CSV_MAX_COLUMNS", int, 1000, minimum=1)
MLAPP_CSV_MAX_HEADER_BYTES = _read("MLAPP_CSV_MAX_HEADER_BYTES", int, 65536, minimum=1)
if MLAPP_CSV_MAX_HEADER_BYTES > 65536:
    raise ImproperlyConfigured(
        f"Setting MLAPP_CSV_MAX_HEADER_BYTES={MLAPP_CSV_MAX_HEADER_BYTES} must be at most 65536 "
        "(the CSV reader's header window)"
    )
MLAPP_CSV_MAX_FIELD_BYTES = _read("MLAPP_CSV_MAX_FIELD_BYTES", int, 65536, minimum=1)
MLAPP_CSV_MAX_ROW_BYTES = _read("MLAPP_CSV_MAX_ROW_BYTES", int, 1 << 20, minimum=1)
# Issue rows kept per ingested file (the most frequent; the rest are counted in one more_issues row).
MLAPP_INGEST_MAX_ISSUES_PER_FILE = _read("MLAPP_INGEST_MAX_ISSUES_PER_FILE", int, 100, minimum=1)
# Disk used by the quarantine (bad/<model>/): shown on the ingestion page; past this an alert is raised.
MLAPP_QUARANTINE_ALERT_MB = _read("MLAPP_QUARANTINE_ALERT_MB", float, 1024.0, minimum=0)
# Alert on any data-quality issue at least this severe (info, warning, error, critical).
MLAPP_ALERT_MIN_SEVERITY = _read("MLAPP_ALERT_MIN_SEVERITY", str, "critical")
if MLAPP_ALERT_MIN_SEVERITY not in ("info", "warning", "error", "critical"):
    raise ImproperlyConfigured(
        f"Setting MLAPP_ALERT_MIN_SEVERITY={MLAPP_ALERT_MIN_SEVERITY!r} is malformed: "
        "use info, warning, error or critical"
    )


# --- People: API budgets, login lockout, request size (docs/security.md) -------
def _rate(name: str, default: str) -> str | None:
    raw = env.str(name, default=default)
    try:
        rate_parse(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Setting {name}={raw!r} is malformed: {exc}") from exc
    return raw


# Requests per user (a DRF token is one per user, so per token too) and per client address;
# "none" lifts a budget. Scoring endpoints spend the predict budget, every other call the user one.
MLAPP_THROTTLE_RATES = {
    "anon": _rate("MLAPP_THROTTLE_ANON", "60/min"),
    "user": _rate("MLAPP_THROTTLE_USER", "600/min"),
    "predict": _rate("MLAPP_THROTTLE_PREDICT", "1200/min"),
}
MLAPP_THROTTLE_CACHE = "default"


def _cache(url: str) -> dict:
    """CACHE_URL: redis://host:port/db (shared by every process), file:///abs/dir, or locmem://."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "mlapp"}
    if url.startswith("file://") and url[len("file://") :].startswith("/"):
        return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": url[len("file://") :]}
    if url == "locmem://":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    raise ImproperlyConfigured(
        f"Setting CACHE_URL={url!r} is malformed: use redis://host:port/db, file:///absolute/dir or locmem://"
    )


# Throttle counts must be seen by every gunicorn worker: the broker's Redis when there is one,
# else files under var/ (shared by the processes of one machine).
CACHES = {
    "default": _cache(
        _read(
            "CACHE_URL",
            str,
            CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else f"file://{VAR_DIR / 'cache'}",
        )
    )
}

# Login lockout (django-axes): this many failed logins for one username from one address lock
# that pair out for MLAPP_LOGIN_LOCKOUT_MINUTES, on the login page and the admin alike.
AXES_FAILURE_LIMIT = _read("MLAPP_LOGIN_FAILURE_LIMIT", int, 5, minimum=1)
# 0: locked until staff unlock it (admin: Axes > Access attempts, or `manage.py axes_reset`).
AXES_COOLOFF_TIME = timedelta(minutes=_read("MLAPP_LOGIN_LOCKOUT_MINUTES", float, 15.0, minimum=0)) or None
# username+ip (default): a pair is locked, so nobody can lock a colleague out from elsewhere;
# username: the account from any address (stops guessing spread over many addresses).
MLAPP_LOGIN_LOCKOUT_BY = _read("MLAPP_LOGIN_LOCKOUT_BY", str, "username+ip")
if MLAPP_LOGIN_LOCKOUT_BY not in ("username+ip", "username"):
    raise ImproperlyConfigured(
        f"Setting MLAPP_LOGIN_LOCKOUT_BY={MLAPP_LOGIN_LOCKOUT_BY!r} is malformed: use username+ip or username"
    )
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]] if MLAPP_LOGIN_LOCKOUT_BY == "username+ip" else ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "mlapp.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# Reverse proxies in front of gunicorn: the client address is then that many hops back in
# X-Forwarded-For (for the lockout and the anonymous API budget alike).
MLAPP_PROXY_COUNT = _read("MLAPP_PROXY_COUNT", int, 0, minimum=0)
AXES_IPWARE_PROXY_COUNT = MLAPP_PROXY_COUNT or None
REST_FRAMEWORK["NUM_PROXIES"] = MLAPP_PROXY_COUNT or None
AXES_VERBOSE = False

# Request bodies kept in memory (JSON, form fields; uploaded files are not counted): a larger one
# is a 413 naming the limit (JSON on the API, a page elsewhere).
DATA_UPLOAD_MAX_MEMORY_SIZE = _read("MLAPP_MAX_BODY_MB", int, 10, minimum=1) * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

EMAIL_BACKEND = _read("EMAIL_BACKEND", str, "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = _read("DEFAULT_FROM_EMAIL", str, "mlapp@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _read("LOG_LEVEL", str, "INFO")},
    "loggers": {
        "alembic": {"level": "WARNING"},
        "mlflow": {"level": "WARNING"},
    },
}
