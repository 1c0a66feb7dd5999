"""What a retraining learns from, and which rows it is judged on.

The training set is the data the production version learned from (its snapshot, or its original CSV
when it still hashes as recorded: `models_registry.snapshots.version_training_frame`) plus the labelled
rows that came in within the policy's window:

- ``feedback``: predictions of the model that received their actual outcome (features as served);
- ``files``: good rows of ingested files whose original (in archive/) carries the target column.

Rows are typed by the production profile and deduplicated (a labelled row already in the base, or
seen twice, counts once). New rows are those labelled after the production version was trained: none
means no new version. The held-out rows both versions are judged on are chosen before training and
kept out of the challenger's training set: the newest labelled rows when at least twice
``min_eval_rows`` are new (``recent``), else the production version's own test split, rebuilt from its
data with the trainer's split and checked against the hash training recorded (``test_split``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from django.utils import timezone
from sklearn.model_selection import train_test_split

from models_registry import training
from models_registry.models import ChallengerEvaluation, ModelVersion
from models_registry.snapshots import frame_csv_buffer, training_frame_normalise, version_training_frame
from monitoring.models import IngestedFile
from predictions.models import Prediction

logger = logging.getLogger(__name__)

SOURCE_BASE, SOURCE_FEEDBACK, SOURCE_FILES = "base", "feedback", "files"
LABELLED_AT = "__labelled_at__"
SOURCE = "__source__"
RECENT_SHARE = 0.2  # of the new labelled rows held out, when there are enough
MIN_FALLBACK_EVAL_ROWS = 20


@dataclass
class TrainingSet:
    train: pd.DataFrame  # features + target, what the challenger is trained on
    held_out: pd.DataFrame  # features + target, what both versions are judged on
    eval_data: str
    eval_note: str
    rows_by_source: dict
    time_range: dict
    n_new: int
    notes: list[str] = field(default_factory=list)


def feedback_rows(*, model_name: str, profile, since: datetime) -> pd.DataFrame:
    """Predictions of the model that received feedback since `since`: features as served, the actual outcome."""
    actual = "actual_label" if profile.task == "classification" else "actual_value"
    rows = (
        Prediction.objects.filter(model_name=model_name, feedback_at__gte=since)
        .exclude(**{f"{actual}__isnull": True})
        .order_by("feedback_at", "id")
        .values_list("features", actual, "feedback_at")
    )
    records, targets, times = [], [], []
    for features, value, at in rows.iterator(chunk_size=5000):
        records.append(features)
        targets.append(value)
        times.append(at)
    frame = (
        pd.DataFrame.from_records(records, columns=profile.feature_names)
        if records
        else pd.DataFrame(columns=profile.feature_names)
    )
    frame[profile.target] = targets
    frame = training_frame_normalise(frame, profile=profile)
    frame[LABELLED_AT] = (
        pd.to_datetime(pd.Series(times, dtype=object), utc=True) if times else pd.Series(dtype="datetime64[ns, UTC]")
    )
    frame[SOURCE] = SOURCE_FEEDBACK
    return frame


def labelled_file_rows(*, model_name: str, profile, since: datetime) -> tuple[pd.DataFrame, list[str]]:
    """Good rows of the model's ingested files (since `since`) whose original carries the target column:
    the features as validated, the target read from the archived original by row number."""
    frames, notes = [], []
    files = IngestedFile.objects.filter(
        model_name=model_name, status=IngestedFile.Status.DONE, finished_at__gte=since
    ).exclude(good_path="")
    for record in files.order_by("finished_at", "id"):
        good, original = Path(record.good_path), Path(record.archived_path or "")
        if not good.is_file() or not original.is_file():
            continue
        try:
            header = training.training_csv_read(original, display_name=original.name)
        except training.TrainingInputError as exc:
            notes.append(f"{record.original_name}: left out ({exc})")
            continue
        if profile.target not in header.columns:
            continue
        try:
            rows = training.training_csv_read(good, display_name=good.name)
        except training.TrainingInputError as exc:
            notes.append(f"{record.original_name}: good rows left out ({exc})")
            continue
        numbers = pd.to_numeric(rows["row_number"], errors="coerce")
        valid = numbers.between(1, len(header))
        rows = rows[valid]
        rows[profile.target] = header[profile.target].to_numpy()[numbers[valid].astype(int).to_numpy() - 1]
        rows = rows[rows[profile.target].notna()]
        if rows.empty:
            continue
        frame = training_frame_normalise(rows, profile=profile)
        frame[LABELLED_AT] = pd.Timestamp(record.finished_at)
        frame[SOURCE] = SOURCE_FILES
        frames.append(frame)
    if not frames:
        empty = training_frame_normalise(
            pd.DataFrame(columns=[*profile.feature_names, profile.target]), profile=profile
        )
        empty[LABELLED_AT] = pd.Series(dtype="datetime64[ns, UTC]")
        empty[SOURCE] = SOURCE_FILES
        return empty, notes
    return pd.concat(frames, ignore_index=True), notes


def _row_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    return pd.util.hash_pandas_object(frame[columns], index=False)


def _production_test_split(base: pd.DataFrame, record: ModelVersion) -> tuple[pd.Index | None, str]:
    """Positions of `base` rows in the production version's test split, rebuilt with the trainer's split and
    checked against the test-split hash training recorded (None, and why, when it does not match)."""
    try:
        data = training.training_data_prepare(
            csv=frame_csv_buffer(base), target=record.target, task=record.task, source_name="base.csv"
        )
    except training.TrainingInputError as exc:
        return None, f"its data cannot be read again ({exc})"
    y = data.target
    stratify = y if data.task == "classification" and y.value_counts().min() >= training.MIN_ROWS_PER_CLASS else None
    _x_train, x_test, _y_train, y_test = train_test_split(
        data.features, y, test_size=training.TEST_SHARE, random_state=training.SPLIT_SEED, stratify=stratify
    )
    sha = training.frame_sha256(pd.concat([x_test, y_test.rename(record.target)], axis=1))
    if sha != record.test_data_sha256:
        return None, "the rebuilt split does not hash to the one training recorded"
    return x_test.index, ""


def _newest_held_out(labelled: pd.DataFrame, is_new: pd.Series, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The newest `n` new labelled rows, and the labelled rows without them (the challenger never sees them)."""
    newest = labelled[is_new.to_numpy()].sort_values(LABELLED_AT, kind="stable").tail(n)
    return newest, labelled.drop(index=newest.index)


def training_set_assemble(*, record: ModelVersion, window_days: int, min_eval_rows: int) -> TrainingSet:
    """The challenger's training rows and the held-out rows, from `record` (production) and the labels."""
    profile = record.training_profile
    columns = [*profile.feature_names, profile.target]
    now = timezone.now()
    since = now - timedelta(days=window_days)
    base_data = version_training_frame(record)
    notes = [base_data.note]
    base = base_data.frame if base_data.frame is not None else pd.DataFrame(columns=columns)
    feedback = feedback_rows(model_name=record.name, profile=profile, since=since)
    files, file_notes = labelled_file_rows(model_name=record.name, profile=profile, since=since)
    notes.extend(file_notes)
    labelled = (
        pd.concat([frame for frame in (feedback, files) if len(frame)], ignore_index=True)
        if (len(feedback) or len(files))
        else feedback
    )
    if len(labelled):
        keys = _row_keys(labelled, columns)
        fresh = ~keys.duplicated()
        if len(base):
            fresh &= ~keys.isin(set(_row_keys(base, columns)))
        dropped = int((~fresh).sum())
        if dropped:
            notes.append(f"{dropped:,} labelled row(s) left out: already in the base data or seen twice")
        labelled = labelled[fresh.to_numpy()].reset_index(drop=True)
    trained_at = pd.Timestamp(record.created_at)
    is_new = labelled[LABELLED_AT] > trained_at if len(labelled) else pd.Series(dtype=bool)
    n_new = int(is_new.sum())

    held_out = pd.DataFrame(columns=columns)
    if n_new >= 2 * min_eval_rows:
        newest, labelled = _newest_held_out(labelled, is_new, max(min_eval_rows, round(RECENT_SHARE * n_new)))
        n_held, held_out = len(newest), newest[columns]
        eval_data = ChallengerEvaluation.EvalData.RECENT
        eval_note = (
            f"the newest {n_held:,} of {n_new:,} rows labelled since version {record.version} was trained "
            f"({newest[LABELLED_AT].min():%Y-%m-%d %H:%M} to {newest[LABELLED_AT].max():%Y-%m-%d %H:%M} UTC), "
            "kept out of the challenger's training data"
        )
    else:
        reason = f"{n_new:,} new labelled rows, fewer than twice the policy's {min_eval_rows:,}"
        positions, failure = _production_test_split(base, record) if len(base) else (None, base_data.note)
        if positions is not None:
            held_out = base.loc[positions, columns]
            base = base.drop(index=positions)
            eval_data = ChallengerEvaluation.EvalData.TEST_SPLIT
            eval_note = (
                f"version {record.version}'s test split ({len(held_out):,} rows, hash as training recorded; "
                f"{reason}), kept out of the challenger's training data"
            )
        elif n_new >= MIN_FALLBACK_EVAL_ROWS:
            newest, labelled = _newest_held_out(
                labelled, is_new, max(MIN_FALLBACK_EVAL_ROWS, round(RECENT_SHARE * n_new))
            )
            n_held, held_out = len(newest), newest[columns]
            eval_data = ChallengerEvaluation.EvalData.RECENT
            eval_note = (
                f"the newest {n_held:,} new labelled rows ({reason}; the production test split could not be "
                f"used: {failure})"
            )
        else:
            eval_data = ChallengerEvaluation.EvalData.NONE
            eval_note = f"no held-out rows: {reason}, and the production test split could not be used: {failure}"

    parts = [base[columns].assign(**{SOURCE: SOURCE_BASE})] if len(base) else []
    if len(labelled):
        parts.append(labelled[[*columns, SOURCE]])
    train = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*columns, SOURCE])
    rows_by_source = {
        source: int((train[SOURCE] == source).sum()) for source in (SOURCE_BASE, SOURCE_FEEDBACK, SOURCE_FILES)
    }
    time_range = {SOURCE_BASE: {"version": record.version, "trained_at": record.created_at.isoformat()}}
    for source in (SOURCE_FEEDBACK, SOURCE_FILES):
        times = labelled.loc[labelled[SOURCE] == source, LABELLED_AT] if len(labelled) else []
        if len(times):
            time_range[source] = {"from": times.min().isoformat(), "to": times.max().isoformat()}
    return TrainingSet(
        train=train[columns].reset_index(drop=True),
        held_out=held_out.reset_index(drop=True),
        eval_data=eval_data,
        eval_note=eval_note,
        rows_by_source=rows_by_source,
        time_range=time_range,
        n_new=n_new,
        notes=[n for n in notes if n],
    )
