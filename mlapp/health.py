"""`/health/live` and `/health/ready`: probes for a load balancer, systemd, Kubernetes.

- live: the process answers (no dependency is asked): restart it only if this fails.
- ready: the database, the broker, the MLflow store, and every deployment's served version
  loaded **and trusted** in this very process. 503 until all hold: a worker is ready only
  once its production models are loaded (the watcher preloads them before gunicorn's worker
  takes requests, `mlapp/gunicorn_conf.py`).

Error texts can name hosts and databases: staff only; others see "error".
"""

from __future__ import annotations

import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.task_queue import broker_check
from models_registry.health import OK, models_readiness, registry_store_check

logger = logging.getLogger(__name__)


def _check(fn) -> str:
    try:
        fn()
    except Exception as exc:  # any failure of a dependency makes the process unready
        return f"{type(exc).__name__}: {exc}"[:300]
    return OK


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _is_staff(request) -> bool:
    try:
        return bool(request.user.is_staff)
    except Exception:  # the session lives in the database, which may be the thing that is down
        return False


@never_cache
@require_GET
def live(request):
    return JsonResponse({"status": OK})


@never_cache
@require_GET
def ready(request):
    checks = {"database": _check(_database)}
    checks["broker"] = _check(broker_check)
    checks["mlflow_store"] = _check(registry_store_check)
    models = {}
    if checks["database"] == OK:
        try:
            models = models_readiness()
        except Exception as exc:  # reported like any failed check
            checks["models"] = f"{type(exc).__name__}: {exc}"[:300]
    healthy = all(value == OK for value in checks.values()) and all(m["status"] == OK for m in models.values())
    if not _is_staff(request):
        checks = {key: value if value == OK else "error" for key, value in checks.items()}
        for entry in models.values():
            entry.pop("reason", None)
            for refused in entry.get("refused", []):
                refused.pop("reason", None)
    body = {"status": OK if healthy else "unavailable", **checks, "models": models}
    if not healthy:
        logger.warning("Not ready: %s", body)
    return JsonResponse(body, status=200 if healthy else 503)
