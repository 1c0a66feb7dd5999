"""Batch scoring benchmark: a large CSV scored end to end, against the floor.

    .venv/bin/python bench/batch.py [--rows 1000000]

On a scratch PostgreSQL database (created and dropped here), with the demo model:
- ours: `batch_job_run` on the CSV: read in chunks, validate, predict, write the
  prediction rows to PostgreSQL (COPY) and the scored CSV;
- floor: bulk `predict` on the same rows + a binary COPY of as many rows of the
  same shape into a scratch copy of the predictions table;
- Django `bulk_create` of the same rows (measured on a sample, extrapolated).
Targets: ours >= 0.5x the floor's rows/s and >= 5x bulk_create's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "mlapp_bench_batch"
PG = "postgres://postgres@127.0.0.1:5432"


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", sql], check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bulk-create-sample", type=int, default=20_000)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="mlapp-bench-batch-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{DB}",
        "DEBUG": "1",
        "MLAPP_VAR_DIR": str(var),
        "OMP_NUM_THREADS": "1",
        "DJANGO_SETTINGS_MODULE": "mlapp.settings",
        "LOG_LEVEL": "WARNING",
    }
    _psql(f"DROP DATABASE IF EXISTS {DB}")
    _psql(f"CREATE DATABASE {DB}")
    try:
        for command in (["migrate", "-v0"], ["bootstrap"]):
            subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
            )
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        _run(args, var)
    finally:
        from django.db import connections

        connections.close_all()
        _psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def _as_is(text: str) -> str:
    return text  # already JSON: the floor does not pay for serialising it twice


def _run(args, var: Path):
    import numpy as np
    import pandas as pd
    from django.db import connection
    from psycopg.types.json import Jsonb

    from models_registry.demo_data import DEMO_MODEL_NAME, churn_frame
    from predictions.models import BatchJob, Prediction
    from predictions.services.batch import batch_job_run
    from predictions.services.predict import served_model_get

    served = served_model_get(DEMO_MODEL_NAME)
    csv_path = var / "score-me.csv"
    churn_frame(n_rows=args.rows, seed=42).drop(columns=["churned"]).to_csv(csv_path, index=False)
    print(f"{args.rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB CSV, model {served.name} v{served.version}")

    # Ours, end to end.
    job = BatchJob.objects.create(model_name=served.name, input_path=str(csv_path), original_filename="score-me.csv")
    started = time.perf_counter()
    job = batch_job_run(job_id=job.pk)
    ours = time.perf_counter() - started
    assert job.status == "succeeded", job.error
    stored = Prediction.objects.filter(batch_job=job).count()
    assert stored == args.rows, stored

    # Floor: bulk predict + binary COPY of as many rows of the same shape.
    frame = pd.read_csv(csv_path)
    started = time.perf_counter()
    outputs = served.predict_frame(frame)
    predict_seconds = time.perf_counter() - started
    features_json = frame.to_json(orient="records", lines=True).splitlines()
    probabilities = np.round(outputs.probabilities, 6)
    table = Prediction._meta.db_table
    columns = (
        "created_at, model_name, model_version, run_id, source, request_id, features, predicted_label, probabilities"
    )
    now = job.created_at
    copy_seconds = {}
    # "logged": a plain table, durable like the real one (its rows go through the WAL);
    # "temp": a temporary table, no WAL: a lower bound no writer into the real table can reach.
    for kind, create in (("logged", "CREATE TABLE"), ("temp", "CREATE TEMP TABLE")):
        with connection.cursor() as cursor:
            cursor.execute(f"{create} floor_copy_{kind} (LIKE {table} INCLUDING ALL)")
            pg = cursor.connection
            started = time.perf_counter()
            with (
                pg.cursor() as raw,
                raw.copy(f"COPY floor_copy_{kind} ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy,
            ):
                copy.set_types(
                    ["timestamptz", "varchar", "int4", "varchar", "varchar", "varchar", "jsonb", "varchar", "jsonb"]
                )
                for i in range(args.rows):
                    copy.write_row(
                        (
                            now,
                            served.name,
                            served.version,
                            served.run_id,
                            "batch",
                            "floor",
                            Jsonb(features_json[i], dumps=_as_is),
                            outputs.labels[i],
                            Jsonb(dict(zip(outputs.classes, probabilities[i].tolist(), strict=True))),
                        )
                    )
            copy_seconds[kind] = time.perf_counter() - started
            cursor.execute(f"DROP TABLE floor_copy_{kind}")
    temp_floor = predict_seconds + copy_seconds["temp"]
    copy_seconds = copy_seconds["logged"]
    floor = predict_seconds + copy_seconds

    # Django bulk_create on a sample, extrapolated.
    sample = args.bulk_create_sample
    objects = [
        Prediction(
            created_at=now,
            model_name=served.name,
            model_version=served.version,
            run_id=served.run_id,
            source="batch",
            request_id="bulk",
            features=json.loads(features_json[i]),
            predicted_label=outputs.labels[i],
            probabilities=dict(zip(outputs.classes, probabilities[i].tolist(), strict=True)),
        )
        for i in range(sample)
    ]
    started = time.perf_counter()
    Prediction.objects.bulk_create(objects, batch_size=2000)
    bulk_seconds = (time.perf_counter() - started) * args.rows / sample

    rate = args.rows / ours
    print(f"{'path':<44}{'seconds':>10}{'rows/s':>12}")
    print(f"{'ours: read+validate+predict+COPY+scored CSV':<44}{ours:>10.1f}{rate:>12,.0f}")
    print(f"{'floor: bulk predict':<44}{predict_seconds:>10.1f}")
    print(f"{'floor: binary COPY':<44}{copy_seconds:>10.1f}")
    print(f"{'floor: predict + COPY':<44}{floor:>10.1f}{args.rows / floor:>12,.0f}")
    print(f"{'(floor with COPY into a TEMP table, no WAL)':<44}{temp_floor:>10.1f}{args.rows / temp_floor:>12,.0f}")
    print(f"{'Django bulk_create (extrapolated)':<44}{bulk_seconds:>10.1f}{args.rows / bulk_seconds:>12,.0f}")
    print(
        f"ours / floor = {rate / (args.rows / floor):.2f} (target >= 0.5): "
        f"{'met' if rate >= 0.5 * args.rows / floor else 'MISSED'}"
    )
    print(f"ours / floor with a TEMP table = {rate / (args.rows / temp_floor):.2f}")
    print(
        f"ours / bulk_create = {rate / (args.rows / bulk_seconds):.1f}x (target >= 5x): "
        f"{'met' if rate >= 5 * args.rows / bulk_seconds else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
