"""Shadow scoring's cost to production: p50/p99 of the predict API with shadow on vs off, same run.

    .venv/bin/python bench/shadow.py [--requests 500] [--rounds 6] [--clients 1,4] [--runners thread,celery]

On a scratch PostgreSQL database (created and dropped here; ``--database`` names it), the
demo churn model is bootstrapped (v1, production), a second version is trained on other
data and given the ``challenger`` alias. Then, per shadow runner (``MLAPP_SHADOW_RUNNER``):
gunicorn (2 workers x 4 threads, with mlapp's gunicorn hooks) serves
``POST /api/v1/models/churn-demo/predict/`` with token auth, every answer stored; the model's
traffic policy is switched between **production only** (the peer) and **shadow** in
alternating blocks (the order swapped each round, so a change in the machine's load hits
both alike), each block preceded by a short warm-up after the switch. The ``celery`` runner
has one Celery worker (concurrency 1) on Redis taking the shadow tasks.

After each shadow block the script waits for the shadow rows to be stored and checks one
was stored per production row (or counted as dropped). Target: production p50 with shadow
on within 10 % of shadow off, per runner and client count. OMP_NUM_THREADS=1 everywhere.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
PATH = "/api/v1/models/churn-demo/predict/"
MODEL = "churn-demo"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.http_load import requests_drive, server_wait  # noqa: E402


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", sql], check=True)


def _p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[max(int(len(ordered) * q) - 1, 0)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500, help="per block")
    parser.add_argument("--rounds", type=int, default=6, help="blocks of each mode per runner and client count")
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--runners", default="thread,celery")
    parser.add_argument("--database", default="mlapp_h_h10b_shadow")
    parser.add_argument("--port", type=int, default=8212)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    args = parser.parse_args()
    clients_list = [int(c) for c in args.clients.split(",")]
    runners = args.runners.split(",")

    var = Path(tempfile.mkdtemp(prefix="mlapp-bench-shadow-"))
    env = {
        "DATABASE_URL": f"{PG}/{args.database}",
        "CELERY_BROKER_URL": args.redis,
        "CELERY_TASK_DEFAULT_QUEUE": "bench-shadow",
        "DEBUG": "0",
        # Plain HTTP on 127.0.0.1, and budgets a bench must not trip (docs/security.md).
        "MLAPP_HTTPS": "0",
        "MLAPP_THROTTLE_PREDICT": "none",
        "MLAPP_THROTTLE_USER": "none",
        "SECRET_KEY": "bench-only",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MLAPP_VAR_DIR": str(var),
        "OMP_NUM_THREADS": "1",
        "DJANGO_SETTINGS_MODULE": "mlapp.settings",
        "LOG_LEVEL": "WARNING",
        "MLAPP_MODEL_POLL_SECONDS": "1",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    _psql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
    _psql(f"CREATE DATABASE {args.database}")

    import django

    django.setup()
    from django.core.management import call_command

    from models_registry import services as registry_services
    from models_registry.demo_data import DEMO_ROWS, churn_frame
    from models_registry.training import model_train
    from predictions import routing
    from predictions.models import Prediction, TrafficPolicy

    processes = []
    results: dict[tuple[str, int, str], list[float]] = {}
    stored: dict[str, dict] = {}
    try:
        call_command("migrate", verbosity=0)
        call_command("bootstrap", stdout=io.StringIO())
        out = io.StringIO()
        call_command("create_api_token", "admin", stdout=out)
        token = out.getvalue().strip().splitlines()[-1]
        csv = var / "churn-challenger.csv"
        churn_frame(n_rows=3000, seed=11).to_csv(csv, index=False)
        challenger = model_train(csv=csv, target="churned", name=MODEL, actor_label="bench").model_version
        registry_services.alias_move(
            name=MODEL, version=challenger.version, alias=routing.CHALLENGER, actor_label="bench", reason="bench"
        )

        body = json.dumps({"features": DEMO_ROWS["churn"]})
        headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}

        def production_answered(payload):  # shadow scoring never answers the client
            return None if json.loads(payload)["variant"] == "production" else "variant"

        def drive(n_requests, clients):
            return requests_drive(
                args.port, PATH, body, headers, n_requests, clients, answer_check=production_answered
            )[0]

        def policy(mode):
            routing.traffic_policy_set(model_name=MODEL, mode=mode, actor_label="bench", reason="bench block")
            time.sleep(1.3)  # every worker re-reads the policy within MLAPP_MODEL_POLL_SECONDS

        def shadow_caught_up(expected: int, timeout: float = 120) -> tuple[int, float]:
            started = time.monotonic()
            while time.monotonic() - started < timeout:
                shadows = Prediction.objects.filter(model_name=MODEL, variant="shadow").count()
                dropped = TrafficPolicy.objects.get(model_name=MODEL).shadow_dropped
                if shadows + dropped >= expected:
                    return shadows, time.monotonic() - started
                time.sleep(0.1)
            return shadows, time.monotonic() - started

        for runner in runners:
            run_env = {**os.environ, "MLAPP_SHADOW_RUNNER": runner}
            mine = []
            if runner == "celery":
                subprocess.run(
                    [str(ROOT / ".venv/bin/celery"), "-A", "mlapp", "purge", "-f", "-Q", "bench-shadow"],
                    cwd=ROOT,
                    env=run_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                mine.append(
                    subprocess.Popen(
                        [str(ROOT / ".venv/bin/celery"), "-A", "mlapp", "worker", "-c", "1", "-Q", "bench-shadow"],
                        cwd=ROOT,
                        env=run_env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            mine.append(
                subprocess.Popen(
                    [
                        str(ROOT / ".venv/bin/gunicorn"),
                        "mlapp.wsgi",
                        "--config",
                        "mlapp/gunicorn_conf.py",
                        "-b",
                        f"127.0.0.1:{args.port}",
                        "--workers",
                        "2",
                        "--threads",
                        "4",
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=run_env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(var / f"gunicorn-{runner}.log", "w"),  # noqa: SIM115 (closed with the process)
                )
            )
            processes.extend(mine)
            server_wait(args.port, "/api/v1/health/", timeout=300)
            Prediction.objects.all().delete()
            TrafficPolicy.objects.filter(model_name=MODEL).update(shadow_dropped=0)
            policy("shadow")
            drive(200, 4)  # every worker loads the challenger (off the path)

            def production_count():
                return Prediction.objects.filter(model_name=MODEL, variant="production").count()

            expected = production_count()  # the warm-up ran in shadow mode: one shadow row per row
            shadow_caught_up(expected)
            catch_up = []
            for clients in clients_list:
                for round_number in range(args.rounds):
                    order = ("production", "shadow") if round_number % 2 == 0 else ("shadow", "production")
                    for mode in order:
                        policy(mode)
                        before = production_count()
                        drive(40, clients)  # after the switch, not measured
                        latencies = drive(args.requests, clients)
                        results.setdefault((runner, clients, mode), []).extend(latencies)
                        print(
                            f"block: {runner} x{clients} {mode:<10} p50 {statistics.median(latencies):.2f} ms "
                            f"p99 {_p(latencies, 0.99):.2f} ms",
                            flush=True,
                        )
                        if mode == "shadow":
                            expected += production_count() - before
                            shadows, waited = shadow_caught_up(expected)
                            catch_up.append(waited)
            stored[runner] = {
                "expected": expected,
                "shadow_rows": Prediction.objects.filter(model_name=MODEL, variant="shadow").count(),
                "dropped": TrafficPolicy.objects.get(model_name=MODEL).shadow_dropped,
                "catch_up_s": max(catch_up) if catch_up else 0.0,
            }
            for process in reversed(mine):
                process.terminate()
            for process in mine:
                process.wait(timeout=60)
            processes = [p for p in processes if p not in mine]
            time.sleep(1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        from django.db import connections

        connections.close_all()
        _psql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")

    print(f"gunicorn 2 workers x 4 threads; {args.rounds} alternating blocks of {args.requests} requests per case")
    print(f"{'runner':<8}{'clients':>8}{'mode':>12}{'p50 ms':>9}{'p99 ms':>9}{'n':>7}")
    verdicts = []
    for runner in runners:
        for clients in clients_list:
            for mode in ("production", "shadow"):
                latencies = results[(runner, clients, mode)]
                print(
                    f"{runner:<8}{clients:>8}{mode:>12}{statistics.median(latencies):>9.2f}"
                    f"{_p(latencies, 0.99):>9.2f}{len(latencies):>7}"
                )
            off = statistics.median(results[(runner, clients, "production")])
            on = statistics.median(results[(runner, clients, "shadow")])
            ratio = on / off
            p99_ratio = _p(results[(runner, clients, "shadow")], 0.99) / _p(
                results[(runner, clients, "production")], 0.99
            )
            verdicts.append(
                f"{runner}, {clients} client(s): shadow-on p50 / off p50 = {ratio:.3f} "
                f"({'met' if ratio <= 1.10 else 'MISSED'}, target <= 1.10); p99 on/off = {p99_ratio:.2f}"
            )
    for line in verdicts:
        print(line)
    for runner, figures in stored.items():
        print(
            f"{runner}: {figures['shadow_rows']:,} shadow rows stored for {figures['expected']:,} production rows "
            f"answered in shadow mode ({figures['dropped']:,} dropped as overload); each block's shadow rows were "
            f"all stored within {figures['catch_up_s']:.1f} s of its end"
        )


if __name__ == "__main__":
    main()
