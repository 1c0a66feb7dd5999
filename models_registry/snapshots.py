"""Training-data snapshots: the exact rows a version was trained on, kept beside its MLflow run.

A snapshot is one parquet file (zstd-compressed, columnar) of the training set —
the model's features in training order and its target — logged as an artifact of
the version's run (``snapshot/training-data.parquet``) and recorded in
`TrainingSnapshot` with its full-content hash (`training.frame_sha256` of the rows,
typed as the profile types them), the row count per source and the time range.
`training_snapshot_read` reads any version's rows back (and checks the hash), so a
version's data can be rebuilt and audited, and the next retraining starts from it.

`version_training_frame` finds what a version learned from: its snapshot, or for a
version trained before snapshots (the bootstrap, the training page) its original
CSV when it is still on disk and hashes to what training recorded.
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from . import mlflow_access
from .features import frame_coerce
from .models import ModelVersion, TrainingJob, TrainingSnapshot
from .profile import NUMERIC, TrainingProfile
from .training import TrainingInputError, frame_sha256, training_csv_read, training_data_prepare

logger = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshot"
SNAPSHOT_FILE = "training-data.parquet"
SNAPSHOT_COMPRESSION = "zstd"


class SnapshotError(RuntimeError):
    """A snapshot cannot be read back as recorded (missing artifact, hash differs)."""


def snapshot_columns(profile: TrainingProfile) -> tuple[list[str], list[str]]:
    numeric = [f.name for f in profile.features if f.kind == NUMERIC]
    categorical = [f.name for f in profile.features if f.kind != NUMERIC]
    return numeric, categorical


def training_frame_normalise(frame: pd.DataFrame, *, profile: TrainingProfile) -> pd.DataFrame:
    """The profile's features in training order, typed as training types them, and the target
    (text for a classifier, float for a regressor), on a fresh 0..n-1 index."""
    numeric, categorical = snapshot_columns(profile)
    missing = [c for c in [*profile.feature_names, profile.target] if c not in frame.columns]
    if missing:
        raise TrainingInputError(f"the training rows have no column(s) {', '.join(map(repr, missing))}")
    features = frame_coerce(frame[profile.feature_names], numeric=numeric, categorical=categorical)
    target = frame[profile.target]
    if profile.task == "classification":
        target = pd.Series(target.astype(str).to_numpy(dtype=object), index=frame.index)
    else:
        target = pd.to_numeric(target, errors="coerce").astype("float64")
    return pd.concat([features, target.rename(profile.target)], axis=1).reset_index(drop=True)


def snapshot_sha256(frame: pd.DataFrame) -> str:
    return frame_sha256(frame)


def _parquet_write(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    partial = path.with_name(path.name + ".part")
    pq.write_table(table, partial, compression=SNAPSHOT_COMPRESSION)
    partial.replace(path)


def training_snapshot_record(
    *,
    model_version: ModelVersion,
    frame: pd.DataFrame,
    rows_by_source: dict,
    time_range: dict,
    notes: list[str] | None = None,
) -> TrainingSnapshot:
    """Log `frame` (normalised) as the version's snapshot artifact and record it; the hash is taken
    from the rows as read back from the written file, so a later read checks against the same bytes."""
    profile = model_version.training_profile
    frame = training_frame_normalise(frame, profile=profile)
    with tempfile.TemporaryDirectory(prefix="mlapp-snapshot-") as folder:
        path = Path(folder) / SNAPSHOT_FILE
        _parquet_write(frame, path)
        sha = snapshot_sha256(training_frame_normalise(pq.read_table(path).to_pandas(), profile=profile))
        mlflow_access.client().log_artifact(model_version.run_id, str(path), artifact_path=SNAPSHOT_DIR)
        size = path.stat().st_size
    client = mlflow_access.client()
    client.set_tag(model_version.run_id, "mlapp.snapshot_sha256", sha)
    client.log_param(model_version.run_id, "snapshot_rows", len(frame))
    for source, count in rows_by_source.items():
        client.log_param(model_version.run_id, f"snapshot_rows.{source}", count)
    return TrainingSnapshot.objects.create(
        model_version=model_version,
        sha256=sha,
        n_rows=len(frame),
        rows_by_source=rows_by_source,
        time_range=time_range,
        columns=list(frame.columns),
        artifact_path=f"{SNAPSHOT_DIR}/{SNAPSHOT_FILE}",
        artifact_bytes=size,
        notes=notes or [],
    )


def training_snapshot_read(snapshot: TrainingSnapshot) -> pd.DataFrame:
    """The snapshot's rows, read from the artifact store; raises SnapshotError if the hash differs."""
    mlflow_access.tracking_configure()
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=snapshot.model_version.run_id, artifact_path=snapshot.artifact_path
        )
    except Exception as exc:  # the store's failures come in many types
        raise SnapshotError(f"the snapshot of {snapshot.model_version} cannot be read: {exc}") from exc
    frame = training_frame_normalise(pq.read_table(local).to_pandas(), profile=snapshot.model_version.training_profile)
    sha = snapshot_sha256(frame)
    if sha != snapshot.sha256:
        raise SnapshotError(
            f"the snapshot of {snapshot.model_version} hashes to {sha[:12]}…, recorded {snapshot.sha256[:12]}…"
        )
    return frame


@dataclass(frozen=True)
class VersionData:
    frame: pd.DataFrame | None  # normalised; None: not available
    source: str  # "snapshot", "csv", or "" when not available
    note: str


def _csv_candidates(record: ModelVersion) -> list[Path]:
    paths = [Path(p) for p in TrainingJob.objects.filter(model_version=record).values_list("csv_path", flat=True)]
    if record.source_name:
        paths.append(Path(settings.VAR_DIR) / "demo" / Path(record.source_name).name)
    return [p for p in dict.fromkeys(paths) if p.is_file()]


def _csv_matches(record: ModelVersion, path: Path) -> bool:
    """Whether the CSV gives the trainer exactly the rows `record` was trained on (its recorded hash)."""
    recorded = (record.params or {}).get("data_sha256")
    if not recorded:
        return False
    try:
        data = training_data_prepare(csv=path, target=record.target, task=record.task, source_name=path.name)
    except TrainingInputError:
        return False
    return frame_sha256(pd.concat([data.features, data.target.rename(record.target)], axis=1)) == recorded


def version_training_frame(record: ModelVersion) -> VersionData:
    """What `record` learned from: its snapshot, else its original CSV if it still hashes as recorded."""
    snapshot = TrainingSnapshot.objects.filter(model_version=record).first()
    profile = record.training_profile
    if snapshot is not None:
        try:
            frame = training_snapshot_read(snapshot)
        except SnapshotError as exc:
            return VersionData(frame=None, source="", note=str(exc))
        return VersionData(
            frame=frame, source="snapshot", note=f"version {record.version}'s snapshot ({snapshot.n_rows:,} rows)"
        )
    for path in _csv_candidates(record):
        if _csv_matches(record, path):
            raw = training_csv_read(path, display_name=path.name)
            raw = raw[raw[record.target].notna()]
            return VersionData(
                frame=training_frame_normalise(raw, profile=profile),
                source="csv",
                note=f"version {record.version}'s training CSV {path.name} ({len(raw):,} rows, hash as recorded)",
            )
    return VersionData(
        frame=None,
        source="",
        note=f"the data version {record.version} learned from is not available (no snapshot; its CSV "
        f"{record.source_name or '(unnamed)'} is gone or no longer hashes as recorded)",
    )


def frame_csv_buffer(frame: pd.DataFrame) -> io.StringIO:
    """The rows as the CSV the trainer reads (its one entry point takes a CSV)."""
    buffer = io.StringIO(frame.to_csv(index=False))
    buffer.seek(0)
    return buffer
