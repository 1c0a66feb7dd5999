"""Serving many models from one process: predict latency with 10 loaded vs 1, and memory per model.

    .venv/bin/python bench/many_models.py [--models 10] [--requests 2000]

On a scratch PostgreSQL database (created and dropped here; `--sqlite` for the embedded
default), N churn-like models are trained (each on its own generated data), promoted
through mlapp and served by one process's loader. Each request is the full REST path:
`POST /api/v1/models/<name>/predict/` through Django and DRF (in process, no network),
validated, scored and stored.

- floor (same run): the single-model p50, every request to model 0;
- ours: requests spread at random over the N loaded models;
the two alternate in blocks, so a change in the machine's load hits both alike.
Target: every model's p50 within 10 % of the single-model p50; the process's resident
memory per loaded model is stated (growth while loading, and each version's own figure).
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "mlapp_bench_many_models"
PG = "postgres://postgres@127.0.0.1:5432"


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", sql], check=True)


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--requests", type=int, default=4000, help="per side (1 model, N models)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating blocks of each side")
    parser.add_argument("--sqlite", action="store_true", help="the embedded default instead of PostgreSQL")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="mlapp-bench-many-"))
    env = {
        "DEBUG": "1",
        # Plain HTTP on 127.0.0.1, and budgets a bench must not trip (docs/security.md).
        "MLAPP_HTTPS": "0",
        "MLAPP_THROTTLE_PREDICT": "none",
        "MLAPP_THROTTLE_USER": "none",
        "SECRET_KEY": "bench-only",
        "MLAPP_VAR_DIR": str(var),
        "OMP_NUM_THREADS": "1",
        "DJANGO_SETTINGS_MODULE": "mlapp.settings",
        "LOG_LEVEL": "WARNING",
        "MLAPP_MAX_LOADED_VERSIONS": str(args.models + 2),
    }
    if not args.sqlite:
        env["DATABASE_URL"] = f"{PG}/{DB}"
        _psql(f"DROP DATABASE IF EXISTS {DB}")
        _psql(f"CREATE DATABASE {DB}")
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    try:
        _run(args, var)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.sqlite:
            _psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def _timed_requests(client, names: list[str], n: int, rng: random.Random) -> dict[str, list[float]]:
    from models_registry.demo_data import DEMO_ROWS

    body = json.dumps({"features": DEMO_ROWS["churn"]})
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(n):
        name = rng.choice(names)
        started = time.perf_counter()
        response = client.post(f"/api/v1/models/{name}/predict/", data=body, content_type="application/json")
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{name}: {response.status_code} {response.content[:300]!r}")
        times[name].append(elapsed)
    return times


def _run(args, var: Path):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from models_registry import services
    from models_registry.demo_data import churn_frame
    from models_registry.models import AliasChange
    from models_registry.serving import loader
    from models_registry.training import model_train

    call_command("migrate", verbosity=0)
    names = [f"bench-model-{i:02d}" for i in range(args.models)]
    started = time.perf_counter()
    for i, name in enumerate(names):
        csv = var / f"{name}.csv"
        churn_frame(n_rows=2000, seed=100 + i).to_csv(csv, index=False)
        version = model_train(csv=csv, target="churned", name=name, actor_label="bench").model_version
        services.alias_move(name=name, version=version.version, action=AliasChange.Action.BOOTSTRAP, reason="bench")
    print(f"{args.models} models trained and promoted in {time.perf_counter() - started:.0f} s", flush=True)
    loader.cache_clear()  # the promotions' smoke tests loaded them: start from an empty process cache

    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("bench"))
    rng = random.Random(0)

    rss_start = _rss_mb()
    _timed_requests(client, names[:1], 200, rng)  # load model 0 and warm up
    rss_one = _rss_mb()
    for name in names[1:]:
        loader().get(name)
    rss_all = _rss_mb()
    _timed_requests(client, names, 200, rng)  # warm up every model
    # Alternate blocks (1 model, then all N), so a change in the machine's load hits both alike.
    single: list[float] = []
    spread: dict[str, list[float]] = {name: [] for name in names}
    block = max(args.requests // args.rounds, 1)
    for _ in range(args.rounds):
        single += _timed_requests(client, names[:1], block, rng)[names[0]]
        for name, times in _timed_requests(client, names, block, rng).items():
            spread[name] += times

    p50_single = statistics.median(single)
    p50s = {name: statistics.median(times) for name, times in spread.items()}
    p50_all = statistics.median([t for times in spread.values() for t in times])
    worst_name = max(p50s, key=p50s.get)
    ratio = p50s[worst_name] / p50_single
    per_model_mb = (rss_all - rss_one) / max(len(names) - 1, 1)
    own = [m["memory_bytes"] for m in loader().health()["loaded"] if m["memory_bytes"] is not None]
    database = "SQLite (embedded default)" if args.sqlite else "PostgreSQL"
    print(f"\nPOST /api/v1/models/<name>/predict/, one row, in process through Django + DRF, {database}")
    print(f"  floor: requests to 1 model, {len(single)} requests:       p50 {p50_single:.3f} ms")
    n_spread = sum(map(len, spread.values()))
    print(f"  ours:  spread over {args.models} loaded models, {n_spread} requests: p50 {p50_all:.3f} ms")
    for name in names:
        print(f"    {name}: p50 {p50s[name]:.3f} ms over {len(spread[name])} requests")
    print(f"  slowest model's p50 / single-model p50 = {ratio:.3f} (target <= 1.10)")
    print(
        f"  resident memory: {rss_start:.0f} MB before loading, {rss_one:.0f} MB with 1 model, "
        f"{rss_all:.0f} MB with {args.models}: {per_model_mb:.1f} MB per additional model; "
        f"each version holds (arrays and text, as health reports): median {statistics.median(own) / 1e6:.2f} MB"
        if own
        else ""
    )
    print("PASS" if ratio <= 1.10 else "FAIL")


if __name__ == "__main__":
    main()
