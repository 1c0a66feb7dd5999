"""False-alarm rate of the drift verdicts on calm windows: the model's output beside its features.

    .venv/bin/python bench/prediction_drift_calibration.py [--models 8] [--windows 40] [--sizes 100,1000,100000]

For each dataset (churn: classifier, housing: regressor) ``--models`` models are fitted on 5,000
demo rows drawn with different seeds (the trainer's pipeline, split and profile, so each has its own
reference for its output), then judged on calm windows: rows from the same generator with another
seed, scored by that model, no drift. Every window that fires is a false alarm. A fixed reference
makes the verdicts of one model correlated (a reference off by its own sampling luck fires on many
calm checks of that model), so the rate is taken over models x windows and the worst model's own
rate is printed beside it. The output's reference is built two ways: the test split alone (1,000
rows; before) and the test split plus the out-of-fold answers on the training split (5,000 rows;
`models_registry.training.output_reference`, now: classifiers only, so for the regressor both columns
are the test split). Printed per window size, with 95 % Wilson
intervals, beside the per-feature rate and the dataset verdict's (the peers). No database, no MLflow:
`monitoring.drift_stats.drift_compute` on frames.

Target: the calibrated prediction verdict's false-alarm rate at most 5 % (the p-value threshold) at
every size (judged on the interval's lower end), and at most the features' own rate + 2 points.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATE = 0.05


def _setup():
    import os
    import tempfile

    # Nothing is stored: a throwaway var/ and the embedded defaults, only so the trainer's modules import.
    os.environ.update({"DEBUG": "1", "MLAPP_VAR_DIR": tempfile.mkdtemp(prefix="mlapp-calibration-")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapp.settings")
    import django

    django.setup()


def _fit(dataset: str, seed: int):
    """The trainer's pipeline, split and profile; the output's reference built both ways: the test split
    alone (before) and the test split plus the out-of-fold answers on the training split (the trainer's
    folds, `models_registry.selection._folds`; what `training.output_reference` now gives)."""
    from sklearn.model_selection import cross_val_predict, train_test_split

    from models_registry import selection, training
    from models_registry.demo_data import DEMO_TARGETS, demo_frame
    from models_registry.profile import profile_build

    target = DEMO_TARGETS[dataset]
    buffer = io.StringIO(demo_frame(dataset, n_rows=5000, seed=seed).to_csv(index=False))
    data = training.training_data_prepare(csv=buffer, target=target, task=None, source_name=f"{dataset}.csv")
    stratify = data.target if data.task == "classification" else None
    x_train, x_test, y_train, _y_test = train_test_split(
        data.features, data.target, test_size=training.TEST_SHARE, random_state=training.SPLIT_SEED, stratify=stratify
    )
    pipeline = training.pipeline_build(task=data.task, numeric=data.numeric, categorical=data.categorical)
    out_of_fold = pd.Series(
        cross_val_predict(pipeline, x_train, y_train, cv=selection._folds(data.task, y_train)), index=x_train.index
    )
    pipeline.fit(x_train, y_train)
    test_predictions = pd.Series(pipeline.predict(x_test), index=x_test.index)
    classes = [str(c) for c in pipeline.classes_] if data.task == "classification" else None
    profiles = {
        reference: profile_build(
            features=x_train, target=target, task=data.task, classes=classes, reference_predictions=predictions
        )
        for reference, predictions in (
            ("test", test_predictions),
            ("test+oof", training.output_reference(data.task, test_predictions, out_of_fold)),
        )
    }
    return data, pipeline, profiles


def _calm_pool(dataset: str, data, pipeline, n_rows: int) -> tuple[pd.DataFrame, pd.Series]:
    from models_registry.demo_data import DEMO_TARGETS, demo_frame
    from models_registry.features import frame_coerce

    frame = demo_frame(dataset, n_rows=n_rows, seed=123_457).drop(columns=[DEMO_TARGETS[dataset]])
    features = frame_coerce(frame[data.numeric + data.categorical], numeric=data.numeric, categorical=data.categorical)
    predictions = pd.Series(pipeline.predict(features))
    if data.task == "classification":
        predictions = predictions.astype(str)
    return features.reset_index(drop=True), predictions


def _wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate_cell(k: int, n: int) -> str:
    low, high = _wilson(k, n)
    return f"{k / n:>6.1%} [{low:4.1%}, {high:5.1%}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=8, help="models (training seeds) per dataset")
    parser.add_argument(
        "--windows", type=int, default=40, help="calm windows per model and size (a quarter at 100,000)"
    )
    parser.add_argument("--sizes", default="100,1000,100000")
    parser.add_argument("--datasets", default="churn,housing")
    args = parser.parse_args()
    _setup()
    from monitoring.drift_stats import DriftConfig, drift_compute

    sizes = [int(s) for s in args.sizes.split(",")]
    config = DriftConfig()
    failures = []
    header = f"{'dataset':<8} {'rows':>7} {'checks':>6}  {'output: test+oof (now)':<22} {'worst model':>11}"
    print(header + f"  {'output: test split (before)':<27} {'worst model':>11}  {'per feature':<21} {'dataset':<21}")
    for dataset in args.datasets.split(","):
        started = time.perf_counter()
        counts = {size: dict.fromkeys(("n", "now", "before", "feature", "tests", "dataset"), 0) for size in sizes}
        worst = {size: {"now": 0.0, "before": 0.0} for size in sizes}
        methods: dict[int, set] = {size: set() for size in sizes}
        for model_number in range(args.models):
            data, pipeline, profiles = _fit(dataset, seed=1000 + model_number)
            pool_features, pool_predictions = _calm_pool(dataset, data, pipeline, max(sizes) * 2)
            rng = np.random.default_rng(11 + model_number)
            for size in sizes:
                windows = args.windows if size < 100_000 else max(args.windows // 4, 2)
                fired = {"now": 0, "before": 0}
                for _ in range(windows):
                    rows = rng.choice(len(pool_features), size=size, replace=False)
                    window = pool_features.iloc[rows].reset_index(drop=True)
                    predictions = pool_predictions.iloc[rows].reset_index(drop=True)
                    result = drift_compute(
                        profile=profiles["test+oof"], window=window, predictions=predictions, config=config
                    )
                    before = drift_compute(
                        profile=profiles["test"], window=window.iloc[:, :0], predictions=predictions, config=config
                    )
                    c = counts[size]
                    c["n"] += 1
                    fired["now"] += bool(result.prediction.drifted)
                    fired["before"] += bool(before.prediction.drifted)
                    c["feature"] += result.n_drifted
                    c["tests"] += result.n_features
                    c["dataset"] += bool(result.dataset_drift)
                    methods[size].add(result.prediction.method_used)
                for key in fired:
                    counts[size][key] += fired[key]
                    worst[size][key] = max(worst[size][key], fired[key] / windows)
        for size in sizes:
            c = counts[size]
            print(
                f"{dataset:<8} {size:>7,} {c['n']:>6}  {_rate_cell(c['now'], c['n']):<22} {worst[size]['now']:>11.1%}"
                f"  {_rate_cell(c['before'], c['n']):<27} {worst[size]['before']:>11.1%}"
                f"  {_rate_cell(c['feature'], c['tests']):<21} {_rate_cell(c['dataset'], c['n']):<21}"
                f" auto chose {', '.join(sorted(methods[size]))}"
            )
            rate, low = c["now"] / c["n"], _wilson(c["now"], c["n"])[0]
            feature_rate = c["feature"] / c["tests"]
            if low > TARGET_RATE:
                failures.append(f"{dataset} at {size} rows: {rate:.1%} > {TARGET_RATE:.0%}")
            elif low > feature_rate + 0.02:
                failures.append(f"{dataset} at {size} rows: {rate:.1%}, features {feature_rate:.1%}")
        print(f"  ({dataset}: {args.models} models, {time.perf_counter() - started:.0f} s)")
    print("FAIL: " + "; ".join(failures) if failures else "PASS: the prediction verdict is calibrated at every size")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
