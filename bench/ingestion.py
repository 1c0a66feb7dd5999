"""Benchmark: validate-and-split of a raw CSV (`monitoring.validation`) against Great Expectations.

    .venv/bin/python bench/ingestion.py                          # 100,000 and 1,000,000 rows
    .venv/bin/python bench/ingestion.py --sizes 100000 --skip-gx
    .venv/bin/python bench/ingestion.py --json bench/out/ingestion.json

For each size: the churn demo's 9 feature columns (`models_registry.demo_data.churn_frame`)
with ~3% of rows given one fault each (missing value, wrong type, out of range,
unknown category, duplicate row), written as CSV in a temp dir. The profile comes
from 5,000 other rows. Every measurement runs in a fresh subprocess and reports
its own wall time around the call and its peak RSS during the call (``VmHWM``,
reset just before), total and growth over the RSS after imports and set-up.

Great Expectations 1.24 runs in its own virtualenv, ``var/bench-gx-venv`` (created
on first run), on the same file read by pandas, numeric columns coerced with
``pd.to_numeric`` in the (untimed) set-up, with the equivalent expectations:
not null (missing values and wrong types), between (range with the same
tolerance), in set (categories), compound columns unique (duplicates), all with
``result_format="COMPLETE"`` (row-level indexes). Timed: the validation alone,
after a warm-up run on 1,000 rows. GE does not split or write anything.

Target (1,000,000 rows): validate-and-split in no more seconds than GE's validation alone.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GX_VENV = ROOT / "var" / "bench-gx-venv"
GX_VERSION = "great-expectations==1.24.*"
NOTES_GX_SECONDS = 1.3  # shared/NOTES.md: GE 1.24, 9 column rules, COMPLETE, 1,000,000 rows
FAULT_SHARE = 0.03
TOLERANCE = 0.1

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _status_mb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_reset():
    # ru_maxrss would not do: a child inherits its parent's peak across fork+exec. Writing 5 to
    # clear_refs resets this process's VmHWM (Linux >= 4.0), so the peak is the measured call's.
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


# --- data -------------------------------------------------------------------------


def make_inputs(*, n_rows: int, folder: Path) -> tuple[Path, Path, int]:
    """(csv, profile.json, rows given a fault)."""
    import numpy as np
    import pandas as pd

    from models_registry.demo_data import churn_frame
    from models_registry.profile import profile_build

    training = churn_frame(n_rows=5000, seed=1).drop(columns="churned")
    profile = profile_build(
        features=training,
        target="churned",
        task="classification",
        classes=["no", "yes"],
        reference_predictions=pd.Series(["no", "yes"] * 10),
    )
    frame = churn_frame(n_rows=n_rows, seed=2).drop(columns="churned")
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    spans = {c: float(training[c].max() - training[c].min()) or 1.0 for c in numeric}
    highs = {c: float(training[c].max()) for c in numeric}
    frame = frame.astype(str)
    rng = np.random.default_rng(3)
    n_faults = int(n_rows * FAULT_SHARE)
    rows = rng.choice(np.arange(1, n_rows), size=n_faults, replace=False)
    for kind, positions in enumerate(np.array_split(rows, 5)):
        for column_index, part in enumerate(np.array_split(positions, 3)):
            if kind == 0:  # missing
                column = frame.columns[column_index * 3]
                frame.iloc[part, frame.columns.get_loc(column)] = ""
            elif kind == 1:  # wrong type
                column = numeric[column_index]
                frame.iloc[part, frame.columns.get_loc(column)] = "twelve"
            elif kind == 2:  # out of range
                column = numeric[column_index]
                frame.iloc[part, frame.columns.get_loc(column)] = str(int(highs[column] + 10 * spans[column]))
            elif kind == 3:  # unknown category
                column = categorical[column_index]
                frame.iloc[part, frame.columns.get_loc(column)] = "unknown-7"
            else:  # an exact copy of the row before
                frame.iloc[part] = frame.iloc[part - 1].to_numpy()
    csv_path, profile_path = folder / f"rows-{n_rows}.csv", folder / "profile.json"
    frame.to_csv(csv_path, index=False)
    profile_path.write_text(json.dumps(profile))
    return csv_path, profile_path, n_faults


# --- children ---------------------------------------------------------------------


def child_ours(csv_path: Path, profile_path: Path) -> dict:
    from monitoring.validation import ValidationConfig, file_validate_and_split

    profile = json.loads(profile_path.read_text())
    out = csv_path.parent / "out"
    out.mkdir(exist_ok=True)
    warm = out / "warm.csv"  # warm-up on 1,000 rows, as for GE: first calls load code and allocate pools
    with csv_path.open() as source:
        warm.write_text("".join(line for _, line in zip(range(1001), source, strict=False)))
    file_validate_and_split(raw_path=warm, profile=profile, good_path=out / "g.csv", bad_path=out / "b.csv")
    base = _peak_reset()
    started = time.perf_counter()
    result = file_validate_and_split(
        raw_path=csv_path,
        profile=profile,
        good_path=out / "good.csv",
        bad_path=out / "bad.csv",
        config=ValidationConfig(range_tolerance=TOLERANCE),
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows_in": result.rows_in,
        "rows_bad": result.rows_bad,
        "failures": {f"{i.rule}:{i.column}": i.count for i in result.issues if i.severity == "error"},
        "peak_rss_mb": _status_mb("VmHWM"),
        "rss_growth_mb": _status_mb("VmHWM") - base,
    }


GX_CHILD = (
    inspect.getsource(_status_mb)
    + inspect.getsource(_peak_reset)
    + r"""
import json, sys, time
import pandas as pd
import great_expectations as gx
import great_expectations.expectations as gxe

csv_path, profile_path, tolerance = sys.argv[1], sys.argv[2], float(sys.argv[3])
profile = json.loads(open(profile_path).read())
context = gx.get_context(mode="ephemeral")
batch_definition = (
    context.data_sources.add_pandas("bench").add_dataframe_asset("rows").add_batch_definition_whole_dataframe("all")
)
suite = context.suites.add(gx.ExpectationSuite(name="profile"))
names = [f["name"] for f in profile["features"]]
for f in profile["features"]:
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=f["name"]))
    if f["kind"] == "numeric":
        slack = tolerance * (f["max"] - f["min"])
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column=f["name"], min_value=f["min"] - slack, max_value=f["max"] + slack)
        )
    else:
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=f["name"], value_set=list(f["categories"])))
suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=names))
validation = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch_definition, suite=suite))

def load(nrows=None):
    frame = pd.read_csv(csv_path, nrows=nrows)
    for f in profile["features"]:
        if f["kind"] == "numeric":
            frame[f["name"]] = pd.to_numeric(frame[f["name"]], errors="coerce")
    return frame

validation.run(batch_parameters={"dataframe": load(1000)}, result_format="COMPLETE")  # warm-up
started = time.perf_counter()
frame = load()
load_seconds = time.perf_counter() - started
base = _peak_reset()
started = time.perf_counter()
result = validation.run(batch_parameters={"dataframe": frame}, result_format="COMPLETE")
seconds = time.perf_counter() - started
unexpected = {}
for r in result.results:
    kwargs = r.expectation_config.kwargs
    key = r.expectation_config.type + ":" + str(kwargs.get("column", ""))
    unexpected[key] = r.result.get("unexpected_count")
    if r.exception_info and r.exception_info.get("raised_exception"):
        unexpected[key] = "error: " + str(r.exception_info.get("exception_message"))[:80]
print(json.dumps({"seconds": seconds, "load_seconds": load_seconds, "rows_in": len(frame), "failures": unexpected,
                  "peak_rss_mb": _status_mb("VmHWM"), "rss_growth_mb": _status_mb("VmHWM") - base}))
"""
)


def gx_python() -> Path | None:
    python = GX_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {GX_VENV} with {GX_VERSION} (once, a minute or two)...", flush=True)
        try:
            subprocess.run(["python3", "-m", "venv", str(GX_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", GX_VERSION], check=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"Great Expectations could not be installed: {exc}")
            return None
    return python


def run_child(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main -------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--skip-gx", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ours":
        print(json.dumps(child_ours(args.csv, args.profile)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    python = None if args.skip_gx else gx_python()
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="bench-ingestion-") as tmp:
        for n_rows in sizes:
            folder = Path(tmp) / str(n_rows)
            folder.mkdir()
            csv_path, profile_path, n_faults = make_inputs(n_rows=n_rows, folder=folder)
            size_mb = csv_path.stat().st_size / 1e6
            ours = run_child(
                [sys.executable, __file__, "--child", "ours", "--csv", str(csv_path), "--profile", str(profile_path)]
            )
            rows_out.append({"rows": n_rows, "tool": "ours", "mb": size_mb, "faults": n_faults, **ours})
            if python:
                gx = run_child([str(python), "-c", GX_CHILD, str(csv_path), str(profile_path), str(TOLERANCE)])
                rows_out.append({"rows": n_rows, "tool": "GE 1.24", "mb": size_mb, "faults": n_faults, **gx})

    print(f"\n{'rows':>10} {'CSV MB':>7} {'tool':<8} {'seconds':>8} {'rows/s':>11} {'peak RSS MB':>12} {'RSS +MB':>8}")
    for r in rows_out:
        print(
            f"{r['rows']:>10,} {r['mb']:>7.1f} {r['tool']:<8} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>11,.0f}"
            f" {r['peak_rss_mb']:>12.0f} {r['rss_growth_mb']:>8.0f}"
        )
    for r in rows_out:
        extra = f", rows_bad {r['rows_bad']:,}" if "rows_bad" in r else ""
        print(f"\n{r['tool']} at {r['rows']:,} rows ({r['faults']:,} injected faults{extra}): {r['failures']}")
        if "load_seconds" in r:
            print(f"  + read_csv and to_numeric before validating (untimed above): {r['load_seconds']:.2f} s")

    largest = max(sizes)
    ours = next(r for r in rows_out if r["rows"] == largest and r["tool"] == "ours")
    gx = next((r for r in rows_out if r["rows"] == largest and r["tool"] != "ours"), None)
    reference, source = (gx["seconds"], "GE validation measured here") if gx else (NOTES_GX_SECONDS, "NOTES.md GE")
    if not gx and largest != 1_000_000:
        reference *= largest / 1_000_000
        source += " (scaled to the size)"
    verdict = "PASS" if ours["seconds"] <= reference else "FAIL"
    print(
        f"\nTarget at {largest:,} rows: validate-and-split {ours['seconds']:.2f} s"
        f" <= {source} {reference:.2f} s: {verdict}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows_out, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
