"""Keeping every process's served versions current, idle or busy.

`deployments_refresh` is one pass: decide on `production` moves made in MLflow
directly (`services.outside_alias_moves_check`), then re-read every deployment's
served version and load it if it is new, so no request waits for the load.
`watch_start` runs that pass every `MLAPP_MODEL_POLL_SECONDS` on a daemon thread;
the web server starts it in each worker after it forks (mlapp/gunicorn_conf.py),
the Celery worker in each pool process (mlapp/celery.py). Nothing starts it at
import time.
"""

from __future__ import annotations

import logging
import threading

from django.db import connections

from . import selectors, services
from .serving import ModelUnavailable, loader

logger = logging.getLogger(__name__)
_watcher: threading.Thread | None = None
_watcher_lock = threading.Lock()


def deployments_refresh() -> list[str]:
    """One pass; returns "name vN" for every deployment this process now serves."""
    services.outside_alias_moves_check()
    served = []
    for deployment in selectors.deployment_list():
        try:
            version = loader().alias_refresh(deployment.name, preload=True)
            loader().get_version(deployment.name, version)
        except ModelUnavailable as exc:
            logger.warning("Deployment %s: %s", deployment.name, exc)
            continue
        except Exception:  # a version that cannot load: logged; requests get the error and a 503
            logger.exception("Deployment %s: version %s cannot be loaded", deployment.name, deployment.version)
            continue
        served.append(f"{deployment.name} v{version}")
    return served


def preload() -> list[str]:
    """The watcher's first pass, run before the process takes work (gunicorn's `post_worker_init`,
    Celery's `worker_process_init`): a process is ready (`/health/ready`) only once its production
    models are loaded, and no first request waits for a load. A failure is logged; the watcher
    tries again every interval."""
    try:
        served = deployments_refresh()
    except Exception:  # the database or the registry away at start: the watcher keeps trying
        logger.exception("Preloading the served models failed; the deployment watcher will try again")
        return []
    finally:
        connections.close_all()
    logger.info("Preloaded %s", ", ".join(served) or "no deployments")
    return served


def watch_start(*, interval: float | None = None) -> threading.Thread:
    """Start this process's watcher once (later calls return the running one)."""
    global _watcher
    with _watcher_lock:
        if _watcher is not None and _watcher.is_alive():
            return _watcher
        period = max(interval if interval is not None else loader().poll_seconds, 0.05)
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    deployments_refresh()
                except Exception:  # a pass that fails (database away) is logged; the next one tries again
                    logger.exception("Deployment watcher pass failed")
                finally:
                    connections.close_all()
                stop.wait(period)

        _watcher = threading.Thread(target=watch, name="deployments-watcher", daemon=True)
        _watcher.stop = stop  # type: ignore[attr-defined]  (tests stop it)
        _watcher.start()
        return _watcher


def watch_stop(timeout: float = 30) -> None:
    global _watcher
    with _watcher_lock:
        if _watcher is not None:
            _watcher.stop.set()  # type: ignore[attr-defined]
            _watcher.join(timeout)
            _watcher = None
