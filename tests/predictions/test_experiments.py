"""Production vs challenger on live traffic: the statistics, the verdicts, the page, auto-promotion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.utils import timezone

from models_registry.models import AliasChange
from models_registry.selectors import served_version_get
from predictions import experiments, routing
from predictions.experiments import BETTER, NO_DIFFERENCE, NO_FEEDBACK, NOT_ENOUGH, WORSE
from predictions.models import Prediction, TrafficPolicy, Variant

from .conftest import ROUTED
from .factories import CHURN_ROW

# --------------------------------------------------------------------------- the statistics


def test_wilson_interval_matches_the_textbook():
    low, high = experiments.wilson_interval(81, 100)
    assert (round(low, 4), round(high, 4)) == (0.7222, 0.8749)
    assert experiments.wilson_interval(0, 10)[0] == 0.0


def test_proportions_test_is_the_z_test_or_fisher_when_cells_are_small():
    name, p = experiments.proportions_test(900, 1000, 860, 1000)
    # pooled p = 0.88, se = sqrt(.88 * .12 * 2/1000) = 0.014533; z = 2.7524
    assert name == "two-proportion z-test" and p == pytest.approx(0.005915, rel=1e-3)
    name, p = experiments.proportions_test(9, 10, 3, 10)
    assert name == "Fisher's exact test" and p == pytest.approx(0.01977, rel=1e-3)


def test_rows_needed_is_the_standard_power_calculation():
    # 80 % vs 82 % accuracy, equal arms, 5 % two-sided, 80 % power: about 6,000 per arm.
    assert experiments.proportions_rows_needed(0.80, 0.82, ratio=1, difference=0.02) == pytest.approx(6011, rel=0.01)


def test_a_clearly_better_challenger_is_called_better_with_p_and_n():
    verdict = experiments.ab_classification_verdict(
        k_production=7200, n_production=9000, k_challenger=880, n_challenger=1000
    )
    assert verdict.outcome == BETTER
    assert verdict.text.startswith("challenger better, p < 0.0001, n = 10,000")


def test_a_worse_challenger_is_called_worse():
    verdict = experiments.ab_classification_verdict(
        k_production=8100, n_production=9000, k_challenger=800, n_challenger=1000
    )
    assert verdict.outcome == WORSE and "challenger worse" in verdict.text


def test_too_little_data_says_how_many_more_labelled_rows_are_needed():
    verdict = experiments.ab_classification_verdict(
        k_production=720, n_production=900, k_challenger=82, n_challenger=100
    )
    assert verdict.outcome == NOT_ENOUGH
    assert verdict.more_rows_needed > 1000
    assert f"need about {verdict.more_rows_needed:,} more labelled rows" in verdict.text
    # Adding that many rows at the same rates is enough to tell (the count is not a guess).
    scale = (1000 + verdict.more_rows_needed) / 1000
    bigger = experiments.ab_classification_verdict(
        k_production=round(720 * scale),
        n_production=round(900 * scale),
        k_challenger=round(82 * scale),
        n_challenger=round(100 * scale),
    )
    assert bigger.outcome == BETTER  # at the same rates, that many rows tell the difference


def test_no_clear_difference_once_there_is_enough_data():
    verdict = experiments.ab_classification_verdict(
        k_production=40_000, n_production=50_000, k_challenger=40_010, n_challenger=50_000
    )
    assert verdict.outcome == NO_DIFFERENCE and verdict.text.startswith("no clear difference, p = ")


def test_no_feedback_and_too_few_rows_are_said_so():
    assert experiments.ab_classification_verdict(
        k_production=0, n_production=0, k_challenger=0, n_challenger=0
    ).outcome == (NO_FEEDBACK)
    few = experiments.ab_classification_verdict(k_production=9, n_production=10, k_challenger=5, n_challenger=10)
    assert few.outcome == NOT_ENOUGH and "need about 20 more labelled rows per variant" in few.text


def test_regression_arms_use_welch_on_absolute_errors():
    rng = np.random.default_rng(0)
    production = np.abs(rng.normal(0, 10, 3000))
    better = np.abs(rng.normal(0, 8, 400))
    verdict = experiments.ab_regression_verdict(errors_production=production, errors_challenger=better)
    assert verdict.outcome == BETTER and verdict.test == "Welch's t-test on absolute errors"
    same = experiments.ab_regression_verdict(
        errors_production=production, errors_challenger=np.abs(rng.normal(0, 10, 400))
    )
    assert same.outcome in (NOT_ENOUGH, NO_DIFFERENCE)


def test_shadow_pairs_use_mcnemar_and_the_paired_t_test():
    rng = np.random.default_rng(1)
    production_right = rng.random(2000) < 0.8
    challenger_right = production_right.copy()
    flip = rng.random(2000) < 0.1
    challenger_right[flip & ~production_right] = True  # the challenger fixes some of production's misses
    verdict = experiments.shadow_classification_verdict(
        production_right=production_right, challenger_right=challenger_right
    )
    assert verdict.outcome == BETTER and verdict.test == "exact McNemar test"
    same = experiments.shadow_classification_verdict(
        production_right=production_right, challenger_right=production_right.copy()
    )
    assert same.p_value == 1.0 and same.outcome in (NOT_ENOUGH, NO_DIFFERENCE)

    errors = np.abs(rng.normal(0, 5, 500))
    paired = experiments.shadow_regression_verdict(errors_production=errors, errors_challenger=errors * 1.1)
    assert paired.outcome == WORSE and paired.test == "paired t-test on absolute errors"


def test_the_distribution_drift_between_the_two_answers():
    same = experiments.distribution_drift(["yes"] * 50 + ["no"] * 50, ["yes"] * 50 + ["no"] * 50, task="c")
    assert same["p_value"] == pytest.approx(1.0) and same["effect"] == pytest.approx(0.0)
    apart = experiments.distribution_drift(["yes"] * 90 + ["no"] * 10, ["yes"] * 10 + ["no"] * 90, task="c")
    assert apart["p_value"] < 1e-10 and apart["effect"] > 0.5
    rng = np.random.default_rng(2)
    shifted = experiments.distribution_drift(rng.normal(0, 1, 500), rng.normal(1, 1, 500), task="regression")
    assert shifted["test"] == "Kolmogorov-Smirnov" and shifted["p_value"] < 1e-10
    assert shifted["effect"] == pytest.approx(1.0, abs=0.2)


# --------------------------------------------------------------------------- what was stored


def _rows(name, version, variant, outcomes, *, source="api", shadow_of=None):
    """Stored predictions: (predicted, actual) pairs."""
    now = timezone.now()
    return Prediction.objects.bulk_create(
        [
            Prediction(
                created_at=now,
                model_name=name,
                model_version=version,
                run_id="r",
                source=source,
                request_id=f"q{i}",
                features=CHURN_ROW,
                predicted_label=predicted,
                actual_label=actual,
                feedback_at=now if actual is not None else None,
                variant=variant,
                shadow_of_id=shadow_of[i].pk if shadow_of else None,
            )
            for i, (predicted, actual) in enumerate(outcomes)
        ]
    )


@pytest.mark.django_db
def test_the_ab_summary_reads_each_arm_since_the_challenger_alias_moved(routed_model):
    name, production, challenger = routed_model
    _rows(name, production, Variant.PRODUCTION, [("yes", "yes")] * 700 + [("no", "yes")] * 200)
    _rows(name, challenger, Variant.CHALLENGER, [("yes", "yes")] * 95 + [("no", "yes")] * 5)
    _rows(name, production, Variant.PRODUCTION, [("no", "yes")] * 500, source="batch")  # never routed: left out

    summary = experiments.experiment_summary(model_name=name)
    assert (summary.production_version, summary.challenger_version) == (production, challenger)
    assert (summary.ab.n_production, summary.ab.n_challenger) == (900, 100)
    metrics = {m.variant: m for m in summary.ab.metrics}
    assert metrics["production"].value == pytest.approx(700 / 900)
    assert metrics["challenger"].value == pytest.approx(0.95)
    assert metrics["challenger"].low < 0.95 < metrics["challenger"].high
    assert summary.ab.verdict.outcome == BETTER
    assert summary.shadow.empty


@pytest.mark.django_db
def test_the_shadow_summary_pairs_rows_and_shares_production_feedback(routed_model):
    name, production, challenger = routed_model
    originals = _rows(name, production, Variant.PRODUCTION, [("yes", "yes")] * 60 + [("no", None)] * 40)
    _rows(name, challenger, Variant.SHADOW, [("yes", None)] * 50 + [("no", None)] * 50, shadow_of=originals)

    summary = experiments.experiment_summary(model_name=name)
    assert summary.shadow.n_challenger == 100
    assert summary.shadow.agreement == pytest.approx(0.9)  # 50 yes/yes + 40 no/no
    metrics = {m.variant: m for m in summary.shadow.metrics}
    assert (metrics["production"].n_labelled, metrics["shadow"].n_labelled) == (60, 60)
    assert metrics["production"].value == 1.0 and metrics["shadow"].value == pytest.approx(50 / 60)
    assert summary.shadow.drift["test"] == "chi-square"


@pytest.mark.django_db
def test_the_comparison_page_shows_both_and_staff_change_the_policy(routed_model, staff_client):
    name, production, challenger = routed_model
    originals = _rows(name, production, Variant.PRODUCTION, [("yes", "yes")] * 40)
    _rows(name, challenger, Variant.SHADOW, [("yes", None)] * 40, shadow_of=originals)
    _rows(name, challenger, Variant.CHALLENGER, [("no", "yes")] * 10)

    page = staff_client.get(f"/models/{name}/challenger/").content.decode()
    assert "Shadow: both versions on the same rows" in page and "Agreement" in page
    assert page.count('class="plotly-graph-div"') == 2
    assert "need about" in page

    response = staff_client.post(
        f"/models/{name}/challenger/",
        {"mode": "ab", "challenger_percent": "25", "reason": "a quarter to v2"},
    )
    assert response.status_code == 302
    assert routing.traffic_policy_get(model_name=name).challenger_percent == 25.0
    page = staff_client.get(f"/models/{name}/challenger/").content.decode()
    assert "A/B 25 %" in page and "a quarter to v2" in page

    refused = staff_client.post(f"/models/{name}/challenger/", {"mode": "ab", "challenger_percent": "25"})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()


@pytest.mark.django_db
def test_only_staff_change_the_policy(routed_model, user_client):
    assert user_client.get(f"/models/{ROUTED}/challenger/").status_code == 200
    response = user_client.post(
        f"/models/{ROUTED}/challenger/", {"mode": "ab", "challenger_percent": "50", "reason": "x"}
    )
    assert response.status_code == 403
    assert not TrafficPolicy.objects.exists()


# --------------------------------------------------------------------------- acting on the verdict


@pytest.mark.django_db
def test_a_clear_ab_verdict_promotes_the_challenger_only_when_the_policy_allows_it(routed_model):
    name, production, challenger = routed_model
    _rows(name, production, Variant.PRODUCTION, [("yes", "yes")] * 1400 + [("no", "yes")] * 600)
    _rows(name, challenger, Variant.CHALLENGER, [("yes", "yes")] * 190 + [("no", "yes")] * 10)
    routing.traffic_policy_set(model_name=name, mode="ab", challenger_percent=10, reason="try it")

    assert experiments.ab_auto_promote() == []  # off by default
    assert served_version_get(name=name) == production

    routing.traffic_policy_set(model_name=name, mode="ab", auto_promote=True, reason="let the data decide")
    lines = experiments.ab_auto_promote()
    assert len(lines) == 1 and f"promoted version {challenger}" in lines[0]
    assert served_version_get(name=name) == challenger
    move = AliasChange.objects.filter(model_name=name, alias="production").first()
    assert move.actor_label == "A/B auto-promote" and "challenger better, p" in move.reason
    assert TrafficPolicy.objects.get(model_name=name).mode == "production"


@pytest.mark.django_db
def test_an_unclear_verdict_promotes_nothing(routed_model):
    name, production, challenger = routed_model
    _rows(name, production, Variant.PRODUCTION, [("yes", "yes")] * 160 + [("no", "yes")] * 40)
    _rows(name, challenger, Variant.CHALLENGER, [("yes", "yes")] * 17 + [("no", "yes")] * 3)
    routing.traffic_policy_set(model_name=name, mode="ab", auto_promote=True, reason="let the data decide")
    assert experiments.ab_auto_promote() == []
    assert served_version_get(name=name) == production
    assert not math.isnan(experiments.experiment_summary(model_name=name).ab.metrics[0].value)
