"""Serving benchmark: one row through our REST API and the two protocols we speak, beside MLflow's
scoring server and a bare DRF floor, in one run.

    .venv/bin/python bench/serving.py [--requests 2000] [--workers 2 --threads 4] [--rounds 10]
                                      [--database mlapp_bench_serving --port 8097 --mlflow-port 5097]
                                      [--redis redis://127.0.0.1:6379/15 | none]

On a scratch PostgreSQL database (created and dropped here) and Redis (the production setup: the
throttles count in it), with the demo model:
- pipeline: the loaded scikit-learn pipeline's `predict` on one prepared row, in process;
- our scoring step alone, in process (`ServedModel.predict_records`, the fast row
  scorer of models_registry/row_scorer.py), for reference;
- ours: `POST /api/v1/models/churn-demo/predict/` through gunicorn, token auth, the prediction stored;
- the same model through `POST /serving/churn-demo/invocations` (MLflow's protocol) and
  `POST /v2/models/churn-demo/infer` (Open Inference Protocol), same server, same token;
- MLflow: `mlflow models serve` on the same registered version, `POST /invocations`;
- floor: a bare DRF endpoint (bench/floor: no middleware, no auth) on the same gunicorn settings that
  parses the same JSON and inserts one jsonb row into the same PostgreSQL: the least an API that logs can do.
Phase 1 runs ours beside MLflow, phase 2 ours beside the floor (on MLflow's port, once MLflow is
stopped); within a phase the cases take turns in rounds (10 by default: 200 requests a turn), so a
noisy neighbour, or the server warming up, hits them alike.
The same keep-alive HTTP client drives every server, with 1 and 8 concurrent clients.
Targets: our p50 within 3 ms of the pipeline and <= 0.6x MLflow's p50, our throughput with 8 clients
>= 1.5x MLflow's; both protocols' p50 within 10% of ours and <= 0.6x MLflow's; our p50 <= 1.5x the
floor's and our 8-client throughput >= 0.6x the floor's. OMP_NUM_THREADS=1 everywhere (see NOTES.md).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
MODEL = "churn-demo"
OURS_PATH = f"/api/v1/models/{MODEL}/predict/"
MLFLOW_PROTOCOL_PATH = f"/serving/{MODEL}/invocations"
V2_PATH = f"/v2/models/{MODEL}/infer"
FLOOR_PATH = "/floor/"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.http_load import requests_drive, server_wait  # noqa: E402


def _psql(sql):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", sql], check=True)


def _summary(latencies, elapsed):
    latencies = sorted(latencies)
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "rps": len(latencies) / elapsed,
    }


def _rounds(cases, n_requests, rounds):
    """Each case n_requests in all, for 1 and 8 clients, the cases taking turns round by round."""
    results = {}
    for clients in (1, 8):
        pooled = {name: ([], 0.0) for name in cases}
        for port, path, body, headers in cases.values():
            requests_drive(port, path, body, headers, 100, clients)  # warm up
        for _ in range(rounds):
            for name, (port, path, body, headers) in cases.items():
                latencies, elapsed = requests_drive(port, path, body, headers, n_requests // rounds, clients)
                pooled[name][0].extend(latencies)
                pooled[name] = (pooled[name][0], pooled[name][1] + elapsed)
        for name, (latencies, elapsed) in pooled.items():
            results[(name, clients)] = _summary(latencies, elapsed)
    return results


def _gunicorn(app, port, args, env):
    return subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            app,
            "-b",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _v2_body(row):
    inputs = []
    for name, value in row.items():
        datatype = "BYTES" if isinstance(value, str) else ("INT64" if isinstance(value, int) else "FP64")
        inputs.append({"name": name, "datatype": datatype, "shape": [1, 1], "data": [value]})
    return json.dumps({"inputs": inputs})


def _stop(server):
    server.terminate()
    server.wait(timeout=30)


def main():
    sys.path.insert(0, str(ROOT))
    from models_registry.demo_data import DEMO_ROWS  # numpy and pandas only: no Django needed

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="turns per case: 4 (500 requests a turn) let one burst of noise sway a case",
    )
    parser.add_argument("--database", default="mlapp_bench_serving", help="scratch database, dropped at the end")
    parser.add_argument("--port", type=int, default=8097, help="our server")
    parser.add_argument("--mlflow-port", type=int, default=5097, help="mlflow models serve, then the floor")
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/15",
        help="the production setup's Redis (broker, and the cache the throttles count in); 'none': files",
    )
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="mlapp-bench-serving-"))
    database = args.database
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{database}",
        "DEBUG": "0",
        # Plain HTTP on 127.0.0.1 (docs/security.md).
        "MLAPP_HTTPS": "0",
        "SECRET_KEY": "bench-only",
        "MLAPP_VAR_DIR": str(var),
        "OMP_NUM_THREADS": "1",
        "DJANGO_SETTINGS_MODULE": "mlapp.settings",
        "LOG_LEVEL": "WARNING",
        # Budgets far above what the bench sends: the throttles still count every request (their cost is
        # measured), none refuses one.
        "MLAPP_THROTTLE_USER": "10000000/min",
        "MLAPP_THROTTLE_PREDICT": "10000000/min",
        "MLAPP_THROTTLE_ANON": "10000000/min",
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }
    if args.redis != "none":
        env["CELERY_BROKER_URL"] = args.redis
    python = str(ROOT / ".venv" / "bin" / "python")
    _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    _psql(f"CREATE DATABASE {database}")
    servers = []
    try:
        for command in (["migrate", "-v0"], ["bootstrap"]):
            subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        token = subprocess.run(
            [python, "manage.py", "create_api_token", "admin"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        tracking_uri = (
            subprocess.run(
                [python, "manage.py", "platform_info", "--shell"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.split("MLFLOW_UI_BACKEND_STORE=")[1]
            .split("\n")[0]
            .strip("'")
        )
        _psql_db = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-d", database, "-c"]
        from bench.floor import CREATE

        subprocess.run([*_psql_db, CREATE], check=True)

        # The pipeline on one prepared row, in process.
        floor = (
            subprocess.run(
                [python, "-c", _FLOOR.format(tracking_uri=tracking_uri, row=json.dumps(DEMO_ROWS["churn"]))],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        floor_p50, floor_p99, scorer_p50, scorer_p99 = (float(x) for x in floor.split())

        ours = _gunicorn("mlapp.wsgi", args.port, args, env)
        servers.append(ours)
        mlflow = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{MODEL}@production",
                "--env-manager",
                "local",
                "-p",
                str(args.mlflow_port),
                "-h",
                "127.0.0.1",
            ],
            cwd=ROOT,
            env={**env, "MLFLOW_TRACKING_URI": tracking_uri},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        servers.append(mlflow)
        server_wait(args.port, "/api/v1/health/")
        server_wait(args.mlflow_port, "/ping")

        row = DEMO_ROWS["churn"]
        auth = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
        records = json.dumps({"dataframe_records": [row]})
        ours_cases = {
            "ours": (args.port, OURS_PATH, json.dumps({"features": row}), auth),
            "mlflow protocol": (args.port, MLFLOW_PROTOCOL_PATH, records, auth),
            "v2 protocol": (args.port, V2_PATH, _v2_body(row), auth),
        }
        mlflow_case = (args.mlflow_port, "/invocations", records, {"Content-Type": "application/json"})
        phase1 = _rounds({**ours_cases, "mlflow models serve": mlflow_case}, args.requests, args.rounds)
        _stop(mlflow)
        servers.remove(mlflow)

        floor_server = _gunicorn(
            "django.core.wsgi:get_wsgi_application()",
            args.mlflow_port,
            args,
            {**env, "DJANGO_SETTINGS_MODULE": "bench.floor.settings"},
        )
        servers.append(floor_server)
        server_wait(args.mlflow_port, "/")
        floor_case = (args.mlflow_port, FLOOR_PATH, json.dumps({"features": row}), {"Content-Type": "application/json"})
        phase2 = _rounds({**ours_cases, "floor: bare DRF + INSERT": floor_case}, args.requests, args.rounds)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    print(f"gunicorn --workers {args.workers} --threads {args.threads}; {args.requests} requests per case and phase")
    print(f"{'case':<44}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    print(f"{'pipeline.predict in process':<44}{floor_p50:>10.2f}{floor_p99:>10.2f}")
    print(f"{'ours: predict_records in process':<44}{scorer_p50:>10.2f}{scorer_p99:>10.2f}")
    for phase, results in (("1", phase1), ("2", phase2)):
        for (who, clients), r in results.items():
            label = f"[{phase}] {who} x{clients}"
            print(f"{label:<44}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['rps']:>10.0f}")
    checks = []

    def check(name, value, met):
        checks.append((name, value, met))

    for phase, results, other in (("1", phase1, "mlflow models serve"), ("2", phase2, "floor: bare DRF + INSERT")):
        native = results[("ours", 1)]["p50"]
        for protocol in ("mlflow protocol", "v2 protocol"):
            ratio = results[(protocol, 1)]["p50"] / native
            check(f"[{phase}] {protocol} p50 / ours p50 <= 1.10", ratio, ratio <= 1.10)
        if phase == "1":
            mlflow_p50 = results[(other, 1)]["p50"]
            check("[1] our p50 - pipeline p50 <= 3 ms", native - floor_p50, native - floor_p50 <= 3)
            for who in ours_cases:
                ratio = results[(who, 1)]["p50"] / mlflow_p50
                check(f"[1] {who} p50 / MLflow p50 <= 0.6", ratio, ratio <= 0.6)
            ratio = results[("ours", 8)]["rps"] / results[(other, 8)]["rps"]
            check("[1] our req/s / MLflow req/s (8 clients) >= 1.5", ratio, ratio >= 1.5)
        else:
            ratio = native / results[(other, 1)]["p50"]
            check("[2] our p50 / floor p50 <= 1.5", ratio, ratio <= 1.5)
            ratio = results[("ours", 8)]["rps"] / results[(other, 8)]["rps"]
            check("[2] our req/s / floor req/s (8 clients) >= 0.6", ratio, ratio >= 0.6)
    for name, value, met in checks:
        print(f"{name}: {value:.2f} {'met' if met else 'MISSED'}")


_FLOOR = """
import time, statistics, mlflow, pandas as pd, json
mlflow.set_tracking_uri("{tracking_uri}")
pipeline = mlflow.sklearn.load_model("models:/churn-demo@production")
row = pd.DataFrame([json.loads('{row}')]).astype({{"age": float, "tenure_months": float, "support_calls": float}})
for _ in range(200):
    pipeline.predict(row)
times = []
for _ in range(2000):
    started = time.perf_counter()
    pipeline.predict(row)
    times.append((time.perf_counter() - started) * 1000)
times.sort()
floor = (statistics.median(times), times[int(len(times) * 0.99) - 1])
# Our scoring step alone, in process: the version as the API serves it (fast row scorer).
import django
django.setup()
from models_registry.serving import loader
served = loader().get("churn-demo")
assert served.row_scorer is not None, "the fast row scorer is off for the demo model"
record = json.loads('{row}')
for _ in range(200):
    served.predict_records([record])
times = []
for _ in range(2000):
    started = time.perf_counter()
    served.predict_records([record])
    times.append((time.perf_counter() - started) * 1000)
times.sort()
print(*floor, statistics.median(times), times[int(len(times) * 0.99) - 1])
"""


if __name__ == "__main__":
    main()
