"""A demo data stream: a new CSV in a model's ``raw/<model>/`` every so often, with faults and drift.

Rows come from `models_registry.demo_data.demo_frame` (the dataset the served
model was trained on, chosen by the profile's target), without the target
column, as production data arrives. A share of rows gets one injected fault
each (missing value, wrong type, out-of-range value, unknown category,
duplicate of another row), every ``broken_every``-th file is an incident
(a file ingestion must quarantine whole, or a very dirty one that crosses the
bad-share alert threshold), and from ``drift_after_minutes`` on the
distributions shift by ``drift``.

Files arrive atomically: written as ``<name>.part``, then renamed, which is the
completeness convention ingestion relies on (see docs/ingestion.md).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from django.utils import timezone

from models_registry.demo_data import DATASETS, DEMO_TARGETS, demo_frame
from models_registry.selectors import production_version_get

logger = logging.getLogger(__name__)

ROW_FAULTS = ("missing", "wrong_type", "out_of_range", "unknown_category", "duplicate")
# Incidents, in the order they come round: each is one whole file.
INCIDENTS = ("dirty", "utf16", "missing_column", "header_only", "not_csv", "empty")
# An incident "dirty" file: well above the default bad-share alert threshold (0.2), counting only the
# faults the default policy quarantines (missing, wrong type, duplicate: 3 of 5 kinds).
DIRTY_FAULT_SHARE = 0.6


class DemoStreamError(ValueError):
    """The stream cannot be set up (no served model, unknown dataset)."""


@dataclass(frozen=True)
class DemoStreamConfig:
    dataset: str
    rows: int = 500
    fault_share: float = 0.05
    broken_every: int = 5  # every n-th file is an incident; 0: never
    drift: float = 0.8
    drift_after_minutes: float | None = 10.0  # None: no drift
    with_target: bool = False

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise DemoStreamError(f"Unknown demo dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.rows < 1:
            raise DemoStreamError("rows must be at least 1")
        if not 0.0 <= self.fault_share <= 1.0:
            raise DemoStreamError("fault share must be between 0 and 1")
        if not 0.0 <= self.drift <= 1.0:
            raise DemoStreamError("drift must be between 0 and 1")
        if self.broken_every < 0:
            raise DemoStreamError("broken_every must be 0 (never) or more")


@dataclass(frozen=True)
class DemoFile:
    path: Path
    rows: int  # data rows written (0 for files that are not CSV)
    incident: str | None
    drift: float
    faults: dict[str, int] = field(default_factory=dict)


def demo_dataset_for_served_model(*, model_name: str) -> str:
    """The demo dataset whose target the model's production version predicts."""
    name = model_name
    record = production_version_get(name)
    if record is None:
        raise DemoStreamError(
            f"{name} has no production version recorded by mlapp: run `manage.py bootstrap`, or pass --dataset"
        )
    target = record.training_profile.target
    for dataset, dataset_target in DEMO_TARGETS.items():
        if dataset_target == target:
            return dataset
    raise DemoStreamError(f"{name} predicts {target!r}, which no demo dataset has: pass --dataset")


def _inject_faults(frame: pd.DataFrame, *, n_faults: int, rng: np.random.Generator) -> tuple[pd.DataFrame, Counter]:
    """Give ``n_faults`` distinct rows one fault each; values become strings where needed."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.astype(object)
    counts: Counter = Counter()
    if n_faults <= 0 or len(frame) < 2:
        return frame, counts
    categorical = [c for c in frame.columns if c not in numeric]
    rows = rng.choice(len(frame), size=min(n_faults, len(frame) - 1), replace=False)
    for position in rows:
        kind = ROW_FAULTS[int(rng.integers(len(ROW_FAULTS)))]
        if kind in ("wrong_type", "out_of_range") and not numeric:
            kind = "missing"
        if kind == "unknown_category" and not categorical:
            kind = "missing"
        index = frame.index[position]
        if kind == "missing":
            frame.at[index, frame.columns[int(rng.integers(len(frame.columns)))]] = None
        elif kind == "wrong_type":
            frame.at[index, numeric[int(rng.integers(len(numeric)))]] = str(rng.choice(["n/a", "twelve", "1,5e", "?"]))
        elif kind == "out_of_range":
            column = numeric[int(rng.integers(len(numeric)))]
            values = pd.to_numeric(frame[column], errors="coerce")
            span = float(values.max() - values.min()) or 1.0
            frame.at[index, column] = float(values.max() + 10 * span) if rng.random() < 0.5 else -10 * span - 1
        elif kind == "unknown_category":
            frame.at[index, categorical[int(rng.integers(len(categorical)))]] = f"unknown-{int(rng.integers(1000))}"
        else:  # an exact copy of another row
            other = frame.index[(position + 1) % len(frame)]
            frame.loc[index] = frame.loc[other]
        counts[kind] += 1
    return frame, counts


def demo_stream_frame(
    *, config: DemoStreamConfig, seed: int, drift: float = 0.0, fault_share: float | None = None
) -> tuple[pd.DataFrame, Counter]:
    """One file's rows, with faults injected."""
    frame = demo_frame(config.dataset, n_rows=config.rows, seed=seed, drift=drift)
    target = DEMO_TARGETS[config.dataset]
    labels = frame.pop(target)
    share = config.fault_share if fault_share is None else fault_share
    rng = np.random.default_rng(seed + 7919)
    frame, faults = _inject_faults(frame, n_faults=round(config.rows * share), rng=rng)
    if config.with_target:  # the labels are the ground truth: faults go into the features only
        frame[target] = labels.to_numpy()
    return frame, faults


def _write_atomic(path: Path, payload: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(payload)
    partial.replace(path)  # the file appears complete, or not at all


def demo_stream_file_write(
    *, config: DemoStreamConfig, raw_dir: Path, seed: int, drift: float = 0.0, incident: str | None = None
) -> DemoFile:
    """Write one demo file into ``raw_dir`` (as ``.part``, then renamed)."""
    if incident is not None and incident not in INCIDENTS:
        raise DemoStreamError(f"Unknown incident {incident!r}; choose one of {', '.join(INCIDENTS)}")
    raw_dir.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    path = raw_dir / f"demo-{config.dataset}-{stamp}-{seed}{'-' + incident if incident else ''}.csv"
    frame, faults = demo_stream_frame(
        config=config, seed=seed, drift=drift, fault_share=DIRTY_FAULT_SHARE if incident == "dirty" else None
    )
    rows = len(frame)
    if incident == "utf16":
        payload = frame.to_csv(index=False).encode("utf-16")
    elif incident == "missing_column":
        payload = frame.drop(columns=[frame.columns[0]]).to_csv(index=False).encode()
    elif incident == "header_only":
        payload = (",".join(frame.columns) + "\n").encode()
        rows = 0
    elif incident == "not_csv":
        payload = np.random.default_rng(seed).integers(0, 256, size=2048, dtype=np.uint8).tobytes()
        rows = 0
    elif incident == "empty":
        payload = b""
        rows = 0
    else:
        payload = frame.to_csv(index=False).encode()
    _write_atomic(path, payload)
    return DemoFile(path=path, rows=rows, incident=incident, drift=drift, faults=dict(faults))


def demo_stream_run(
    *,
    config: DemoStreamConfig,
    every_seconds: float = 60.0,
    max_files: int | None = None,
    raw_dir: Path,
    seed: int | None = None,
    on_file: Callable[[DemoFile], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[DemoFile]:
    """Drop a file into ``raw_dir`` (a model's raw folder) every ``every_seconds``, until ``max_files``
    (forever when None)."""
    first_seed = int(time.time()) if seed is None else seed
    started = clock()
    written = []
    number = 0
    while max_files is None or number < max_files:
        number += 1
        elapsed_minutes = (clock() - started) / 60
        drifting = config.drift_after_minutes is not None and elapsed_minutes >= config.drift_after_minutes
        incident = None
        if config.broken_every and number % config.broken_every == 0:
            incident = INCIDENTS[(number // config.broken_every - 1) % len(INCIDENTS)]
        demo_file = demo_stream_file_write(
            config=config,
            raw_dir=raw_dir,
            seed=first_seed + number,
            drift=config.drift if drifting else 0.0,
            incident=incident,
        )
        written.append(demo_file)
        if on_file is not None:
            on_file(demo_file)
        if max_files is None or number < max_files:
            sleep(every_seconds)
    return written
