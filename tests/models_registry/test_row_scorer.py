"""The fast row scorer must answer exactly what scikit-learn answers, or stay off."""

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from models_registry import row_scorer
from models_registry.demo_data import churn_frame, housing_frame
from models_registry.features import frame_for_model
from models_registry.profile import profile_build
from models_registry.row_scorer import RowScorer, row_scorer_build
from models_registry.serving import ServedModel
from models_registry.training import pipeline_build, training_data_prepare


def _fitted(frame: pd.DataFrame, target: str, task: str | None = None):
    data = training_data_prepare(
        csv=io.StringIO(frame.to_csv(index=False)), target=target, task=task, source_name="t.csv"
    )
    pipeline = pipeline_build(task=data.task, numeric=data.numeric, categorical=data.categorical)
    pipeline.fit(data.features, data.target)
    profile = profile_build(
        features=data.features,
        target=target,
        task=data.task,
        classes=[str(c) for c in pipeline.classes_] if data.task == "classification" else None,
        reference_predictions=pd.Series(pipeline.predict(data.features)),
    )
    return pipeline, profile, data.features


def _records(features: pd.DataFrame, n: int) -> list[dict]:
    rows = features.head(n).astype(object).where(features.head(n).notna(), None)
    return rows.to_dict(orient="records")


def _model_input(profile, records):
    """What the scikit-learn path feeds the pipeline."""
    return frame_for_model(
        pd.DataFrame.from_records(records, columns=[f["name"] for f in profile["features"]]), profile
    )


def _churn_with_gaps(seed=3):
    frame = churn_frame(n_rows=600, seed=seed)
    rng = np.random.default_rng(seed)
    frame.loc[rng.random(len(frame)) < 0.1, "monthly_charges"] = np.nan
    frame.loc[rng.random(len(frame)) < 0.1, "region"] = None
    return frame


def test_binary_classifier_matches_scikit_learn_on_every_kind_of_row():
    pipeline, profile, features = _fitted(_churn_with_gaps(), "churned")
    scorer = row_scorer_build(pipeline, profile)
    assert scorer is not None
    records = _records(features, 40)
    records += [
        {**records[0], "region": None},  # missing category
        {**records[0], "region": "atlantis"},  # never seen in training
        {**records[0], "contract": 12},  # a number sent for a category
        {**records[0], "monthly_charges": None},  # missing number
        {**records[0], "monthly_charges": 1e9},  # far out of range
    ]
    probabilities, labels = scorer.predict(records)
    frame = _model_input(profile, records)
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(frame), rtol=1e-12, atol=1e-15)
    assert list(labels) == list(pipeline.predict(frame))


def test_multiclass_classifier_matches_scikit_learn():
    frame = housing_frame(n_rows=600, seed=4)
    frame["price_band"] = pd.qcut(frame.pop("price"), 3, labels=["low", "mid", "high"]).astype(str)
    pipeline, profile, features = _fitted(frame, "price_band", "classification")
    scorer = row_scorer_build(pipeline, profile)
    assert scorer is not None and scorer.classes == ("high", "low", "mid")
    records = _records(features, 30)
    probabilities, labels = scorer.predict(records)
    sk_frame = _model_input(profile, records)
    assert probabilities.shape == (30, 3)
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(sk_frame), rtol=1e-12, atol=1e-15)
    assert list(labels) == list(pipeline.predict(sk_frame))


def test_regressor_matches_scikit_learn():
    pipeline, profile, features = _fitted(housing_frame(n_rows=600, seed=5), "price")
    scorer = row_scorer_build(pipeline, profile)
    assert scorer is not None
    records = _records(features, 30)
    probabilities, values = scorer.predict(records)
    assert probabilities is None
    np.testing.assert_allclose(values, pipeline.predict(_model_input(profile, records)), rtol=1e-12)


def test_a_pipeline_it_does_not_know_stays_on_scikit_learn():
    _, profile, features = _fitted(churn_frame(n_rows=300, seed=6), "churned")
    numeric = [f["name"] for f in profile["features"] if f["kind"] == "numeric"]
    other = Pipeline(
        [("preprocess", ColumnTransformer([("n", "passthrough", numeric)])), ("model", LogisticRegression())]
    )
    other.fit(features, churn_frame(n_rows=300, seed=6)["churned"].astype(str).iloc[: len(features)])
    assert row_scorer_build(other, profile) is None


def test_a_scorer_that_disagrees_is_not_used(monkeypatch):
    pipeline, profile, _ = _fitted(churn_frame(n_rows=300, seed=7), "churned")
    # Simulate a model whose trees the fast path would read wrongly.
    real_forest = row_scorer._forest

    def shifted_forest(model):
        forest = real_forest(model)
        forest.value[:] += 0.5
        return forest

    monkeypatch.setattr("models_registry.row_scorer._forest", shifted_forest)
    assert row_scorer_build(pipeline, profile) is None


def test_a_pipeline_whose_internals_moved_stays_on_scikit_learn(monkeypatch):
    """The tree reader uses private scikit-learn attributes; an upgrade that moves them
    must turn the fast path off, not break loading the model."""
    pipeline, profile, _ = _fitted(churn_frame(n_rows=300, seed=9), "churned")
    monkeypatch.delattr(pipeline[-1], "_predictors")
    assert row_scorer_build(pipeline, profile) is None


@pytest.mark.parametrize(("n_rows", "fast_path"), [(1, True), (64, True), (65, False)])
def test_served_model_answers_the_same_on_both_paths(n_rows, fast_path, monkeypatch):
    pipeline, profile, features = _fitted(churn_frame(n_rows=400, seed=8), "churned")
    served = ServedModel(
        name="m",
        version=1,
        run_id="r",
        task="classification",
        profile=profile,
        pipeline=pipeline,
        row_scorer=row_scorer_build(pipeline, profile),
    )
    records = _records(features, n_rows)
    calls = []
    real_predict = RowScorer.predict
    monkeypatch.setattr(RowScorer, "predict", lambda self, rows: calls.append(len(rows)) or real_predict(self, rows))
    fast = served.predict_records(records)
    assert calls == ([n_rows] if fast_path else [])
    plain = served.predict_frame(pd.DataFrame.from_records(records, columns=served.feature_names))
    assert list(fast.labels) == list(plain.labels)
    np.testing.assert_allclose(fast.probabilities, plain.probabilities, rtol=1e-12)
    assert fast.classes == plain.classes
