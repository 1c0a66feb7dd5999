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
# The test client speaks plain HTTP; tests of the HTTPS settings run them in a subprocess.
os.environ.setdefault("MLAPP_HTTPS", "0")

from .settings import *

CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# No background re-read during a test: threads would not see the test's uncommitted rows (and SQLite
# locks tables a transaction wrote). Promotions through mlapp refresh the loader at once; tests of the
# watcher and of background refreshes set their own interval and commit their rows.
MLAPP_MODEL_POLL_SECONDS = 3600.0
LOGGING["root"]["level"] = "WARNING"
# Budgets no test reaches by accident; throttle tests set their own (tests/test_people.py).
MLAPP_THROTTLE_RATES = dict.fromkeys(MLAPP_THROTTLE_RATES, "1000000/min")
# One cache per test process, emptied before each test (tests/conftest.py); the shared caches
# of production (Redis, files) have tests of their own.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, as the embedded default runs on (WAL, a writer waits for the lock): an in-memory test
    # database shares one cache between threads, where a second thread fails at once with "database
    # table is locked" instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(os.environ["MLAPP_VAR_DIR"], "test-db.sqlite3")}
