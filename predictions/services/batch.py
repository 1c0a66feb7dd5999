"""Batch scoring of an uploaded CSV, run by a Celery worker in chunks.

Each chunk is read by the one CSV reader (`models_registry.csv_reader`), checked
by the model's rule table under its ``batch`` policy (vectorised; a quarantined
row is not scored and carries its reason in the ``error`` column, a warning goes
to ``warnings``), scored with the production model loaded once for the job,
appended to the scored CSV (a .part file renamed at the end) and written to the
inference log in bulk (COPY on PostgreSQL) in one transaction with the job's
cursor and heartbeat (`jobs` lifecycle). A job whose worker was lost is taken
again and resumes after the last committed chunk: the scored CSV is cut back to
what that chunk had written, and the log's unique (job, row) key holds each row once.
"""

from __future__ import annotations

import csv
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction

from core.errors import ApplicationError
from core.files import upload_save
from jobs.services import (
    Claim,
    JobLost,
    job_claim,
    job_enqueue_on_commit,
    job_fail,
    job_heartbeat,
    job_heartbeats,
    job_succeed,
)
from models_registry.csv_limits import CsvLimits, csv_limits_check
from models_registry.csv_reader import CsvReadError, csv_batches, csv_header, header_missing_message
from models_registry.rules import Duplicates, RulePath
from models_registry.serving import ModelUnavailable, loader

from ..models import BatchJob, Source
from .predict import served_model_get
from .store import RowContext, prediction_rows_write

logger = logging.getLogger(__name__)


class BatchFileError(ApplicationError, ValueError):
    """The whole file cannot be scored; the message says why."""


def batch_job_create(*, model_name: str, upload, actor) -> BatchJob:
    """Save an uploaded CSV and queue its scoring by `model_name`'s production version."""
    from ..tasks import batch_job_run_task  # noqa: PLC0415 (tasks import this module)

    directory = Path(settings.MLAPP_UPLOAD_DIR) / "batch"
    job = BatchJob.objects.create(
        model_name=model_name,
        input_path="",
        original_filename=Path(upload.name).name[:255],
        created_by=actor,
    )
    destination = upload_save(upload, directory / f"{job.pk}-input.csv")
    job.input_path = str(destination)
    job.save(update_fields=["input_path"])
    job_enqueue_on_commit(batch_job_run_task, job)
    return job


def _count_rows(path: Path) -> int:
    """Lines after the header, for the progress bar (a quoted newline counts twice; the
    exact count is set when the job ends)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        lines += 1  # no newline after the last row
    return max(lines - 1, 0)


def _chunks(path, features: list[str], *, chunk_rows: int):
    """Text chunks of the file; a file that cannot be read, or lacks a feature column, is a `BatchFileError`."""
    try:
        csv_limits_check(path, limits=CsvLimits.from_settings())  # before the reader allocates for it
        header = csv_header(path)
        missing = header_missing_message(header, features)
        if missing:
            raise BatchFileError(missing.replace("missing required column(s)", "Missing feature column(s)"))
        yield from csv_batches(path, header=header, chunk_rows=chunk_rows)
    except CsvReadError as exc:
        raise BatchFileError(f"The file cannot be scored: {exc}") from exc


def _scored_table(
    chunk: pa.RecordBatch, *, served, outputs, valid: np.ndarray, problems: np.ndarray, warnings: np.ndarray
) -> pa.Table:
    """The chunk as uploaded, then the prediction, class probabilities, the row's warnings and its error.

    Same columns for every chunk, including one where no row was valid.
    """
    columns = {name: chunk.column(name) for name in chunk.schema.names}
    n = chunk.num_rows
    if served.task == "classification":
        classes = outputs.classes if outputs is not None else tuple(served.classes)
        prediction = np.full(n, None, dtype=object)
        probabilities = np.full((n, len(classes)), np.nan)
        if outputs is not None:
            prediction[valid] = outputs.labels
            probabilities[valid] = np.round(outputs.probabilities, 6)
        columns["prediction"] = pa.array(prediction, type=pa.string())
        for i, label in enumerate(classes):
            columns[f"probability_{label}"] = pa.array(probabilities[:, i], from_pandas=True)  # NaN: empty
    else:
        prediction = np.full(n, np.nan)
        if outputs is not None:
            prediction[valid] = outputs.values
        columns["prediction"] = pa.array(prediction, from_pandas=True)
    columns["warnings"] = pa.array(warnings, type=pa.string())
    columns["error"] = pa.array(problems, type=pa.string())
    return pa.table(columns)


def _part_path(job: BatchJob, attempt: int) -> Path:
    """Each attempt writes its own scored file: one that lost its claim cannot touch the next one's."""
    return Path(job.input_path).with_name(f"{job.pk}-scored.{attempt}.csv.part")


def _output_path(job: BatchJob) -> Path:
    return Path(job.input_path).with_name(f"{job.pk}-scored.csv")


def _copy_committed(job: BatchJob, *, cursor: _Cursor, target: Path) -> None:
    """Start `target` with the bytes the committed chunks wrote (what an earlier attempt left)."""
    source = _part_path(job, cursor.part)
    if not source.exists():
        source = _output_path(job)  # that attempt finished the file but was lost before recording it
    size = source.stat().st_size if source.exists() else 0
    if size < cursor.output_bytes:
        raise BatchFileError(
            f"The partly scored file has {size} bytes, fewer than the {cursor.output_bytes} its committed "
            "chunks wrote (deleted, or on another machine): upload the file again"
        )
    with source.open("rb") as reader, target.open("wb") as writer:
        left = cursor.output_bytes
        while left and (block := reader.read(min(left, 1 << 22))):
            writer.write(block)
            left -= len(block)


class _ScoredCsv:
    """The scored CSV: the header by Python's csv module (Arrow quotes every column
    name), the rows by Arrow's CSV writer (C++, ~6x pandas' to_csv here).

    `resume_at`: the file already holds the committed chunks' bytes; writing goes on after them.
    """

    def __init__(self, path: Path, *, resume_at: int = 0):
        self.path = path
        self.resume_at = resume_at
        self.handle = None
        self.writer = None

    def write(self, table: pa.Table) -> int:
        """Append `table`; returns the file's size after it."""
        if self.writer is None:
            if self.resume_at:
                self.handle = self.path.open("ab")
            else:
                with self.path.open("w", newline="", encoding="utf-8") as header:
                    csv.writer(header).writerow(table.column_names)
                self.handle = self.path.open("ab")
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            self.writer = pacsv.CSVWriter(self.handle, table.schema, write_options=options)
        self.writer.write_table(table)
        self.handle.flush()
        return self.handle.tell()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.handle is not None:
            self.handle.close()


@dataclass
class _Cursor:
    """Where a job stands after its last committed chunk (stored in `BatchJob.cursor`)."""

    chunk_rows: int
    chunks_done: int = 0
    part: int = 0  # the attempt whose scored file holds the committed bytes
    output_bytes: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    classes: dict = field(default_factory=dict)  # classification: predicted label -> rows
    values: dict = field(default_factory=dict)  # regression: min, max, sum, count

    def add(self, *, outputs, scored: int, rejected: int, output_bytes: int) -> None:
        self.chunks_done += 1
        self.output_bytes = output_bytes
        self.rows_scored += scored
        self.rows_rejected += rejected
        if outputs is None:
            return
        if outputs.labels is not None:
            labels, counts = np.unique(outputs.labels.astype(str), return_counts=True)
            for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
                self.classes[label] = self.classes.get(label, 0) + count
        else:
            values = np.asarray(outputs.values, dtype=float)
            seen = self.values
            self.values = {
                "min": min(seen.get("min", np.inf), float(values.min())),
                "max": max(seen.get("max", -np.inf), float(values.max())),
                "sum": seen.get("sum", 0.0) + float(values.sum()),
                "count": seen.get("count", 0) + len(values),
            }

    def summary(self, *, seconds: float) -> dict:
        summary = {"rows_scored": self.rows_scored, "rows_rejected": self.rows_rejected, "seconds": round(seconds, 2)}
        if self.classes:
            summary["predicted_classes"] = dict(sorted(self.classes.items()))
        if self.values:
            summary["predicted_values"] = {
                "min": self.values["min"],
                "mean": self.values["sum"] / self.values["count"],
                "max": self.values["max"],
            }
        return summary


def _chunk_commit(*, claim: Claim, rows: dict | None, cursor: dict, rows_done: int) -> None:
    """One chunk's rows and the job's cursor, in one transaction, only while the claim holds."""
    with transaction.atomic():
        if rows is not None:
            prediction_rows_write(**rows)
        job_heartbeat(claim, cursor=cursor, rows_done=rows_done)  # JobLost: the rows roll back too


@contextmanager
def _chunk_committer():
    """Call `_chunk_commit` on another thread and connection, one chunk in flight.

    The server stores chunk k while this thread validates and predicts chunk k+1.
    A second connection sees committed rows only, so inside a transaction (tests)
    the writes run inline on the caller's connection; so they do on SQLite (one writer).
    """
    if connection.in_atomic_block or connection.vendor != "postgresql":
        yield lambda **kwargs: _chunk_commit(**kwargs)
        return
    pending = []

    def in_thread(kwargs):
        try:
            return _chunk_commit(**kwargs)
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer") as pool:

        def submit(**kwargs):
            if pending:
                pending.pop().result()  # at most one chunk in flight; re-raises its error
            pending.append(pool.submit(in_thread, kwargs))

        try:
            yield submit
        finally:
            while pending:
                pending.pop().result()


def _feature_columns(chunk: pa.RecordBatch, features: list[str]) -> dict[str, pa.Array]:
    """The chunk's columns, the model's features first (every column counts for duplicates)."""
    names = [*features, *(name for name in chunk.schema.names if name not in features)]
    return {name: chunk.column(name) for name in names}


def _served_for(job: BatchJob):
    """The production version when the job starts; the same version when it is taken again."""
    if job.model_version is not None:
        return loader().get_version(job.model_name, job.model_version)
    return served_model_get(job.model_name)


def _score(job: BatchJob, claim: Claim, *, partial: Path) -> _Cursor:
    served = _served_for(job)
    cursor = _Cursor(**job.cursor) if job.cursor else _Cursor(chunk_rows=settings.MLAPP_BATCH_CHUNK_ROWS)
    rows_total = _count_rows(Path(job.input_path))
    job_heartbeat(claim, rows_total=rows_total, model_version=served.version)
    context = RowContext(source=Source.BATCH, request_id=f"batch:{job.pk}", batch_job_id=job.pk)
    if cursor.output_bytes:
        _copy_committed(job, cursor=cursor, target=partial)
    cursor.part = claim.attempt
    scored_csv = _ScoredCsv(partial, resume_at=cursor.output_bytes)
    table = served.rule_table()
    duplicates = Duplicates()
    first_row = 1  # the file's row number of the chunk's first row
    with _chunk_committer() as commit, closing(scored_csv):
        chunks = _chunks(Path(job.input_path), served.feature_names, chunk_rows=cursor.chunk_rows)
        for number, chunk in enumerate(chunks):
            check = table.chunk_check(
                _feature_columns(chunk, served.feature_names), path=RulePath.BATCH, duplicates=duplicates
            )  # also for a chunk an earlier attempt committed: duplicates are found across the whole file
            chunk_first_row, first_row = first_row, first_row + chunk.num_rows
            if number < cursor.chunks_done:
                continue  # committed by an earlier attempt
            valid = ~check.stopped
            outputs = rows = None
            if valid.any():
                # Typed from the same parse: the model and the inference log get numbers as numbers.
                features = check.model_input(table)[valid]
                outputs = served.predict_model_input(features)
                rows = {
                    "served": served,
                    "features": features,
                    "outputs": outputs,
                    "context": context,
                    "row_numbers": np.flatnonzero(valid) + chunk_first_row,
                }
            size = scored_csv.write(
                _scored_table(
                    chunk,
                    served=served,
                    outputs=outputs,
                    valid=valid,
                    problems=check.reasons(stop=True, table=table),
                    warnings=check.reasons(stop=False, table=table),
                )
            )
            cursor.add(outputs=outputs, scored=int(valid.sum()), rejected=int((~valid).sum()), output_bytes=size)
            commit(claim=claim, rows=rows, cursor=asdict(cursor), rows_done=cursor.rows_scored + cursor.rows_rejected)
    if cursor.rows_scored + cursor.rows_rejected == 0:
        raise BatchFileError("The file has a header but no data rows")
    return cursor


def batch_job_run(*, job_id: int) -> BatchJob:
    """Score the job's file, resuming after its last committed chunk if it was taken again.

    A duplicate delivery, or one for a job another worker holds, does nothing.
    """
    claim = job_claim(model=BatchJob, pk=job_id)
    job = BatchJob.objects.get(pk=job_id)
    if claim is None:
        return job
    output, partial = _output_path(job), _part_path(job, claim.attempt)
    started = time.perf_counter()
    try:
        # Beats from a thread too: the model load, the row count or a slow chunk may outlast the stale timeout.
        # (Not inside a transaction, i.e. a test: the thread's own connection would wait on the job row's lock.)
        with nullcontext() if connection.in_atomic_block else job_heartbeats(claim):
            cursor = _score(job, claim, partial=partial)
        partial.replace(output)
        for earlier in range(1, claim.attempt):
            _part_path(job, earlier).unlink(missing_ok=True)
        job_succeed(
            claim,
            output_path=str(output),
            summary=cursor.summary(seconds=time.perf_counter() - started),
            rows_total=cursor.rows_scored + cursor.rows_rejected,
            rows_done=cursor.rows_scored + cursor.rows_rejected,
        )
    except JobLost:
        logger.warning("Batch job %s was taken back from this worker; it stops here", job.pk)
    except (BatchFileError, ModelUnavailable) as exc:
        partial.unlink(missing_ok=True)
        job_fail(claim, error=str(exc))
    except SoftTimeLimitExceeded:
        partial.unlink(missing_ok=True)
        job_fail(claim, error=f"Stopped after its time limit ({settings.MLAPP_JOB_TIME_LIMIT_SECONDS} s)")
    except Exception:
        partial.unlink(missing_ok=True)
        logger.exception("Batch job %s failed", job.pk)
        job_fail(claim, error="Internal error while scoring (see the worker log)")
        raise
    return BatchJob.objects.get(pk=job.pk)
