"""Drift report speed and memory: monitoring.drift_stats against Evidently's DataDriftPreset.

    .venv/bin/python bench/drift.py [--sizes 10000,100000,1000000] [--json bench/out/drift.json]

Same data for both: a 5,000-row reference (6 numeric, 4 categorical features, a
few missing values) and one window per size, drawn from seed 7 with three
changes: ``amount`` +0.5 sd, ``plan == "premium"`` share doubled, and ``ratio``
+0.02 (a trivial shift that p-values flag at large windows and effect sizes
do not). The data go to parquet files in a temp dir; each measurement runs in a
fresh subprocess: ours in this virtualenv, Evidently 0.7.23 in
``var/bench-evidently-venv`` (created on first use: Evidently does not import
with pandas 3). Both select KS for numeric and chi-square for categorical
features at threshold 0.05, so ours runs with ``DriftConfig(method="p_value")``;
its default ("auto") verdicts are printed too.

Timed: from the DataFrames in memory to the per-feature verdicts (Evidently:
``Dataset.from_pandas`` + ``Report.run`` + reading the results; ours:
``drift_compute``; building our profile from the reference happens at training
time and is not timed), after a warm-up on 1,000 rows. Memory: the tracemalloc
peak during a second run (numpy and Python allocations), and the growth of the
process's peak RSS during the timed run (everything, pyarrow included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_VENV = ROOT / "var" / "bench-evidently-venv"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas<3", "pyarrow"]
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
REFERENCE_ROWS = 5_000
SEED = 7
THRESHOLD = 0.05
NUMERIC = ["amount", "income", "visits", "age", "ratio", "score"]
CATEGORICAL = ["plan", "region", "channel", "segment"]
# Targets at the largest size (1,000,000 rows).
TARGET_SPEEDUP = 10.0
TARGET_MEMORY_RATIO = 1 / 3
# What the generator changed between reference and windows.
SHIFTED = {"amount", "plan", "ratio"}


# ----------------------------------------------------------------------------- data


def _choice(rng, values: list[str], shares, n: int, missing: float = 0.0) -> np.ndarray:
    shares = np.asarray(shares, dtype=float) / np.sum(shares)
    out = np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=shares)]
    if missing:
        out[rng.random(n) < missing] = None
    return out


def frame(n: int, seed: int, *, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.normal(0.0, 1.0, n)
    score[rng.random(n) < 0.02] = np.nan
    segments = [f"s{i:02d}" for i in range(20)]
    return pd.DataFrame(
        {
            "amount": rng.normal(55.0 if shifted else 50.0, 10.0, n),
            "income": rng.lognormal(10.0, 0.75, n),
            "visits": rng.poisson(3.0, n).astype("int64"),
            "age": rng.integers(18, 91, n).astype("int64"),
            "ratio": rng.uniform(0.0, 1.0, n) + (0.02 if shifted else 0.0),
            "score": score,
            "plan": _choice(
                rng,
                ["basic", "premium", "pro", "trial"],
                [0.375, 0.4, 0.15, 0.075] if shifted else [0.5, 0.2, 0.2, 0.1],
                n,
            ),
            "region": _choice(rng, [f"region-{i}" for i in range(8)], [25, 20, 15, 12, 10, 8, 6, 4], n),
            "channel": _choice(rng, ["web", "app", "phone"], [0.6, 0.35, 0.05], n, missing=0.01),
            "segment": _choice(rng, segments, 1.0 / np.arange(1, 21), n),
        }
    )


def data_write(directory: Path, sizes) -> None:
    frame(REFERENCE_ROWS, SEED, shifted=False).to_parquet(directory / "reference.parquet")
    for size in sizes:
        frame(size, SEED + size, shifted=True).to_parquet(directory / f"window-{size}.parquet")


# ----------------------------------------------------------------------------- workers


def _rss_reset() -> None:
    """Reset the peak RSS (VmHWM) so it measures what follows (Linux)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _measure(compute, warm_up, payload) -> dict:
    warm_up()
    _rss_reset()
    rss_before = _status_kib("VmRSS")
    started = time.perf_counter()
    verdicts = compute(payload)
    seconds = time.perf_counter() - started
    rss_peak = _status_kib("VmHWM")
    tracemalloc.start()
    compute(payload)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "seconds": seconds,
        "traced_peak_mb": traced_peak / 2**20,
        "rss_growth_mb": max(rss_peak - rss_before, 0) / 2**10,
        **verdicts,
    }


def worker_ours(directory: Path, size: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from models_registry.profile import profile_build
    from monitoring.drift_stats import DriftConfig, drift_compute

    reference = pd.read_parquet(directory / "reference.parquet")
    window = pd.read_parquet(directory / f"window-{size}.parquet")
    profile = profile_build(
        features=reference,
        target="y",
        task="regression",
        classes=None,
        reference_predictions=pd.Series(np.zeros(len(reference))),
    )
    p_value_config = DriftConfig(method="p_value", stattest_threshold=THRESHOLD)

    def compute(frame_):
        result = drift_compute(profile=profile, window=frame_, config=p_value_config)
        return {
            "drifted": {f.feature: f.drifted for f in result.features},
            "p_values": {f.feature: f.p_value for f in result.features},
        }

    measured = _measure(compute, lambda: compute(window.head(1_000)), window)
    auto = drift_compute(profile=profile, window=window, config=DriftConfig())
    measured["auto_drifted"] = {f.feature: f.drifted for f in auto.features}
    measured["auto_method"] = sorted({f.method_used for f in auto.features})
    return measured


def worker_evidently(directory: Path, size: int) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(directory / "reference.parquet")
    window = pd.read_parquet(directory / f"window-{size}.parquet")
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)

    def compute(frame_):
        report = Report([DataDriftPreset(num_method="ks", cat_method="chisquare", threshold=THRESHOLD)])
        snapshot = report.run(
            current_data=Dataset.from_pandas(frame_, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )
        p_values = {}
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if config["type"].endswith("ValueDrift"):
                p_values[config["column"]] = float(metric["value"])
        # Evidently's verdicts: ks drifts at p <= threshold, chisquare at p < threshold.
        drifted = {name: (p <= THRESHOLD if name in NUMERIC else p < THRESHOLD) for name, p in p_values.items()}
        return {"drifted": drifted, "p_values": p_values}

    return _measure(compute, lambda: compute(window.head(1_000)), window)


WORKERS = {"ours": worker_ours, "evidently": worker_evidently}


# ----------------------------------------------------------------------------- driver


def evidently_python() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV} (one-off, about a minute)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import evidently, pyarrow"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS],
            check=True,
        )
    return python


def run_worker(python: Path, name: str, directory: Path, size: int) -> dict:
    completed = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--worker", name, "--data", str(directory), "--size", str(size)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
    )
    if completed.returncode != 0:
        raise SystemExit(f"{name} worker failed at {size} rows:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def report(results: dict, sizes) -> bool:
    print()
    print(f"{'rows':>9} | {'tool':<9} | {'seconds':>8} | {'traced MB':>9} | {'RSS +MB':>8} | drifted (KS/chi2 p<=0.05)")
    print("-" * 100)
    for size in sizes:
        for tool in ("ours", "evidently"):
            r = results[size].get(tool)
            if r is None:
                continue
            drifted = ",".join(sorted(k for k, v in r["drifted"].items() if v)) or "-"
            print(
                f"{size:>9,} | {tool:<9} | {r['seconds']:>8.3f} | {r['traced_peak_mb']:>9.1f} | "
                f"{r['rss_growth_mb']:>8.1f} | {drifted}"
            )
        ours = results[size]["ours"]
        auto = ",".join(sorted(k for k, v in ours["auto_drifted"].items() if v)) or "-"
        print(f"{'':>9} | {'ours auto':<9} | {'':>8} | {'':>9} | {'':>8} | {auto} ({'/'.join(ours['auto_method'])})")
    print()
    passed = True
    for size in sizes:
        ours, theirs = results[size]["ours"], results[size].get("evidently")
        if theirs is None:
            continue
        features = sorted(ours["drifted"])
        agree = [f for f in features if ours["drifted"][f] == theirs["drifted"].get(f)]
        speedup = theirs["seconds"] / ours["seconds"]
        memory_ratio = ours["traced_peak_mb"] / theirs["traced_peak_mb"]
        print(
            f"{size:>9,} rows: {speedup:6.1f}x faster, {memory_ratio:6.1%} of Evidently's traced peak, "
            f"verdicts agree on {len(agree)}/{len(features)} features"
        )
        truth = {f: f in SHIFTED for f in features}
        right_ours = sum(ours["drifted"][f] == truth[f] for f in features)
        right_theirs = sum(theirs["drifted"].get(f) == truth[f] for f in features)
        ks_gap = max(abs(ours["p_values"][f] - theirs["p_values"][f]) for f in NUMERIC)
        print(
            f"{'':>16}verdicts matching the generated shifts ({', '.join(sorted(SHIFTED))}): "
            f"ours {right_ours}/{len(features)}, Evidently {right_theirs}/{len(features)}; "
            f"largest KS p-value difference {ks_gap:.1e}"
        )
        for name in features:
            if name not in agree:
                print(
                    f"{'':>16}{name}: ours p={ours['p_values'][name]:.3g} drifted={ours['drifted'][name]}, "
                    f"Evidently p={theirs['p_values'].get(name, float('nan')):.3g} "
                    f"drifted={theirs['drifted'].get(name)}"
                )
        if size == 1_000_000:
            ok_speed = speedup >= TARGET_SPEEDUP
            ok_memory = memory_ratio <= TARGET_MEMORY_RATIO
            passed = ok_speed and ok_memory
            print(
                f"{'':>16}target >= {TARGET_SPEEDUP:.0f}x faster: {'PASS' if ok_speed else 'FAIL'}; "
                f"target <= 1/3 of the memory: {'PASS' if ok_memory else 'FAIL'}"
            )
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES), help="comma-separated window rows")
    parser.add_argument("--skip-evidently", action="store_true", help="time ours only")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.data, args.size)))
        return 0

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    python_evidently = None if args.skip_evidently else evidently_python()
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        directory = Path(tmp)
        data_write(directory, sizes)
        for size in sizes:
            results[size] = {"ours": run_worker(Path(sys.executable), "ours", directory, size)}
            print(f"{size:>9,} rows: ours {results[size]['ours']['seconds']:.3f} s", flush=True)
            if python_evidently is not None:
                results[size]["evidently"] = run_worker(python_evidently, "evidently", directory, size)
                print(f"{size:>9,} rows: Evidently {results[size]['evidently']['seconds']:.3f} s", flush=True)
    passed = report(results, sizes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
