"""Batch scoring of an uploaded CSV, run by a Celery worker in chunks.

Each chunk is validated (vectorised), scored with the production model loaded
once for the job, written to the inference log in bulk (COPY on PostgreSQL) and
appended to the scored CSV (a .part file renamed at the end).
"""

from __future__ import annotations

import csv
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from django.conf import settings
from django.db import connection
from django.utils import timezone

from mlapp.task_queue import job_enqueue_on_commit
from models_registry.files import upload_save
from models_registry.serving import ModelUnavailable

from ..models import BatchJob, Source
from ..validation import frame_missing_columns, frame_validate
from .predict import served_model_get
from .store import RowContext, prediction_rows_write

logger = logging.getLogger(__name__)
CHUNK_ROWS = 50_000


class BatchFileError(ValueError):
    """The whole file cannot be scored; the message says why."""


def batch_job_create(*, model_name: str, upload, actor) -> BatchJob:
    """Save an uploaded CSV and queue its scoring by `model_name`'s production version."""
    from ..tasks import batch_job_run_task

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


def _chunks(path: Path):
    try:
        yield from pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise BatchFileError("The file is empty: expected a header row and data rows") from exc
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"The file is not UTF-8 text (byte {exc.start}): expected a CSV") from exc
    except pd.errors.ParserError as exc:
        raise BatchFileError(f"The file is not a valid CSV: {exc}") from exc


def _scored_table(chunk: pd.DataFrame, *, served, outputs, valid: np.ndarray, problems: pd.Series) -> pa.Table:
    """The chunk as uploaded, then the prediction, class probabilities and the row's error.

    Same columns for every chunk, including one where no row was valid.
    """
    columns = {name: pa.array(chunk[name].to_numpy(dtype=object), type=pa.string()) for name in chunk.columns}
    n = len(chunk)
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
    columns["error"] = pa.array(problems.to_numpy(dtype=object), type=pa.string())
    return pa.table(columns)


class _ScoredCsv:
    """The scored CSV: the header by Python's csv module (Arrow quotes every column
    name), the rows by Arrow's CSV writer (C++, ~6x pandas' to_csv here)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = None
        self.writer = None

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            with self.path.open("w", newline="", encoding="utf-8") as header:
                csv.writer(header).writerow(table.column_names)
            self.handle = self.path.open("ab")
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            self.writer = pacsv.CSVWriter(self.handle, table.schema, write_options=options)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.handle is not None:
            self.handle.close()


@contextmanager
def _row_writer():
    """Call `prediction_rows_write` on another thread and connection, one chunk in flight.

    The server stores chunk k while this thread validates and predicts chunk k+1.
    A second connection sees committed rows only, so inside a transaction (tests)
    the writes run inline on the caller's connection; so they do on SQLite (one writer).
    """
    if connection.in_atomic_block or connection.vendor != "postgresql":
        yield lambda **kwargs: prediction_rows_write(**kwargs)
        return
    pending = []

    def in_thread(kwargs):
        try:
            return prediction_rows_write(**kwargs)
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


def batch_job_run(*, job_id: int) -> BatchJob:
    """Score the job's file; idempotent for duplicate deliveries (claimed once)."""
    claimed = BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.QUEUED).update(
        status=BatchJob.Status.RUNNING, started_at=timezone.now()
    )
    job = BatchJob.objects.get(pk=job_id)
    if not claimed:
        return job
    output = Path(job.input_path).with_name(f"{job.pk}-scored.csv")
    partial = output.with_suffix(".csv.part")
    started = time.perf_counter()
    try:
        served = served_model_get(job.model_name)
        rows_total = _count_rows(Path(job.input_path))
        BatchJob.objects.filter(pk=job.pk).update(rows_total=rows_total, model_version=served.version)
        scored = rejected = 0
        outputs_seen: list = []
        scored_csv = _ScoredCsv(partial)
        with _row_writer() as rows_write, closing(scored_csv):
            for chunk in _chunks(Path(job.input_path)):
                missing = frame_missing_columns(chunk, served.profile)
                if missing:
                    raise BatchFileError(f"Missing feature column(s): {', '.join(missing)}")
                check = frame_validate(chunk, served.profile)
                valid = check.valid
                outputs = None
                if valid.any():
                    # Typed by validation: the model and the inference log get numbers as numbers.
                    features = check.model_input[valid]
                    outputs = served.predict_model_input(features)
                    rows_write(
                        served=served,
                        features=features,
                        outputs=outputs,
                        context=RowContext(source=Source.BATCH, request_id=f"batch:{job.pk}", batch_job_id=job.pk),
                    )
                    outputs_seen.append(outputs.labels if outputs.labels is not None else outputs.values)
                scored_csv.write(
                    _scored_table(chunk, served=served, outputs=outputs, valid=valid, problems=check.problems)
                )
                scored += int(valid.sum())
                rejected += int((~valid).sum())
                BatchJob.objects.filter(pk=job.pk).update(rows_done=scored + rejected)
        if scored + rejected == 0:
            raise BatchFileError("The file has a header but no data rows")
        partial.replace(output)
    except (BatchFileError, ModelUnavailable) as exc:
        partial.unlink(missing_ok=True)
        BatchJob.objects.filter(pk=job.pk).update(
            status=BatchJob.Status.FAILED, error=str(exc), finished_at=timezone.now()
        )
        return BatchJob.objects.get(pk=job.pk)
    except Exception:
        partial.unlink(missing_ok=True)
        logger.exception("Batch job %s failed", job.pk)
        BatchJob.objects.filter(pk=job.pk).update(
            status=BatchJob.Status.FAILED,
            error="Internal error while scoring (see the worker log)",
            finished_at=timezone.now(),
        )
        raise
    summary = {"rows_scored": scored, "rows_rejected": rejected, "seconds": round(time.perf_counter() - started, 2)}
    if outputs_seen:
        everything = np.concatenate(outputs_seen)
        if served.task == "classification":
            labels, counts = np.unique(everything.astype(str), return_counts=True)
            summary["predicted_classes"] = {str(k): int(v) for k, v in zip(labels, counts, strict=True)}
        else:
            summary["predicted_values"] = {
                "min": float(everything.min()),
                "mean": float(everything.mean()),
                "max": float(everything.max()),
            }
    BatchJob.objects.filter(pk=job.pk).update(
        status=BatchJob.Status.SUCCEEDED,
        output_path=str(output),
        summary=summary,
        rows_total=scored + rejected,
        rows_done=scored + rejected,
        finished_at=timezone.now(),
    )
    return BatchJob.objects.get(pk=job.pk)
