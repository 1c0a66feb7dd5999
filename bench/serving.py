"""Serving benchmark: one row, our REST API vs the in-process floor vs MLflow's scoring server.

    .venv/bin/python bench/serving.py [--requests 2000] [--workers 2 --threads 4]

On a scratch PostgreSQL database (created and dropped here), with the demo model:
- floor: the loaded scikit-learn pipeline's `predict` on one prepared row, in process;
- our scoring step alone, in process (`ServedModel.predict_records`, the fast row
  scorer of models_registry/row_scorer.py), for reference;
- ours: `POST /api/v1/models/churn-demo/predict/` through gunicorn, token auth, the prediction stored;
- MLflow: `mlflow models serve` on the same registered version, `POST /invocations`.
The same keep-alive HTTP client drives both servers, with 1 and 8 concurrent clients.
Targets: our p50 within 3 ms of the floor and <= 0.6x MLflow's p50; our throughput
with 8 clients >= 1.5x MLflow's. OMP_NUM_THREADS=1 everywhere (see NOTES.md).
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "mlapp_bench_serving"
PG = "postgres://postgres@127.0.0.1:5432"
OURS_PORT, MLFLOW_PORT = 8097, 5097


OURS_PATH = "/api/v1/models/churn-demo/predict/"


def _psql(sql):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", sql], check=True)


def _wait(port, path, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing answered on port {port}")


def _drive(port, path, body, headers, n_requests, n_clients):
    """Latencies (ms) and throughput (req/s) with n_clients keep-alive connections."""
    latencies, errors = [], []
    per_client = n_requests // n_clients

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_client):
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                errors.append(response.status)
        latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not errors, f"non-200 answers: {errors[:5]}"
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "rps": len(latencies) / elapsed,
    }


def main():
    sys.path.insert(0, str(ROOT))
    from models_registry.demo_data import DEMO_ROWS  # numpy and pandas only: no Django needed

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="mlapp-bench-serving-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{DB}",
        "DEBUG": "0",
        # Plain HTTP on 127.0.0.1, and budgets a bench must not trip (docs/security.md).
        "MLAPP_HTTPS": "0",
        "MLAPP_THROTTLE_PREDICT": "none",
        "MLAPP_THROTTLE_USER": "none",
        "SECRET_KEY": "bench-only",
        "MLAPP_VAR_DIR": str(var),
        "OMP_NUM_THREADS": "1",
        "DJANGO_SETTINGS_MODULE": "mlapp.settings",
        "LOG_LEVEL": "WARNING",
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }
    python = str(ROOT / ".venv" / "bin" / "python")
    _psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    _psql(f"CREATE DATABASE {DB}")
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

        # Floor: the pipeline on one prepared row, in process.
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

        servers.append(
            subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/gunicorn"),
                    "mlapp.wsgi",
                    "-b",
                    f"127.0.0.1:{OURS_PORT}",
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
        )
        servers.append(
            subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/mlflow"),
                    "models",
                    "serve",
                    "-m",
                    "models:/churn-demo@production",
                    "--env-manager",
                    "local",
                    "-p",
                    str(MLFLOW_PORT),
                    "-h",
                    "127.0.0.1",
                ],
                cwd=ROOT,
                env={**env, "MLFLOW_TRACKING_URI": tracking_uri},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait(OURS_PORT, "/api/v1/health/")
        _wait(MLFLOW_PORT, "/ping")

        ours_body = json.dumps({"features": DEMO_ROWS["churn"]})
        ours_headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
        mlflow_body = json.dumps({"dataframe_records": [DEMO_ROWS["churn"]]})
        mlflow_headers = {"Content-Type": "application/json"}
        results = {}
        for clients in (1, 8):
            _drive(OURS_PORT, OURS_PATH, ours_body, ours_headers, 100, clients)  # warm up
            _drive(MLFLOW_PORT, "/invocations", mlflow_body, mlflow_headers, 100, clients)
            results[("ours", clients)] = _drive(OURS_PORT, OURS_PATH, ours_body, ours_headers, args.requests, clients)
            results[("mlflow", clients)] = _drive(
                MLFLOW_PORT, "/invocations", mlflow_body, mlflow_headers, args.requests, clients
            )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
        _psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")

    print(f"gunicorn --workers {args.workers} --threads {args.threads}; {args.requests} requests per case")
    print(f"{'case':<36}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    print(f"{'floor: pipeline.predict in process':<36}{floor_p50:>10.2f}{floor_p99:>10.2f}")
    print(f"{'ours: predict_records in process':<36}{scorer_p50:>10.2f}{scorer_p99:>10.2f}")
    for (who, clients), r in results.items():
        label = f"{'ours: POST ' + OURS_PATH if who == 'ours' else 'mlflow models serve'} x{clients}"
        print(f"{label:<36}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['rps']:>10.0f}")
    ours1, mlflow1 = results[("ours", 1)], results[("mlflow", 1)]
    ours8, mlflow8 = results[("ours", 8)], results[("mlflow", 8)]
    checks = [
        ("our p50 - floor p50 <= 3 ms", ours1["p50"] - floor_p50, ours1["p50"] - floor_p50 <= 3),
        ("our p50 / MLflow p50 <= 0.6", ours1["p50"] / mlflow1["p50"], ours1["p50"] / mlflow1["p50"] <= 0.6),
        (
            "our req/s / MLflow req/s (8 clients) >= 1.5",
            ours8["rps"] / mlflow8["rps"],
            ours8["rps"] / mlflow8["rps"] >= 1.5,
        ),
    ]
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
