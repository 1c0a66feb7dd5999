"""Ingestion, per model: raw/<model>/ → validated → good/<model>/ (handed to that model's
scheduled scoring) + bad/<model>/ (quarantine) + archive/<model>/.

Every deployment (a model with a production version) has its own folders, made when
it gets its first production version (`deployment_folders_ensure`), and its own
ingestion schedule. Below, ``raw/`` means the model's raw folder, and so on.

One pass (`ingestion_run_execute`) lists the settled entries of ``raw/`` (see
`monitoring.validation.entry_is_settled`: ``*.part`` and dot-entries never, others
once unchanged for ``min_age_seconds``). An entry that is not a regular file (a
symbolic link, even to a file; a directory; a FIFO, socket or device) is never
opened or followed: `raw_entry_quarantine` moves the entry itself to ``bad/`` and
records it QUARANTINED with the reason, and no hash, size or rows. Each regular
file is processed:

1. **Claim** it by content hash (the `jobs` lifecycle): inserting the
   `IngestedFile` row succeeds for exactly one run (``(model_name, sha256)`` is
   unique), so overlapping runs and several workers never process the same content
   twice. The claim beats while the file is processed; a FAILED file, or one in
   PROCESSING whose heartbeat is older than ``MLAPP_JOB_STALE_SECONDS`` (its
   worker was killed), is re-claimed by a conditional UPDATE only one run wins.
2. **Split** it (`monitoring.validation.file_validate_and_split`): good rows to
   ``good/<stem>-<sha10>.csv``, bad rows with a ``reason`` column to
   ``bad/<stem>-<sha10>.csv``; both written as ``.part`` and renamed.
3. **Commit**, in one transaction: counts (the database refuses a DONE or
   QUARANTINED row whose ``rows_in != rows_good + rows_bad``), issues, the
   hand-over of the good file to `predictions`, the alert.
4. **Move** the original to ``archive/<date>/<stem>-<sha10><suffix>``, or to
   ``bad/<stem>-<sha10>.quarantined<suffix>`` when the file was rejected whole.

An error of ours in steps 2-3 marks the file FAILED, deletes whatever it wrote
to good/ and bad/, and leaves the original in raw/: the next run retries it. A
crash between 3 and 4 leaves a committed file whose original is still in raw/:
the next run sees the known hash with nothing at the recorded archive path and
finishes the move. The same content arriving again under another name is moved
to ``archive/duplicates/`` with a ``.note.txt`` beside it and noted on the first
file as an ``info`` issue ``duplicate_file``; it is not processed again.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.services import Claim, JobLost, job_claim, job_create_claimed, job_fail, job_heartbeats, job_succeed
from models_registry.csv_limits import CsvLimits
from models_registry.policies import rule_policy_get
from models_registry.serving import ModelUnavailable, loader
from predictions.services import good_file_register

from ..models import Alert, DataQualityIssue, IngestedFile, IngestionRun, Severity
from ..selectors.ingestion import DiskUsage, quarantine_usage
from ..validation import ValidationConfig, entry_is_settled, entry_kind, file_validate_and_split
from .alerts import alert_raise

logger = logging.getLogger(__name__)

FOLDERS = ("raw", "good", "bad", "archive")
SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True)
class IngestionConfig:
    """Knobs of the ingestion job; `from_settings` reads them (names in docs/ingestion.md)."""

    min_age_seconds: float = 5.0  # MLAPP_INGEST_MIN_AGE_SECONDS
    max_files_per_run: int = 100  # MLAPP_INGEST_MAX_FILES_PER_RUN: the rest wait for the next run
    bad_share_alert: float = 0.2  # MLAPP_ALERT_BAD_SHARE: alert when a file's bad-row share reaches this
    rule_severity_alert: str = Severity.CRITICAL  # MLAPP_ALERT_MIN_SEVERITY: alert on any issue this severe
    range_tolerance: float = 0.1  # MLAPP_INGEST_RANGE_TOLERANCE (validation)
    limits: CsvLimits = CsvLimits()  # MLAPP_CSV_MAX_*: caps on a file's shape
    max_issues: int = 100  # MLAPP_INGEST_MAX_ISSUES_PER_FILE
    quarantine_alert_bytes: int = 1 << 30  # MLAPP_QUARANTINE_ALERT_MB

    @classmethod
    def from_settings(cls, **overrides) -> IngestionConfig:
        values = {
            "min_age_seconds": getattr(settings, "MLAPP_INGEST_MIN_AGE_SECONDS", cls.min_age_seconds),
            "max_files_per_run": getattr(settings, "MLAPP_INGEST_MAX_FILES_PER_RUN", cls.max_files_per_run),
            "bad_share_alert": getattr(settings, "MLAPP_ALERT_BAD_SHARE", cls.bad_share_alert),
            "rule_severity_alert": getattr(settings, "MLAPP_ALERT_MIN_SEVERITY", cls.rule_severity_alert),
            "range_tolerance": getattr(settings, "MLAPP_INGEST_RANGE_TOLERANCE", cls.range_tolerance),
            "limits": CsvLimits.from_settings(),
            "max_issues": settings.MLAPP_INGEST_MAX_ISSUES_PER_FILE,
            "quarantine_alert_bytes": int(settings.MLAPP_QUARANTINE_ALERT_MB * (1 << 20)),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def __post_init__(self):
        if self.rule_severity_alert not in SEVERITY_RANK:
            raise ValueError(
                f"MLAPP_ALERT_MIN_SEVERITY={self.rule_severity_alert!r}: choose one of {', '.join(SEVERITY_RANK)}"
            )


class ModelFolderError(ValueError):
    """A model name that cannot be a folder name; the message says why."""


def model_folder_name(model_name: str) -> str:
    """The model's folder under raw/, good/, bad/ and archive/: its name, as is."""
    if not model_name or model_name in (".", "..") or "/" in model_name or "\\" in model_name or "\x00" in model_name:
        raise ModelFolderError(
            f"{model_name!r} cannot be a folder name: a model name used for ingestion has no / or \\"
        )
    return model_name


def data_folder_paths(model_name: str) -> dict[str, Path]:
    """Where the model's raw/, good/, bad/ and archive/ folders are (nothing is created: a page may ask)."""
    root = Path(settings.MLAPP_DATA_DIR)
    folder = model_folder_name(model_name)
    return {name: root / name / folder for name in FOLDERS}


def data_folders(model_name: str) -> dict[str, Path]:
    """The model's raw/, good/, bad/ and archive/ folders, created if missing."""
    folders = data_folder_paths(model_name)
    for path in folders.values():
        path.mkdir(parents=True, exist_ok=True)
    return folders


class NotARegularFile(OSError):
    """The entry turned out not to be a regular file when opened (swapped for a link meanwhile)."""


def file_sha256(path: Path) -> str:
    """The content hash of the regular file ``path``; a link is not followed (`NotARegularFile`)."""
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFile(f"{path.name} is a symbolic link") from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NotARegularFile(f"{path.name} is not a regular file")
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The key of an entry that is not a regular file: never its content's hash (nothing is read).
NOT_A_FILE = "not-a-file:"


def _move(source: Path, target: Path) -> None:
    """Rename (atomic on one filesystem); copy then delete across filesystems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(str(source), str(target))


def _output_stem(name: str, sha256: str) -> str:
    return f"{Path(name).stem}-{sha256[:10]}"


def _remove_outputs(*paths: Path) -> None:
    """Delete what a failed attempt wrote (final files and their .part siblings); never a directory."""
    for path in paths:
        for candidate in (path, path.with_name(path.name + ".part")):
            if candidate.is_file():
                candidate.unlink()


# --- claiming -------------------------------------------------------------------


def ingested_file_claim(
    *, path: Path, sha256: str, run: IngestionRun, config: IngestionConfig
) -> tuple[IngestedFile | None, IngestedFile | None]:
    """(claimed, None) if this run owns the file now; (None, existing) if another run has or had it."""
    size = path.stat().st_size
    model_name = run.model_name
    try:
        with transaction.atomic():
            created, _ = job_create_claimed(
                model=IngestedFile,
                model_name=model_name,
                sha256=sha256,
                original_name=path.name,
                size_bytes=size,
                run=run,
            )
            return created, None
    except IntegrityError:
        pass
    # A retry (failed, or stale): when two runs race for it, exactly one conditional UPDATE wins.
    known = IngestedFile.objects.values_list("pk", flat=True).get(model_name=model_name, sha256=sha256)
    retry = {"run": run, "original_name": path.name, "size_bytes": size, "started_at": timezone.now()}
    won = job_claim(model=IngestedFile, pk=known, fields={**retry, "rows_in": 0, "rows_good": 0, "rows_bad": 0})
    existing = IngestedFile.objects.get(model_name=model_name, sha256=sha256)
    if won:
        logger.info("Retrying %s (claimed again by run %s)", path.name, run.pk)
        return existing, None
    return None, existing


def _finished_file_seen_again(*, path: Path, existing: IngestedFile) -> str:
    """A complete file in raw/ whose content was ingested before: finish an interrupted move, or archive a copy."""
    final = Path(existing.archived_path) if existing.archived_path else None
    try:
        if final is not None and not final.exists():
            # Our own crash between the commit and the move: put the original where the record says it is.
            _move(path, final)
            logger.info("%s: finished moving the original to %s", path.name, final)
            return "moved"
        stamp = timezone.now()
        target = data_folders(existing.model_name)["archive"] / "duplicates" / f"{stamp:%Y%m%dT%H%M%S%f}-{path.name}"
        _move(path, target)
    except FileNotFoundError:
        return "gone"  # another run moved it after we listed it
    note = (
        f"{path.name} arrived at {stamp.isoformat()} with the same content (sha256 {existing.sha256}) "
        f"as {existing.original_name}, ingested as file #{existing.pk} ({existing.status}); "
        f"not processed again, archived as {target.name}."
    )
    target.with_name(target.name + ".note.txt").write_text(note + "\n")
    DataQualityIssue.objects.create(
        ingested_file=existing,
        rule="duplicate_file",
        severity=Severity.INFO,
        count=1,
        sample_values=[path.name],
        message=note,
    )
    logger.info(note)
    return "duplicate"


# --- processing -----------------------------------------------------------------


def _alert_for_file(*, ingested: IngestedFile, issues: list, config: IngestionConfig) -> Alert | None:
    """One data-quality alert per file (dedup by content hash), listing every threshold it crossed."""
    reasons: list[tuple[str, str]] = []  # (severity, sentence)
    if ingested.status == IngestedFile.Status.QUARANTINED:
        reasons.append((Severity.ERROR, f"rejected whole: {ingested.reason}"))
    elif ingested.rows_in and ingested.bad_share >= config.bad_share_alert:
        reasons.append(
            (
                Severity.WARNING,
                f"{ingested.rows_bad} of {ingested.rows_in} rows quarantined "
                f"({ingested.bad_share:.0%}, threshold {config.bad_share_alert:.0%})",
            )
        )
    threshold = SEVERITY_RANK[config.rule_severity_alert]
    for issue in issues:
        if SEVERITY_RANK.get(issue.severity, 0) >= threshold:
            where = f" in {issue.column}" if issue.column else ""
            reasons.append((issue.severity, f"{issue.rule}{where}: {issue.count} row(s) ({issue.severity})"))
    if not reasons:
        return None
    severity = max((s for s, _ in reasons), key=SEVERITY_RANK.__getitem__)
    if ingested.status == IngestedFile.Status.QUARANTINED:
        title = f"{ingested.original_name} quarantined whole"
    elif ingested.rows_in and ingested.bad_share >= config.bad_share_alert:
        title = f"{ingested.bad_share:.0%} bad rows in {ingested.original_name}"
    else:
        title = f"Severe data-quality issues in {ingested.original_name}"
    return alert_raise(
        kind=Alert.Kind.DATA_QUALITY,
        severity=severity,
        title=title,
        message="\n".join(sentence for _, sentence in reasons)
        + f"\nValidated against {ingested.model_name} v{ingested.model_version}.",
        model_name=ingested.model_name,
        dedup_key=f"ingestion:{ingested.model_name}:{ingested.sha256}",
        ingested_file=ingested,
    )


def _ingested_file_fail(*, ingested: IngestedFile, claim: Claim, exc: BaseException) -> None:
    reason = f"internal error, retried by the next run: {type(exc).__name__}: {exc}"[:2000]
    if not job_fail(claim, error=reason):
        return  # another run has the file now
    ingested.refresh_from_db()
    alert_raise(
        kind=Alert.Kind.SYSTEM,
        severity=Severity.ERROR,
        title=f"Ingestion of {ingested.original_name} failed",
        message=f"{reason}\nThe file stays in raw/ and every run retries it until it goes through.",
        model_name=ingested.model_name,
        dedup_key=f"ingestion-failed:{ingested.model_name}:{ingested.sha256}",
        ingested_file=ingested,
    )


def _entry_key(path: Path) -> str:
    """What identifies an entry that is not a regular file: its name and inode, not its target."""
    status = path.lstat()
    identity = f"{path.name}\0{status.st_dev}\0{status.st_ino}\0{status.st_mtime_ns}".encode()
    return NOT_A_FILE + hashlib.sha256(identity).hexdigest()[: 64 - len(NOT_A_FILE)]


def raw_entry_quarantine(*, path: Path, run: IngestionRun, kind: str) -> IngestedFile | None:
    """Quarantine an entry of raw/ that is not a regular file (a symlink, a directory, a FIFO, ...).

    It is never opened or followed: the entry itself is moved to ``bad/`` (a link stays a link) and
    recorded with a reason, no hash, size or row count of what it points at. None if it is gone.
    """
    try:
        key = _entry_key(path)
    except FileNotFoundError:
        return None
    folders = data_folders(run.model_name)
    target = folders["bad"] / f"{path.name}-{key[len(NOT_A_FILE) : len(NOT_A_FILE) + 10]}.not-a-file"
    reason = f"{kind}, not a regular file: quarantined without being opened or followed"
    now = timezone.now()
    try:
        with transaction.atomic():
            ingested = IngestedFile.objects.create(
                model_name=run.model_name,
                sha256=key,
                original_name=path.name[:512],
                size_bytes=0,
                run=run,
                status=IngestedFile.Status.QUARANTINED,
                reason=reason,
                bad_path=str(target),
                archived_path=str(target),
                attempts=1,
                heartbeat_at=now,
                finished_at=now,
            )
            alert_raise(
                kind=Alert.Kind.DATA_QUALITY,
                severity=Severity.ERROR,
                title=f"{path.name} quarantined whole",
                message=f"rejected whole: {reason}.",
                model_name=run.model_name,
                dedup_key=f"ingestion:{run.model_name}:{key}",
                ingested_file=ingested,
            )
    except IntegrityError:  # recorded by an earlier run whose move did not go through
        ingested = None
    try:
        _move(path, target)
    except FileNotFoundError:
        pass  # another run moved it
    except OSError as exc:
        logger.warning("%s (%s) is quarantined but could not be moved to %s yet: %s", path.name, kind, target, exc)
    if ingested is not None:
        logger.warning("Quarantined %s: %s", path.name, reason)
    return ingested


def ingested_file_process(
    *, path: Path, run: IngestionRun, served=None, config: IngestionConfig | None = None
) -> IngestedFile | None:
    """Claim, split, record and archive one raw file of the run's model.

    Returns the file's record if this run processed it (DONE, QUARANTINED, or
    FAILED: see its ``reason``), None if it was not this run's to process
    (claimed by another run, ingested before, or gone).
    """
    config = config or IngestionConfig.from_settings()
    try:
        sha256 = file_sha256(path)
        ingested, existing = ingested_file_claim(path=path, sha256=sha256, run=run, config=config)
    except FileNotFoundError:
        return None  # another run moved it after we listed it
    except NotARegularFile:  # swapped for a link (or the like) since it was listed
        return raw_entry_quarantine(path=path, run=run, kind=entry_kind(path) or "not a regular file")
    if ingested is None:
        if existing.status in (IngestedFile.Status.DONE, IngestedFile.Status.QUARANTINED):
            _finished_file_seen_again(path=path, existing=existing)
        return None

    folders = data_folders(run.model_name)
    stem = _output_stem(path.name, sha256)
    good_path, bad_path = folders["good"] / f"{stem}.csv", folders["bad"] / f"{stem}.csv"
    claim = Claim.held(ingested)
    try:
        with job_heartbeats(claim):  # one big file can take longer than the stale timeout
            served = served or loader().get(run.model_name)
            result = file_validate_and_split(
                raw_path=path,
                profile=served.profile,
                good_path=good_path,
                bad_path=bad_path,
                config=ValidationConfig(
                    range_tolerance=config.range_tolerance,
                    limits=config.limits,
                    max_issues=config.max_issues,
                ),
                policy=rule_policy_get(model_name=served.name, range_tolerance=config.range_tolerance),
            )
            if result.whole_file_reason:
                status = IngestedFile.Status.QUARANTINED
                final = folders["bad"] / f"{stem}.quarantined{path.suffix}"
            else:
                status = IngestedFile.Status.DONE
                final = folders["archive"] / f"{timezone.now():%Y-%m-%d}" / f"{stem}{path.suffix}"
        with transaction.atomic():
            job_succeed(  # JobLost: another run took the file over; nothing of this attempt is kept
                claim,
                status=status,
                model_name=served.name,
                model_version=served.version,
                rows_in=result.rows_in,
                rows_good=result.rows_good,
                rows_bad=result.rows_bad,
                reason=result.whole_file_reason or "",
                archived_path=str(final),
                good_path=str(result.good_path or ""),
                bad_path=str(final if result.whole_file_reason else (result.bad_path or "")),
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
                good_file_register(
                    model_name=served.name, path=str(result.good_path), sha256=sha256, rows=result.rows_good
                )
            ingested.refresh_from_db()
            _alert_for_file(ingested=ingested, issues=result.issues, config=config)
    except JobLost:  # stalled past the stale timeout: the run that took over writes the same outputs
        logger.warning("Ingesting %s was taken over by another run", path.name)
        return None
    except Exception as exc:  # ours, not the file's: recorded on the file and retried by the next run
        logger.exception("Ingesting %s failed; the next run retries it", path.name)
        _remove_outputs(good_path, bad_path)
        _ingested_file_fail(ingested=ingested, claim=claim, exc=exc)
        return ingested
    try:
        _move(path, final)
    except OSError as exc:  # committed: the next run that finds the original in raw/ finishes the move
        logger.warning("%s is ingested but could not be moved to %s yet: %s", path.name, final, exc)
    return ingested


def ingestion_run_execute(
    *, model_name: str, min_age_seconds: float | None = None, config: IngestionConfig | None = None
) -> IngestionRun:
    """One pass over the model's raw/: every complete file not ingested yet (overlapping passes are safe)."""
    config = config or IngestionConfig.from_settings(min_age_seconds=min_age_seconds)
    raw = data_folders(model_name)["raw"]
    run = IngestionRun.objects.create(model_name=model_name)
    settled = [p for p in raw.iterdir() if entry_is_settled(p, min_age_seconds=config.min_age_seconds)]
    processed, errors, served = 0, [], None
    candidates, others = [], 0
    for path in settled:  # never followed: a link to a file or a folder is quarantined as a link
        kind = entry_kind(path)
        if kind is None:
            candidates.append(path)
            continue
        others += 1
        if raw_entry_quarantine(path=path, run=run, kind=kind) is not None:
            processed += 1
    candidates.sort(key=lambda p: (_mtime(p), p.name))  # oldest first
    candidates = candidates[: config.max_files_per_run]
    if candidates:
        try:
            served = loader().get(model_name)
        except ModelUnavailable as exc:
            errors.append(f"no model in production, files stay in raw/: {exc}")
            candidates = []
    for path in candidates:
        ingested = ingested_file_process(path=path, run=run, served=served, config=config)
        if ingested is None:
            continue
        if ingested.status == IngestedFile.Status.FAILED:
            errors.append(f"{path.name}: {ingested.reason}")
        else:
            processed += 1
    quarantine_usage_check(model_name=model_name, config=config)
    IngestionRun.objects.filter(pk=run.pk).update(
        files_seen=len(candidates) + others,
        files_processed=processed,
        error="\n".join(errors)[:5000],
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def quarantine_usage_check(*, model_name: str, config: IngestionConfig) -> DiskUsage:
    """The disk the model's quarantine (bad/) takes; a system alert once it passes MLAPP_QUARANTINE_ALERT_MB
    (one per model and threshold crossing day: it is reported, never deleted by us)."""
    usage = quarantine_usage(model_name=model_name)
    limit = config.quarantine_alert_bytes
    if limit and usage.bytes > limit:
        alert_raise(
            kind=Alert.Kind.SYSTEM,
            severity=Severity.WARNING,
            title=f"The quarantine of {model_name} takes {usage.bytes / (1 << 20):,.0f} MB",
            message=(
                f"bad/{model_name}/ holds {usage.entries:,} entries, {usage.bytes / (1 << 20):,.1f} MB, above "
                f"MLAPP_QUARANTINE_ALERT_MB={limit / (1 << 20):g}. Nothing is deleted automatically: review "
                "and remove what is no longer needed."
            ),
            model_name=model_name,
            dedup_key=f"quarantine-size:{model_name}:{timezone.now():%Y-%m-%d}",
        )
    return usage
