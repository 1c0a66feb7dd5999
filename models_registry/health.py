"""What this process can truthfully say about its models: for `/health/ready` (mlapp/health.py).

Nothing here loads a model: readiness reports what the deployment watcher already loaded
(gunicorn and Celery preload before a process takes work, see `deployments.preload`), so a
probe never waits for a load and never starts one.
"""

from __future__ import annotations

from django.conf import settings
from sqlalchemy.engine import make_url

from core.postgresql.base import database_answers

from . import mlflow_access
from .selectors import deployment_list
from .serving import loader

OK = "ok"
NOT_LOADED = "not_loaded"
UNTRUSTED = "untrusted"


def models_readiness() -> dict[str, dict]:
    """Each deployment's served version and whether this process holds it loaded and trusted.

    status: ok (loaded after its files were checked), untrusted (refused: `reason` says why),
    not_loaded (not yet: the process is still starting, or the version failed to load otherwise).
    Versions refused on the way (an outside move, a promotion) are listed under `refused`: the
    served one keeps serving, so they do not make the process unready.
    """
    process = loader()
    report = {}
    for deployment in deployment_list():
        version = deployment.version
        entry = {"version": version}
        if process.is_loaded(deployment.name, version):
            entry["status"] = OK
        elif (deployment.name, version) in process.refused:
            entry.update(status=UNTRUSTED, reason=process.refused[(deployment.name, version)])
        else:
            entry["status"] = NOT_LOADED
        others = [
            {"version": v, "reason": reason}
            for (name, v), reason in process.refused.items()
            if name == deployment.name and v != version
        ]
        if others:
            entry["refused"] = others
        report[deployment.name] = entry
    return report


class RegistryStoreStalled(ConnectionError):
    """The MLflow store's PostgreSQL server took the connection and did not answer."""


def registry_store_check() -> None:
    """One cheap read of the MLflow store (its SQL database); raises whatever the store raises.

    On PostgreSQL the server is probed first, as mlapp's own connections are (core/postgresql):
    MLflow's SQLAlchemy connections have libpq's connect_timeout and the statement timeout
    (mlapp/settings.py) but no guard while a query waits, so a stalled server answers here at once.
    """
    url = make_url(settings.MLFLOW_TRACKING_URI)
    if url.get_backend_name() == "postgresql":
        problem = database_answers(url.host or "localhost", url.port or 5432, timeout=settings.MLAPP_DB_PROBE_SECONDS)
        if problem is not None:
            raise RegistryStoreStalled(problem)
    mlflow_access.client().search_registered_models(max_results=1)
