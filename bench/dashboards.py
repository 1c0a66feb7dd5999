"""Dashboard server time with 100,000 and 5,000,000 stored predictions on PostgreSQL.

    .venv/bin/python bench/dashboards.py                          # 100,000 then 5,000,000 rows
    .venv/bin/python bench/dashboards.py --sizes 100000 --repeat 10
    .venv/bin/python bench/dashboards.py --admin-url postgres://postgres@127.0.0.1:5432/postgres --keep

Creates (drops first) the database ``mlapp_bench_dash`` next to the admin URL's
database, migrates it, trains the small churn demo model into it (MLflow lives in
the same database) and loads predictions with one ``INSERT ... SELECT FROM
generate_series`` per million rows: 30 days of traffic, four sources, 20 % with
feedback. After each size it refreshes the hourly rollups (full, then one
incremental tick, as the every-minute task would), stores a drift report on the
newest 5,000 rows (the every-5-minutes job) plus a day of drift history (288
reports), then times pages in-process with Django's test client (the whole
Django stack, no network): the overview and the ``age`` feature page are the
targets (median under 300 ms at 5,000,000 rows); the drift page, predictions
over time (per hour, 7 days), online performance and the past-predictions list
(the inference log, with and without filters, and its API) are shown for information.

Prints PASS/FAIL; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "mlapp_bench_dash"
MODEL_NAME = "bench-churn"
TARGET_MS = 300.0
CHUNK = 1_000_000

INSERT_SQL = """
INSERT INTO predictions_prediction
    (created_at, model_name, model_version, run_id, source, request_id, features,
     predicted_label, probabilities, latency_ms, actual_label, feedback_at)
SELECT
    now() - interval '30 days' * (1 - g::float8 / %(total)s),
    %(name)s, %(version)s, %(run_id)s,
    (ARRAY['api', 'web', 'batch', 'scheduled'])[1 + g %% 4],
    'bench-' || g,
    jsonb_build_object(
        'age', (18 + floor(random() * 60))::int,
        'tenure_months', floor(random() * 72)::int,
        'monthly_charges', round((20 + random() * 80)::numeric, 2),
        'total_charges', round((random() * 5000)::numeric, 2),
        'support_calls', floor(random() * 5)::int,
        'contract', (ARRAY['month-to-month', 'one-year', 'two-year'])[1 + floor(random() * 3)::int],
        'internet_service', (ARRAY['dsl', 'fiber', 'none'])[1 + floor(random() * 3)::int],
        'payment_method',
            (ARRAY['card', 'bank-transfer', 'electronic-check', 'mailed-check'])[1 + floor(random() * 4)::int],
        'region', (ARRAY['north', 'south', 'east', 'west'])[1 + floor(random() * 4)::int]
    ),
    CASE WHEN random() < 0.3 THEN 'yes' ELSE 'no' END,
    NULL,
    random() * 10,
    CASE WHEN g %% 5 = 0 THEN (CASE WHEN random() < 0.3 THEN 'yes' ELSE 'no' END) END,
    CASE WHEN g %% 5 = 0 THEN now() - interval '30 days' * (1 - g::float8 / %(total)s) + interval '1 hour' END
FROM generate_series(%(start)s, %(stop)s) AS g
"""


def _database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def database_recreate(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def django_setup(database_url: str, var_dir: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "MLAPP_VAR_DIR": var_dir,
            "SECRET_KEY": "bench-only",
            "DJANGO_SETTINGS_MODULE": "mlapp.settings",
            "LOG_LEVEL": "WARNING",
            "OMP_NUM_THREADS": "1",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def model_ensure(var_dir: str):
    from models_registry import services
    from models_registry.demo_data import churn_frame
    from models_registry.models import AliasChange
    from models_registry.training import model_train

    csv = Path(var_dir) / "churn.csv"
    churn_frame(n_rows=4000, seed=0).to_csv(csv, index=False)
    result = model_train(csv=csv, target="churned", name=MODEL_NAME, actor_label="bench")
    version = result.model_version
    services.alias_move(
        name=MODEL_NAME, version=version.version, action=AliasChange.Action.BOOTSTRAP, reason="bench model"
    )
    return version


def rows_load(version, *, start: int, stop: int, total: int) -> float:
    from django.db import connection, transaction

    started = time.perf_counter()
    for chunk_start in range(start, stop + 1, CHUNK):
        chunk_stop = min(chunk_start + CHUNK - 1, stop)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute(
                INSERT_SQL,
                {
                    "total": total,
                    "name": MODEL_NAME,
                    "version": version.version,
                    "run_id": version.run_id,
                    "start": chunk_start,
                    "stop": chunk_stop,
                },
            )
        print(f"    loaded rows {chunk_start:,}..{chunk_stop:,} ({time.perf_counter() - started:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE predictions_prediction")
    return time.perf_counter() - started


def drift_history_fill(report, *, n: int = 288) -> None:
    """A day of checks every 5 minutes, copied from one real report (history charts read these)."""
    from datetime import timedelta

    from monitoring.models import DriftReport, FeatureDrift

    features = list(report.features.all())
    for i in range(1, n):
        moment = report.created_at - timedelta(minutes=5 * i)
        copy = DriftReport.objects.create(
            model_name=report.model_name,
            model_version=report.model_version,
            window_start=report.window_start,
            window_end=report.window_end,
            n_rows=report.n_rows,
            dataset_drift=report.dataset_drift,
            drifted_share=report.drifted_share,
            n_drifted=report.n_drifted,
            n_features=report.n_features,
            prediction_drift=report.prediction_drift,
            config=report.config,
        )
        DriftReport.objects.filter(pk=copy.pk).update(created_at=moment)
        rows = []
        for f in features:
            f.pk = None
            f.report = copy
            rows.append(FeatureDrift(**{field.attname: getattr(f, field.attname) for field in f._meta.fields}))
        FeatureDrift.objects.bulk_create(rows)
        FeatureDrift.objects.filter(report=copy).update(created_at=moment)


def pages_time(client, urls: dict[str, str], *, repeat: int) -> dict[str, dict]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    results = {}
    for label, url in urls.items():
        response = client.get(url)  # warm-up (caches, first plotly figure)
        assert response.status_code == 200, (url, response.status_code)
        timings = []
        for _ in range(repeat):
            reset_queries()
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        timings.sort()
        results[label] = {
            "url": url,
            "median_ms": round(statistics.median(timings), 1),
            "p90_ms": round(timings[max(int(len(timings) * 0.9) - 1, 0)], 1),
            "max_ms": round(timings[-1], 1),
            "queries": len(queries.captured_queries),
            "bytes": len(response.content),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--admin-url", default=os.environ.get("BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--sizes", default="100000,5000000", help="cumulative row counts, ascending")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (default: drop it)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"Creating database {DB_NAME} ...", flush=True)
    database_recreate(args.admin_url)
    var_dir = tempfile.mkdtemp(prefix="mlapp-bench-dash-")
    django_setup(_database_url(args.admin_url, DB_NAME), var_dir)

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from monitoring.services.drift import drift_report_create
    from monitoring.services.rollups import prediction_rollups_refresh

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"Migrated in {time.perf_counter() - started:.1f} s; training the demo model ...", flush=True)
    version = model_ensure(var_dir)
    user = get_user_model().objects.create_user("bench", password="bench-pw-123")
    client = Client()
    client.force_login(user)
    day_ago = datetime.now(UTC) - timedelta(days=8)  # a day in the middle of the loaded month
    day_after = day_ago + timedelta(days=1)
    urls = {
        "overview": f"/models/{MODEL_NAME}/monitoring/",
        "all served models": "/monitoring/",
        "feature page (age)": f"/models/{MODEL_NAME}/drift/features/age/",
        "drift page": f"/models/{MODEL_NAME}/drift/",
        "predictions per hour, 7 days": f"/models/{MODEL_NAME}/dashboards/predictions/?granularity=hour",
        "online performance per day": f"/models/{MODEL_NAME}/dashboards/performance/",
        # The inference log itself (issue 3: fast with millions of rows, no count(*)).
        "past predictions, newest": f"/models/{MODEL_NAME}/predictions/",
        "past predictions, source=batch": f"/models/{MODEL_NAME}/predictions/?source=batch",
        "past predictions, v1, one day": (
            f"/models/{MODEL_NAME}/predictions/?model_version={version}"
            f"&since={day_ago:%Y-%m-%dT%H:%M}&until={day_after:%Y-%m-%dT%H:%M}"
        ),
        "API predictions list (100)": "/api/v1/predictions/?page_size=100",
    }
    targets = ("overview", "feature page (age)")

    loaded, report_rows, ok = 0, [], True
    for size in sizes:
        print(f"\n== {size:,} predictions ==", flush=True)
        load_s = rows_load(version, start=loaded + 1, stop=size, total=size) if size > loaded else 0.0
        loaded = size
        t = time.perf_counter()
        full = prediction_rollups_refresh(full=True)
        full_s = time.perf_counter() - t
        t = time.perf_counter()
        prediction_rollups_refresh()
        tick_s = time.perf_counter() - t
        t = time.perf_counter()
        report = drift_report_create(model_name=MODEL_NAME, raise_alert=False)
        drift_s = time.perf_counter() - t
        if size == sizes[0]:
            drift_history_fill(report)
        print(
            f"  load {load_s:.1f} s · rollups full rebuild {full_s:.2f} s ({full.rows_written:,} rows) · "
            f"rollups tick {tick_s:.2f} s · drift check on {report.n_rows:,} rows {drift_s:.2f} s",
            flush=True,
        )
        pages = pages_time(client, urls, repeat=args.repeat)
        for label, figures in pages.items():
            verdict = ""
            if label in targets and size == max(sizes):
                passed = figures["median_ms"] < TARGET_MS
                ok &= passed
                verdict = "PASS" if passed else "FAIL"
            print(
                f"  {label:<30} median {figures['median_ms']:>7.1f} ms  p90 {figures['p90_ms']:>7.1f} ms  "
                f"max {figures['max_ms']:>7.1f} ms  {figures['queries']:>2} queries  {verdict}",
                flush=True,
            )
        report_rows.append(
            {
                "predictions": size,
                "load_seconds": round(load_s, 1),
                "rollup_full_seconds": round(full_s, 2),
                "rollup_rows": full.rows_written,
                "rollup_tick_seconds": round(tick_s, 2),
                "drift_check_seconds": round(drift_s, 2),
                "pages": pages,
            }
        )

    print(
        f"\nTarget: overview and feature page median under {TARGET_MS:.0f} ms at {max(sizes):,} predictions: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report_rows, indent=2, default=str))
    if not args.keep:
        from django.db import connections

        connections.close_all()
        database_recreate_drop(args.admin_url)
    return 0 if ok else 1


def database_recreate_drop(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


if __name__ == "__main__":
    sys.exit(main())
