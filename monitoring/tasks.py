import logging

from celery import shared_task

from jobs.limits import job_task_options

from .services import alerts, deployments, drift, ingestion, rollups

logger = logging.getLogger(__name__)


@shared_task(name="monitoring.alert_notify", acks_late=True, reject_on_worker_lost=True)
def alert_notify_task(alert_id: int) -> None:
    alerts.alert_notify(alert_id=alert_id)


# --- drift and dashboards -----------------------------------------------------


@shared_task(name="monitoring.check_drift", acks_late=True, reject_on_worker_lost=True, expires=240)
def check_drift_task(model_name: str) -> int | None:
    """Store a drift report of the model (alerting on dataset drift); returns its id."""
    try:
        return drift.drift_report_create(model_name=model_name, scheduled=True).pk
    except drift.DriftCheckError as exc:  # no production version, too few rows: nothing to retry
        logger.info("Drift check skipped: %s", exc)
        return None


@shared_task(name="monitoring.refresh_prediction_rollups", acks_late=True, reject_on_worker_lost=True, expires=50)
def refresh_prediction_rollups_task() -> int:
    """Bring the hourly prediction rollups (the dashboards' series) up to date."""
    return rollups.prediction_rollups_refresh().rows_written


# --- ingestion ------------------------------------------------------------------


@shared_task(name="monitoring.ingest_raw_files", expires=55, **job_task_options())
def ingest_raw_files_task(model_name: str) -> int:
    """One pass over raw/<model>/ (overlapping passes are safe: files are claimed by content hash)."""
    return ingestion.ingestion_run_execute(model_name=model_name).pk


@shared_task(name="monitoring.deployments_sync", acks_late=True, reject_on_worker_lost=True, expires=50)
def deployments_sync_task() -> list[str]:
    """Folders and schedules for every served model (and outside alias moves decided)."""
    return deployments.deployments_sync()
