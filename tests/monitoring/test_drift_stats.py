"""The drift statistics core against a generated profile (no database).

The reference is 20,000 rows of ten features drawn from known distributions; the
profile keeps a 5,000-row reference sample (numeric tests) and the category
shares of all rows (categorical tests). Windows are fresh draws from the same
distributions ("unshifted") or with two changes ("shifted"): ``amount`` moved up
by 0.5 standard deviations and the share of ``plan == "premium"`` doubled from
0.2 to 0.4 (the other plans scaled down to make room).

Rates measured with this file's generator at default settings: over seeds
0-19 (the ones the tests use) and, in brackets, over 400 other seeds:

======  ===========  ==========================  =============  ====================
window  method used  per-feature false alarms    dataset alarm  shifted flagged
======  ===========  ==========================  =============  ====================
100     p-value      7/200 = 0.035 [0.048]       0/20 [0/400]   amount 20/20 [0.998]
                                                                plan 19/20 [0.968]
1,000   p-value      12/200 = 0.060 [0.041]      0/20 [0/400]   20/20, 20/20 [1, 1]
100k    effect size  0/200                       0/20           20/20, 20/20
======  ===========  ==========================  =============  ====================

KS power against a 0.5-sd shift with 100 window rows and a 5,000-row reference
is ~0.99 (a direct simulation gives 0.995), higher than the ~0.75 one might
expect, because the reference side is large (n_eff = 98); it drops to ~0.88 at
50 rows. The tests assert detection >= 0.9 (amount) and >= 0.85 (plan) at 100
rows, always-detect from 1,000 rows on, per-feature false alarms <= 0.1 with the
p-value method (0.05 by construction; KS is conservative on the discrete
features) and <= 0.01 with effect sizes, and no dataset-drift alarm at all.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models_registry.profile import profile_build
from monitoring.drift_stats import (
    DriftConfig,
    drift_compute,
    ks_wasserstein_sorted,
    p_values_adjust,
)

SEEDS = range(20)
SIZES = (100, 1_000, 100_000)
PLANS = np.array(["basic", "premium", "pro", "trial"], dtype=object)
PLAN_SHARES = np.array([0.5, 0.2, 0.2, 0.1])
# "premium" doubled, the rest scaled by 0.6 / 0.8.
PLAN_SHARES_SHIFTED = np.array([0.375, 0.4, 0.15, 0.075])
REGIONS = np.array([f"region-{i}" for i in range(8)], dtype=object)
REGION_SHARES = np.array([0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.04])
CHANNELS = np.array(["web", "app", "phone"], dtype=object)
CHANNEL_SHARES = np.array([0.6, 0.35, 0.05])
AMOUNT_MEAN, AMOUNT_STD = 50.0, 10.0


def _categorical(rng, values, shares, n, missing=0.0):
    out = values[rng.choice(len(values), size=n, p=shares)]
    if missing:
        out[rng.random(n) < missing] = None
    return out


def frame(n: int, seed: int, *, shifted: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.normal(0.0, 1.0, n)
    score[rng.random(n) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "amount": rng.normal(AMOUNT_MEAN + (0.5 * AMOUNT_STD if shifted else 0.0), AMOUNT_STD, n),
            "income": rng.lognormal(10.0, 0.75, n),
            "visits": rng.poisson(3.0, n),
            "age": rng.integers(18, 91, n),
            "ratio": rng.uniform(0.0, 1.0, n),
            "score": score,
            "plan": _categorical(rng, PLANS, PLAN_SHARES_SHIFTED if shifted else PLAN_SHARES, n),
            "region": _categorical(rng, REGIONS, REGION_SHARES, n),
            "is_member": rng.random(n) < 0.3,
            "channel": _categorical(rng, CHANNELS, CHANNEL_SHARES, n, missing=0.01),
        }
    )


def classes(n: int, seed: int, *, yes_share: float = 0.2) -> pd.Series:
    rng = np.random.default_rng(seed + 10_000)
    return pd.Series(np.where(rng.random(n) < yes_share, "yes", "no"))


@pytest.fixture(scope="module")
def profile() -> dict:
    reference = frame(20_000, seed=12345)
    return profile_build(
        features=reference,
        target="churned",
        task="classification",
        classes=["no", "yes"],
        reference_predictions=classes(5_000, seed=12345),
    )


@pytest.fixture(scope="module")
def regression_profile() -> dict:
    reference = frame(5_000, seed=54321)
    predictions = pd.Series(np.random.default_rng(1).normal(300.0, 40.0, 5_000))
    return profile_build(
        features=reference,
        target="price",
        task="regression",
        classes=None,
        reference_predictions=predictions,
    )


def by_feature(result):
    return {f.feature: f for f in result.features}


@pytest.fixture(scope="module")
def verdicts(profile) -> dict:
    """{(size, shifted): [result per seed]} at default settings."""
    out = {}
    for size in SIZES:
        for shifted in (False, True):
            out[size, shifted] = [
                drift_compute(profile=profile, window=frame(size, seed, shifted=shifted), config=DriftConfig())
                for seed in SEEDS
            ]
    return out


# ----------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("size", SIZES)
def test_unshifted_windows_raise_no_dataset_alarm_and_few_feature_alarms(verdicts, size):
    results = verdicts[size, False]
    assert not any(r.dataset_drift for r in results)
    alarms = sum(r.n_drifted for r in results)
    trials = sum(r.n_features for r in results)
    assert trials == 10 * len(SEEDS)
    # p-value method: ~0.05 by construction (measured 0.035 at 100 rows, 0.06 at 1,000); effect size: 0.
    assert alarms / trials <= (0.10 if size <= 1_000 else 0.01), alarms


@pytest.mark.parametrize("size", SIZES)
def test_method_switches_on_window_size(verdicts, size):
    methods = {f.method_used for r in verdicts[size, False] for f in r.features}
    assert methods == ({"p_value"} if size <= 1_000 else {"effect_size"})


@pytest.mark.parametrize("size", SIZES)
def test_shifted_features_are_flagged(verdicts, size):
    results = verdicts[size, True]
    amount = sum(by_feature(r)["amount"].drifted for r in results) / len(results)
    plan = sum(by_feature(r)["plan"].drifted for r in results) / len(results)
    if size == 100:
        # Measured 20/20 and 19/20 here, 0.998 and 0.968 over 400 other seeds.
        assert amount >= 0.9
        assert plan >= 0.85
    else:
        assert amount == 1.0
        assert plan == 1.0
    # Two of ten features drifted: below the default drift share.
    assert not any(r.dataset_drift for r in results if r.n_drifted < 5)


def test_effect_sizes_at_large_windows_measure_the_shift(verdicts):
    shifted = by_feature(verdicts[100_000, True][0])
    assert shifted["amount"].effect_size == pytest.approx(0.5, abs=0.05)
    assert shifted["plan"].effect_size > 0.15
    unshifted = by_feature(verdicts[100_000, False][0])
    assert max(f.effect_size for f in unshifted.values()) < 0.05


# ----------------------------------------------------------------------------- edge cases


def test_result_is_json_serialisable_with_finite_floats(profile):
    window = frame(500, seed=3, shifted=True)
    window["plan"] = "enterprise"  # all unseen: extreme statistics
    result = drift_compute(profile=profile, window=window, predictions=classes(500, 3), config=DriftConfig())
    json.dumps(result.to_dict(), allow_nan=False)
    assert by_feature(result)["plan"].unseen_share_window == 1.0


def test_feature_without_values_is_no_data(profile):
    window = frame(300, seed=4)
    window["amount"] = np.nan
    window["plan"] = None
    window = window.drop(columns=["region"])
    result = drift_compute(profile=profile, window=window, config=DriftConfig(critical_features=["amount"]))
    features = by_feature(result)
    for name in ("amount", "plan", "region"):
        assert features[name].verdict == "no_data"
        assert features[name].drifted is False
        assert features[name].statistic is None
        assert features[name].missing_share_window == 1.0
    assert result.n_features == 7
    assert result.n_no_data == 3
    assert result.dataset_drift is False


def test_empty_window(profile):
    result = drift_compute(profile=profile, window=frame(0, seed=0), predictions=pd.Series([], dtype=str))
    assert result.n_features == 0
    assert result.drifted_share is None
    assert result.dataset_drift is False
    assert {f.verdict for f in result.features} == {"no_data"}
    assert result.prediction.verdict == "no_data"
    json.dumps(result.to_dict(), allow_nan=False)


def test_missing_values_are_dropped_and_reported(profile):
    window = frame(2_000, seed=5)
    holes = window.copy()
    rng = np.random.default_rng(5)
    holes.loc[rng.random(len(holes)) < 0.3, "amount"] = np.nan
    holes.loc[holes.index[:100], "amount"] = np.inf
    holes.loc[rng.random(len(holes)) < 0.3, "region"] = None
    full = by_feature(drift_compute(profile=profile, window=holes.dropna(subset=["amount"])))
    amount = by_feature(drift_compute(profile=profile, window=holes))["amount"]
    assert amount.missing_share_window == pytest.approx(holes["amount"].isna().mean() + 100 / 2_000, abs=1e-3)
    assert amount.n_window == int(np.isfinite(holes["amount"]).sum())
    assert amount.statistic == full["amount"].statistic
    assert amount.verdict == "no_drift"
    region = by_feature(drift_compute(profile=profile, window=holes))["region"]
    assert region.missing_share_window == pytest.approx(holes["region"].isna().mean())
    assert region.n_window == holes["region"].notna().sum()


def test_numeric_strings_are_parsed_and_garbage_is_missing(profile):
    window = frame(1_000, seed=6)
    as_text = window.assign(amount=window["amount"].astype(str))
    as_text.loc[:9, "amount"] = "n/a"
    parsed = by_feature(drift_compute(profile=profile, window=as_text))["amount"]
    assert parsed.n_window == 990
    assert parsed.missing_share_window == pytest.approx(0.01)


def test_unseen_categories_pool_into_other(profile):
    window = frame(1_000, seed=7)
    few = window.copy()
    few.loc[:1, "plan"] = "enterprise"  # 2 rows in 1,000: not drift
    many = window.copy()
    many.loc[:299, "plan"] = "enterprise"  # 30 %: drift
    few_plan = by_feature(drift_compute(profile=profile, window=few))["plan"]
    many_plan = by_feature(drift_compute(profile=profile, window=many))["plan"]
    assert few_plan.unseen_share_window == pytest.approx(0.002)
    assert not few_plan.drifted
    assert many_plan.unseen_share_window == pytest.approx(0.3)
    assert many_plan.drifted
    assert many_plan.effect_size > 0.3


def test_bool_and_categorical_dtypes_match_profile_keys(profile):
    window = frame(1_000, seed=8)
    as_category = window.assign(plan=window["plan"].astype("category"), is_member=window["is_member"].astype(object))
    a = by_feature(drift_compute(profile=profile, window=window))
    b = by_feature(drift_compute(profile=profile, window=as_category))
    for name in ("plan", "is_member"):
        assert a[name].unseen_share_window == 0.0
        assert a[name].statistic == pytest.approx(b[name].statistic)


def test_classification_prediction_drift(profile):
    window = frame(1_000, seed=9)
    same = drift_compute(profile=profile, window=window, predictions=classes(1_000, 9))
    moved = drift_compute(profile=profile, window=window, predictions=classes(1_000, 9, yes_share=0.35))
    assert same.prediction.feature == "prediction"
    assert same.prediction.test == "chi2"
    assert same.prediction.n_reference == profile["prediction_reference"]["n"]  # two-sample test on counts
    assert not same.prediction.drifted
    assert moved.prediction.drifted
    assert not moved.dataset_drift  # predictions are reported, not counted in the share


def test_regression_prediction_drift(regression_profile):
    window = frame(5_000, seed=10)
    rng = np.random.default_rng(10)
    same = drift_compute(
        profile=regression_profile, window=window, predictions=pd.Series(rng.normal(300.0, 40.0, 5_000))
    )
    moved = drift_compute(
        profile=regression_profile, window=window, predictions=pd.Series(rng.normal(320.0, 40.0, 5_000))
    )
    assert same.prediction.test == "ks"
    assert same.prediction.method_used == "effect_size"
    assert same.prediction.n_reference == 5_000
    assert not same.prediction.drifted
    assert moved.prediction.drifted
    assert moved.prediction.effect_size == pytest.approx(0.5, abs=0.08)


def test_critical_feature_forces_dataset_drift(profile):
    window = frame(1_000, seed=11, shifted=True)
    plain = drift_compute(profile=profile, window=window, config=DriftConfig())
    critical = drift_compute(profile=profile, window=window, config=DriftConfig(critical_features=["amount"]))
    assert by_feature(plain)["amount"].drifted
    assert plain.drifted_share < 0.5
    assert not plain.dataset_drift
    assert critical.dataset_drift
    assert critical.critical_drifted == ["amount"]


def test_drift_share_threshold(profile):
    window = frame(1_000, seed=11, shifted=True)
    result = drift_compute(profile=profile, window=window, config=DriftConfig(drift_share=0.2))
    assert result.n_drifted >= 2
    assert result.dataset_drift


def test_correction_adjusts_p_values_and_verdicts(profile):
    # A 0.25-sd shift at 300 rows gives KS p-values around the 0.05 threshold:
    # find a seed where the uncorrected test flags amount and Bonferroni over ten features does not.
    for seed in range(50):
        window = frame(300, seed=seed)
        window["amount"] += 0.25 * AMOUNT_STD
        plain = by_feature(drift_compute(profile=profile, window=window))["amount"]
        if 0.005 < plain.p_value <= 0.05:
            break
    else:
        pytest.fail("no seed gave a borderline p-value")
    assert plain.drifted
    assert plain.p_value_adjusted is None
    bonferroni = drift_compute(profile=profile, window=window, config=DriftConfig(correction="bonferroni"))
    amount = by_feature(bonferroni)["amount"]
    assert amount.p_value == plain.p_value
    assert amount.p_value_adjusted == pytest.approx(min(1.0, plain.p_value * 10))
    assert not amount.drifted
    bh = by_feature(drift_compute(profile=profile, window=window, config=DriftConfig(correction="bh")))
    raw = [f.p_value for f in by_feature(bonferroni).values()]
    assert [f.p_value_adjusted for f in bh.values()] == pytest.approx(p_values_adjust(raw, "bh"))


def test_p_values_adjust():
    p = [0.01, 0.04, 0.03, 0.5]
    assert p_values_adjust(p, None) == p
    assert p_values_adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 1.0])
    # Benjamini-Hochberg by hand: sorted p * m / rank, then running minimum from the top.
    # ranks 1-4: 0.04, 0.06, 0.0533, 0.5 -> 0.04, 0.0533, 0.0533, 0.5.
    assert p_values_adjust(p, "bh") == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    with pytest.raises(ValueError, match="correction must be one of"):
        p_values_adjust(p, "holm")


def test_per_feature_override(profile):
    window = frame(1_000, seed=12, shifted=True)
    config = DriftConfig(
        per_feature={
            "amount": {"method": "effect_size", "effect_threshold": 0.9},
            "ratio": {"stattest_threshold": 1.0},
        }
    )
    result = by_feature(drift_compute(profile=profile, window=window, config=config))
    assert result["amount"].method_used == "effect_size"
    assert result["amount"].threshold == 0.9
    assert not result["amount"].drifted  # the 0.5-sd shift is below 0.9
    assert result["ratio"].threshold == 1.0
    assert result["ratio"].drifted  # every p-value is <= 1
    assert result["plan"].threshold == 0.05


def test_config_validation_and_round_trip(profile):
    config = DriftConfig(
        stattest_threshold=0.01,
        correction="bh",
        critical_features=["amount"],
        per_feature={"plan": {"effect_threshold": 0.2}},
        prediction={"method": "p_value"},
    )
    assert DriftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['threshold'\]"):
        DriftConfig(per_feature={"plan": {"threshold": 0.2}})
    with pytest.raises(ValueError, match="stattest_threshold must be a number in"):
        DriftConfig(stattest_threshold=0)
    with pytest.raises(ValueError, match="correction must be one of"):
        DriftConfig(correction="holm")
    with pytest.raises(ValueError, match="unknown drift config key"):
        DriftConfig.from_dict({"drift_shares": 0.3})
    with pytest.raises(ValueError, match=r"not in the profile: \['nope'\]"):
        drift_compute(profile=profile, window=frame(10, 0), config=DriftConfig(critical_features=["nope"]))


# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("n", [1, 50, 20_000, 200_000])
@pytest.mark.parametrize("discrete", [False, True])
def test_merged_ks_and_wasserstein_equal_scipy(n, discrete):
    rng = np.random.default_rng(n)
    if discrete:
        a, b = rng.poisson(3.0, 5_000).astype(float), rng.poisson(3.2, n).astype(float)
    else:
        a, b = rng.normal(0, 1, 5_000), rng.normal(0.1, 1.1, n)
    ks, wasserstein = ks_wasserstein_sorted(np.sort(a), np.sort(b))
    assert ks == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert wasserstein == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_large_window_ks_p_value_equals_scipy_asymptotic(profile):
    window = frame(50_000, seed=13, shifted=True)
    amount = by_feature(drift_compute(profile=profile, window=window))["amount"]
    reference = np.asarray(profile["reference_sample"]["amount"], dtype=float)
    expected = stats.ks_2samp(reference, window["amount"].to_numpy(), method="asymp")
    assert amount.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert amount.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    std = reference.std()
    assert amount.effect_size == pytest.approx(stats.wasserstein_distance(reference, window["amount"]) / std)


def test_psi_grows_with_the_shift(profile):
    unshifted = by_feature(drift_compute(profile=profile, window=frame(100_000, seed=14)))
    shifted = by_feature(drift_compute(profile=profile, window=frame(100_000, seed=14, shifted=True)))
    assert unshifted["amount"].psi < 0.01
    assert shifted["amount"].psi > 0.2  # ~0.25 for a 0.5-sd shift on decile bins
    assert unshifted["plan"].psi < 0.01
    assert shifted["plan"].psi > 0.1
    assert math.isfinite(shifted["visits"].psi)
