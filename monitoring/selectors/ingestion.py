"""Reads on ingestion: runs, ingested files with their issues, quarantined rows, alerts."""

from __future__ import annotations

import csv
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum

from ..models import Alert, DataQualityIssue, IngestedFile, IngestionRun

PREVIEW_ROWS = 50
PREVIEW_CELL_CHARS = 200  # a longer cell is cut, with an ellipsis
PREVIEW_COLUMNS = 40  # a wide file's preview shows its first columns (row_number and reason first)
RAW_PREVIEW_BYTES = 2048


def ingested_file_list(
    *, model_name: str | None = None, status: str | None = None, run_id: int | None = None
) -> QuerySet[IngestedFile]:
    files = IngestedFile.objects.select_related("run").annotate(n_issues=Count("issues"))
    if model_name is not None:
        files = files.filter(model_name=model_name)
    if status:
        files = files.filter(status=status)
    if run_id:
        files = files.filter(run_id=run_id)
    return files.order_by("-started_at", "-id")


def ingested_file_get(*, pk: int) -> IngestedFile | None:
    return IngestedFile.objects.select_related("run").filter(pk=pk).first()


def ingested_file_issues(*, ingested_file: IngestedFile) -> QuerySet[DataQualityIssue]:
    return ingested_file.issues.order_by("-count", "rule", "column")


def ingestion_run_list(*, model_name: str | None = None, limit: int = 20) -> QuerySet[IngestionRun]:
    runs = IngestionRun.objects.filter(model_name=model_name) if model_name is not None else IngestionRun.objects
    return runs.annotate(
        rows_in=Sum("files__rows_in"),
        rows_good=Sum("files__rows_good"),
        rows_bad=Sum("files__rows_bad"),
        duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()),
    ).order_by("-started_at", "-id")[:limit]


def ingestion_totals(*, model_name: str | None = None) -> dict:
    """Counts over every file ingested so far (for the model, or for all)."""
    files = IngestedFile.objects.filter(model_name=model_name) if model_name is not None else IngestedFile.objects
    runs = IngestionRun.objects.filter(model_name=model_name) if model_name is not None else IngestionRun.objects
    totals = files.aggregate(
        files=Count("id"),
        done=Count("id", filter=Q(status=IngestedFile.Status.DONE)),
        quarantined=Count("id", filter=Q(status=IngestedFile.Status.QUARANTINED)),
        failed=Count("id", filter=Q(status=IngestedFile.Status.FAILED)),
        processing=Count("id", filter=Q(status=IngestedFile.Status.PROCESSING)),
        rows_in=Sum("rows_in", filter=~Q(status__in=[IngestedFile.Status.PROCESSING, IngestedFile.Status.FAILED])),
        rows_good=Sum("rows_good"),
        rows_bad=Sum("rows_bad"),
    )
    for key in ("rows_in", "rows_good", "rows_bad"):
        totals[key] = totals[key] or 0
    totals["bad_share"] = totals["rows_bad"] / totals["rows_in"] if totals["rows_in"] else 0.0
    totals["last_run"] = runs.order_by("-started_at", "-id").first()
    return totals


@dataclass
class QuarantinePreview:
    """The first rows of a file's quarantine: parsed rows with reasons, or the raw start of a rejected file."""

    path: str
    exists: bool
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False
    columns_hidden: int = 0  # columns past PREVIEW_COLUMNS, not shown
    raw_text: str | None = None  # a file rejected whole: its first bytes, decoded leniently
    error: str = ""


def quarantine_preview(*, ingested_file: IngestedFile, limit: int = PREVIEW_ROWS) -> QuarantinePreview:
    path = Path(ingested_file.bad_path) if ingested_file.bad_path else None
    if path is None:
        return QuarantinePreview(path="", exists=False)
    if not ingested_file.is_regular_file or path.is_symlink():
        # A link, a folder, a pipe: never opened, so nothing of what it points at is shown.
        return QuarantinePreview(path=str(path), exists=False, error="not a regular file: its content is not shown")
    if not path.is_file():
        return QuarantinePreview(path=str(path), exists=False, error="the quarantine file is no longer on disk")
    if ingested_file.status == IngestedFile.Status.QUARANTINED:
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as handle:
            head = handle.read(RAW_PREVIEW_BYTES + 1)
        return QuarantinePreview(
            path=str(path),
            exists=True,
            raw_text=head[:RAW_PREVIEW_BYTES].decode("utf-8", errors="replace"),
            truncated=len(head) > RAW_PREVIEW_BYTES,
        )
    preview = QuarantinePreview(path=str(path), exists=True)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            # row_number and reason first: the reason is what a reader looks for.
            first = [header.index(name) for name in ("row_number", "reason") if name in header]
            order = first + [i for i in range(len(header)) if i not in first]
            if len(order) > PREVIEW_COLUMNS:
                order, preview.columns_hidden = order[:PREVIEW_COLUMNS], len(order) - PREVIEW_COLUMNS
            preview.columns = [header[i] for i in order]
            for row in reader:
                if len(preview.rows) >= limit:
                    preview.truncated = True
                    break
                preview.rows.append([_cell(row[i]) if i < len(row) else "" for i in order])
    except (UnicodeDecodeError, csv.Error) as exc:
        preview.error = f"cannot read the quarantine file: {exc}"
    return preview


def _cell(value: str) -> str:
    return value if len(value) <= PREVIEW_CELL_CHARS else value[:PREVIEW_CELL_CHARS] + "…"


def quarantine_rows_as_dicts(*, ingested_file: IngestedFile, limit: int = PREVIEW_ROWS) -> list[dict]:
    preview = quarantine_preview(ingested_file=ingested_file, limit=limit)
    return [dict(zip(preview.columns, row, strict=False)) for row in preview.rows]


ALERT_STATES = ("open", "acknowledged", "all")


def alert_list(*, state: str = "open", kind: str | None = None, model_name: str | None = None) -> QuerySet[Alert]:
    alerts = Alert.objects.select_related("ingested_file", "acknowledged_by")
    if model_name is not None:
        alerts = alerts.filter(model_name=model_name)
    if state == "open":
        alerts = alerts.filter(acknowledged_at=None)
    elif state == "acknowledged":
        alerts = alerts.exclude(acknowledged_at=None)
    if kind:
        alerts = alerts.filter(kind=kind)
    return alerts.order_by("-created_at", "-id")


def alert_get(*, pk: int) -> Alert | None:
    return Alert.objects.select_related("ingested_file", "acknowledged_by").filter(pk=pk).first()


def alert_counts(*, model_name: str | None = None) -> dict:
    alerts = Alert.objects.filter(model_name=model_name) if model_name is not None else Alert.objects
    return alerts.aggregate(
        total=Count("id"), open=Count("id", filter=Q(acknowledged_at=None)), acknowledged=Count("acknowledged_at")
    )


@dataclass(frozen=True)
class DiskUsage:
    entries: int
    bytes: int


def folder_usage(folder: Path) -> DiskUsage:
    """Entries and bytes under ``folder`` (links counted as links, never followed)."""
    entries = size = 0
    if not folder.is_dir():
        return DiskUsage(0, 0)
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            try:
                status = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if root == str(folder):
                entries += 1
            if stat.S_ISREG(status.st_mode):
                size += status.st_size
    return DiskUsage(entries, size)


def quarantine_usage(*, model_name: str) -> DiskUsage:
    """What the model's quarantine folder, bad/<model>/, holds on disk."""
    return folder_usage(Path(settings.MLAPP_DATA_DIR) / "bad" / model_name)
