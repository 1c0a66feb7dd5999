"""Time from a drift alert to a promoted challenger on the demo stream (embedded defaults, one process).

    .venv/bin/python bench/retrain_loop.py [--files-calm 3] [--files-drift 3] [--rows 500]

A fresh var/ (SQLite, MLflow SQLite store), `manage.py bootstrap` (the demo model `churn-demo` trained
on 5,000 generated rows, its retrain policy: drift trigger on), then the demo stream with labels
(`demo_stream --labels`: each file carries `churned`): calm files, then drifted ones (drift 1.0, with
the demo's concept shift). After each file, what beat runs: ingestion, scheduled scoring, the model's
scheduled drift check. Celery is eager here, so the drift trigger's retraining pass runs inside the
check that raised the alert, as a worker would run it at once.

Measured: from the drift alert (the report's creation) to the promotion (the `auto_promote` alias move),
and its parts from the job's stages; the peer in the same run: `model_train` alone on the same rows the
pass trained on (the trainer's own cost, which the pass cannot go below). Target: the pass at most
3 x the plain training (data assembly, snapshot, comparison and promotion cost no more than two
trainings), and the alert promoted in under 120 s on the 2-core box.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 3.0
TARGET_SECONDS = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files-calm", type=int, default=3)
    parser.add_argument("--files-drift", type=int, default=3)
    parser.add_argument("--rows", type=int, default=500)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="mlapp-bench-retrain-"))
    env = {
        **os.environ,
        "DEBUG": "1",
        "MLAPP_VAR_DIR": str(var),
        "OMP_NUM_THREADS": "1",
        "DJANGO_SETTINGS_MODULE": "mlapp.settings",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "MLAPP_INGEST_MIN_AGE_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    for command in (["migrate", "-v0"], ["bootstrap"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return _run(args)


def _run(args) -> int:
    from models_registry.demo_data import DEMO_MODEL_NAME
    from models_registry.models import AliasChange
    from models_registry.snapshots import frame_csv_buffer, training_snapshot_read
    from models_registry.training import model_train
    from monitoring.services.demo_stream import DemoStreamConfig, demo_stream_file_write
    from monitoring.services.drift import DriftCheckError, drift_report_create
    from monitoring.services.ingestion import data_folders, ingestion_run_execute
    from predictions.services.scheduled import scheduled_scoring_run
    from retraining.models import RetrainJob, RetrainPolicy

    name = DEMO_MODEL_NAME
    policy = RetrainPolicy.objects.get(model_name=name)
    print(f"policy of {name}: drift trigger {policy.drift_trigger}, every {policy.schedule_every_minutes} min")
    config = DemoStreamConfig(dataset="churn", rows=args.rows, broken_every=0, with_target=True)
    raw = data_folders(name)["raw"]
    alert_at = None
    for number in range(1, args.files_calm + args.files_drift + 1):
        drift = 1.0 if number > args.files_calm else 0.0
        demo_stream_file_write(config=config, raw_dir=raw, seed=9000 + number, drift=drift)
        ingestion_run_execute(model_name=name)
        scheduled_scoring_run(model_name=name)
        started = time.perf_counter()
        try:
            report = drift_report_create(model_name=name, scheduled=True)
        except DriftCheckError as exc:
            print(f"file {number}: {exc}")
            continue
        elapsed = time.perf_counter() - started
        print(f"file {number} (drift {drift}): dataset drift {report.dataset_drift}, check + trigger {elapsed:.1f} s")
        if report.dataset_drift and alert_at is None:
            alert_at = report.created_at
            break
    if alert_at is None:
        print("FAIL: the drift was never flagged")
        return 1
    job = RetrainJob.objects.filter(model_name=name).first()
    promotion = AliasChange.objects.filter(
        model_name=name, alias="production", action=AliasChange.Action.AUTO_PROMOTE
    ).first()
    print(f"retrain #{job.pk}: {job.status}, {job.get_outcome_display()}: {job.outcome_text}")
    if promotion is None:
        print("FAIL: no promotion")
        return 1
    seconds = (promotion.created_at - alert_at).total_seconds()
    pass_seconds = (job.finished_at - job.started_at).total_seconds()
    rows = training_snapshot_read(job.model_version.snapshot)
    started = time.perf_counter()
    model_train(csv=frame_csv_buffer(rows), target="churned", name="bench-peer", actor_label="bench")
    peer = time.perf_counter() - started
    print(f"rows trained on: {len(rows):,} ({job.rows_by_source})")
    print(f"drift alert -> promoted challenger: {seconds:.1f} s (the pass: {pass_seconds:.1f} s)")
    print(f"peer, model_train alone on the same rows: {peer:.1f} s; pass / peer = {pass_seconds / peer:.2f}")
    ok = seconds <= TARGET_SECONDS and pass_seconds / peer <= TARGET_RATIO
    print(("PASS" if ok else "FAIL") + f": targets {TARGET_SECONDS:.0f} s and {TARGET_RATIO:g} x the plain training")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
