"""Ingestion: raw/ → validated → good/ (handed to scheduled scoring) and bad/ (quarantine).

Each raw file is claimed once by its content hash (`IngestedFile.sha256` is
unique), so overlapping runs and several workers never process it twice. The
original is moved to archive/ before the file's row is marked done, so a run
that finds a done hash *and* a file still in raw/ knows it is a second copy.
A failure of ours (not the file's) marks the file FAILED; the next run retries it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from models_registry.serving import ModelUnavailable, loader
from predictions.services import good_file_register

from ..models import Alert, DataQualityIssue, IngestedFile, IngestionRun, Severity
from ..validation import ValidationConfig, file_is_complete, file_validate_and_split
from .alerts import alert_raise

logger = logging.getLogger(__name__)


def data_folders() -> dict[str, Path]:
    root = Path(settings.MLAPP_DATA_DIR)
    folders = {name: root / name for name in ("raw", "good", "bad", "archive")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _claim(path: Path, sha256: str, run: IngestionRun) -> IngestedFile | None:
    """The file's row if this run won it; None if another run has (or had) it."""
    try:
        with transaction.atomic():
            return IngestedFile.objects.create(
                sha256=sha256, original_name=path.name, size_bytes=path.stat().st_size, run=run
            )
    except IntegrityError:
        pass
    retried = IngestedFile.objects.filter(sha256=sha256, status=IngestedFile.Status.FAILED).update(
        status=IngestedFile.Status.PROCESSING, run=run, started_at=timezone.now(), reason=""
    )
    if retried:
        return IngestedFile.objects.get(sha256=sha256)
    existing = IngestedFile.objects.get(sha256=sha256)
    if existing.status != IngestedFile.Status.PROCESSING and path.exists():
        # Same content again under some name: keep it out of raw/, process nothing.
        target = data_folders()["archive"] / f"duplicate-{timezone.now():%Y%m%d%H%M%S}-{path.name}"
        shutil.move(str(path), target)
        logger.info(
            "%s has the content of %s (already ingested): archived as %s",
            path.name,
            existing.original_name,
            target.name,
        )
    return None


def _alert_if_needed(ingested: IngestedFile) -> None:
    if ingested.status == IngestedFile.Status.QUARANTINED:
        alert_raise(
            kind=Alert.Kind.DATA_QUALITY,
            severity=Severity.ERROR,
            title=f"{ingested.original_name} quarantined whole",
            message=f"{ingested.reason}. {ingested.rows_in} row(s) quarantined.",
            dedup_key=f"ingestion:{ingested.sha256}",
            ingested_file=ingested,
        )
    elif ingested.rows_in and ingested.bad_share >= settings.MLAPP_ALERT_BAD_SHARE:
        alert_raise(
            kind=Alert.Kind.DATA_QUALITY,
            severity=Severity.WARNING,
            title=f"{ingested.bad_share:.0%} bad rows in {ingested.original_name}",
            message=(
                f"{ingested.rows_bad} of {ingested.rows_in} rows quarantined "
                f"(threshold {settings.MLAPP_ALERT_BAD_SHARE:.0%})."
            ),
            dedup_key=f"ingestion:{ingested.sha256}",
            ingested_file=ingested,
        )


def ingested_file_process(*, path: Path, run: IngestionRun, served=None) -> IngestedFile | None:
    sha256 = file_sha256(path)
    ingested = _claim(path, sha256, run)
    if ingested is None:
        return None
    served = served or loader().get()
    folders = data_folders()
    stem = f"{Path(path.name).stem}-{sha256[:10]}"
    good_path, bad_path = folders["good"] / f"{stem}.csv", folders["bad"] / f"{stem}.csv"
    try:
        result = file_validate_and_split(
            raw_path=path,
            profile=served.profile,
            good_path=good_path,
            bad_path=bad_path,
            config=ValidationConfig(range_tolerance=settings.MLAPP_INGEST_RANGE_TOLERANCE),
        )
        archived = folders["archive"] / f"{stem}{path.suffix}"
        if result.whole_file_reason:
            archived = folders["bad"] / f"{stem}.quarantined{path.suffix}"
        shutil.move(str(path), archived)
        with transaction.atomic():
            IngestedFile.objects.filter(pk=ingested.pk).update(
                status=IngestedFile.Status.QUARANTINED if result.whole_file_reason else IngestedFile.Status.DONE,
                model_name=served.name,
                model_version=served.version,
                rows_in=result.rows_in,
                rows_good=result.rows_good,
                rows_bad=result.rows_bad,
                reason=result.whole_file_reason or "",
                archived_path=str(archived),
                good_path=str(result.good_path or ""),
                bad_path=str(result.bad_path or (archived if result.whole_file_reason else "")),
                finished_at=timezone.now(),
            )
            DataQualityIssue.objects.bulk_create(
                [
                    DataQualityIssue(
                        ingested_file_id=ingested.pk,
                        rule=issue.rule,
                        column=issue.column,
                        severity=issue.severity,
                        count=issue.count,
                        sample_values=issue.sample_values,
                        message=issue.message,
                    )
                    for issue in result.issues
                ]
            )
            if result.good_path:
                good_file_register(path=str(result.good_path), sha256=sha256, rows=result.rows_good)
            ingested.refresh_from_db()
            _alert_if_needed(ingested)
    except Exception as exc:
        logger.exception("Ingesting %s failed; the next run retries it", path.name)
        IngestedFile.objects.filter(pk=ingested.pk).update(
            status=IngestedFile.Status.FAILED, reason=f"internal error: {exc}"[:2000], finished_at=timezone.now()
        )
        raise
    return ingested


def ingestion_run_execute(*, min_age_seconds: float | None = None) -> IngestionRun:
    """One pass over raw/: every complete file not ingested yet."""
    run = IngestionRun.objects.create()
    age = settings.MLAPP_INGEST_MIN_AGE_SECONDS if min_age_seconds is None else min_age_seconds
    candidates = sorted(p for p in data_folders()["raw"].iterdir() if file_is_complete(p, min_age_seconds=age))
    processed, errors = 0, []
    try:
        served = loader().get() if candidates else None
    except ModelUnavailable as exc:
        candidates, served = [], None
        errors.append(f"no model in production, files stay in raw/: {exc}")
    for path in candidates:
        try:
            if ingested_file_process(path=path, run=run, served=served) is not None:
                processed += 1
        except FileNotFoundError:
            continue  # another run moved it away after we listed it
        except Exception as exc:  # recorded on the file; other files still go through
            errors.append(f"{path.name}: {exc}")
    IngestionRun.objects.filter(pk=run.pk).update(
        files_seen=len(candidates),
        files_processed=processed,
        error="\n".join(errors)[:5000],
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run
