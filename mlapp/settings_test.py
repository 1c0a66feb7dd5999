"""Test settings: the real settings, with a private var/ and eager Celery.

Set DATABASE_URL (and CELERY_BROKER_URL / MLAPP_TEST_REDIS_URL) to run the
suite on PostgreSQL and Redis, as .ci/run does.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-not-secret")
os.environ.setdefault("MLAPP_VAR_DIR", tempfile.mkdtemp(prefix="mlapp-test-"))
# No connection left open to the test database when Django drops it.
os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")

from .settings import *

CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MLAPP_MODEL_POLL_SECONDS = 0.0  # every request asks the registry: tests see alias moves at once
LOGGING["root"]["level"] = "WARNING"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A test database file in WAL mode, like the embedded default, not Django's in-memory
    # one: that is a shared-cache database, where a connection's uncommitted write locks
    # the table and another connection's read of it fails at once ("database table is
    # locked"; the busy timeout does not apply). The loader's background threads read our
    # tables on their own connections while the test's transaction is open.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-mlapp.sqlite3")}
